using Ddpm.Data;
using Ddpm.Evaluation;
using Ddpm.Tests.Support;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Evaluation;

/// <summary>
/// The shipped feature network (models/fid-fashion-mnist, trained by 'ddpm fid-net train'), shared by the FID tests,
/// with the data it is measured on. The FID tests thus measure the network every FID in docs/results.md comes from.
/// </summary>
public sealed class TrainedFeatureNetFixture : IDisposable
{
    public ImageDataset Train { get; }
    public ImageDataset Test { get; }
    public FeatureNetwork Network { get; }
    public FeatureNetInfo Info { get; }

    public TrainedFeatureNetFixture()
    {
        Train = DatasetLoader.Load("fashion-mnist", null, "train");
        Test = DatasetLoader.Load("fashion-mnist", null, "test");
        (Network, Info) = FeatureNetwork.Load(ShippedModels.FidFashionMnist);
    }

    /// <summary>FID statistics of <paramref name="images"/> fed in batches of <paramref name="batch"/>.</summary>
    public GaussianStatistics Statistics(Tensor images, int batch = 500)
    {
        using var accumulator = new FeatureAccumulator(Network);
        for (long start = 0; start < images.shape[0]; start += batch)
        {
            using var scope = NewDisposeScope();
            accumulator.Add(images.narrow(0, start, Math.Min(batch, images.shape[0] - start)));
        }
        return accumulator.Statistics();
    }

    public void Dispose()
    {
        Network.Dispose();
        Train.Dispose();
        Test.Dispose();
    }
}

public class FidTests(TrainedFeatureNetFixture fixture) : IClassFixture<TrainedFeatureNetFixture>
{
    private const int N = 3000;

    [Fact]
    public void TheShippedFeatureNetworkClassifiesTheTestSplitAsItsConfigSays()
    {
        // The issue asks for at least 90 % on the Fashion-MNIST test split; config.json records what training measured.
        double accuracy = IndependentAccuracy.Of(fixture.Network.forward, fixture.Test);
        Assert.True(accuracy >= 0.90, $"test accuracy {accuracy:P2}");
        Assert.Equal("fashion-mnist", fixture.Info.Dataset);
        // A prediction or two may flip on another CPU's float rounding: 0.1 % of 10,000 images.
        Assert.True(Math.Abs(accuracy - fixture.Info.TestAccuracy) <= 1e-3, $"measured {accuracy:P2}, config.json {fixture.Info.TestAccuracy:P2}");
    }

    [Fact]
    public void TrainVersusTestIsSmallAndNoiseIsLarge()
    {
        using var scope = NewDisposeScope();
        var test = fixture.Statistics(fixture.Test.Images.narrow(0, 0, N));
        var train = fixture.Statistics(fixture.Train.Images.narrow(0, 30_000, N));
        var otherTest = fixture.Statistics(fixture.Test.Images.narrow(0, 5_000, N));
        var noise = fixture.Statistics(rand(new long[] { N, 1, 28, 28 }, generator: new Generator(9)) * 2 - 1);
        var blurred = fixture.Statistics(nn.functional.avg_pool2d(fixture.Test.Images.narrow(0, 0, N), 3, 1, 1));

        double trainTest = FrechetDistance.Compute(train, test);
        double testTest = FrechetDistance.Compute(otherTest, test);
        double noiseTest = FrechetDistance.Compute(noise, test);
        double blurTest = FrechetDistance.Compute(blurred, test);
        // Two samples of the same distribution differ only by finite-sample bias; train and test are (nearly) that.
        Assert.True(trainTest < 2.0 * testTest + 1e-3, $"FID(train, test) {trainTest:F4} vs FID(test, test') {testTest:F4}");
        Assert.True(noiseTest > 100 * testTest, $"FID(noise) {noiseTest:F3} is not far above FID(test, test') {testTest:F4}");
        // A mild corruption of the same images lands in between.
        Assert.True(blurTest > 3 * testTest && blurTest < noiseTest, $"FID(blurred) {blurTest:F3}");
    }

    [Fact]
    public void TheOrderAndBatchingOfTheSamplesDoNotChangeTheFid()
    {
        using var scope = NewDisposeScope();
        var images = fixture.Test.Images.narrow(0, 0, N);
        var reference = fixture.Statistics(fixture.Train.Images.narrow(0, 40_000, N));
        var inOrder = fixture.Statistics(images, batch: 500);
        var shuffled = fixture.Statistics(images.index_select(0, randperm(N, generator: new Generator(4))), batch: 128);
        double a = FrechetDistance.Compute(inOrder, reference), b = FrechetDistance.Compute(shuffled, reference);
        Assert.True(Math.Abs(a - b) <= 1e-6 * Math.Max(1, a), $"{a} vs {b}");
    }

    [Fact]
    public void QuantisationMatchesWhatAPngStores()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[] { -1.5f, -1f, -0.99f, 0f, 0.004f, 0.5f, 1f, 2f });
        var q = FeatureAccumulator.Quantise(x).data<float>().ToArray();
        var expected = new[] { -1.5, -1, -0.99, 0, 0.004, 0.5, 1, 2 }
            .Select(v => (float)(Math.Round((Math.Clamp(v, -1, 1) + 1) * 127.5, MidpointRounding.ToEven) / 127.5 - 1)).ToArray();
        Assert.Equal(expected, q);
        // Data set images are already on the 8-bit grid and pass through unchanged.
        var images = fixture.Test.Images.narrow(0, 0, 16);
        Assert.Equal(0.0, (FeatureAccumulator.Quantise(images) - images).abs().max().item<float>());
    }

    [Fact]
    public void CachedReferenceStatisticsRoundTripAndDamagedFilesAreIgnored()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var stats = fixture.Statistics(fixture.Test.Images.narrow(0, 0, 600));
        string path = dir.Combine("sub", ReferenceStatistics.FileName("abc123", "folder:/x y", "test", 600));
        Assert.DoesNotContain(":", Path.GetFileName(path));
        ReferenceStatistics.Save(path, stats, new long[] { 1, 2, 3 });
        var loaded = ReferenceStatistics.TryLoad(path);
        Assert.NotNull(loaded);
        Assert.Equal(stats.Mean, loaded.Value.Statistics.Mean);
        Assert.Equal(stats.Covariance.Cast<double>(), loaded.Value.Statistics.Covariance.Cast<double>());
        Assert.Equal(600, loaded.Value.Statistics.Count);
        Assert.Equal(new long[] { 1, 2, 3 }, loaded.Value.ClassCounts);
        File.WriteAllBytes(path, File.ReadAllBytes(path).Take(100).ToArray());
        Assert.Null(ReferenceStatistics.TryLoad(path));
        Assert.Null(ReferenceStatistics.TryLoad(dir.Combine("missing.safetensors")));
    }

    [Fact]
    public void TheClassHistogramCountsTheNetworksPredictions()
    {
        using var scope = NewDisposeScope();
        using var accumulator = new FeatureAccumulator(fixture.Network);
        var images = fixture.Test.Images.narrow(0, 0, 1000);
        accumulator.Add(images);
        var predicted = fixture.Network.forward(images).argmax(1);
        for (int k = 0; k < 10; k++)
            Assert.Equal(predicted.eq(k).sum().item<long>(), accumulator.ClassCounts[k]);
        Assert.Equal(1000, accumulator.ClassCounts.Sum());
    }
}
