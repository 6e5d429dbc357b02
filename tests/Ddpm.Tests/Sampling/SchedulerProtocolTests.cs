using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Schedules;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

/// <summary>
/// The scheduler protocol shared by every sampler: keyed steps, the mean shift of classifier guidance as Σ·g with each
/// step's own noise variance (closed forms), refusals by deterministic steps, shared noise, and AddNoise as Eq. 4.
/// </summary>
public class SchedulerProtocolTests
{
    private static readonly DiffusionConfig Config = new(new ScheduleConfig(Timesteps: 100));

    private static Tensor Output(Tensor x) => 0.3 * x + 0.1;

    /// <summary>One step with and without the shift g, from one generator seed: their difference is what the shift added.</summary>
    private static Tensor ShiftAdded(IScheduler scheduler, int timestep, Tensor x, Tensor g)
    {
        var shifted = scheduler.Step(Output(x), timestep, x, new Generator(5), g).PrevSample;
        var plain = scheduler.Step(Output(x), timestep, x, new Generator(5)).PrevSample;
        return shifted - plain;
    }

    [Fact]
    public void TheMeanShiftIsTheStepsNoiseVarianceTimesG()
    {
        using var scope = NewDisposeScope();
        var schedule = Config.Schedule.Build();
        var abar = schedule.AlphasCumprod;
        var x = randn(new long[] { 3, 2 }, dtype: ScalarType.Float64, generator: new Generator(1));
        var g = tensor(new[] { 1.5, -0.5 }, dtype: ScalarType.Float64).expand(3, 2);

        // DDPM over all steps: Σ_t = β̃_t (fixed-small), Algorithm 1.
        using (var ddpm = new DdpmScheduler(Config, clipping: X0Clipping.None))
        {
            var added = ShiftAdded(ddpm, 40, x, g);
            Assert.True(Numerics.MaxAbs(added - schedule.PosteriorVariance[40] * g) < 1e-12);
        }
        // DDIM with η = 1 over 10 steps: σ_t² of Eq. 16 between timestep t and the next one.
        using (var ddim = new DdimScheduler(Config, eta: 1.0, clipping: X0Clipping.None))
        {
            ddim.SetTimesteps(10);
            int t = ddim.Timesteps[2], next = ddim.Timesteps[3];
            double sigma2 = (1 - abar[next]) / (1 - abar[t]) * (1 - abar[t] / abar[next]);
            Assert.True(Numerics.MaxAbs(ShiftAdded(ddim, t, x, g) - sigma2 * g) < 1e-12);
        }
        // The reverse SDE: the noise variance of a step is Δτ = log(ᾱ_t′/ᾱ_t).
        using (var sde = new ReverseSdeScheduler(Config, clipping: X0Clipping.None))
        {
            sde.SetTimesteps(10);
            int t = sde.Timesteps[2], next = sde.Timesteps[3];
            double dTau = Math.Log(abar[next] / abar[t]);
            Assert.True(Numerics.MaxAbs(ShiftAdded(sde, t, x, g) - dTau * g) < 1e-12);
        }
    }

    [Theory]
    [InlineData(SamplerKind.Ddim)]
    [InlineData(SamplerKind.DpmSolver2M)]
    [InlineData(SamplerKind.Euler)]
    [InlineData(SamplerKind.Heun)]
    public void DeterministicStepsRefuseAMeanShift(SamplerKind kind)
    {
        using var scope = NewDisposeScope();
        using var scheduler = SamplerFactory.Create(Config, new SamplerSettings(kind, 5, Clip: false));
        var x = zeros(2, 2, dtype: ScalarType.Float64);
        var e = Assert.Throws<ArgumentException>(() => scheduler.Step(x, scheduler.Timesteps[0], x, null, ones_like(x)));
        Assert.Contains("EpsilonGuided", e.Message);
    }

    [Fact]
    public void HeunAndDpmSolverAreKeyedByTimestepAndRefuseASkippedStep()
    {
        using var scope = NewDisposeScope();
        var x = randn(new long[] { 4, 2 }, dtype: ScalarType.Float64, generator: new Generator(2));
        using var heun = new ProbabilityFlowScheduler(Config, OdeMethod.Heun, clipping: X0Clipping.None);
        heun.SetTimesteps(4);
        var calls = heun.Timesteps;
        // Predictor at the first level, then the corrector at the second: skipping the corrector is refused.
        var afterPredictor = heun.Step(Output(x), calls[0], x).PrevSample;
        heun.Step(Output(afterPredictor), calls[1], afterPredictor);
        Assert.Throws<ArgumentException>(() => heun.Step(Output(x), calls[3], x));
        // A call at the first timestep starts a new run whatever came before.
        var again = heun.Step(Output(x), calls[0], x).PrevSample;
        Assert.Equal(0.0, Numerics.MaxAbs(again - afterPredictor));

        using var dpm = new DpmSolverMultistepScheduler(Config, 2, clipping: X0Clipping.None);
        dpm.SetTimesteps(5);
        dpm.Step(Output(x), dpm.Timesteps[0], x);
        Assert.Throws<ArgumentException>(() => dpm.Step(Output(x), dpm.Timesteps[2], x));
        Assert.Throws<ArgumentException>(() => dpm.Step(Output(x), 12345, x));
    }

    [Fact]
    public void RespacingToEveryTimestepIsTheTrainingScheduleExactly()
    {
        var schedule = Config.Schedule.Build();
        var all = schedule.Respace(Enumerable.Range(0, schedule.Timesteps).ToArray());
        Assert.Equal(schedule.Betas, all.Betas);
        Assert.Equal(schedule.AlphasCumprod, all.AlphasCumprod);
        // A prefix keeps its β too (what interpolation decodes over); a gap is respaced (1 − ᾱ_t/ᾱ_s).
        var gapped = schedule.Respace(new[] { 0, 1, 5 });
        Assert.Equal(schedule.Betas[1], gapped.Betas[1]);
        Assert.Equal(1 - schedule.AlphasCumprod[5] / schedule.AlphasCumprod[1], gapped.Betas[2], 15);
    }

    [Theory]
    [InlineData(SamplerKind.Ddpm)]
    [InlineData(SamplerKind.Ddim)]
    [InlineData(SamplerKind.DpmSolver2M)]
    [InlineData(SamplerKind.Heun)]
    [InlineData(SamplerKind.Sde)]
    public void AddNoiseIsEquationFour(SamplerKind kind)
    {
        using var scope = NewDisposeScope();
        var abar = Config.Schedule.Build().AlphasCumprod;
        using var scheduler = SamplerFactory.Create(Config, new SamplerSettings(kind, 5));
        var x0 = randn(new long[] { 3, 2 }, dtype: ScalarType.Float64, generator: new Generator(3));
        var noise = randn(new long[] { 3, 2 }, dtype: ScalarType.Float64, generator: new Generator(4));
        var t = tensor(new long[] { 0, 37, 99 });
        var noisy = scheduler.AddNoise(x0, noise, t);
        for (int i = 0; i < 3; i++)
        {
            double a = abar[t[i].item<long>()];
            var expected = Math.Sqrt(a) * x0[i] + Math.Sqrt(1 - a) * noise[i];
            Assert.True(Numerics.MaxAbs(noisy[i] - expected) < 1e-12);
        }
    }

    [Fact]
    public void SharedNoiseGivesEveryExampleOfABatchTheSameDraw()
    {
        using var scope = NewDisposeScope();
        var x = randn(new long[] { 1, 2 }, dtype: ScalarType.Float64, generator: new Generator(6)).expand(4, 2).contiguous();
        using var shared = new DdpmScheduler(Config, clipping: X0Clipping.None) { SharedNoise = true };
        using var independent = new DdpmScheduler(Config, clipping: X0Clipping.None);
        var a = shared.Step(Output(x), 50, x, new Generator(8)).PrevSample;
        var b = independent.Step(Output(x), 50, x, new Generator(8)).PrevSample;
        Assert.Equal(0.0, Numerics.MaxAbs(a - a[0].expand(4, 2)));
        Assert.True(Numerics.MaxAbs(b - b[0].expand(4, 2)) > 1e-3);
        // The shared draw is the first draw of the generator, as for a batch of one.
        var one = independent.Step(Output(x[..1]), 50, x[..1], new Generator(8)).PrevSample;
        Assert.Equal(0.0, Numerics.MaxAbs(a[0] - one[0]));
    }
}
