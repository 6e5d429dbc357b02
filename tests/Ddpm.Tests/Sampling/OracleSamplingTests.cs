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
    private static readonly double[,] GaussCov = { { 0.5, 0.15 }, { 0.15, 0.3 } };

    private static DiffusionConfig Config(PredictionType p = PredictionType.Epsilon, VarianceType v = VarianceType.FixedSmall) =>
        new(new ScheduleConfig(), p, v);

    private enum Kind { Ddim, DdpmFixedSmall, DdpmFixedLarge }

    /// <summary>
    /// The exact mean and covariance a discretised sampler produces from x_T ~ N(0, I) with the optimal denoiser
    /// for Gaussian data N(μ, Σ): in Σ's eigenbasis every step is an affine map x' = A x + B (+ σ z), so the
    /// moments follow a scalar recursion. Written independently of the library, from the papers' formulas.
    /// </summary>
    private static (double[] Mean, double[,] Cov, double[] NoiseVariance) ExpectedMoments(IReadOnlyList<int> descending, Kind kind, double eta = 0.0)
    {
        var s = NoiseSchedule.Linear();
        double p = GaussCov[0, 0], q = GaussCov[0, 1], r = GaussCov[1, 1];
        double half = Math.Sqrt((p - r) * (p - r) / 4 + q * q);
        double[] lambda = { (p + r) / 2 + half, (p + r) / 2 - half };
        var u = new double[2, 2];
        for (int j = 0; j < 2; j++)
        {
            double vx = q, vy = lambda[j] - p, norm = Math.Sqrt(vx * vx + vy * vy);
            u[0, j] = vx / norm; u[1, j] = vy / norm;
        }
        var m = new double[2];
        var mean = new double[2];
        var variance = new double[2];
        var noiseVariance = new double[2]; // the part of the variance that the sampler's own noise draws contribute
        for (int j = 0; j < 2; j++) { m[j] = u[0, j] * GaussMean[0] + u[1, j] * GaussMean[1]; variance[j] = 1.0; }
        for (int i = 0; i < descending.Count; i++)
        {
            int t = descending[i];
            double abar = s.AlphasCumprod[t], abarPrev = i + 1 < descending.Count ? s.AlphasCumprod[descending[i + 1]] : 1.0;
            double a = Math.Sqrt(abar), b = Math.Sqrt(1 - abar);
            for (int j = 0; j < 2; j++)
            {
                double k = a * lambda[j] / (a * a * lambda[j] + b * b); // x̂0 = m + k (x − a m)
                double A, B, noise = 0;
                if (kind == Kind.Ddim)
                {
                    // x' = √ᾱ' x̂0 + √(1 − ᾱ' − σ²) (x − a x̂0)/b + σ z  (DDIM Eq. 12), σ² = η² (1 − ᾱ')/(1 − ᾱ) (1 − ᾱ/ᾱ') (Eq. 16)
                    double sigma2 = eta * eta * (1 - abarPrev) / (1 - abar) * (1 - abar / abarPrev), direction = Math.Sqrt(1 - abarPrev - sigma2);
                    double P = Math.Sqrt(abarPrev) - direction * a / b, Q = direction / b;
                    A = P * k + Q; B = P * (1 - k * a) * m[j];
                    noise = sigma2;
                }
                else
                {
                    // x' = c1 x̂0 + c2 x + σ z with β' = 1 − ᾱ/ᾱ' (DDPM Eq. 7 on the respaced schedule)
                    double beta = 1 - abar / abarPrev;
                    double c1 = Math.Sqrt(abarPrev) * beta / (1 - abar), c2 = Math.Sqrt(1 - beta) * (1 - abarPrev) / (1 - abar);
                    A = c1 * k + c2; B = c1 * (1 - k * a) * m[j];
                    if (i + 1 < descending.Count) noise = kind == Kind.DdpmFixedSmall ? (1 - abarPrev) / (1 - abar) * beta : beta;
                }
                mean[j] = A * mean[j] + B;
                variance[j] = A * A * variance[j] + noise;
                noiseVariance[j] = A * A * noiseVariance[j] + noise;
            }
        }
        var outMean = new double[2];
        var outCov = new double[2, 2];
        for (int x = 0; x < 2; x++)
        {
            outMean[x] = u[x, 0] * mean[0] + u[x, 1] * mean[1];
            for (int y = 0; y < 2; y++) outCov[x, y] = u[x, 0] * u[y, 0] * variance[0] + u[x, 1] * u[y, 1] * variance[1];
        }
        return (outMean, outCov, noiseVariance);
    }

    /// <summary>
    /// Sample moments within 5 standard errors of the sampler's exact moments (Var(s_jk) ≈ (Σ_jj Σ_kk + Σ_jk²)/n),
    /// and those exact moments within <paramref name="discretisation"/> (relative to Σ's largest entry) of the data's:
    /// the bias that the number of steps alone causes.
    /// </summary>
    private static void AssertGaussianMoments(Tensor samples, IReadOnlyList<int> descending, Kind kind, double discretisation, double eta = 0.0)
    {
        var (expectedMean, expectedCov, _) = ExpectedMoments(descending, kind, eta);
        var (mean, cov) = Numerics.Moments(samples);
        int n = (int)samples.shape[0];
        for (int j = 0; j < 2; j++)
        {
            double se = Math.Sqrt(expectedCov[j, j] / n);
            Assert.InRange(mean[j], expectedMean[j] - 5 * se, expectedMean[j] + 5 * se);
            Assert.InRange(expectedMean[j], GaussMean[j] - discretisation * 0.5, GaussMean[j] + discretisation * 0.5);
            for (int k = 0; k < 2; k++)
            {
                double seCov = Math.Sqrt((expectedCov[j, j] * expectedCov[k, k] + expectedCov[j, k] * expectedCov[j, k]) / n);
                Assert.InRange(cov[j, k], expectedCov[j, k] - 5 * seCov, expectedCov[j, k] + 5 * seCov);
                Assert.InRange(expectedCov[j, k], GaussCov[j, k] - discretisation * 0.5, GaussCov[j, k] + discretisation * 0.5);
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
        using var scheduler = new DdpmScheduler(config, clipping: X0Clipping.None);
        var samples = DiffusionSampler.Sample(scheduler, oracle.Denoiser(config.Schedule.Build(), prediction), new long[] { 4000, 2 }, new Generator(1), ScalarType.Float64);
        AssertGaussianMoments(samples, scheduler.Timesteps, variance == VarianceType.FixedLarge ? Kind.DdpmFixedLarge : Kind.DdpmFixedSmall, 0.025);
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
        using var scheduler = new DdimScheduler(config, eta: 0.0, spacing: spacing, clipping: X0Clipping.None);
        scheduler.SetTimesteps(50);
        var samples = DiffusionSampler.Sample(scheduler, oracle.Denoiser(config.Schedule.Build(), prediction), new long[] { 4000, 2 }, new Generator(2), ScalarType.Float64);
        // 50 deterministic steps shrink the variance by up to 9 % of Σ's scale (DDIM's discretisation error).
        AssertGaussianMoments(samples, scheduler.Timesteps, Kind.Ddim, 0.1);
    }

    [Theory]
    [InlineData(0.5, 10, TimestepSpacing.Leading, 0.4)]
    [InlineData(0.7, 20, TimestepSpacing.Trailing, 0.3)]
    [InlineData(1.0, 50, TimestepSpacing.Linspace, 0.2)]
    public void DdimWithNoiseReproducesItsExactMoments(double eta, int steps, TimestepSpacing spacing, double discretisation)
    {
        // 0 < η ≤ 1 over fewer steps than T: the sampler's exact moments (the same scalar recursion with σ_t(η)² added)
        // within 5 standard errors. Stochastic steps this coarse lose variance (η = 1 at 50 steps: 0.41 for the data's
        // 0.5), so the bound on the discretisation bias is looser than for DDPM over 100 steps.
        using var scope = NewDisposeScope();
        var config = Config();
        using var oracle = GaussianMixtureOracle.Gaussian(GaussMean, GaussCov);
        using var scheduler = new DdimScheduler(config, eta: eta, spacing: spacing, clipping: X0Clipping.None);
        scheduler.SetTimesteps(steps);
        var samples = DiffusionSampler.Sample(scheduler, oracle.Denoiser(config.Schedule.Build()), new long[] { 4000, 2 }, new Generator(20), ScalarType.Float64);
        AssertGaussianMoments(samples, scheduler.Timesteps, Kind.Ddim, discretisation, eta);
        // The noise draws themselves: two runs from the same x_T with different generators differ by the propagated
        // noise alone, E|x_a − x_b|² = 2 Σ_j v_j (v_j: the recursion's noise-only variance per eigen-direction), and
        // Var|x_a − x_b|² = 2 Σ_j (2 v_j)² for Gaussian differences. 5 standard errors.
        var (_, _, noiseVariance) = ExpectedMoments(scheduler.Timesteps, Kind.Ddim, eta);
        var xT = randn(new long[] { 4000, 2 }, dtype: ScalarType.Float64, generator: new Generator(23));
        var denoiser = oracle.Denoiser(config.Schedule.Build());
        var d = DiffusionSampler.Sample(scheduler, denoiser, xT, new Generator(24)) - DiffusionSampler.Sample(scheduler, denoiser, xT, new Generator(25));
        double meanSquare = d.square().sum(1).mean().item<double>(), expected = 2 * noiseVariance.Sum();
        double se = Math.Sqrt(2 * noiseVariance.Sum(v => 4 * v * v) / 4000);
        Assert.InRange(meanSquare, expected - 5 * se, expected + 5 * se);
        Assert.True(expected > 20 * se, $"the noise contributes {expected:F4}, too little to test at this n");
    }

    [Fact]
    public void DdimWithEtaOneOverFiftyStepsIsRespacedDdpm()
    {
        // σ(η = 1)² is the respaced β̃' and the DDIM mean is the respaced posterior mean: with the same timesteps and
        // noise draws the two samplers agree (Song et al. 2020, §4.1).
        using var scope = NewDisposeScope();
        var config = Config();
        using var oracle = GaussianMixtureOracle.Gaussian(GaussMean, GaussCov);
        var denoiser = oracle.Denoiser(config.Schedule.Build());
        using var ddim = new DdimScheduler(config, eta: 1.0, spacing: TimestepSpacing.Trailing, clipping: X0Clipping.None);
        ddim.SetTimesteps(50);
        using var ddpm = new DdpmScheduler(config, TimestepSpacing.Trailing, clipping: X0Clipping.None);
        ddpm.SetTimesteps(50);
        Assert.Equal(ddpm.Timesteps, ddim.Timesteps);
        var xT = randn(new long[] { 500, 2 }, dtype: ScalarType.Float64, generator: new Generator(21));
        var a = DiffusionSampler.Sample(ddim, denoiser, xT, new Generator(22));
        var b = DiffusionSampler.Sample(ddpm, denoiser, xT, new Generator(22));
        Assert.True(Numerics.MaxAbs(a - b) < 1e-8, $"max |DDIM(η=1) − DDPM| over 50 steps = {Numerics.MaxAbs(a - b):E2}");
    }

    [Fact]
    public void RespacedDdpmOver100StepsReproducesGaussianData()
    {
        using var scope = NewDisposeScope();
        var config = Config();
        using var oracle = GaussianMixtureOracle.Gaussian(GaussMean, GaussCov);
        using var scheduler = new DdpmScheduler(config, clipping: X0Clipping.None);
        scheduler.SetTimesteps(100);
        Assert.Equal(999, scheduler.Timesteps[0]);
        Assert.Equal(0, scheduler.Timesteps[^1]);
        var samples = DiffusionSampler.Sample(scheduler, oracle.Denoiser(config.Schedule.Build()), new long[] { 4000, 2 }, new Generator(3), ScalarType.Float64);
        AssertGaussianMoments(samples, scheduler.Timesteps, Kind.DdpmFixedSmall, 0.11);
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
        using var scheduler = new DdpmScheduler(config, clipping: X0Clipping.None);
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
        using var scheduler = new DdimScheduler(config, eta: 0.0, clipping: X0Clipping.None);
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
        using var ddim = new DdimScheduler(config, eta: 1.0, clipping: X0Clipping.None);
        ddim.SetTimesteps(1000);
        using var ddpm = new DdpmScheduler(config, clipping: X0Clipping.None);
        var xT = randn(new long[] { 500, 2 }, dtype: ScalarType.Float64, generator: new Generator(6));
        var a = DiffusionSampler.Sample(ddim, denoiser, xT, new Generator(7));
        var b = DiffusionSampler.Sample(ddpm, denoiser, xT, new Generator(7));
        Assert.True(Numerics.MaxAbs(a - b) < 1e-8, $"max |DDIM(η=1) − DDPM| = {Numerics.MaxAbs(a - b):E2}");
        AssertGaussianMoments(a, ddpm.Timesteps, Kind.DdpmFixedSmall, 0.025);
    }

    [Fact]
    public void DdimInversionThenGenerationReconstructsTheData()
    {
        using var scope = NewDisposeScope();
        var config = Config();
        using var oracle = GaussianMixtureOracle.Gaussian(GaussMean, GaussCov);
        var denoiser = oracle.Denoiser(config.Schedule.Build());
        using var scheduler = new DdimScheduler(config, eta: 0.0, spacing: TimestepSpacing.Trailing, clipping: X0Clipping.None);
        scheduler.SetTimesteps(100);
        var x0 = oracle.Sample(200, new Generator(8), ScalarType.Float64);
        var xT = DiffusionSampler.Invert(scheduler, denoiser, x0);
        // The inverted latents look like N(0, I): for Gaussian data the DDIM map is linear and whitening.
        var (_, c) = Numerics.Moments(xT);
        Assert.InRange(c[0, 0], 0.75, 1.25);
        Assert.InRange(c[1, 1], 0.75, 1.25);
        double Rms(Tensor a, Tensor b) => (a - b).square().mean().sqrt().item<double>();
        double err100 = Rms(DiffusionSampler.Sample(scheduler, denoiser, xT), x0);
        Assert.True(err100 < 0.02, $"rms reconstruction error {err100:E2} at 100 steps");
        // The inversion's error is first order in the step size: twice the steps, half the error.
        using var fine = new DdimScheduler(config, eta: 0.0, spacing: TimestepSpacing.Trailing, clipping: X0Clipping.None);
        fine.SetTimesteps(200);
        double err200 = Rms(DiffusionSampler.Sample(fine, denoiser, DiffusionSampler.Invert(fine, denoiser, x0)), x0);
        Assert.InRange(err100 / err200, 1.8, 2.2);
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
        // Custom timesteps (diffusers' `timesteps=`): any order in, walked descending.
        ddim.SetTimesteps(new[] { 5, 400, 90 });
        Assert.Equal(new[] { 400, 90, 5 }, ddim.Timesteps);
        Assert.Equal(90, ddim.PreviousTimestep(400));
        Assert.Throws<ArgumentException>(() => ddim.SetTimesteps(new[] { 5, 5 }));
        Assert.Throws<ArgumentException>(() => ddim.SetTimesteps(new[] { 1000 }));
    }

    [Theory]
    [InlineData(SamplerKind.Ddpm)]
    [InlineData(SamplerKind.Ddim)]
    [InlineData(SamplerKind.DpmSolver2M)]
    [InlineData(SamplerKind.Euler)]
    [InlineData(SamplerKind.Heun)]
    [InlineData(SamplerKind.Sde)]
    public void TheReportedNetworkCallsAreTheCallsMade(SamplerKind kind)
    {
        // The "calls" column of FID reports and tables comes from SamplerFactory.NetworkCalls; here the denoiser counts
        // its own invocations (each on the whole batch).
        using var scope = NewDisposeScope();
        var config = Config();
        using var oracle = GaussianMixtureOracle.Gaussian(GaussMean, GaussCov);
        var denoiser = oracle.Denoiser(config.Schedule.Build());
        foreach (int steps in new[] { 1, 4, 7 })
        {
            int calls = 0;
            using var scheduler = SamplerFactory.Create(config, new SamplerSettings(kind, steps, Clip: false));
            DiffusionSampler.Sample(scheduler, (x, t) => { calls++; return denoiser(x, t); }, new long[] { 8, 2 }, new Generator(30), ScalarType.Float64);
            Assert.Equal(calls, SamplerFactory.NetworkCalls(kind, steps));
        }
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
