using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Ddpm.IO;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpm.Tests.IO;

public sealed class SafeTensorsTests : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly string _dir;

    public SafeTensorsTests(ITestOutputHelper output)
    {
        _output = output;
        _dir = Path.Combine(Path.GetTempPath(), "ddpm-safetensors-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static byte[] BytesOf(Tensor t)
    {
        using var c = t.contiguous();
        return c.numel() == 0 ? Array.Empty<byte>() : c.bytes.ToArray();
    }

    private static void DisposeAll(Dictionary<string, Tensor> tensors)
    {
        foreach (var t in tensors.Values) t.Dispose();
    }

    /// <summary>One tensor per dtype, filled with random bytes (so NaN payloads and subnormals are exercised), in several shapes.</summary>
    private static Dictionary<string, Tensor> TensorsOfEveryDtype()
    {
        var rng = new Random(1234);
        var result = new Dictionary<string, Tensor>();
        var shapes = new[] { new long[] { 3, 5 }, new long[] { 2, 3, 4 }, new long[] { 7 }, Array.Empty<long>(), new long[] { 0, 3 } };
        var dtypes = new[] { ScalarType.Float64, ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Int64, ScalarType.Int32, ScalarType.Int16, ScalarType.Int8, ScalarType.Byte };
        foreach (var dtype in dtypes)
            for (int s = 0; s < shapes.Length; s++)
            {
                var t = empty(shapes[s], dtype).DetachFromDisposeScope();
                if (t.numel() > 0)
                    rng.NextBytes(t.bytes);
                result[$"{dtype}.{s}"] = t;
            }
        result["bool"] = tensor(new[] { true, false, false, true, true, false }).reshape(2, 3).DetachFromDisposeScope();
        result["bool.scalar"] = tensor(true).DetachFromDisposeScope();
        return result;
    }

    [Fact]
    public void EveryDtypeRoundTripsBitwise()
    {
        var tensors = TensorsOfEveryDtype();
        try
        {
            string path = PathOf("all.safetensors");
            SafeTensors.Save(path, tensors);
            var loaded = SafeTensors.Load(path);
            try
            {
                Assert.Equal(tensors.Keys.OrderBy(k => k, StringComparer.Ordinal), loaded.Keys.OrderBy(k => k, StringComparer.Ordinal));
                foreach (var (name, expected) in tensors)
                {
                    var actual = loaded[name];
                    Assert.Equal(expected.dtype, actual.dtype);
                    Assert.Equal(expected.shape, actual.shape);
                    Assert.Equal(DeviceType.CPU, actual.device_type);
                    Assert.True(BytesOf(expected).AsSpan().SequenceEqual(BytesOf(actual)), $"{name}: bytes differ after the round trip.");
                }
            }
            finally { DisposeAll(loaded); }
        }
        finally { DisposeAll(tensors); }
    }

    [Fact]
    public void NonContiguousAndGradTensorsAreSavedByValue()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(7);
        var baseTensor = randn(new long[] { 4, 6 }, generator: gen);
        var transposed = baseTensor.t();
        var strided = baseTensor[.., TensorIndex.Slice(0, 6, 2)];
        var parameter = randn(new long[] { 3 }, generator: gen).requires_grad_();
        Assert.False(transposed.is_contiguous());
        string path = PathOf("views.safetensors");
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["t"] = transposed, ["s"] = strided, ["p"] = parameter });
        var loaded = SafeTensors.Load(path);
        try
        {
            Assert.Equal(new long[] { 6, 4 }, loaded["t"].shape);
            Assert.True(loaded["t"].eq(transposed).all().item<bool>());
            Assert.True(loaded["s"].eq(strided).all().item<bool>());
            Assert.True(loaded["p"].eq(parameter.detach()).all().item<bool>());
            Assert.False(loaded["p"].requires_grad);
        }
        finally { DisposeAll(loaded); }
    }

    [Fact]
    public void MetadataRoundTrips()
    {
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["config"] = "{\"channels\": [64, 128], \"note\": \"quotes \\\" and \\\\ backslashes\"}",
            ["unicode"] = "ε-prediction, ᾱ_t, 日本語",
            ["empty"] = "",
            ["newline"] = "a\nb\tc",
        };
        using var w = ones(2, 2).DetachFromDisposeScope();
        string path = PathOf("meta.safetensors");
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["w"] = w }, metadata);
        var (tensors, loadedMetadata) = SafeTensors.LoadWithMetadata(path);
        DisposeAll(tensors);
        Assert.Equal(metadata.OrderBy(kv => kv.Key), loadedMetadata.OrderBy(kv => kv.Key));

        // Without metadata the map is empty and the header has no __metadata__ entry.
        string plain = PathOf("plain.safetensors");
        SafeTensors.Save(plain, new Dictionary<string, Tensor> { ["w"] = w });
        var (tensors2, metadata2) = SafeTensors.LoadWithMetadata(plain);
        DisposeAll(tensors2);
        Assert.Empty(metadata2);
        Assert.DoesNotContain("__metadata__", Encoding.UTF8.GetString(File.ReadAllBytes(plain)));
    }

    /// <summary>The exact bytes of the standard format, built by hand: u64 LE header length, compact JSON padded with spaces to a multiple of 8, raw LE data.</summary>
    [Fact]
    public void HeaderLayoutIsTheStandardOneByteForByte()
    {
        using var w = tensor(new float[] { 1.0f, -2.0f }).DetachFromDisposeScope();
        using var b = tensor(new short[] { 0x0102 }, dtype: ScalarType.Int16).DetachFromDisposeScope();
        string path = PathOf("layout.safetensors");
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["w"] = w, ["b"] = b }, new Dictionary<string, string> { ["format"] = "pt" });

        // Sorted names: "b" (I16, 2 bytes at 0..2) before "w" (F32, 8 bytes at 2..10).
        string json = "{\"__metadata__\":{\"format\":\"pt\"},"
                    + "\"b\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[0,2]},"
                    + "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]}}";
        Assert.Equal(139, json.Length);
        string header = json + "     "; // 139 -> 144, a multiple of 8
        var expected = new List<byte>();
        expected.AddRange(new byte[] { 144, 0, 0, 0, 0, 0, 0, 0 });
        expected.AddRange(Encoding.ASCII.GetBytes(header));
        expected.AddRange(new byte[] { 0x02, 0x01 });                    // 0x0102 little-endian
        expected.AddRange(new byte[] { 0x00, 0x00, 0x80, 0x3F });        // 1.0f
        expected.AddRange(new byte[] { 0x00, 0x00, 0x00, 0xC0 });        // -2.0f
        Assert.Equal(expected.ToArray(), File.ReadAllBytes(path));
    }

    [Fact]
    public void ReadsFilesFromOtherWritersLayouts()
    {
        // Unpadded header, metadata last, tensors out of name order, whitespace, an unknown extra field: all legal.
        string json = "{ \"z\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 8], \"extra\": 1},\n"
                    + "  \"a\": {\"shape\": [], \"dtype\": \"F64\", \"data_offsets\": [8, 16]},\n"
                    + "  \"__metadata__\": {\"k\": \"v\"} }";
        var data = new byte[16];
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(0), -5);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(4), 7);
        BinaryPrimitives.WriteDoubleLittleEndian(data.AsSpan(8), Math.PI);
        string path = PathOf("other.safetensors");
        File.WriteAllBytes(path, Build(Encoding.UTF8.GetBytes(json), data));

        var (tensors, metadata) = SafeTensors.LoadWithMetadata(path);
        try
        {
            Assert.Equal(new[] { -5, 7 }, tensors["z"].data<int>().ToArray());
            Assert.Empty(tensors["a"].shape);
            Assert.Equal(Math.PI, tensors["a"].item<double>());
            Assert.Equal("v", metadata["k"]);
        }
        finally { DisposeAll(tensors); }
    }

    [Fact]
    public void EmptyDictionaryRoundTrips()
    {
        string path = PathOf("empty.safetensors");
        SafeTensors.Save(path, new Dictionary<string, Tensor>());
        Assert.Equal(16, new FileInfo(path).Length); // 8-byte length + "{}" padded to 8
        Assert.Empty(SafeTensors.Load(path));
    }

    [Fact]
    public void LoadedTensorsOutliveTheCallersDisposeScope()
    {
        using var w = arange(6, dtype: ScalarType.Float32).DetachFromDisposeScope();
        string path = PathOf("scope.safetensors");
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["w"] = w });
        Dictionary<string, Tensor> loaded;
        using (NewDisposeScope())
            loaded = SafeTensors.Load(path);
        Assert.False(loaded["w"].IsInvalid);
        Assert.Equal(15f, loaded["w"].sum().item<float>());
        DisposeAll(loaded);
    }

    [Fact]
    public void SaveReplacesAtomicallyAndLeavesNoTemporaryFiles()
    {
        string path = PathOf("atomic.safetensors");
        using var a = zeros(3).DetachFromDisposeScope();
        using var b = ones(5).DetachFromDisposeScope();
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["a"] = a });
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["b"] = b });
        var loaded = SafeTensors.Load(path);
        Assert.Equal(new[] { "b" }, loaded.Keys);
        DisposeAll(loaded);
        Assert.Equal(new[] { path }, Directory.GetFiles(_dir));
    }

    [Fact]
    public void SaveRejectsWhatTheFormatCannotHold()
    {
        using var complex = zeros(2, dtype: ScalarType.ComplexFloat32).DetachFromDisposeScope();
        using var fine = zeros(2).DetachFromDisposeScope();
        var ex = Assert.Throws<ArgumentException>(() => SafeTensors.Save(PathOf("c.safetensors"), new Dictionary<string, Tensor> { ["c"] = complex }));
        Assert.Contains("'c'", ex.Message);
        Assert.Throws<ArgumentException>(() => SafeTensors.Save(PathOf("m.safetensors"), new Dictionary<string, Tensor> { ["__metadata__"] = fine }));
        Assert.False(File.Exists(PathOf("c.safetensors")));
    }

    [Fact]
    public void MissingFileIsFileNotFound()
    {
        string path = PathOf("nope.safetensors");
        var ex = Assert.Throws<FileNotFoundException>(() => SafeTensors.Load(path));
        Assert.Contains(path, ex.Message);
        Assert.Throws<FileNotFoundException>(() => SafeTensors.Load(_dir));
    }

    // ---- corruption: every malformed file is a CorruptFileException naming the file and the fix ----

    private static byte[] Build(byte[] header, byte[] data)
    {
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }

    private static byte[] Build(string json, int dataBytes) => Build(Encoding.UTF8.GetBytes(json), new byte[dataBytes]);

    private CorruptFileException AssertCorrupt(byte[] content, string expectedText, string expectedFix = "re-download or re-create it")
    {
        string path = PathOf("corrupt-" + Guid.NewGuid().ToString("N")[..8] + ".safetensors");
        File.WriteAllBytes(path, content);
        var ex = Assert.Throws<CorruptFileException>(() => SafeTensors.Load(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains(expectedText, ex.Message);
        Assert.Contains(expectedFix, ex.Message);
        Assert.Equal(path, ex.FilePath);
        _output.WriteLine(ex.Message);
        return ex;
    }

    private byte[] ValidFile()
    {
        using var w = arange(12, dtype: ScalarType.Float32).reshape(3, 4).DetachFromDisposeScope();
        using var b = arange(3, dtype: ScalarType.Int64).DetachFromDisposeScope();
        string path = PathOf("valid.safetensors");
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["w"] = w, ["b"] = b }, new Dictionary<string, string> { ["k"] = "v" });
        return File.ReadAllBytes(path);
    }

    private const string OneF32 = "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

    [Fact]
    public void ShorterThanEightBytes()
    {
        AssertCorrupt(Array.Empty<byte>(), "0 bytes long");
        AssertCorrupt(new byte[] { 1, 2, 3, 4, 5, 6, 7 }, "7 bytes long");
    }

    [Fact]
    public void HeaderLengthBeyondTheFile()
    {
        var bytes = ValidFile();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)bytes.Length);
        AssertCorrupt(bytes, "header length field says");
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue);
        AssertCorrupt(bytes, "header length field says");
        // A flipped high bit of the length.
        bytes = ValidFile();
        bytes[7] ^= 0x80;
        AssertCorrupt(bytes, "header length field says");
    }

    [Fact]
    public void HeaderLengthTooShortOrPointingIntoTheMiddle()
    {
        var bytes = ValidFile();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 0);
        AssertCorrupt(bytes, "too short");
        bytes = ValidFile();
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, n - 9);
        AssertCorrupt(bytes, "not valid JSON");
    }

    [Fact]
    public void InvalidJson()
    {
        AssertCorrupt(Build("{\"w\": {\"dtype\": \"F32\", ", 0), "not valid JSON");
        AssertCorrupt(Build("garbage!garbage!", 0), "not valid JSON");
        AssertCorrupt(Build(new byte[] { (byte)'{', 0xff, 0xfe, (byte)'}' }, Array.Empty<byte>()), "not valid JSON");
        AssertCorrupt(Build("[1, 2, 3]       ", 0), "not an object");
        AssertCorrupt(Build("{\"w\": 5}", 0), "not an object");
    }

    [Fact]
    public void BadEntries()
    {
        AssertCorrupt(Build("{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "unknown dtype \"F33\"");
        // A dtype the format knows but this reader does not: the fix says how to convert, not to re-download.
        AssertCorrupt(Build("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2), "does not support", "Convert the file");
        AssertCorrupt(Build("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "no \"dtype\"");
        AssertCorrupt(Build("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8), "no \"shape\"");
        AssertCorrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8), "not a non-negative integer");
        AssertCorrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8), "not a non-negative integer");
        AssertCorrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8), "expected 2");
        AssertCorrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8), "too large");
        AssertCorrupt(Build("{\"__metadata__\":{\"k\":5}," + OneF32 + "}", 8), "metadata entry 'k'");
        AssertCorrupt(Build("{\"__metadata__\":[]," + OneF32 + "}", 8), "not an object of strings");
        AssertCorrupt(Build("{" + OneF32 + "," + OneF32 + "}", 8), "names 'w' twice");
    }

    [Fact]
    public void BadOffsets()
    {
        // Size does not match shape x dtype.
        AssertCorrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "needs 12 bytes");
        // End before begin.
        AssertCorrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8), "end before they begin");
        // Out of range: beyond the data section.
        AssertCorrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16), "hole");
        AssertCorrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8), "truncated");
        // Overlapping tensors.
        AssertCorrupt(Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), "overlaps");
        // A hole between tensors.
        AssertCorrupt(Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12), "hole");
        // Trailing bytes after the last tensor.
        AssertCorrupt(Build("{" + OneF32 + "}", 12), "after the last tensor");
    }

    [Fact]
    public void TruncatedFiles()
    {
        var valid = ValidFile();
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(valid);
        // Cut anywhere in the data section: the data-size check fires.
        foreach (int cut in new[] { 1, 4, 17, valid.Length - 8 - (int)headerLength })
            AssertCorrupt(valid[..^cut], "truncated");
        // Cut inside the header: the header length points past the end.
        AssertCorrupt(valid[..(8 + (int)headerLength / 2)], "header length field says");
    }

    [Fact]
    public void BoolBytesMustBeZeroOrOne()
    {
        var data = new byte[] { 0, 1, 2 };
        AssertCorrupt(Build(Encoding.UTF8.GetBytes("{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}}"), data), "0x02");
    }

    [Fact]
    public void TwentyFiveMegabytesRoundTripBitForBit() // the load time is printed, not asserted: a loaded 2-core machine is no stopwatch
    {
        var gen = new Generator(3);
        var tensors = new Dictionary<string, Tensor>();
        for (int i = 0; i < 25; i++)
            tensors[$"layer{i:D2}.weight"] = randn(new long[] { 512, 512 }, generator: gen).DetachFromDisposeScope(); // 1 MiB each
        try
        {
            string path = PathOf("big.safetensors");
            var sw = Stopwatch.StartNew();
            SafeTensors.Save(path, tensors);
            double saveMs = sw.Elapsed.TotalMilliseconds;
            SafeTensors.Load(path).Values.ToList().ForEach(t => t.Dispose()); // warm-up (JIT, page cache)
            double loadMs = double.MaxValue;
            for (int i = 0; i < 3; i++)
            {
                sw.Restart();
                var again = SafeTensors.Load(path);
                loadMs = Math.Min(loadMs, sw.Elapsed.TotalMilliseconds);
                _output.WriteLine($"load {sw.Elapsed.TotalMilliseconds:F1} ms");
                DisposeAll(again);
            }
            var loaded = SafeTensors.Load(path);
            _output.WriteLine($"{new FileInfo(path).Length / 1e6:F1} MB: save {saveMs:F0} ms, load {loadMs:F0} ms");
            try
            {
                foreach (var (name, t) in tensors)
                    Assert.True(t.eq(loaded[name]).all().item<bool>());
            }
            finally { DisposeAll(loaded); }
        }
        finally { DisposeAll(tensors); }
    }
}
