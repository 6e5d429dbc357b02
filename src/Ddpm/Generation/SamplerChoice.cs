using Ddpm.Diffusion;
using Ddpm.Sampling;

namespace Ddpm.Generation;

/// <summary>
/// A user's choice of sampler, with nulls for "the default" (<see cref="SamplerFactory.DefaultSteps"/>, the
/// checkpoint's suggested spacing for DDPM and DDIM or else <see cref="SamplerFactory.DefaultSpacing"/>, the checkpoint's
/// variance, the checkpoint's clipping of x̂₀ or else clipping for images). <see cref="Resolve"/> checks it against a
/// model's diffusion.
/// </summary>
public sealed record SamplerChoice(SamplerKind Sampler = SamplerKind.Ddim, int? Steps = null, double? Eta = null, TimestepSpacing? Spacing = null, VarianceType? Variance = null,
    bool? Clip = null)
{
    /// <summary>
    /// The settings for a model with this diffusion and these suggested <paramref name="defaults"/>; <paramref name="clip"/>
    /// is the clipping when neither the choice nor the defaults say. Every problem is an <see cref="InvalidRequestException"/>.
    /// </summary>
    public SamplerSettings Resolve(DiffusionConfig diffusion, bool clip = true, SamplingDefaults? defaults = null)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        if (Eta is not null && Sampler != SamplerKind.Ddim)
            throw new InvalidRequestException("eta", "--eta applies to --sampler ddim only; add --sampler ddim or drop --eta.");
        double eta = Eta ?? 0.0;
        if (!(eta >= 0 && eta <= 1)) throw new InvalidRequestException("eta", $"--eta must be a number in [0, 1]; got {eta}.");
        if (Variance is not null && Sampler != SamplerKind.Ddpm)
            throw new InvalidRequestException("variance", "--variance applies to --sampler ddpm only (the other samplers do not draw with the reverse variance).");
        int T = diffusion.Schedule.Timesteps;
        int steps = Steps ?? SamplerFactory.DefaultSteps(Sampler, T);
        if (steps < 1 || steps > T)
            throw new InvalidRequestException("steps", $"--steps must be from 1 to {T} (the checkpoint's diffusion steps T); got {steps}.");
        try
        {
            SamplerFactory.WithVariance(diffusion, Variance);
        }
        catch (ArgumentException e)
        {
            throw InvalidRequestException.FromArgument("variance", e);
        }
        // A diffusers scheduler config's spacing describes its DDPM and DDIM sampling; the other samplers keep their own.
        var spacing = Spacing ?? (Sampler is SamplerKind.Ddpm or SamplerKind.Ddim ? defaults?.Spacing : null);
        return new SamplerSettings(Sampler, steps, eta, Clip ?? defaults?.Clip ?? clip, Variance, spacing);
    }
}
