using Ddpm.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Evaluation;

public class FrechetDistanceTests
{
    private static GaussianStatistics Stats(double[] mean, double[,] cov) => new(mean, cov, 1000);

    [Fact]
    public void DiagonalGaussiansMatchTheClosedForm()
    {
        // Commuting covariances: FD = Σ (μ1 − μ2)² + Σ (σ1 − σ2)².
        var a = Stats(new[] { 0.0, 1.0, -2.0 }, new double[,] { { 4, 0, 0 }, { 0, 1, 0 }, { 0, 0, 0.25 } });
        var b = Stats(new[] { 1.0, 1.0, 0.0 }, new double[,] { { 1, 0, 0 }, { 0, 9, 0 }, { 0, 0, 0.25 } });
        double expected = 1 + 0 + 4 + Math.Pow(2 - 1, 2) + Math.Pow(1 - 3, 2) + 0;
        Assert.Equal(expected, FrechetDistance.Compute(a, b), 10);
        Assert.Equal(0.0, FrechetDistance.Compute(a, a), 10);
    }

    [Fact]
    public void NonCommutingTwoByTwoCovariancesMatchTheClosedForm()
    {
        // For 2×2 PSD matrices Tr((Σ1Σ2)^{1/2}) = √(tr(Σ1Σ2) + 2√(det Σ1 det Σ2)), independent of any eigensolver.
        double[,] s1 = { { 2.0, 0.8 }, { 0.8, 1.0 } }, s2 = { { 0.5, -0.3 }, { -0.3, 1.5 } };
        double tr12 = s1[0, 0] * s2[0, 0] + s1[0, 1] * s2[1, 0] + s1[1, 0] * s2[0, 1] + s1[1, 1] * s2[1, 1];
        double det1 = s1[0, 0] * s1[1, 1] - s1[0, 1] * s1[1, 0], det2 = s2[0, 0] * s2[1, 1] - s2[0, 1] * s2[1, 0];
        double traceSqrt = Math.Sqrt(tr12 + 2 * Math.Sqrt(det1 * det2));
        double expected = Math.Pow(0.3 - (-0.4), 2) + Math.Pow(0.1 - 0.2, 2) + (s1[0, 0] + s1[1, 1]) + (s2[0, 0] + s2[1, 1]) - 2 * traceSqrt;
        double actual = FrechetDistance.Compute(Stats(new[] { 0.3, 0.1 }, s1), Stats(new[] { -0.4, 0.2 }, s2));
        Assert.Equal(expected, actual, 10);
        // Symmetric in its arguments.
        Assert.Equal(actual, FrechetDistance.Compute(Stats(new[] { -0.4, 0.2 }, s2), Stats(new[] { 0.3, 0.1 }, s1)), 10);
    }

    [Fact]
    public void StreamingStatisticsMatchTheBatchComputationInAnyOrder()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var features = randn(new long[] { 5000, 6 }, dtype: ScalarType.Float64, generator: gen).matmul(randn(new long[] { 6, 6 }, dtype: ScalarType.Float64, generator: gen)) + 3.0;
        using var forward = new RunningStatistics(6);
        for (int i = 0; i < 5000; i += 700) forward.Add(features.narrow(0, i, Math.Min(700, 5000 - i)));
        using var shuffled = new RunningStatistics(6);
        var permuted = features.index_select(0, randperm(5000, generator: gen));
        for (int i = 0; i < 5000; i += 1300) shuffled.Add(permuted.narrow(0, i, Math.Min(1300, 5000 - i)).to_type(ScalarType.Float32));
        var a = forward.Result();
        var b = shuffled.Result();
        var mean = features.mean(new long[] { 0 }).data<double>().ToArray();
        var cov = features.t().cov();
        for (int i = 0; i < 6; i++)
        {
            Assert.Equal(mean[i], a.Mean[i], 9);
            for (int j = 0; j < 6; j++) Assert.Equal(cov[i, j].item<double>(), a.Covariance[i, j], 8);
        }
        // Float32 features in another order give the same distance to a third set up to float32 rounding.
        var reference = new GaussianStatistics(new double[6], Identity(6), 1000);
        Assert.Equal(FrechetDistance.Compute(a, reference), FrechetDistance.Compute(b, reference), 3);
        Assert.Equal(5000, a.Count);
    }

    [Fact]
    public void MismatchedDimensionsAreRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => FrechetDistance.Compute(Stats(new double[2], Identity(2)), Stats(new double[3], Identity(3))));
        Assert.Contains("feature network", e.Message);
        using var stats = new RunningStatistics(4);
        Assert.Throws<ArgumentException>(() => stats.Add(zeros(3, 5)));
        Assert.Throws<InvalidOperationException>(() => stats.Result());
    }

    private static double[,] Identity(int n)
    {
        var m = new double[n, n];
        for (int i = 0; i < n; i++) m[i, i] = 1;
        return m;
    }
}
