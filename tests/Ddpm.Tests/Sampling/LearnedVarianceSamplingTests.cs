using Ddpm.Diffusion;
using Ddpm.Oracles;
using Ddpm.Sampling;
using Ddpm.Schedules;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

/// <summary>
/// Samplers given a 2C-channel model output (a learned variance). The oracle is Gaussian data with a diagonal
/// covariance, so every coordinate is its own one-dimensional problem and the reverse conditional q(x_{t'} | x_t) of
/// any pair of kept timesteps is known exactly: mean μ̃'(x_t, E[x_0 | x_t]) and variance
/// V = β̃' + c₁'² Var[x_0 | x_t] (c₁' the x_0 coefficient of the respaced posterior mean, Ho et al. 2020 Eq. 7).
/// An ancestral sampler fed exactly that mean and variance reproduces the data at any number of steps; a fixed
/// variance does not. All formulas below are written from the papers, independently of the library.
/// </summary>
public class LearnedVarianceSamplingTests
{
    private static readonly double[] DataMean = { 0.3, -0.2 };
    private static readonly double[] DataVariance = { 0.5, 0.2 };
    private static readonly NoiseSchedule Schedule = NoiseSchedule.Linear();

    private static DiffusionConfig Config(VarianceType variance) =>
        new(new ScheduleConfig(), PredictionType.Epsilon, variance, variance is VarianceType.Learned or VarianceType.LearnedRange ? LossType.Hybrid : LossType.Simple);

    private static GaussianMixtureOracle Oracle() =>
        GaussianMixtureOracle.Gaussian(DataMean, new[,] { { DataVariance[0], 0.0 }, { 0.0, DataVariance[1] } });

    /// <summary>One step from t to t' (t' = −1: clean data) of the exact reverse process, per coordinate j.</summary>
    private readonly record struct ExactStep(double A, double B, double Variance, double Beta, double PosteriorVariance);

    private static ExactStep Exact(int t, int tPrev, int j)
    {
        double abar = Schedule.AlphasCumprod[t], abarPrev = tPrev >= 0 ? Schedule.AlphasCumprod[tPrev] : 1.0;
        double a = Math.Sqrt(abar), b2 = 1 - abar, lambda = DataVariance[j], m = DataMean[j];
        double k = a * lambda / (a * a * lambda + b2);                   // E[x0 | x_t] = m + k (x_t − a m)
        double x0Variance = lambda * b2 / (a * a * lambda + b2);          // Var[x0 | x_t]
        double beta = 1 - abar / abarPrev;                                // the respaced β'
        double c1 = Math.Sqrt(abarPrev) * beta / (1 - abar), c2 = Math.Sqrt(1 - beta) * (1 - abarPrev) / (1 - abar);
        double posterior = (1 - abarPrev) / (1 - abar) * beta;            // β̃'
        return new ExactStep(c1 * k + c2, c1 * (1 - k * a) * m, posterior + c1 * c1 * x0Variance, beta, posterior);
    }

    /// <summary>
    /// The oracle's ε* with, in the extra channels, the exact reverse variance of the scheduler's step from t to the
    /// next kept timestep: log V for <see cref="VarianceType.Learned"/>, and for <see cref="VarianceType.LearnedRange"/>
    /// v = 2·frac − 1 with log V = frac·log β' + (1 − frac)·log β̃' (Nichol &amp; Dhariwal 2021, Eq. 15). The last step adds
    /// no noise; there the output asks for V = β' (frac = 1), the variance that a classifier's mean shift is scaled by.
    /// </summary>
    private static Denoiser ExactVarianceDenoiser(GaussianMixtureOracle oracle, IReadOnlyList<int> descending, VarianceType variance)
    {
        var epsilon = oracle.Denoiser(Schedule);
        var next = descending.Select((t, i) => (t, prev: i + 1 < descending.Count ? descending[i + 1] : -1)).ToDictionary(p => p.t, p => p.prev);
        return (sample, timesteps) =>
        {
            using var scope = NewDisposeScope();
            int t = (int)timesteps[0].item<long>();
            int prev = next[t];
            var channels = new double[2];
            for (int j = 0; j < 2; j++)
            {
                var step = Exact(t, prev, j);
                double v = prev < 0 ? step.Beta : step.Variance;
                channels[j] = variance == VarianceType.Learned
                    ? Math.Log(v)
                    : 2 * (prev < 0 ? 1.0 : (Math.Log(v) - Math.Log(step.PosteriorVariance)) / (Math.Log(step.Beta) - Math.Log(step.PosteriorVariance))) - 1;
            }
            var extra = tensor(channels, dtype: sample.dtype).unsqueeze(0).expand(sample.shape[0], 2);
            return cat(new[] { epsilon(sample, timesteps), extra }, 1).MoveToOuterDisposeScope();
        };
    }

    /// <summary>Mean and variance per coordinate after the steps, from x_T ~ N(0, I), with the mean shifted by V·g per step.</summary>
    private static (double[] Mean, double[] Variance) ExpectedMoments(IReadOnlyList<int> descending, Func<ExactStep, double> noiseVariance, double[] shift)
    {
        var mean = new double[2];
        var variance = new[] { 1.0, 1.0 };
        for (int i = 0; i < descending.Count; i++)
        {
            int prev = i + 1 < descending.Count ? descending[i + 1] : -1;
            for (int j = 0; j < 2; j++)
            {
                var step = Exact(descending[i], prev, j);
                double v = prev < 0 ? step.Beta : noiseVariance(step);
                mean[j] = step.A * mean[j] + step.B + v * shift[j];
                variance[j] = step.A * step.A * variance[j] + (prev < 0 ? 0.0 : v);
            }
        }
        return (mean, variance);
    }

    private static void AssertMoments(Tensor samples, double[] expectedMean, double[] expectedVariance)
    {
        var (mean, cov) = Numerics.Moments(samples);
        int n = (int)samples.shape[0];
        for (int j = 0; j < 2; j++)
        {
            // 5 standard errors: Var(mean) = σ²/n, Var(s²) ≈ 2σ⁴/n for Gaussian samples.
            double seMean = Math.Sqrt(expectedVariance[j] / n), seVar = expectedVariance[j] * Math.Sqrt(2.0 / n);
            Assert.InRange(mean[j], expectedMean[j] - 5 * seMean, expectedMean[j] + 5 * seMean);
            Assert.InRange(cov[j, j], expectedVariance[j] - 5 * seVar, expectedVariance[j] + 5 * seVar);
        }
        double seCov = Math.Sqrt(expectedVariance[0] * expectedVariance[1] / n);
        Assert.InRange(cov[0, 1], -5 * seCov, 5 * seCov);
    }

    [Theory]
    [InlineData(VarianceType.Learned, 1000)]
    [InlineData(VarianceType.Learned, 10)]
    [InlineData(VarianceType.LearnedRange, 10)]
    [InlineData(VarianceType.LearnedRange, 50)]
    public void DdpmWithTheExactReverseVarianceReproducesTheDataAtAnyStepCount(VarianceType variance, int steps)
    {
        using var scope = NewDisposeScope();
        var config = Config(variance);
        using var oracle = Oracle();
        using var scheduler = new DdpmScheduler(config, clipping: X0Clipping.None);
        scheduler.SetTimesteps(steps);
        var samples = DiffusionSampler.Sample(scheduler, ExactVarianceDenoiser(oracle, scheduler.Timesteps, variance), new long[] { 4000, 2 }, new Generator(11), ScalarType.Float64);

        var (mean, variances) = ExpectedMoments(scheduler.Timesteps, s => s.Variance, new double[2]);
        for (int j = 0; j < 2; j++)
        {
            // With the exact reverse variance the chain is exact: only x_T ~ N(0, I) instead of q(x_T) and the noiseless
            // last step (variance β_1-sized) separate it from the data.
            Assert.InRange(mean[j], DataMean[j] - 1e-3, DataMean[j] + 1e-3);
            Assert.InRange(variances[j], DataVariance[j] - 1e-3, DataVariance[j] + 1e-3);
        }
        AssertMoments(samples, DataMean, DataVariance);
        if (steps <= 50)
        {
            // The test has power: with the fixed-small variance β̃' the same steps miss the data's variance by far more
            // than the 5 standard errors allowed above (about 0.016 and 0.006 at n = 4000).
            var (_, fixedSmall) = ExpectedMoments(scheduler.Timesteps, s => s.PosteriorVariance, new double[2]);
            Assert.True(DataVariance[0] - fixedSmall[0] > 0.02, $"fixed-small variance {fixedSmall[0]:F4} vs {DataVariance[0]}");
        }
    }

    [Theory]
    [InlineData(VarianceType.LearnedRange, 10)]
    [InlineData(VarianceType.Learned, 20)]
    public void ClassifierGuidanceShiftsTheMeanByTheLearnedVariance(VarianceType variance, int steps)
    {
        // Dhariwal & Nichol 2021, Algorithm 1: μ + s Σ ∇ log p(y | x_t). A constant gradient g moves the mean by Σ_t g
        // at every step, with Σ_t the learned variance, and leaves the variance alone.
        using var scope = NewDisposeScope();
        var config = Config(variance);
        using var oracle = Oracle();
        using var scheduler = new DdpmScheduler(config, clipping: X0Clipping.None);
        scheduler.SetTimesteps(steps);
        double[] g = { 1.5, -1.0 };
        MeanShift shift = (x, t) => tensor(g, dtype: x.dtype).unsqueeze(0).expand(x.shape[0], 2);
        var samples = DiffusionSampler.Sample(scheduler, ExactVarianceDenoiser(oracle, scheduler.Timesteps, variance), new long[] { 4000, 2 }, new Generator(12), ScalarType.Float64,
            meanShift: shift);

        var (mean, variances) = ExpectedMoments(scheduler.Timesteps, s => s.Variance, g);
        AssertMoments(samples, mean, variances);
        // Scaling by β̃' instead of the learned variance would move the mean measurably differently (> 10 s.e.).
        var (wrongMean, _) = ExpectedMoments(scheduler.Timesteps, s => s.PosteriorVariance, g);
        Assert.True(Math.Abs(wrongMean[0] - mean[0]) > 10 * Math.Sqrt(variances[0] / 4000), $"shift with β̃': {wrongMean[0]:F4}, with the learned variance: {mean[0]:F4}");
    }

    [Theory]
    [InlineData(SamplerKind.Ddim)]
    [InlineData(SamplerKind.DpmSolver2M)]
    [InlineData(SamplerKind.Euler)]
    [InlineData(SamplerKind.Heun)]
    [InlineData(SamplerKind.Sde)]
    public void SamplersWithoutAVarianceTermIgnoreTheVarianceChannels(SamplerKind kind)
    {
        // DDIM, DPM-Solver++, the ODE and the SDE use the mean prediction alone (as improved-diffusion's DDIM does): the
        // same denoiser with any variance channels appended must give the same samples, bit for bit.
        using var scope = NewDisposeScope();
        using var oracle = Oracle();
        var epsilon = oracle.Denoiser(Schedule);
        Denoiser withVariance = (x, t) => cat(new[] { epsilon(x, t), full(x.shape, -3.0 + 0.001 * t[0].item<long>(), dtype: x.dtype) }, 1);
        var settings = new SamplerSettings(kind, 10, Clip: false);
        using var learned = SamplerFactory.Create(Config(VarianceType.LearnedRange), settings);
        using var plain = SamplerFactory.Create(Config(VarianceType.FixedSmall), settings);
        var xT = randn(new long[] { 64, 2 }, dtype: ScalarType.Float64, generator: new Generator(13));
        var a = DiffusionSampler.Sample(learned, withVariance, xT, new Generator(14));
        var b = DiffusionSampler.Sample(plain, epsilon, xT, new Generator(14));
        Assert.Equal(0.0, Numerics.MaxAbs(a - b));
        // A sample shape whose channels do not match half the output is refused, not silently split.
        Assert.Throws<ArgumentException>(() => DiffusionSampler.Sample(learned, epsilon, xT, new Generator(14)));
    }
}
