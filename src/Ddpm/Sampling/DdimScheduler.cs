using Ddpm.Diffusion;
using Ddpm.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// DDIM (Song et al. 2020): x_{t'} = √ᾱ_{t'} x̂_0 + √(1 − ᾱ_{t'} − σ_t²) ε̂ + σ_t z (Eq. 12), with
/// σ_t(η) = η √((1 − ᾱ_{t'})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t'}) (Eq. 16), where t' is the next timestep in the list
/// (ᾱ = 1 after the last). η = 0 is the deterministic sampler; η = 1 over all steps is DDPM with σ² = β̃.
/// </summary>
public sealed class DdimScheduler : SchedulerBase
{
    public double Eta { get; }

    public DdimScheduler(DiffusionConfig config, double eta = 0.0, TimestepSpacing? spacing = null,
        X0Clipping? clipping = null, NoiseSchedule? schedule = null)
        : base(schedule is null ? new GaussianDiffusion(config) : new GaussianDiffusion(config, schedule), SamplerKind.Ddim, spacing, clipping)
    {
        if (!(eta >= 0.0 && eta <= 1.0))
        {
            Diffusion.Dispose();
            throw new ArgumentException($"eta must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like); got {eta}.", nameof(eta));
        }
        Eta = eta;
        UseDefaultSteps();
    }

    /// <summary>The timestep after <paramref name="timestep"/> in sampling order, or −1 (ᾱ = 1, clean data) after the last.</summary>
    public int PreviousTimestep(int timestep)
    {
        int i = IndexOf(timestep);
        return i + 1 < Levels.Length ? Levels[i + 1] : -1;
    }

    private double AlphaCumprod(int timestep) => timestep >= 0 ? AlphasCumprod[timestep] : 1.0;

    /// <summary>With <paramref name="meanShift"/> g the mean gains σ_t²·g (the step's noise variance; none at η = 0).</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null, Tensor? meanShift = null)
    {
        int previous = PreviousTimestep(timestep);
        using var scope = NewDisposeScope();
        double alphaBar = AlphaCumprod(timestep), alphaBarPrev = AlphaCumprod(previous);
        var (x0, epsilon) = Predict(modelOutput, timestep, sample);
        double sigma = Eta * Math.Sqrt((1 - alphaBarPrev) / (1 - alphaBar)) * Math.Sqrt(1 - alphaBar / alphaBarPrev);
        if (meanShift is not null && Eta == 0) throw NoMeanShift();
        double directionScale = Math.Sqrt(Math.Max(0.0, 1 - alphaBarPrev - sigma * sigma));
        var prev = Math.Sqrt(alphaBarPrev) * x0 + directionScale * epsilon;
        if (meanShift is not null) prev = prev + (sigma * sigma) * meanShift;
        if (sigma > 0)
            prev = prev + sigma * Noise(sample, generator);
        return new SchedulerStepOutput(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// One step of DDIM inversion (η = 0), the reverse of <see cref="Step"/>: from <paramref name="sample"/> at the
    /// level after <paramref name="timestep"/> in sampling order to the level of <paramref name="timestep"/>, with
    /// the model output evaluated at (sample, timestep) (diffusers' DDIMInverseScheduler). No clipping.
    /// </summary>
    public Tensor InverseStep(Tensor modelOutput, int timestep, Tensor sample)
    {
        int from = PreviousTimestep(timestep);
        using var scope = NewDisposeScope();
        double alphaBarFrom = AlphaCumprod(from), alphaBarTo = AlphaCumprod(timestep);
        var t = full(new long[] { sample.shape[0] }, timestep, dtype: ScalarType.Int64, device: sample.device);
        var (_, epsilon) = Diffusion.PredictX0AndEpsilon(modelOutput, sample, t);
        var x0 = (sample - Math.Sqrt(1 - alphaBarFrom) * epsilon) / Math.Sqrt(alphaBarFrom);
        var next = Math.Sqrt(alphaBarTo) * x0 + Math.Sqrt(1 - alphaBarTo) * epsilon;
        return next.MoveToOuterDisposeScope();
    }
}
