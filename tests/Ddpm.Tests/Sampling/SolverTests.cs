using Ddpm.Diffusion;
using Ddpm.Oracles;
using Ddpm.Sampling;
using Ddpm.Schedules;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;
using Xunit.Abstractions;

namespace Ddpm.Tests.Sampling;

/// <summary>
/// The fast samplers against the exact probability-flow ODE. For data N(μ, Σ) the oracle's ε̂ is exact, and in the
/// variables x̃ = x/√ᾱ, σ = √((1 − ᾱ)/ᾱ) the ODE dx̃/dσ = ε̂ = σ(Σ + σ²I)⁻¹(x̃ − μ) has the solution
/// x̃(σ) − μ = (Σ + σ²I)^{1/2} (Σ + σ_max²I)^{−1/2} (x̃(σ_max) − μ): every deterministic sampler started from the same
/// x_T must converge to x̃(0) at its promised order. Computed in float64 so that the errors are the methods' own.
/// </summary>
public class SolverTests(ITestOutputHelper output)
{
    private static readonly double[] Mean = { 0.3, -0.2 };
    private static readonly double[,] Cov = { { 0.5, 0.15 }, { 0.15, 0.3 } };
    private static readonly DiffusionConfig Config = new(new ScheduleConfig());
    private const int Points = 256;

    private static Tensor StartingNoise() => randn(new long[] { Points, 2 }, dtype: ScalarType.Float64, generator: new Generator(77));

    /// <summary>The exact ODE endpoint x̃(0) for x_T at t = T − 1.</summary>
    private static Tensor ExactEndpoint(Tensor xT, NoiseSchedule schedule)
    {
        double abar = schedule.AlphasCumprod[^1], sigmaMax2 = (1 - abar) / abar;
        var mu = tensor(Mean, dtype: ScalarType.Float64);
        var cov = tensor(new[] { Cov[0, 0], Cov[0, 1], Cov[1, 0], Cov[1, 1] }, new long[] { 2, 2 }, ScalarType.Float64);
        var (lambda, u) = linalg.eigh(cov);
        var scale = (lambda / (lambda + sigmaMax2)).sqrt();
        var map = (u * scale.unsqueeze(0)).matmul(u.t());
        return mu + (xT / Math.Sqrt(abar) - mu).matmul(map.t());
    }

    private static double RmsError(IScheduler scheduler, Tensor xT, GaussianMixtureOracle oracle, NoiseSchedule schedule)
    {
        using var scope = NewDisposeScope();
        var x0 = DiffusionSampler.Sample(scheduler, oracle.Denoiser(schedule), xT);
        return (x0 - ExactEndpoint(xT, schedule)).square().mean().sqrt().item<double>();
    }

    private static double Slope(int[] steps, double[] errors)
    {
        // Least-squares slope of log error against log steps.
        var x = steps.Select(s => Math.Log(s)).ToArray();
        var y = errors.Select(e => Math.Log(e)).ToArray();
        double mx = x.Average(), my = y.Average();
        return x.Zip(y).Sum(p => (p.First - mx) * (p.Second - my)) / x.Sum(v => (v - mx) * (v - mx));
    }

    public static TheoryData<SamplerKind, TimestepSpacing, double, double> Orders => new()
    {
        { SamplerKind.Euler, TimestepSpacing.Karras, 0.8, 1.3 },
        { SamplerKind.Ddim, TimestepSpacing.Trailing, 0.8, 1.3 },
        { SamplerKind.Heun, TimestepSpacing.Karras, 1.7, 2.6 },
        { SamplerKind.DpmSolver2M, TimestepSpacing.LogSnr, 1.6, 2.6 },
        { SamplerKind.DpmSolver2M, TimestepSpacing.Trailing, 1.6, 2.6 },
    };

    [Theory]
    [MemberData(nameof(Orders))]
    public void DeterministicSamplersConvergeToTheExactOdeSolutionAtTheirOrder(SamplerKind kind, TimestepSpacing spacing, double minOrder, double maxOrder)
    {
        using var scope = NewDisposeScope();
        var schedule = Config.Schedule.Build();
        using var oracle = GaussianMixtureOracle.Gaussian(Mean, Cov);
        var xT = StartingNoise();
        int[] steps = { 10, 20, 40, 80 };
        var errors = new double[steps.Length];
        for (int i = 0; i < steps.Length; i++)
        {
            using var scheduler = SamplerFactory.Create(Config, new SamplerSettings(kind, steps[i], Clip: false, Spacing: spacing));
            errors[i] = RmsError(scheduler, xT, oracle, schedule);
        }
        double order = -Slope(steps, errors); // error ∝ steps^−order
        output.WriteLine($"{kind} ({spacing}): errors {string.Join(", ", errors.Select(e => e.ToString("E2")))}, order {order:F2}");
        Assert.InRange(order, minOrder, maxOrder);
        Assert.True(errors[^1] < errors[0]);
    }

    [Fact]
    public void EulerOnTheProbabilityFlowOdeIsDdimWithEtaZero()
    {
        using var scope = NewDisposeScope();
        var schedule = Config.Schedule.Build();
        using var oracle = GaussianMixtureOracle.Gaussian(Mean, Cov);
        var xT = StartingNoise();
        using var euler = new ProbabilityFlowScheduler(Config, OdeMethod.Euler, TimestepSpacing.Karras, X0Clipping.None);
        euler.SetTimesteps(25);
        using var ddim = new DdimScheduler(Config, eta: 0, clipping: X0Clipping.None);
        ddim.SetTimesteps(euler.Timesteps);
        var a = DiffusionSampler.Sample(euler, oracle.Denoiser(schedule), xT);
        var b = DiffusionSampler.Sample(ddim, oracle.Denoiser(schedule), xT);
        Assert.True(Numerics.MaxAbs(a - b) < 1e-10, $"max difference {Numerics.MaxAbs(a - b)}");
    }

    [Theory]
    [InlineData(10)]
    [InlineData(20)]
    public void DpmSolverBeatsDdimAtTheSameNumberOfNetworkCalls(int calls)
    {
        using var scope = NewDisposeScope();
        var schedule = Config.Schedule.Build();
        using var oracle = GaussianMixtureOracle.Gaussian(Mean, Cov);
        var xT = StartingNoise();
        double Error(SamplerKind kind, TimestepSpacing spacing)
        {
            using var scheduler = SamplerFactory.Create(Config, new SamplerSettings(kind, calls, Clip: false, Spacing: spacing));
            Assert.Equal(calls, scheduler.Timesteps.Count);
            return RmsError(scheduler, xT, oracle, schedule);
        }
        double dpm = Error(SamplerKind.DpmSolver2M, TimestepSpacing.LogSnr);
        foreach (var spacing in new[] { TimestepSpacing.Trailing, TimestepSpacing.LogSnr, TimestepSpacing.Karras })
        {
            double ddim = Error(SamplerKind.Ddim, spacing);
            output.WriteLine($"{calls} calls: DPM-Solver++ 2M {dpm:E2}, DDIM ({spacing}) {ddim:E2}");
            Assert.True(dpm < 0.5 * ddim, $"DPM-Solver++ {dpm:E3} vs DDIM ({spacing}) {ddim:E3}");
        }
    }

    /// <summary>
    /// The reverse SDE over all 1000 steps reproduces N(μ, Σ): sample moments within 5 standard errors plus the
    /// Euler–Maruyama bias, which is O(max Δτ) = O(β_max) = 2 % of Σ here.
    /// </summary>
    [Fact]
    public void TheReverseSdeReproducesTheDataMoments()
    {
        using var scope = NewDisposeScope();
        var schedule = Config.Schedule.Build();
        using var oracle = GaussianMixtureOracle.Gaussian(Mean, Cov);
        using var sde = new ReverseSdeScheduler(Config, TimestepSpacing.Linspace, X0Clipping.None);
        sde.SetTimesteps(1000);
        const int n = 20_000;
        var samples = DiffusionSampler.Sample(sde, oracle.Denoiser(schedule), new long[] { n, 2 }, new Generator(5), ScalarType.Float64);
        var (mean, cov) = Numerics.Moments(samples);
        for (int i = 0; i < 2; i++)
        {
            double se = Math.Sqrt(Cov[i, i] / n);
            Assert.True(Math.Abs(mean[i] - Mean[i]) < 5 * se + 0.02 * Math.Sqrt(Cov[i, i]), $"mean[{i}] {mean[i]:F4} vs {Mean[i]}");
            for (int j = 0; j < 2; j++)
            {
                double seCov = Math.Sqrt((Cov[i, i] * Cov[j, j] + Cov[i, j] * Cov[i, j]) / n);
                Assert.True(Math.Abs(cov[i, j] - Cov[i, j]) < 5 * seCov + 0.02 * Math.Sqrt(Cov[i, i] * Cov[j, j]), $"cov[{i},{j}] {cov[i, j]:F4} vs {Cov[i, j]}");
            }
        }
        output.WriteLine($"SDE mean ({mean[0]:F4}, {mean[1]:F4}), cov ({cov[0, 0]:F4}, {cov[0, 1]:F4}, {cov[1, 1]:F4})");
    }

    [Fact]
    public void HeunCallsTheModelTwicePerStepExceptTheLast_AndStatefulSamplersRestartCleanly()
    {
        using var scope = NewDisposeScope();
        var schedule = Config.Schedule.Build();
        using var oracle = GaussianMixtureOracle.Gaussian(Mean, Cov);
        using var heun = new ProbabilityFlowScheduler(Config, OdeMethod.Heun, TimestepSpacing.Karras, X0Clipping.None);
        heun.SetTimesteps(6);
        Assert.Equal(SamplerFactory.NetworkCalls(SamplerKind.Heun, 6), heun.Timesteps.Count);
        Assert.Equal(11, heun.Timesteps.Count);
        Assert.Equal(999, heun.Timesteps[0]);
        var xT = StartingNoise();
        var first = DiffusionSampler.Sample(heun, oracle.Denoiser(schedule), xT);
        var second = DiffusionSampler.Sample(heun, oracle.Denoiser(schedule), xT);
        Assert.Equal(0.0, Numerics.MaxAbs(first - second));
        using var dpm = new DpmSolverMultistepScheduler(Config, 2, TimestepSpacing.LogSnr, X0Clipping.None);
        dpm.SetTimesteps(7);
        var a = DiffusionSampler.Sample(dpm, oracle.Denoiser(schedule), xT);
        // Abandon a run half-way: the next run starting at the first timestep must not see its history.
        var x = xT.clone();
        for (int i = 0; i < 3; i++)
            x = dpm.Step(oracle.Denoiser(schedule)(x, full(new long[] { Points }, dpm.Timesteps[i], dtype: ScalarType.Int64)), dpm.Timesteps[i], x).PrevSample;
        var b = DiffusionSampler.Sample(dpm, oracle.Denoiser(schedule), xT);
        Assert.Equal(0.0, Numerics.MaxAbs(a - b));
        Assert.Throws<ArgumentException>(() => dpm.Step(xT, dpm.Timesteps[3], xT));
    }

    [Theory]
    [InlineData(TimestepSpacing.LogSnr)]
    [InlineData(TimestepSpacing.Karras)]
    public void ScheduleAwareSpacingsCoverTheRangeWithDistinctTimesteps(TimestepSpacing spacing)
    {
        var schedule = Config.Schedule.Build();
        var abar = schedule.AlphasCumprod;
        foreach (int n in new[] { 1, 2, 10, 50, 200, 1000 })
        {
            var steps = TimestepSelection.Select(abar, n, spacing);
            Assert.Equal(n, steps.Length);
            Assert.Equal(999, steps[^1]);
            if (n > 1) Assert.Equal(0, steps[0]);
            for (int i = 1; i < n; i++) Assert.True(steps[i] > steps[i - 1]);
        }
        // Log-SNR spacing: equal steps in λ away from the dense end, up to the rounding to whole timesteps.
        var ten = TimestepSelection.Select(abar, 10, TimestepSpacing.LogSnr);
        var lambda = ten.Select(t => 0.5 * Math.Log(abar[t] / (1 - abar[t]))).ToArray();
        var gaps = lambda.Zip(lambda.Skip(1), (p, q) => p - q).ToArray();
        double target = (lambda[0] - lambda[^1]) / 9;
        foreach (double g in gaps) Assert.InRange(g, 0.8 * target, 1.2 * target);
    }
}
