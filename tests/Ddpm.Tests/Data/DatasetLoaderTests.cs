using System.Diagnostics;
using Ddpm.Data;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ddpm.Tests.Data;

public sealed class DatasetLoaderTests : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly TempDirectory _temp = new();

    public DatasetLoaderTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => _temp.Dispose();

    private static DatasetException AssertFails(Func<ImageDataset> load, params string[] expected)
    {
        var ex = Assert.Throws<DatasetException>(() => load().Dispose());
        foreach (var text in expected)
            Assert.Contains(text, ex.Message);
        Assert.DoesNotContain("\n", ex.Message);
        return ex;
    }

    private static byte[,,] Images(int n, int h, int w, Func<int, int, int, int> value)
    {
        var images = new byte[n, h, w];
        for (int i = 0; i < n; i++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    images[i, y, x] = (byte)value(i, y, x);
        return images;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LoadsAnMnistStyleDirectory(bool gzip)
    {
        string dir = _temp.Sub("mnist");
        TempDirectory.WriteMnistSplit(dir, "train", Images(3, 28, 28, (i, y, x) => (i * 100 + y * 28 + x) % 256), new byte[] { 0, 9, 4 }, gzip);
        TempDirectory.WriteMnistSplit(dir, "t10k", Images(2, 28, 28, (i, y, x) => i == 0 ? 0 : 255), new byte[] { 1, 2 }, gzip);

        using (var train = DatasetLoader.Load("mnist", dir))
        {
            Assert.Equal("mnist", train.Name);
            Assert.Equal(new long[] { 3, 1, 28, 28 }, train.Images.shape);
            Assert.Equal(ScalarType.Float32, train.Images.dtype);
            Assert.Equal((3L, 1, 28, 10), (train.Count, train.Channels, train.ImageSize, train.NumClasses));
            Assert.Equal(new long[] { 0, 9, 4 }, train.Labels!.data<long>().ToArray());
            // p/127.5 − 1 for p = (1·100 + 2·28 + 3) mod 256 = 159.
            Assert.Equal((float)(159 / 127.5 - 1), train.Images[1, 0, 2, 3].item<float>());
        }
        using (var test = DatasetLoader.Load("mnist", dir, "test", imageSize: 28))
        {
            Assert.Equal(2, test.Count);
            Assert.Equal(-1f, test.Images[0].max().item<float>());
            Assert.Equal(1f, test.Images[1].min().item<float>());
        }
    }

    [Fact]
    public void DatasetTensorsOutliveTheCallersDisposeScope()
    {
        string dir = _temp.Sub("scoped");
        TempDirectory.WriteMnistSplit(dir, "train", Images(2, 28, 28, (i, y, x) => 7), new byte[] { 1, 2 }, gzip: false);
        ImageDataset dataset;
        using (NewDisposeScope())
            dataset = DatasetLoader.Load("mnist", dir);
        using (dataset)
        {
            Assert.False(dataset.Images.IsInvalid);
            Assert.False(dataset.Labels!.IsInvalid);
            Assert.Equal(3L, dataset.Labels.sum().item<long>());
        }
    }

    [Fact]
    public void LabelCountMustMatchImageCount()
    {
        string dir = _temp.Sub("mismatch");
        TempDirectory.WriteMnistSplit(dir, "train", Images(3, 28, 28, (i, y, x) => 0), new byte[] { 0, 1 }, gzip: true);
        AssertFails(() => DatasetLoader.Load("mnist", dir), "label count != image count", "2 labels", "3 images", "re-download");
    }

    [Fact]
    public void LabelsMustBeClassIndices()
    {
        string dir = _temp.Sub("badlabel");
        TempDirectory.WriteMnistSplit(dir, "train", Images(2, 28, 28, (i, y, x) => 0), new byte[] { 0, 12 }, gzip: false);
        AssertFails(() => DatasetLoader.Load("mnist", dir), "label 12 at index 1", "outside 0..9");
    }

    [Fact]
    public void MissingDatasetsSayHowToGetThem()
    {
        string absent = _temp.File("absent");
        AssertFails(() => DatasetLoader.Load("fashion-mnist", absent), absent, "does not exist",
            "install it with: sudo apt-get install dataset-fashion-mnist (or pass --data-dir DIR)");
        string empty = _temp.Sub("empty");
        AssertFails(() => DatasetLoader.Load("fashion-mnist", empty), empty, "train-images-idx3-ubyte.gz",
            "install it with: sudo apt-get install dataset-fashion-mnist (or pass --data-dir DIR)");
        AssertFails(() => DatasetLoader.Load("fashion-mnist", empty, "test"), "t10k-images-idx3-ubyte");
        AssertFails(() => DatasetLoader.Load("mnist", null), "--data-dir");
        AssertFails(() => DatasetLoader.Load("mnist", empty), "train-images-idx3-ubyte", "--data-dir");
        AssertFails(() => DatasetLoader.Load("cifar10", null), "cifar-10-binary.tar.gz", "--data-dir");
        AssertFails(() => DatasetLoader.Load("cifar10", empty), "data_batch_1.bin", "cifar-10-binary.tar.gz");
    }

    [Fact]
    public void UnknownNamesAndSplits()
    {
        var ex = AssertFails(() => DatasetLoader.Load("imagenet", null), "Unknown dataset 'imagenet'");
        foreach (var known in DatasetLoader.KnownNames)
            Assert.Contains(known, ex.Message);
        AssertFails(() => DatasetLoader.Load("toy:moons", null), "2-D toy point set", "toy:8gaussians");
        AssertFails(() => DatasetLoader.Load("fashion-mnist", null, "validation"), "Unknown split 'validation'", "train or test");
        AssertFails(() => DatasetLoader.Load("folder:", null, imageSize: 8), "names no folder");
        AssertFails(() => DatasetLoader.Load("folder:" + _temp.Path, null), "--image-size");
        AssertFails(() => DatasetLoader.Load("folder:" + _temp.Path, null, "test", 8), "single split");
    }

    [Fact]
    public void ImageSizeMustMatchFixedSizeDatasets()
    {
        string dir = _temp.Sub("size");
        TempDirectory.WriteMnistSplit(dir, "train", Images(1, 28, 28, (i, y, x) => 0), new byte[] { 0 }, gzip: false);
        AssertFails(() => DatasetLoader.Load("mnist", dir, imageSize: 32), "28x28", "image size 32 is not supported");
    }

    // ---- Fashion-MNIST as installed by `apt-get install dataset-fashion-mnist` (CI installs it) ----

    [Fact]
    public void LoadsTheRealFashionMnist()
    {
        Assert.True(Directory.Exists(DatasetLoader.FashionMnistDefaultDirectory),
            $"{DatasetLoader.FashionMnistDefaultDirectory} is missing: sudo apt-get install dataset-fashion-mnist");

        var sw = Stopwatch.StartNew();
        using var train = DatasetLoader.Load("fashion-mnist", null);
        double trainMs = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        using var test = DatasetLoader.Load("fashion-mnist", null, "test");
        double testMs = sw.Elapsed.TotalMilliseconds;
        _output.WriteLine($"fashion-mnist train {trainMs:F0} ms, test {testMs:F0} ms");

        Assert.Equal(new long[] { 60000, 1, 28, 28 }, train.Images.shape);
        Assert.Equal(new long[] { 10000, 1, 28, 28 }, test.Images.shape);
        Assert.Equal(10, train.NumClasses);
        foreach (var (split, perClass) in new[] { (train, 6000L), (test, 1000L) })
        {
            Assert.Equal(-1f, split.Images.min().item<float>());
            Assert.Equal(1f, split.Images.max().item<float>());
            Assert.Equal(ScalarType.Int64, split.Labels!.dtype);
            Assert.Equal(Enumerable.Repeat(perClass, 10), split.Labels.bincount(null).data<long>().ToArray());
        }
        // Every value is on the 8-bit grid: (v + 1)·127.5 is an integer.
        using var scope = NewDisposeScope();
        var levels = (train.Images[TensorIndex.Slice(0, 1000)] + 1) * 127.5;
        Assert.True((levels - levels.round()).abs().max().item<float>() < 1e-4f);
    }

    // ---- CIFAR-10 binary batches, synthesised ----

    /// <summary>Record r of a batch: label (seed + r) mod 10, pixel (c, y, x) = (seed·31 + r·7 + c·50 + y·3 + x) mod 256.</summary>
    private static byte[] CifarBatch(int seed, int records)
    {
        var bytes = new byte[records * 3073];
        for (int r = 0; r < records; r++)
        {
            bytes[r * 3073] = (byte)((seed + r) % 10);
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < 32; y++)
                    for (int x = 0; x < 32; x++)
                        bytes[r * 3073 + 1 + c * 1024 + y * 32 + x] = (byte)((seed * 31 + r * 7 + c * 50 + y * 3 + x) % 256);
        }
        return bytes;
    }

    private static float CifarValue(int seed, int r, int c, int y, int x) => (float)((seed * 31 + r * 7 + c * 50 + y * 3 + x) % 256 / 127.5 - 1);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LoadsCifar10Batches(bool nested)
    {
        string root = _temp.Sub("cifar");
        string dir = nested ? _temp.Sub("cifar/cifar-10-batches-bin") : root;
        for (int b = 1; b <= 5; b++)
            File.WriteAllBytes(Path.Combine(dir, $"data_batch_{b}.bin"), CifarBatch(b, 2));
        File.WriteAllBytes(Path.Combine(dir, "test_batch.bin"), CifarBatch(0, 3));

        using var train = DatasetLoader.Load("cifar10", root);
        Assert.Equal(new long[] { 10, 3, 32, 32 }, train.Images.shape);
        Assert.Equal((32, 3, 10), (train.ImageSize, train.Channels, train.NumClasses));
        Assert.Equal(new long[] { 1, 2, 2, 3, 3, 4, 4, 5, 5, 6 }, train.Labels!.data<long>().ToArray());
        // Image 7 is record 1 of data_batch_4.
        Assert.Equal(CifarValue(4, 1, 2, 5, 17), train.Images[7, 2, 5, 17].item<float>());
        Assert.Equal(CifarValue(1, 0, 0, 0, 0), train.Images[0, 0, 0, 0].item<float>());

        using var test = DatasetLoader.Load("cifar10", root, "test");
        Assert.Equal(3, test.Count);
        Assert.Equal(new long[] { 0, 1, 2 }, test.Labels!.data<long>().ToArray());
        Assert.Equal(CifarValue(0, 2, 1, 31, 31), test.Images[2, 1, 31, 31].item<float>());
    }

    [Fact]
    public void BrokenCifar10Batches()
    {
        string dir = _temp.Sub("cifar-broken");
        for (int b = 1; b <= 5; b++)
            if (b != 3)
                File.WriteAllBytes(Path.Combine(dir, $"data_batch_{b}.bin"), CifarBatch(b, 1));
        AssertFails(() => DatasetLoader.Load("cifar10", dir), "lacks data_batch_3.bin");

        string truncated = Path.Combine(dir, "test_batch.bin");
        File.WriteAllBytes(truncated, CifarBatch(0, 2)[..^100]);
        AssertFails(() => DatasetLoader.Load("cifar10", dir, "test"), truncated, "truncated", "multiple of 3073", "got 6046");

        var badLabel = CifarBatch(0, 1);
        badLabel[0] = 10;
        File.WriteAllBytes(truncated, badLabel);
        AssertFails(() => DatasetLoader.Load("cifar10", dir, "test"), "label 10 at index 0");
    }
}
