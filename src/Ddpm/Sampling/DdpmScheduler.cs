using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// DDPM ancestral sampling (Ho et al. 2020, Algorithm 2): x_{t−1} = μ_θ(x_t, t) + σ_t z, no noise at the last step.
/// Over a subset of timesteps the betas are recomputed from the kept ᾱ (improved-diffusion's respacing), and the
/// model is still called with the original timesteps.
/// </summary>
public sealed class DdpmScheduler : IScheduler
{
    private readonly DiffusionConfig _config;
    private readonly GaussianDiffusion _trainDiffusion;
    private GaussianDiffusion _respaced;
    private int[] _ascending;
    private Dictionary<int, int> _indexOf;

    public int TrainTimesteps => _trainDiffusion.Timesteps;
    public TimestepSpacing Spacing { get; }
    /// <summary>What is done to x̂_0 before the mean is formed: the clamp to [−1, 1] by default (as in the paper's code), dynamic thresholding, or nothing.</summary>
    public X0Clipping Clipping { get; }
    public IReadOnlyList<int> Timesteps { get; private set; }

    public DdpmScheduler(DiffusionConfig config, TimestepSpacing spacing = TimestepSpacing.Linspace, X0Clipping? clipping = null)
    {
        clipping ??= new X0Clipping();
        clipping.Validate();
        _config = config;
        _trainDiffusion = new GaussianDiffusion(config);
        Spacing = spacing;
        Clipping = clipping;
        _ascending = Enumerable.Range(0, TrainTimesteps).ToArray();
        _respaced = new GaussianDiffusion(config, _trainDiffusion.Schedule);
        _indexOf = _ascending.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i);
        Timesteps = _ascending.Reverse().ToArray();
    }

    /// <summary>
    /// Optional guidance for the mean: (x_t, t) ↦ s·∇ log p_φ(y | x_t, t), which <see cref="Step"/> multiplies by the
    /// step's variance Σ and adds to μ_θ (classifier guidance; see <see cref="Guidance.ClassifierGuidance.ScaledGradient"/>).
    /// </summary>
    public Func<Tensor, int, Tensor>? MeanShift { get; set; }

    public void SetTimesteps(int inferenceSteps)
    {
        var kept = TimestepSelection.Select(_trainDiffusion.Schedule.AlphasCumprod, inferenceSteps, Spacing);
        _respaced.Dispose();
        _respaced = new GaussianDiffusion(_config, _trainDiffusion.Schedule.Respace(kept));
        _ascending = kept;
        _indexOf = kept.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i);
        Timesteps = kept.Reverse().ToArray();
    }

    public SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null)
    {
        if (!_indexOf.TryGetValue(timestep, out int index))
            throw new ArgumentException($"Timestep {timestep} is not one of the scheduler's timesteps; call SetTimesteps and step through Timesteps.", nameof(timestep));
        using var scope = NewDisposeScope();
        var t = full(new long[] { sample.shape[0] }, index, dtype: ScalarType.Int64, device: sample.device);
        var p = _respaced.PMeanVariance(modelOutput, sample, t, Clipping.Clip && !Clipping.Thresholding);
        if (Clipping.Thresholding)
        {
            // The posterior mean μ̃(x_t, x̂_0) (Eq. 7) of the thresholded x̂_0; the variance stays the model's.
            var x0 = GaussianMath.DynamicThreshold(p.PredictedX0, Clipping.ThresholdingRatio, Clipping.ThresholdingMaxValue);
            p = p with { Mean = _respaced.QPosteriorMeanVariance(x0, sample, t).Mean, PredictedX0 = x0 };
        }
        var prev = p.Mean;
        if (MeanShift is not null)
            prev = prev + p.LogVariance.exp() * MeanShift(sample, timestep); // Dhariwal & Nichol 2021, Algorithm 1: μ + s·Σ·∇ log p_φ(y|x_t)
        if (index > 0)
        {
            var z = randn(sample.shape, dtype: sample.dtype, device: sample.device, generator: generator);
            prev = prev + (0.5 * p.LogVariance).exp() * z;
        }
        return new SchedulerStepOutput(prev.MoveToOuterDisposeScope(), p.PredictedX0.MoveToOuterDisposeScope());
    }

    public Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) =>
        _trainDiffusion.QSample(original, timesteps, noise);

    public void Dispose()
    {
        _respaced.Dispose();
        _trainDiffusion.Dispose();
    }
}
