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
public sealed class DdimScheduler : IScheduler
{
    private readonly GaussianDiffusion _diffusion;
    private readonly double[] _alphasCumprod;
    private Dictionary<int, int> _indexOf = new();
    private int[] _descending = Array.Empty<int>();

    public int TrainTimesteps => _diffusion.Timesteps;
    public double Eta { get; }
    public TimestepSpacing Spacing { get; }
    /// <summary>What is done to x̂_0: the clamp to [−1, 1] by default, dynamic thresholding, or nothing.</summary>
    public X0Clipping Clipping { get; }
    public IReadOnlyList<int> Timesteps => _descending;

    public DdimScheduler(DiffusionConfig config, double eta = 0.0, TimestepSpacing spacing = TimestepSpacing.Leading,
        X0Clipping? clipping = null, NoiseSchedule? schedule = null)
    {
        if (!(eta >= 0.0 && eta <= 1.0))
            throw new ArgumentException($"eta must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like); got {eta}.", nameof(eta));
        clipping ??= new X0Clipping();
        clipping.Validate();
        _diffusion = schedule is null ? new GaussianDiffusion(config) : new GaussianDiffusion(config, schedule);
        _alphasCumprod = _diffusion.Schedule.AlphasCumprod;
        Eta = eta;
        Spacing = spacing;
        Clipping = clipping;
        SetTimesteps(TrainTimesteps);
    }

    public void SetTimesteps(int inferenceSteps)
    {
        var ascending = TimestepSelection.Select(_alphasCumprod, inferenceSteps, Spacing);
        _descending = ascending.Reverse().ToArray();
        _indexOf = _descending.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i);
    }

    /// <summary>
    /// Uses exactly the given timesteps (diffusers' custom timesteps), each in [0, T−1] and distinct, in any order;
    /// sampling walks them in descending order.
    /// </summary>
    public void SetTimesteps(IReadOnlyList<int> timesteps)
    {
        ArgumentNullException.ThrowIfNull(timesteps);
        if (timesteps.Count == 0) throw new ArgumentException("At least one timestep is needed.", nameof(timesteps));
        foreach (int t in timesteps)
            if (t < 0 || t >= TrainTimesteps)
                throw new ArgumentException($"Timesteps must lie in [0, {TrainTimesteps - 1}]; got {t}.", nameof(timesteps));
        if (timesteps.Distinct().Count() != timesteps.Count)
            throw new ArgumentException("Timesteps must be distinct.", nameof(timesteps));
        _descending = timesteps.OrderDescending().ToArray();
        _indexOf = _descending.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i);
    }

    /// <summary>The timestep after <paramref name="timestep"/> in sampling order, or −1 (ᾱ = 1, clean data) after the last.</summary>
    public int PreviousTimestep(int timestep)
    {
        if (!_indexOf.TryGetValue(timestep, out int i))
            throw new ArgumentException($"Timestep {timestep} is not one of the scheduler's timesteps; call SetTimesteps and step through Timesteps.", nameof(timestep));
        return i + 1 < _descending.Length ? _descending[i + 1] : -1;
    }

    private double AlphaCumprod(int timestep) => timestep >= 0 ? _alphasCumprod[timestep] : 1.0;

    private (Tensor X0, Tensor Epsilon) Predict(Tensor modelOutput, int timestep, Tensor sample) =>
        X0Prediction.Predict(_diffusion, Clipping, modelOutput, timestep, sample);

    public SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null)
    {
        int previous = PreviousTimestep(timestep);
        using var scope = NewDisposeScope();
        double alphaBar = AlphaCumprod(timestep), alphaBarPrev = AlphaCumprod(previous);
        var (x0, epsilon) = Predict(modelOutput, timestep, sample);
        double sigma = Eta * Math.Sqrt((1 - alphaBarPrev) / (1 - alphaBar)) * Math.Sqrt(1 - alphaBar / alphaBarPrev);
        double directionScale = Math.Sqrt(Math.Max(0.0, 1 - alphaBarPrev - sigma * sigma));
        var prev = Math.Sqrt(alphaBarPrev) * x0 + directionScale * epsilon;
        if (sigma > 0)
            prev = prev + sigma * randn(sample.shape, dtype: sample.dtype, device: sample.device, generator: generator);
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
        var (_, epsilon) = _diffusion.PredictX0AndEpsilon(modelOutput, sample, t);
        var x0 = (sample - Math.Sqrt(1 - alphaBarFrom) * epsilon) / Math.Sqrt(alphaBarFrom);
        var next = Math.Sqrt(alphaBarTo) * x0 + Math.Sqrt(1 - alphaBarTo) * epsilon;
        return next.MoveToOuterDisposeScope();
    }

    public Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => _diffusion.QSample(original, timesteps, noise);

    public void Dispose() => _diffusion.Dispose();
}
