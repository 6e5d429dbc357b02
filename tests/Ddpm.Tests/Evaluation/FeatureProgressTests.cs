using Ddpm.Evaluation;
using Ddpm.Tests.Cli;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Evaluation;

/// <summary>
/// A killed feature run resumed from its saved progress must end with exactly the statistics of an uninterrupted
/// run: the sums, the class counts and the random stream all continue where they stopped.
/// </summary>
public sealed class FeatureProgressTests : IDisposable
{
    private const int Batches = 5, BatchSize = 3, Seed = 11;
    private readonly TempDirectory _temp = new();
    private readonly FeatureNetwork _network;

    public FeatureProgressTests()
    {
        manual_seed(3);
        _network = new FeatureNetwork(new FeatureNetConfig(1, 8, 10));
    }

    public void Dispose()
    {
        _network.Dispose();
        _temp.Dispose();
    }

    /// <summary>Noise images drawn from the run's generator, labelled by index: a stand-in for a sampler.</summary>
    private static Func<int, (Tensor, Tensor?)> NoiseBatches(Generator generator) => b =>
        (rand(new long[] { BatchSize, 1, 8, 8 }, generator: generator) * 2 - 1,
         tensor(Enumerable.Range(b * BatchSize, BatchSize).Select(i => (long)(i % 10)).ToArray(), dtype: ScalarType.Int64));

    private (GaussianStatistics Statistics, long[] Classes, long Correct, ResumePoint? Resumed) Run(FeatureProgress progress, Action<int>? batchDone = null)
    {
        using var accumulator = new FeatureAccumulator(_network);
        using var generator = new Generator(Seed);
        var resumed = progress.Accumulate(accumulator, generator, Batches, NoiseBatches(generator), batchDone);
        return (accumulator.Statistics(), accumulator.ClassCounts.ToArray(), accumulator.LabelledCorrect, resumed);
    }

    [Fact]
    public void KilledRun_ResumesWithBitIdenticalStatistics()
    {
        var uninterrupted = Run(new FeatureProgress(_temp.Combine("a.safetensors"), "key"));
        Assert.Null(uninterrupted.Resumed);
        Assert.False(File.Exists(_temp.Combine("a.safetensors")));

        var progress = new FeatureProgress(_temp.Combine("b.safetensors"), "key");
        Assert.Throws<OperationCanceledException>(() => Run(progress, b => { if (b == 1) throw new OperationCanceledException("killed"); }));
        Assert.True(File.Exists(progress.Path));

        var resumed = Run(progress);
        Assert.Equal(new ResumePoint(2, 2 * BatchSize, resumed.Resumed!.Seconds), resumed.Resumed);
        Assert.True(resumed.Resumed.Seconds > 0);
        Assert.False(File.Exists(progress.Path));
        Assert.Equal(Batches * BatchSize, resumed.Statistics.Count);
        Assert.Equal(uninterrupted.Statistics.Mean, resumed.Statistics.Mean);
        Assert.Equal(uninterrupted.Statistics.Covariance.Cast<double>(), resumed.Statistics.Covariance.Cast<double>());
        Assert.Equal(uninterrupted.Classes, resumed.Classes);
        Assert.Equal(uninterrupted.Correct, resumed.Correct);
        Assert.Equal(0.0, FrechetDistance.Compute(uninterrupted.Statistics, resumed.Statistics), 9);
    }

    [Fact]
    public void ResumingWithoutTheGeneratorState_WouldRepeatTheFirstBatches()
    {
        // The control for the test above: restarting the random stream from the seed gives other statistics, so the
        // equality there is owed to the saved generator state.
        var uninterrupted = Run(new FeatureProgress(_temp.Combine("a.safetensors"), "key"));
        using var accumulator = new FeatureAccumulator(_network);
        using var generator = new Generator(Seed);
        var batches = NoiseBatches(generator);
        for (int b = 0; b < Batches; b++)
        {
            using var scope = NewDisposeScope();
            if (b == 2) generator.manual_seed(Seed);
            var (images, labels) = batches(b);
            accumulator.Add(images, labels);
        }
        Assert.NotEqual(uninterrupted.Statistics.Mean, accumulator.Statistics().Mean);
    }

    [Fact]
    public void ProgressOfAnotherRunOrAnUnreadableFile_IsIgnored()
    {
        var fresh = Run(new FeatureProgress(_temp.Combine("fresh.safetensors"), "key"));

        string path = _temp.Combine("p.safetensors");
        Assert.Throws<OperationCanceledException>(() => Run(new FeatureProgress(path, "other run"), b => { if (b == 2) throw new OperationCanceledException(); }));
        var other = Run(new FeatureProgress(path, "key"));
        Assert.Null(other.Resumed);
        Assert.Equal(fresh.Statistics.Mean, other.Statistics.Mean);

        File.WriteAllText(path, "not a safetensors file");
        var corrupt = Run(new FeatureProgress(path, "key"));
        Assert.Null(corrupt.Resumed);
        Assert.Equal(fresh.Statistics.Mean, corrupt.Statistics.Mean);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Keys_DependOnEveryPart()
    {
        string key = FeatureProgress.MakeKey(["weights abc", "seed 0"]);
        Assert.Matches("^[0-9a-f]{16}$", key);
        Assert.Equal(key, FeatureProgress.MakeKey(["weights abc", "seed 0"]));
        Assert.NotEqual(key, FeatureProgress.MakeKey(["weights abc", "seed 1"]));
        Assert.NotEqual(key, FeatureProgress.MakeKey(["weights abc\nseed 0"]));
    }
}
