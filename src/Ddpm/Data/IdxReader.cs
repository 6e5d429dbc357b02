using System.Buffers.Binary;
using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>The content of an unsigned-byte IDX file: its dimensions and its row-major data.</summary>
public sealed record IdxFile(string Path, int Magic, int[] Dimensions, byte[] Data)
{
    public long Count => Dimensions[0];

    /// <summary>The data as a detached uint8 tensor of shape <see cref="Dimensions"/>.</summary>
    public Tensor ToTensor()
    {
        var result = empty(Dimensions.Select(d => (long)d).ToArray(), ScalarType.Byte).DetachFromDisposeScope();
        if (Data.Length > 0)
            Data.AsSpan().CopyTo(result.bytes);
        return result;
    }
}

/// <summary>
/// Reads IDX files (the MNIST format, http://yann.lecun.com/exdb/mnist/): a big-endian magic number 0x0000TTDD
/// (TT the element type, 0x08 = unsigned byte; DD the number of dimensions), DD big-endian int32 sizes, then the
/// row-major data. Gzip-compressed files are recognised by their first two bytes (1f 8b), whatever their name.
/// The whole file is read into one array with no per-element work, so the 47 MB Fashion-MNIST training images take
/// a fraction of a second.
/// </summary>
public static class IdxReader
{
    /// <summary>Unsigned bytes, 3 dimensions: [N, H, W] images.</summary>
    public const int ImagesMagic = 0x00000803;

    /// <summary>Unsigned bytes, 1 dimension: [N] labels.</summary>
    public const int LabelsMagic = 0x00000801;

    /// <summary>Reads an image file (magic 0x00000803): N images of H × W bytes.</summary>
    public static IdxFile ReadImages(string path) => Read(path, ImagesMagic);

    /// <summary>Reads a label file (magic 0x00000801): N bytes.</summary>
    public static IdxFile ReadLabels(string path) => Read(path, LabelsMagic);

    /// <summary>Reads an unsigned-byte IDX file whose magic number must be <paramref name="expectedMagic"/>.</summary>
    public static IdxFile Read(string path, int expectedMagic)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
            throw new DatasetException($"IDX file '{path}' does not exist; check the path or --data-dir.");
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
            Span<byte> gzipMagic = stackalloc byte[2];
            int magicRead = file.ReadAtLeast(gzipMagic, 2, throwOnEndOfStream: false);
            file.Position = 0;
            bool gzip = magicRead == 2 && gzipMagic[0] == 0x1f && gzipMagic[1] == 0x8b;
            using Stream stream = gzip ? new GZipStream(file, CompressionMode.Decompress) : file;
            return ReadContent(path, stream, expectedMagic, gzip);
        }
        catch (InvalidDataException ex)
        {
            // GZipStream's way of saying the compressed data is damaged. Its own message is generic (a failed CRC check
            // reads "unsupported compression method"), so it stays in the inner exception only.
            throw new DatasetException($"IDX file '{path}' is a corrupt gzip stream (the compressed data does not decode or fails its checksum); re-download it.", ex);
        }
        catch (IOException ex) when (ex is not FileNotFoundException)
        {
            throw new DatasetException($"IDX file '{path}' could not be read ({ex.Message}).", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new DatasetException($"IDX file '{path}' is not readable ({ex.Message}); check its permissions.", ex);
        }
    }

    private static IdxFile ReadContent(string path, Stream stream, int expectedMagic, bool gzip)
    {
        string what = gzip ? "decompressed data" : "file";
        Span<byte> word = stackalloc byte[4];
        int got = stream.ReadAtLeast(word, 4, throwOnEndOfStream: false);
        if (got < 4)
            throw new DatasetException($"IDX file '{path}' is truncated: expected 4 bytes of magic number, got {got}; re-download it.");
        int magic = BinaryPrimitives.ReadInt32BigEndian(word);
        if (magic != expectedMagic)
            throw new DatasetException($"IDX file '{path}' has the wrong magic number 0x{magic:X8} (expected 0x{expectedMagic:X8}, {Describe(expectedMagic)}): {Hint(magic, expectedMagic, gzip)}");

        int rank = magic & 0xff;
        var header = new byte[4 * rank];
        got = stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        if (got < header.Length)
            throw new DatasetException($"IDX file '{path}' is truncated: expected {header.Length} bytes of dimensions after the magic number, got {got}; re-download it.");
        var dims = new int[rank];
        long total = 1;
        for (int i = 0; i < rank; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4 * i));
            if (dims[i] < 0)
                throw new DatasetException($"IDX file '{path}' declares a negative size {dims[i]} for dimension {i}; the file is corrupt, re-download it.");
            total *= dims[i];
            if (total > Array.MaxLength)
                throw new DatasetException($"IDX file '{path}' declares [{string.Join(" x ", dims.Take(i + 1))}...] elements, more than one array can hold; the file is corrupt or not an IDX file.");
        }

        var data = new byte[total];
        got = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
        if (got < data.Length)
            throw new DatasetException($"IDX file '{path}' is truncated: expected {data.Length} bytes of data for [{string.Join(" x ", dims)}], got {got}; re-download it.");
        Span<byte> extra = stackalloc byte[1];
        if (stream.Read(extra) > 0)
            throw new DatasetException($"IDX file '{path}' has more {what} than its header declares ([{string.Join(" x ", dims)}] = {data.Length} bytes); it is corrupt or not an IDX file, re-download it.");
        return new IdxFile(path, magic, dims, data);
    }

    private static string Describe(int magic) => magic switch
    {
        ImagesMagic => "an IDX image file",
        LabelsMagic => "an IDX label file",
        _ => "an IDX file",
    };

    private static string Hint(int magic, int expected, bool gzip)
    {
        if (magic == ImagesMagic && expected == LabelsMagic)
            return "this is an image file where a label file was expected; check the file names.";
        if (magic == LabelsMagic && expected == ImagesMagic)
            return "this is a label file where an image file was expected; check the file names.";
        if ((magic >> 16) == 0 && ((magic >> 8) & 0xff) != 0x08)
            return $"element type 0x{(magic >> 8) & 0xff:X2} is not unsigned bytes (0x08), which is all MNIST-style datasets use.";
        return gzip
            ? "the decompressed content is not an IDX file; re-download it."
            : "not an IDX file (or a compressed format other than gzip); re-download it.";
    }
}
