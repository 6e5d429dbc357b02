using Ddpm.Diffusion;

namespace Ddpm.Sampling;

/// <summary>The reverse-process samplers the command line offers.</summary>
public enum SamplerKind
{
    /// <summary>DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), respaced to the requested number of steps.</summary>
    Ddpm,
    /// <summary>DDIM (Song et al. 2020) with a given η.</summary>
    Ddim,
}

/// <summary>
/// Which sampler to build: <paramref name="Variance"/> replaces the checkpoint's fixed reverse variance for DDPM
/// (fixed-small β̃_t or fixed-large β_t, the two choices of the paper's §3.2); null keeps the checkpoint's.
/// </summary>
public sealed record SamplerSettings(SamplerKind Kind, int Steps, double Eta = 0.0, bool Clip = true, VarianceType? Variance = null);

/// <summary>Builds a scheduler from a checkpoint's diffusion configuration and <see cref="SamplerSettings"/>.</summary>
public static class SamplerFactory
{
    public static IScheduler Create(DiffusionConfig config, SamplerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(settings);
        var diffusion = WithVariance(config, settings.Variance);
        IScheduler scheduler = settings.Kind switch
        {
            SamplerKind.Ddpm => new DdpmScheduler(diffusion, clipDenoised: settings.Clip),
            SamplerKind.Ddim => new DdimScheduler(diffusion, settings.Eta, clipSample: settings.Clip),
            _ => throw new ArgumentOutOfRangeException(nameof(settings), settings.Kind, "Unknown sampler."),
        };
        scheduler.SetTimesteps(settings.Steps);
        return scheduler;
    }

    /// <summary>
    /// <paramref name="config"/> with its reverse variance replaced by <paramref name="variance"/>. Only the two fixed
    /// variances are interchangeable: a network that learned its variance outputs it, and one that did not cannot.
    /// </summary>
    public static DiffusionConfig WithVariance(DiffusionConfig config, VarianceType? variance)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (variance is not VarianceType v || v == config.Variance) return config;
        if (config.LearnsVariance)
            throw new ArgumentException($"the checkpoint learned its reverse variance ({config.Variance}); the variance cannot be replaced: drop --variance.", nameof(variance));
        if (v is not (VarianceType.FixedSmall or VarianceType.FixedLarge))
            throw new ArgumentException($"the checkpoint's network does not output a variance, so it cannot use {v}: choose fixed-small or fixed-large.", nameof(variance));
        return config with { Variance = v };
    }
}
