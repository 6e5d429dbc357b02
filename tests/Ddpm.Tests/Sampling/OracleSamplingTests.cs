using Ddpm.Diffusion;
using Ddpm.Oracles;
using Ddpm.Sampling;
using Ddpm.Schedules;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

/// <summary>
/// Samplers driven by oracle denoisers whose optimal prediction is known in closed form: whatever they produce is
/// the sampler's doing alone.
/// </summary>
public class OracleSamplingTests
{
    private static readonly double[] GaussMean = { 0.3, -0.2 };
    private static readonly double[,] GaussCov = { { 0.09, 0.03 }, { 0.03, 0.04 } };

    private static DiffusionConfig Config(PredictionType p = PredictionType.Epsilon, VarianceType v = VarianceType.FixedSmall) =>
        new(new ScheduleConfig(), p, v);

    /// <summary>
    /// Checks the sample mean within 5 standard errors and each covariance entry within 5 standard errors of a
    /// sample covariance (Var(s_jk) ≈ (Σ_jj Σ_kk + Σ_jk²)/n for Gaussian data) plus <paramref name="bias"/>.
    /// </summary>
    private static void AssertGaussianMoments(Tensor samples, double bias = 0.0)
    {
        var (mean, cov) = Numerics.Moments(samples);
        int n = (int)samples.shape[0];
        for (int j = 0; j < 2; j++)
        {
            double se = Math.Sqrt(GaussCov[j, j] / n);
            Assert.InRange(mean[j], GaussMean[j] - 5 * se - bias, GaussMean[j] + 5 * se + bias);
            for (int k = 0; k < 2; k++)
            {
                double seCov = Math.Sqrt((GaussCov[j, j] * GaussCov[k, k] + GaussCov[j, k] * GaussCov[j, k]) / n);
                Assert.InRange(cov[j, k], GaussCov[j, k] - 5 * seCov - bias, GaussCov[j, k] + 5 * seCov + bias);
            }
        }
    }

    [Theory]
    [InlineData(PredictionType.Epsilon, VarianceType.FixedSmall)]
    [InlineData(PredictionType.V, VarianceType.FixedLarge)]
    public void Ddpm1000StepsReproducesGaussianData(PredictionType prediction, VarianceType variance)
    {
        using var scope = NewDisposeScope();
        var config = Config(prediction, variance);
        using var oracle = GaussianMixtureOracle.Gaussian(GaussMean, GaussCov);
        using var scheduler = new DdpmScheduler(config, clipDenoised: false);
        var samples = DiffusionSampler.Sample(scheduler, oracle.Denoiser(config.Schedule.Build(), prediction), new long[] { 4000, 2 }, new Generator(1), ScalarType.Float64);
        // Fixed-large adds a little extra variance in the last steps; allow 0.002 of systematic bias there.
        AssertGaussianMoments(samples, variance == VarianceType.FixedLarge ? 0.002 : 0.0);
    }

    [Theory]
    [InlineData(PredictionType.Epsilon, TimestepSpacing.Leading)]
    [InlineData(PredictionType.X0, TimestepSpacing.Trailing)]
    [InlineData(PredictionType.V, TimestepSpacing.Linspace)]
    public void Ddim50StepsReproducesGaussianData(PredictionType prediction, TimestepSpacing spacing)
    {
        using var scope = NewDisposeScope();
        var config = Config(prediction);
        using var oracle = GaussianMixtureOracle.Gaussian(GaussMean, GaussCov);
        using var scheduler = new DdimScheduler(config, eta: 0.0, spacing: spacing, clipSample: false);
        scheduler.SetTimesteps(50);
        var samples = DiffusionSampler.Sample(scheduler, oracle.Denoiser(config.Schedule.Build(), prediction), new long[] { 4000, 2 }, new Generator(2), ScalarType.Float64);
        // Leading spacing starts at t = 980, where x_T ~ N(0, I) is slightly off the true marginal: allow 0.002.
        AssertGaussianMoments(samples, 0.002);
    }

    [Fact]
    public void RespacedDdpmOver100StepsReproducesGaussianData()
    {
        using var scope = NewDisposeScope();
        var config = Config();
        using var oracle = GaussianMixtureOracle.Gaussian(GaussMean, GaussCov);
        using var scheduler = new DdpmScheduler(config, clipDenoised: false);
        scheduler.SetTimesteps(100);
        Assert.Equal(999, scheduler.Timesteps[0]);
        Assert.Equal(0, scheduler.Timesteps[^1]);
        var samples = DiffusionSampler.Sample(scheduler, oracle.Denoiser(config.Schedule.Build()), new long[] { 4000, 2 }, new Generator(3), ScalarType.Float64);
        AssertGaussianMoments(samples);
    }

    private static readonly double[][] Points = { new[] { -0.6, -0.4 }, new[] { 0.5, 0.5 }, new[] { 0.2, -0.7 } };
    private static readonly double[] PointWeights = { 0.5, 0.3, 0.2 };

    private static void AssertOnThePointsWithTheRightFrequencies(Tensor samples, double radius)
    {
        var x = Numerics.ToArray(samples);
        int n = (int)samples.shape[0];
        var counts = new int[Points.Length];
        int off = 0;
        for (int i = 0; i < n; i++)
        {
            int best = 0; double bestDist = double.MaxValue;
            for (int k = 0; k < Points.Length; k++)
            {
                double dist = Math.Sqrt(Math.Pow(x[2 * i] - Points[k][0], 2) + Math.Pow(x[2 * i + 1] - Points[k][1], 2));
                if (dist < bestDist) { bestDist = dist; best = k; }
            }
            if (bestDist > radius) off++;
            counts[best]++;
        }
        Assert.True(off == 0, $"{off} of {n} samples are farther than {radius} from every data point");
        for (int k = 0; k < Points.Length; k++)
        {
            // Binomial frequencies: 5 standard errors.
            double p = PointWeights[k], se = Math.Sqrt(p * (1 - p) / n);
            Assert.InRange((double)counts[k] / n, p - 5 * se, p + 5 * se);
        }
    }

    [Fact]
    public void DdpmLandsOnTheDataPointsWithTheRightFrequencies()
    {
        using var scope = NewDisposeScope();
        var config = Config();
        using var oracle = GaussianMixtureOracle.Points(Points, PointWeights);
        using var scheduler = new DdpmScheduler(config, clipDenoised: false);
        var samples = DiffusionSampler.Sample(scheduler, oracle.Denoiser(config.Schedule.Build()), new long[] { 3000, 2 }, new Generator(4), ScalarType.Float64);
        // The last step adds no noise and predicts x0 from x_1, which the oracle puts on a point up to β̃ effects.
        AssertOnThePointsWithTheRightFrequencies(samples, 0.01);
    }

    [Fact]
    public void DdimDeterministicLandsOnTheDataPointsWithTheRightFrequencies()
    {
        using var scope = NewDisposeScope();
        var config = Config();
        using var oracle = GaussianMixtureOracle.Points(Points, PointWeights);
        using var scheduler = new DdimScheduler(config, eta: 0.0, clipSample: false);
        scheduler.SetTimesteps(50);
        var samples = DiffusionSampler.Sample(scheduler, oracle.Denoiser(config.Schedule.Build()), new long[] { 3000, 2 }, new Generator(5), ScalarType.Float64);
        AssertOnThePointsWithTheRightFrequencies(samples, 0.01);
    }

    [Fact]
    public void DdimWithEtaOneOverAllStepsIsDdpmWithFixedSmallVariance()
    {
        // σ_t(η = 1)² = β̃_t and the DDIM mean equals μ̃_t, so with the same noise draws the two samplers give the
        // same samples (both draw noise at every step but the last).
        using var scope = NewDisposeScope();
        var config = Config();
        using var oracle = GaussianMixtureOracle.Gaussian(GaussMean, GaussCov);
        var denoiser = oracle.Denoiser(config.Schedule.Build());
        using var ddim = new DdimScheduler(config, eta: 1.0, clipSample: false);
        ddim.SetTimesteps(1000);
        using var ddpm = new DdpmScheduler(config, clipDenoised: false);
        var xT = randn(new long[] { 500, 2 }, dtype: ScalarType.Float64, generator: new Generator(6));
        var a = DiffusionSampler.Sample(ddim, denoiser, xT, new Generator(7));
        var b = DiffusionSampler.Sample(ddpm, denoiser, xT, new Generator(7));
        Assert.True(Numerics.MaxAbs(a - b) < 1e-8, $"max |DDIM(η=1) − DDPM| = {Numerics.MaxAbs(a - b):E2}");
        AssertGaussianMoments(a.narrow(0, 0, 500), 0.0);
    }

    [Fact]
    public void DdimInversionThenGenerationReconstructsTheData()
    {
        using var scope = NewDisposeScope();
        var config = Config();
        using var oracle = GaussianMixtureOracle.Gaussian(GaussMean, GaussCov);
        var denoiser = oracle.Denoiser(config.Schedule.Build());
        using var scheduler = new DdimScheduler(config, eta: 0.0, spacing: TimestepSpacing.Trailing, clipSample: false);
        scheduler.SetTimesteps(100);
        var x0 = oracle.Sample(200, new Generator(8), ScalarType.Float64);
        var xT = DiffusionSampler.Invert(scheduler, denoiser, x0);
        // The inverted latents look like N(0, I): for Gaussian data the DDIM map is linear and whitening.
        var (m, c) = Numerics.Moments(xT);
        Assert.InRange(c[0, 0], 0.7, 1.3);
        Assert.InRange(c[1, 1], 0.7, 1.3);
        var reconstruction = DiffusionSampler.Sample(scheduler, denoiser, xT);
        double err = Numerics.MaxAbs(reconstruction - x0);
        Assert.True(err < 0.01, $"max reconstruction error {err:E2}");
        // Deterministic: a second inversion gives the same latents bit for bit.
        Assert.Equal(0.0, Numerics.MaxAbs(DiffusionSampler.Invert(scheduler, denoiser, x0) - xT));
    }

    [Fact]
    public void SamplingIsReproducibleFromTheSeed()
    {
        using var scope = NewDisposeScope();
        var config = Config();
        using var oracle = GaussianMixtureOracle.Gaussian(GaussMean, GaussCov);
        using var scheduler = new DdpmScheduler(config);
        scheduler.SetTimesteps(50);
        var a = DiffusionSampler.Sample(scheduler, oracle.Denoiser(config.Schedule.Build()), new long[] { 16, 2 }, new Generator(42));
        var b = DiffusionSampler.Sample(scheduler, oracle.Denoiser(config.Schedule.Build()), new long[] { 16, 2 }, new Generator(42));
        Assert.Equal(0.0, Numerics.MaxAbs(a - b));
    }

    [Fact]
    public void TimestepSpacingsFollowDiffusers()
    {
        Assert.Equal(new[] { 0, 20, 40 }, TimestepSelection.Select(1000, 50, TimestepSpacing.Leading).Take(3));
        Assert.Equal(980, TimestepSelection.Select(1000, 50, TimestepSpacing.Leading)[^1]);
        Assert.Equal(new[] { 19, 39 }, TimestepSelection.Select(1000, 50, TimestepSpacing.Trailing).Take(2));
        Assert.Equal(999, TimestepSelection.Select(1000, 50, TimestepSpacing.Trailing)[^1]);
        Assert.Equal(new[] { 0, 999 }, TimestepSelection.Select(1000, 2, TimestepSpacing.Linspace));
        // DDIM takes the previous timestep from the list, not a fixed stride.
        using var ddim = new DdimScheduler(Config(), spacing: TimestepSpacing.Linspace);
        ddim.SetTimesteps(7);
        for (int i = 0; i + 1 < ddim.Timesteps.Count; i++) Assert.Equal(ddim.Timesteps[i + 1], ddim.PreviousTimestep(ddim.Timesteps[i]));
        Assert.Equal(-1, ddim.PreviousTimestep(ddim.Timesteps[^1]));
    }

    [Fact]
    public void InvalidSamplerArgumentsAreRejectedWithTheAllowedRange()
    {
        var e1 = Assert.Throws<ArgumentException>(() => new DdimScheduler(Config(), eta: 1.5));
        Assert.Equal("eta", e1.ParamName);
        Assert.Contains("[0, 1]", e1.Message);
        Assert.Throws<ArgumentException>(() => new DdimScheduler(Config(), eta: -0.1));
        using var ddim = new DdimScheduler(Config());
        var e2 = Assert.Throws<ArgumentException>(() => ddim.SetTimesteps(1001));
        Assert.Equal("inferenceSteps", e2.ParamName);
        Assert.Contains("[1, 1000]", e2.Message);
        using var ddpm = new DdpmScheduler(Config());
        Assert.Throws<ArgumentException>(() => ddpm.SetTimesteps(0));
        Assert.Throws<ArgumentException>(() => ddpm.Step(zeros(2, 2), 12345, zeros(2, 2)));
    }
}
