using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// The reverse-time VP-SDE (Song et al. 2021, Eq. 6 with the VP-SDE of Eq. 11) with Euler–Maruyama steps. In the time
/// τ = −log ᾱ (τ' = β) the forward SDE is dx = −½x dτ + dw, so the reverse SDE is dx = [−½x − ∇log p_τ(x)] dτ + dw̄,
/// with the score ∇log p = −ε̂/√(1 − ᾱ). One step from t to the next timestep t′ covers Δτ = log(ᾱ_{t′}/ᾱ_t), the
/// exact integral of β over it:  x′ = x + (x/2 + ∇log p)·Δτ + √Δτ·z.  After the last timestep the sample is denoised
/// to x̂_0 = E[x_0 | x_t] (Song et al.'s final "denoise" step) instead of a step into τ = 0, where the score diverges.
/// One network call per step; first order in the weak sense, so it wants many steps.
/// </summary>
public sealed class ReverseSdeScheduler : SchedulerBase
{
    public ReverseSdeScheduler(DiffusionConfig config, TimestepSpacing? spacing = null, X0Clipping? clipping = null)
        : base(new GaussianDiffusion(config), SamplerKind.Sde, spacing, clipping)
    {
        UseDefaultSteps();
    }

    /// <summary>With <paramref name="meanShift"/> g the drift gains Δτ·g: the score of p(x)·p(y|x)^s (the noise variance is Δτ).</summary>
    public override SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null, Tensor? meanShift = null)
    {
        int i = IndexOf(timestep);
        using var scope = NewDisposeScope();
        var (x0, epsilon) = Predict(modelOutput, timestep, sample);
        Tensor next;
        if (i + 1 == Levels.Length)
        {
            if (meanShift is not null) throw NoMeanShift();
            next = x0.alias();
        }
        else
        {
            double abar = AlphasCumprod[timestep], abarNext = AlphaBarAfter(i);
            double dTau = Math.Log(abarNext / abar);
            var score = epsilon / -Math.Sqrt(1 - abar);
            var noise = Noise(sample, generator);
            next = sample + dTau * (0.5 * sample + score) + Math.Sqrt(dTau) * noise;
            if (meanShift is not null) next = next + dTau * meanShift;
        }
        return new SchedulerStepOutput(next.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }
}
