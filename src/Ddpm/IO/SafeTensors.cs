using System.Buffers.Binary;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.IO;

/// <summary>
/// A file exists but its content cannot be what it claims to be (truncated, overwritten, or not that format at
/// all). The message names the file, says what is wrong and how to fix it, so that a CLI can print it as is.
/// </summary>
public sealed class CorruptFileException : IOException
{
    /// <summary>The advice appended when the caller gives none.</summary>
    public const string DefaultFix = "The file is damaged or was not written completely: re-download or re-create it.";

    /// <summary>The file that could not be read.</summary>
    public string FilePath { get; }

    /// <summary>What is wrong with it, without the file name or the fix.</summary>
    public string Problem { get; }

    public CorruptFileException(string filePath, string problem, string? fix = null, Exception? innerException = null)
        : base($"Corrupt file '{filePath}': {problem}. {fix ?? DefaultFix}", innerException)
    {
        FilePath = filePath;
        Problem = problem;
    }
}

/// <summary>
/// The safetensors format (huggingface/safetensors), which PyTorch and diffusers users exchange weights in:
/// <list type="number">
/// <item>8 bytes: N, the header length, unsigned little-endian;</item>
/// <item>N bytes: a UTF-8 JSON object <c>{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
/// "__metadata__": {"key": "value"}}</c>, padded with spaces so that the data starts 8-byte aligned;</item>
/// <item>the tensors' raw little-endian bytes, row-major; offsets are relative to the first byte after the header.</item>
/// </list>
/// The reader enforces the format's own rules (the data section is covered exactly, without holes or overlaps, and
/// each tensor's byte range matches its shape × dtype) so that a damaged file fails loudly instead of loading garbage.
/// </summary>
public static class SafeTensors
{
    /// <summary>The reference implementation refuses headers above 100 MB; so do we, before allocating anything.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    // Copies go through spans of at most this many bytes: Tensor.bytes is a Span and cannot exceed 2 GiB.
    private const long ChunkBytes = 1L << 26;

    private static readonly (string Name, ScalarType Type, int Size)[] DTypes =
    {
        ("F64", ScalarType.Float64, 8),
        ("F32", ScalarType.Float32, 4),
        ("F16", ScalarType.Float16, 2),
        ("BF16", ScalarType.BFloat16, 2),
        ("I64", ScalarType.Int64, 8),
        ("I32", ScalarType.Int32, 4),
        ("I16", ScalarType.Int16, 2),
        ("I8", ScalarType.Int8, 1),
        ("U8", ScalarType.Byte, 1),
        ("BOOL", ScalarType.Bool, 1),
    };

    // Valid in the format but without a TorchSharp counterpart here; named so the error says "unsupported", not "garbage".
    private static readonly HashSet<string> KnownButUnsupported = new(StringComparer.Ordinal)
    {
        "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "E8M0", "C64", "C128",
    };

    private sealed record Entry(string Name, ScalarType Type, long[] Shape, long Begin, long End);

    /// <summary>
    /// Writes <paramref name="tensors"/> (in ordinal name order) and <paramref name="metadata"/> atomically to
    /// <paramref name="path"/>. Tensors may be on any device, non-contiguous or require grad: each is copied to a
    /// contiguous CPU tensor just before its bytes are written. Supported dtypes: F64, F32, F16, BF16, I64, I32, I16,
    /// I8, U8, BOOL.
    /// </summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(tensors);
        EnsureLittleEndian();

        var names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        var entries = new List<(string Name, Tensor Tensor, string DType, long[] Shape, long Begin, long End)>(names.Length);
        long offset = 0;
        foreach (var name in names)
        {
            if (string.IsNullOrEmpty(name))
                throw new ArgumentException("Tensor names must be non-empty.", nameof(tensors));
            if (name == MetadataKey)
                throw new ArgumentException($"'{MetadataKey}' is reserved for the metadata; rename that tensor.", nameof(tensors));
            var tensor = tensors[name] ?? throw new ArgumentException($"Tensor '{name}' is null.", nameof(tensors));
            if (tensor.IsInvalid)
                throw new ArgumentException($"Tensor '{name}' has been disposed.", nameof(tensors));
            var (dtypeName, _, size) = Array.Find(DTypes, d => d.Type == tensor.dtype);
            if (dtypeName is null)
                throw new ArgumentException($"Tensor '{name}' has dtype {tensor.dtype}, which safetensors files here cannot hold; supported: {string.Join(", ", DTypes.Select(d => d.Type))}.", nameof(tensors));
            long length = checked(tensor.numel() * size);
            entries.Add((name, tensor, dtypeName, tensor.shape, offset, offset + length));
            offset += length;
        }

        byte[] header = BuildHeader(entries.Select(e => (e.Name, e.DType, e.Shape, e.Begin, e.End)), metadata);

        AtomicFile.Write(path, stream =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            foreach (var e in entries)
            {
                if (e.End == e.Begin)
                    continue;
                using var scope = NewDisposeScope();
                // detach: a parameter that requires grad cannot be viewed without it; contiguous().cpu() is a no-op
                // (an alias) for the common case of a contiguous CPU tensor.
                var flat = e.Tensor.detach().cpu().contiguous().reshape(-1);
                CopyChunks(flat, e.End - e.Begin, span => stream.Write(span));
            }
        });
    }

    /// <summary>Reads every tensor of a safetensors file. The tensors belong to no DisposeScope: the caller disposes them.</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        var (tensors, metadata) = LoadWithMetadata(path);
        return tensors;
    }

    /// <summary>
    /// Reads every tensor and the <c>__metadata__</c> map (empty when the file has none). The tensors are CPU tensors
    /// that belong to no DisposeScope: the caller disposes them. Throws <see cref="FileNotFoundException"/> when the
    /// file does not exist and <see cref="CorruptFileException"/> for any malformed content.
    /// </summary>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) LoadWithMetadata(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        EnsureLittleEndian();
        if (Directory.Exists(path))
            throw new FileNotFoundException($"'{path}' is a directory, not a safetensors file.", path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Safetensors file '{path}' does not exist. Check the path, or create the file first.", path);

        // bufferSize 1 disables FileStream's own buffer: the data is read straight into each tensor's memory.
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        long fileLength = stream.Length;
        if (fileLength < 8)
            throw Corrupt(path, $"it is {fileLength} bytes long, shorter than the 8-byte header-length prefix of a safetensors file");

        Span<byte> prefix = stackalloc byte[8];
        stream.ReadExactly(prefix);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > (ulong)(fileLength - 8))
            throw Corrupt(path, $"the header length field says {headerLength} bytes but only {fileLength - 8} bytes follow it (truncated file, or not a safetensors file)");
        if (headerLength > MaxHeaderBytes)
            throw Corrupt(path, $"the header length field says {headerLength} bytes, above the format's {MaxHeaderBytes}-byte limit");
        if (headerLength < 2)
            throw Corrupt(path, $"the header is {headerLength} bytes long, too short to hold a JSON object");

        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        long dataLength = fileLength - 8 - (long)headerLength;
        var (entries, metadata) = ParseHeader(path, headerBytes, dataLength);

        var result = new Dictionary<string, Tensor>(entries.Count, StringComparer.Ordinal);
        try
        {
            // Entries are sorted by offset and cover the data section exactly, so one sequential pass reads them all.
            foreach (var e in entries)
            {
                var tensor = empty(e.Shape, e.Type).DetachFromDisposeScope();
                result.Add(e.Name, tensor);
                if (e.End == e.Begin)
                    continue;
                using var flat = tensor.reshape(-1);
                CopyChunks(flat, e.End - e.Begin, span =>
                {
                    int read = stream.ReadAtLeast(span, span.Length, throwOnEndOfStream: false);
                    if (read < span.Length)
                        throw Corrupt(path, $"the data of tensor '{e.Name}' ends early (the file shrank while it was being read)");
                });
                if (e.Type == ScalarType.Bool)
                    CheckBooleans(path, e.Name, flat);
            }
        }
        catch
        {
            foreach (var t in result.Values)
                t.Dispose();
            throw;
        }
        return (result, metadata);
    }

    private static byte[] BuildHeader(IEnumerable<(string Name, string DType, long[] Shape, long Begin, long End)> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new MemoryStream();
        // Relaxed escaping keeps names such as "down.0+skip" or non-ASCII text readable; the result is still plain JSON.
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false }))
        {
            writer.WriteStartObject();
            // The Python and Rust writers put the metadata first; readers accept it anywhere.
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    if (value is null)
                        throw new ArgumentException($"Metadata value for '{key}' is null; safetensors metadata holds strings only.", nameof(metadata));
                    writer.WriteString(key, value);
                }
                writer.WriteEndObject();
            }
            foreach (var (name, dtype, shape, begin, end) in entries)
            {
                writer.WriteStartObject(name);
                writer.WriteString("dtype", dtype);
                writer.WriteStartArray("shape");
                foreach (var d in shape)
                    writer.WriteNumberValue(d);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(begin);
                writer.WriteNumberValue(end);
                writer.WriteEndArray();
                writer.WriteEndObject();
            }
            writer.WriteEndObject();
        }
        // Pad with spaces to a multiple of 8 so that the data section starts 8-byte aligned (as the reference writer does).
        int length = (int)buffer.Length;
        int padded = (length + 7) / 8 * 8;
        for (int i = length; i < padded; i++)
            buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static (List<Entry> Entries, Dictionary<string, string> Metadata) ParseHeader(string path, byte[] headerBytes, long dataLength)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(headerBytes, new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 16 });
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException or DecoderFallbackException)
        {
            throw Corrupt(path, $"the {headerBytes.Length}-byte header is not valid JSON ({ex.Message})", ex);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Corrupt(path, $"the header is a JSON {root.ValueKind}, not an object mapping tensor names to their dtype, shape and offsets");

            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var entries = new List<Entry>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                string name = property.Name;
                if (!seen.Add(name))
                    throw Corrupt(path, $"the header names '{name}' twice");
                if (name == MetadataKey)
                {
                    if (property.Value.ValueKind != JsonValueKind.Object)
                        throw Corrupt(path, $"'{MetadataKey}' is a JSON {property.Value.ValueKind}, not an object of strings");
                    foreach (var item in property.Value.EnumerateObject())
                    {
                        if (item.Value.ValueKind != JsonValueKind.String)
                            throw Corrupt(path, $"metadata entry '{item.Name}' is a JSON {item.Value.ValueKind}; safetensors metadata values are strings");
                        if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
                            throw Corrupt(path, $"metadata key '{item.Name}' appears twice");
                    }
                    continue;
                }
                entries.Add(ParseEntry(path, name, property.Value));
            }

            CheckLayout(path, entries, dataLength);
            return (entries, metadata);
        }
    }

    private static Entry ParseEntry(string path, string name, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Corrupt(path, $"the header entry for tensor '{name}' is a JSON {value.ValueKind}, not an object");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Corrupt(path, $"tensor '{name}' has no \"dtype\" string");
        string dtypeName = dtypeElement.GetString()!;
        var (knownName, type, size) = Array.Find(DTypes, d => d.Name == dtypeName);
        if (knownName is null)
        {
            if (KnownButUnsupported.Contains(dtypeName))
                throw new CorruptFileException(path,
                    $"tensor '{name}' has dtype {dtypeName}, which this reader does not support (supported: {string.Join(", ", DTypes.Select(d => d.Name))})",
                    "Convert the file to one of the supported dtypes first (for example with PyTorch: tensor.to(torch.float32)) and save it again.");
            throw Corrupt(path, $"tensor '{name}' has unknown dtype \"{dtypeName}\" (known: {string.Join(", ", DTypes.Select(d => d.Name))})");
        }

        var shape = ReadIntegers(path, name, value, "shape", expectedCount: null);
        var offsets = ReadIntegers(path, name, value, "data_offsets", expectedCount: 2);
        long begin = offsets[0], end = offsets[1];
        if (end < begin)
            throw Corrupt(path, $"tensor '{name}' has data_offsets [{begin}, {end}] that end before they begin");

        long expected;
        try
        {
            long count = 1;
            foreach (var d in shape)
                count = checked(count * d);
            expected = checked(count * size);
        }
        catch (OverflowException)
        {
            throw Corrupt(path, $"tensor '{name}' has shape [{string.Join(", ", shape)}], too large to address");
        }
        if (end - begin != expected)
            throw Corrupt(path, $"tensor '{name}' ({dtypeName}, shape [{string.Join(", ", shape)}]) needs {expected} bytes but its data_offsets [{begin}, {end}] span {end - begin}");
        return new Entry(name, type, shape, begin, end);
    }

    private static long[] ReadIntegers(string path, string name, JsonElement value, string field, int? expectedCount)
    {
        if (!value.TryGetProperty(field, out var array) || array.ValueKind != JsonValueKind.Array)
            throw Corrupt(path, $"tensor '{name}' has no \"{field}\" array");
        int count = array.GetArrayLength();
        if (expectedCount is int n && count != n)
            throw Corrupt(path, $"tensor '{name}' has {count} values in \"{field}\", expected {n}");
        if (count > 64)
            throw Corrupt(path, $"tensor '{name}' has {count} dimensions");
        var result = new long[count];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
                throw Corrupt(path, $"tensor '{name}' has {field}[{i}] = {item.GetRawText()}, not a non-negative integer");
            result[i++] = v;
        }
        return result;
    }

    /// <summary>
    /// The format requires the tensors' byte ranges to tile the data section exactly: no overlap (two tensors
    /// sharing bytes), no hole, and no bytes beyond the last tensor. A shorter data section means a truncated file.
    /// Sorts <paramref name="entries"/> by offset.
    /// </summary>
    private static void CheckLayout(string path, List<Entry> entries, long dataLength)
    {
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long position = 0;
        Entry? previous = null;
        foreach (var e in entries)
        {
            if (e.Begin < position)
                throw Corrupt(path, $"tensor '{e.Name}' (bytes {e.Begin}..{e.End}) overlaps tensor '{previous!.Name}' (bytes {previous.Begin}..{previous.End})");
            if (e.Begin > position)
                throw Corrupt(path, $"the data section has a hole: bytes {position}..{e.Begin} before tensor '{e.Name}' belong to no tensor");
            position = e.End;
            previous = e;
        }
        if (position > dataLength)
            throw Corrupt(path, $"the header describes {position} bytes of tensor data but the file holds only {dataLength} after the header (truncated file)");
        if (position < dataLength)
            throw Corrupt(path, $"the file holds {dataLength - position} bytes after the last tensor's data ({dataLength} data bytes, {position} described by the header)");
    }

    /// <summary>Hands the bytes of the contiguous 1-D tensor <paramref name="flat"/> to <paramref name="action"/> in spans of at most <see cref="ChunkBytes"/>.</summary>
    private static void CopyChunks(Tensor flat, long totalBytes, SpanAction action)
    {
        long elementSize = flat.element_size();
        long elements = flat.numel();
        if (elements * elementSize != totalBytes)
            throw new InvalidOperationException($"Internal error: tensor has {elements * elementSize} bytes, expected {totalBytes}.");
        if (totalBytes <= ChunkBytes)
        {
            action(flat.bytes);
            return;
        }
        long perChunk = Math.Max(1, ChunkBytes / elementSize);
        for (long start = 0; start < elements; start += perChunk)
        {
            using var part = flat.narrow(0, start, Math.Min(perChunk, elements - start));
            action(part.bytes);
        }
    }

    private delegate void SpanAction(Span<byte> span);

    /// <summary>libtorch assumes bool bytes are 0 or 1; anything else would make comparisons and sums undefined.</summary>
    private static void CheckBooleans(string path, string name, Tensor flat)
    {
        CopyChunks(flat, flat.numel(), span =>
        {
            int bad = span.IndexOfAnyExcept((byte)0, (byte)1);
            if (bad >= 0)
                throw Corrupt(path, $"BOOL tensor '{name}' holds the byte 0x{span[bad]:X2}; booleans must be 0 or 1");
        });
    }

    private static CorruptFileException Corrupt(string path, string problem, Exception? inner = null) =>
        new(path, $"not a valid safetensors file: {problem}", innerException: inner);

    private static void EnsureLittleEndian()
    {
        // Tensor memory is copied to and from the file as is; the format is little-endian.
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Safetensors I/O here copies tensor memory as is and needs a little-endian machine.");
    }
}
