using Ddpm.Runtime;
using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>The result of one reverse step: the sample at the previous (less noisy) timestep and the predicted x_0.</summary>
public sealed record SchedulerStepOutput(Tensor PrevSample, Tensor PredictedX0);

/// <summary>
/// A guidance term g(x_t, t) that shifts the reverse mean by Σ_t·g, where Σ_t is the variance of the noise the step
/// adds (Dhariwal &amp; Nichol 2021, Algorithm 1, with g = s·∇ log p_φ(y | x_t)).
/// </summary>
public delegate Tensor MeanShift(Tensor sample, int timestep);

/// <summary>
/// The diffusers scheduler protocol: choose the inference timesteps, then walk them in order calling the model at
/// each and passing its output to <see cref="Step"/>. Steps are keyed by timestep: a scheduler finds its place from
/// the timestep it is given, and multistep history is used only when it belongs to the timestep before. A scheduler
/// holds its coefficients as tensors: dispose it.
/// </summary>
public interface IScheduler : IDisposable
{
    /// <summary>T, the number of training timesteps the model knows.</summary>
    int TrainTimesteps { get; }

    /// <summary>Chooses <paramref name="inferenceSteps"/> timesteps out of T.</summary>
    void SetTimesteps(int inferenceSteps);

    /// <summary>The timesteps the model is called at, in sampling order (descending), each in [0, T−1].</summary>
    IReadOnlyList<int> Timesteps { get; }

    /// <summary>
    /// One reverse step from <paramref name="sample"/> at timestep <paramref name="timestep"/> (one of
    /// <see cref="Timesteps"/>). <paramref name="meanShift"/>, if given, is g of <see cref="MeanShift"/>: the step adds
    /// Σ_t·g to its mean before its noise; a deterministic step (no noise, Σ = 0) refuses it.
    /// </summary>
    SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null, Tensor? meanShift = null);

    /// <summary>q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) (Eq. 4): the noising of <paramref name="original"/> at per-example <paramref name="timesteps"/>.</summary>
    Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps);
}

/// <summary>
/// What every scheduler shares: the diffusion's float64 coefficients, the timestep spacing and x̂_0 clipping, the
/// chosen timesteps with their keyed lookup, <see cref="AddNoise"/> and disposal.
/// </summary>
public abstract class SchedulerBase : IScheduler
{
    private int[] _descending = Array.Empty<int>();
    private Dictionary<int, int> _indexOf = new();

    /// <summary>Null <paramref name="spacing"/> takes <paramref name="kind"/>'s default (<see cref="SamplerFactory.DefaultSpacing"/>).</summary>
    protected SchedulerBase(GaussianDiffusion diffusion, SamplerKind kind, TimestepSpacing? spacing, X0Clipping? clipping)
    {
        Diffusion = diffusion;
        AlphasCumprod = diffusion.Schedule.AlphasCumprod;
        Kind = kind;
        Spacing = spacing ?? SamplerFactory.DefaultSpacing(kind);
        Clipping = clipping ?? new X0Clipping();
        Clipping.Validate();
    }

    /// <summary>The training diffusion: its T timesteps and float64 coefficients.</summary>
    protected GaussianDiffusion Diffusion { get; }
    /// <summary>ᾱ_t of the training schedule, float64, index t = 0 … T−1.</summary>
    protected double[] AlphasCumprod { get; }
    /// <summary>The sampler this scheduler implements; its defaults are <see cref="SamplerFactory"/>'s.</summary>
    public SamplerKind Kind { get; }
    public TimestepSpacing Spacing { get; }
    /// <summary>What is done to x̂_0: the clamp to [−1, 1] by default, dynamic thresholding, or nothing.</summary>
    public X0Clipping Clipping { get; }
    public int TrainTimesteps => Diffusion.Timesteps;
    public virtual IReadOnlyList<int> Timesteps => _descending;

    /// <summary>The distinct timesteps chosen, descending (a scheduler may call the model more than once at each).</summary>
    protected int[] Levels => _descending;

    /// <summary>
    /// With shared noise every example of a batch gets the same noise at a step (drawn once, shape [1, ...]), so that
    /// a batch of nearby latents decodes to a smooth strip (Ho et al. 2020, §4.3). Off by default.
    /// </summary>
    public bool SharedNoise { get; init; }

    /// <summary>The sampler's default number of steps (<see cref="SamplerFactory.DefaultSteps"/>): what a new scheduler starts with.</summary>
    protected void UseDefaultSteps() => SetTimesteps(SamplerFactory.DefaultSteps(Kind, TrainTimesteps));

    public void SetTimesteps(int inferenceSteps) => UseTimesteps(TimestepSelection.Select(AlphasCumprod, inferenceSteps, Spacing));

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
        UseTimesteps(timesteps.Order().ToArray());
    }

    /// <summary>Standard normal noise of the sample's shape, or one draw expanded over the batch with <see cref="SharedNoise"/>.</summary>
    protected Tensor Noise(Tensor sample, Generator? generator)
    {
        // Drawn on the CPU, where the generator lives, then moved: the same seed gives the same noise on every device.
        if (!SharedNoise) return randn(sample.shape, dtype: sample.dtype, generator: generator).On(sample.device);
        var shape = sample.shape.ToArray();
        shape[0] = 1;
        return randn(shape, dtype: sample.dtype, generator: generator).On(sample.device).expand_as(sample);
    }

    /// <summary>Uses the given timesteps (ascending, distinct, each in [0, T−1]); sampling walks them descending.</summary>
    protected virtual void UseTimesteps(int[] ascending)
    {
        _descending = ascending.Reverse().ToArray();
        _indexOf = _descending.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i);
    }

    /// <summary>The position of <paramref name="timestep"/> in the descending list, or an error naming the fix.</summary>
    protected int IndexOf(int timestep) => _indexOf.TryGetValue(timestep, out int i)
        ? i
        : throw new ArgumentException($"Timestep {timestep} is not one of the scheduler's timesteps; call SetTimesteps and step through Timesteps.", nameof(timestep));

    /// <summary>ᾱ of the level after position <paramref name="index"/> in sampling order: the next timestep's, or 1 (clean data) after the last.</summary>
    protected double AlphaBarAfter(int index) => index + 1 < _descending.Length ? AlphasCumprod[_descending[index + 1]] : 1.0;

    /// <summary>x̂_0 and ε̂ of the model output at <paramref name="timestep"/>, x̂_0 clipped as <see cref="Clipping"/> says.</summary>
    protected (Tensor X0, Tensor Epsilon) Predict(Tensor modelOutput, int timestep, Tensor sample) =>
        X0Prediction.Predict(Diffusion, Clipping, modelOutput, timestep, sample);

    public abstract SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null, Tensor? meanShift = null);

    /// <summary>The refusal of a mean shift by a deterministic step.</summary>
    protected ArgumentException NoMeanShift() =>
        new($"{GetType().Name} takes deterministic steps, which a mean shift cannot guide; guide its denoiser instead (ClassifierGuidance.EpsilonGuided).", "meanShift");

    public Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => Diffusion.QSample(original, timesteps, noise);

    public virtual void Dispose()
    {
        Diffusion.Dispose();
        GC.SuppressFinalize(this);
    }
}
