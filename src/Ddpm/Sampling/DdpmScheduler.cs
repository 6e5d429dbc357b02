using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// DDPM ancestral sampling (Ho et al. 2020, Algorithm 2): x_{t−1} = μ_θ(x_t, t) + σ_t z, no noise at the last step.
/// Over a subset of timesteps the betas are recomputed from the kept ᾱ (improved-diffusion's respacing), and the
/// model is still called with the original timesteps.
/// </summary>
public sealed class DdpmScheduler : SchedulerBase
{
    private readonly DiffusionConfig _config;
    private GaussianDiffusion _respaced;

    public DdpmScheduler(DiffusionConfig config, TimestepSpacing? spacing = null, X0Clipping? clipping = null)
        : base(new GaussianDiffusion(config), SamplerKind.Ddpm, spacing, clipping)
    {
        _config = config;
        _respaced = new GaussianDiffusion(config, Diffusion.Schedule);
        base.UseTimesteps(Enumerable.Range(0, TrainTimesteps).ToArray());
    }

    protected override void UseTimesteps(int[] ascending)
    {
        _respaced.Dispose();
        _respaced = new GaussianDiffusion(_config, Diffusion.Schedule.Respace(ascending));
        base.UseTimesteps(ascending);
    }

    /// <summary>Dhariwal &amp; Nichol 2021, Algorithm 1 with <paramref name="meanShift"/> g: x_{t−1} = μ + Σ·g + σ z.</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null, Tensor? meanShift = null)
    {
        int index = Levels.Length - 1 - IndexOf(timestep); // the respaced diffusion's own timestep
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
        if (meanShift is not null) prev = prev + p.LogVariance.exp() * meanShift;
        if (index > 0)
        {
            prev = prev + (0.5 * p.LogVariance).exp() * Noise(sample, generator);
        }
        return new SchedulerStepOutput(prev.MoveToOuterDisposeScope(), p.PredictedX0.MoveToOuterDisposeScope());
    }

    public override void Dispose()
    {
        _respaced.Dispose();
        base.Dispose();
    }
}
