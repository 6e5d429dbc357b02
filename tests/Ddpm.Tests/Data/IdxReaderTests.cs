using Ddpm.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Data;

public sealed class IdxReaderTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static byte[] Pattern(int length) => Enumerable.Range(0, length).Select(i => (byte)(i * 37 % 256)).ToArray();

    private string Write(string name, byte[] content)
    {
        string path = _temp.File(name);
        File.WriteAllBytes(path, content);
        return path;
    }

    [Theory]
    [InlineData(false, "images-idx3-ubyte")]
    [InlineData(true, "images-idx3-ubyte.gz")]
    [InlineData(true, "gzip-without-extension")]   // detected by the 1f 8b magic, not the name
    public void ReadsImages(bool gzip, string name)
    {
        var data = Pattern(3 * 4 * 5);
        var content = TempDirectory.Idx(IdxReader.ImagesMagic, new[] { 3, 4, 5 }, data);
        string path = Write(name, gzip ? TempDirectory.Gzip(content) : content);

        var file = IdxReader.ReadImages(path);
        Assert.Equal(IdxReader.ImagesMagic, file.Magic);
        Assert.Equal(new[] { 3, 4, 5 }, file.Dimensions);
        Assert.Equal(data, file.Data);
        Assert.Equal(3, file.Count);

        using var t = file.ToTensor();
        Assert.Equal(ScalarType.Byte, t.dtype);
        Assert.Equal(new long[] { 3, 4, 5 }, t.shape);
        Assert.Equal(data[1 * 20 + 2 * 5 + 3], t[1, 2, 3].item<byte>());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadsLabels(bool gzip)
    {
        var labels = new byte[] { 3, 1, 4, 1, 5, 9, 2, 6 };
        var content = TempDirectory.Idx(IdxReader.LabelsMagic, new[] { labels.Length }, labels);
        string path = Write("labels", gzip ? TempDirectory.Gzip(content) : content);
        var file = IdxReader.ReadLabels(path);
        Assert.Equal(new[] { 8 }, file.Dimensions);
        Assert.Equal(labels, file.Data);
    }

    [Fact]
    public void ReadsAnEmptyFile()
    {
        string path = Write("empty", TempDirectory.Idx(IdxReader.ImagesMagic, new[] { 0, 28, 28 }, Array.Empty<byte>()));
        var file = IdxReader.ReadImages(path);
        Assert.Empty(file.Data);
        using var t = file.ToTensor();
        Assert.Equal(new long[] { 0, 28, 28 }, t.shape);
    }

    private static void AssertFails(Action read, string path, params string[] expected)
    {
        var ex = Assert.Throws<DatasetException>(read);
        Assert.Contains(path, ex.Message);
        foreach (var text in expected)
            Assert.Contains(text, ex.Message);
        Assert.DoesNotContain("\n", ex.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WrongMagicNumber(bool gzip)
    {
        var labels = TempDirectory.Idx(IdxReader.LabelsMagic, new[] { 2 }, new byte[] { 1, 2 });
        string path = Write("labels-as-images", gzip ? TempDirectory.Gzip(labels) : labels);
        AssertFails(() => IdxReader.ReadImages(path), path, "wrong magic number 0x00000801", "expected 0x00000803", "label file where an image file was expected");

        var images = TempDirectory.Idx(IdxReader.ImagesMagic, new[] { 1, 1, 1 }, new byte[] { 7 });
        string imagesPath = Write("images-as-labels", images);
        AssertFails(() => IdxReader.ReadLabels(imagesPath), imagesPath, "wrong magic number 0x00000803", "expected 0x00000801");

        string garbage = Write("garbage", "PK\x03\x04 this is a zip file"u8.ToArray());
        AssertFails(() => IdxReader.ReadImages(garbage), garbage, "wrong magic number 0x504B0304", "re-download");

        string floats = Write("floats", TempDirectory.Idx(0x00000D03, new[] { 1, 1, 1 }, new byte[4]));
        AssertFails(() => IdxReader.ReadImages(floats), floats, "wrong magic number 0x00000D03", "not unsigned bytes");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TruncatedData(bool gzip)
    {
        var content = TempDirectory.Idx(IdxReader.ImagesMagic, new[] { 3, 4, 5 }, Pattern(60));
        var cut = content[..^3];
        string path = Write("truncated", gzip ? TempDirectory.Gzip(cut) : cut);
        AssertFails(() => IdxReader.ReadImages(path), path, "truncated: expected 60 bytes", "got 57", "re-download");
    }

    [Fact]
    public void TruncatedHeader()
    {
        var content = TempDirectory.Idx(IdxReader.ImagesMagic, new[] { 3, 4, 5 }, Pattern(60));
        string path = Write("header-cut", content[..10]);
        AssertFails(() => IdxReader.ReadImages(path), path, "truncated: expected 12 bytes", "got 6");
        string tiny = Write("tiny", new byte[] { 0, 0 });
        AssertFails(() => IdxReader.ReadImages(tiny), tiny, "truncated: expected 4 bytes", "got 2");
    }

    [Fact]
    public void ExtraDataAfterTheDeclaredSize()
    {
        var content = TempDirectory.Idx(IdxReader.LabelsMagic, new[] { 3 }, new byte[] { 1, 2, 3, 4 });
        string path = Write("too-long", content);
        AssertFails(() => IdxReader.ReadLabels(path), path, "more file than its header declares");
    }

    [Fact]
    public void CorruptGzipStream()
    {
        // A gzip signature followed by garbage: the deflate stream cannot be decoded.
        var garbage = new byte[64];
        new Random(5).NextBytes(garbage);
        garbage[0] = 0x1f; garbage[1] = 0x8b;
        string path = Write("garbage.gz", garbage);
        AssertFails(() => IdxReader.ReadImages(path), path, "corrupt gzip stream", "re-download");

        // Damage in the middle of a valid stream: either the decoder or the CRC check notices.
        var valid = TempDirectory.Gzip(TempDirectory.Idx(IdxReader.ImagesMagic, new[] { 10, 28, 28 }, Pattern(7840)));
        var damaged = (byte[])valid.Clone();
        for (int i = 20; i < damaged.Length - 12; i += 7)
            damaged[i] ^= 0x5a;
        string damagedPath = Write("damaged.gz", damaged);
        AssertFails(() => IdxReader.ReadImages(damagedPath), damagedPath);

        // Intact data but a wrong CRC-32 in the 8-byte trailer: found when the reader checks for data past the end.
        var badCrc = (byte[])valid.Clone();
        badCrc[^6] ^= 0x01;
        string crcPath = Write("bad-crc.gz", badCrc);
        AssertFails(() => IdxReader.ReadImages(crcPath), crcPath, "corrupt gzip stream");

        // A gzip stream cut short.
        string cutPath = Write("cut.gz", valid[..(valid.Length / 2)]);
        AssertFails(() => IdxReader.ReadImages(cutPath), cutPath);
    }

    [Fact]
    public void MissingFile()
    {
        string path = _temp.File("absent");
        AssertFails(() => IdxReader.ReadImages(path), path, "does not exist");
    }
}
