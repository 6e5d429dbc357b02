using Ddpm.IO;
using Ddpm.Diffusion;

namespace Ddpm.Sampling;

/// <summary>The reverse-process samplers the command line offers.</summary>
public enum SamplerKind
{
    /// <summary>DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), respaced to the requested number of steps.</summary>
    Ddpm,
    /// <summary>DDIM (Song et al. 2020) with a given η.</summary>
    Ddim,
    /// <summary>DPM-Solver++ 2M (Lu et al. 2022): second-order multistep, one network call per step.</summary>
    [System.ComponentModel.Description("dpm++2m")]
    DpmSolver2M,
    /// <summary>The probability-flow ODE with Euler steps (= DDIM η = 0 on the same timesteps).</summary>
    Euler,
    /// <summary>The probability-flow ODE with Heun steps (Karras et al. 2022): 2·steps − 1 network calls.</summary>
    Heun,
    /// <summary>The reverse-time VP-SDE with Euler–Maruyama steps (Song et al. 2021).</summary>
    Sde,
}

/// <summary>
/// Which sampler to build: <paramref name="Variance"/> replaces the checkpoint's fixed reverse variance for DDPM
/// (fixed-small β̃_t or fixed-large β_t, the two choices of the paper's §3.2); null keeps the checkpoint's.
/// <paramref name="Spacing"/> chooses the timesteps; null takes each sampler's default (<see cref="SamplerFactory.DefaultSpacing"/>).
/// </summary>
public sealed record SamplerSettings(SamplerKind Kind, int Steps, double Eta = 0.0, bool Clip = true, VarianceType? Variance = null, TimestepSpacing? Spacing = null);

/// <summary>Builds a scheduler from a checkpoint's diffusion configuration and <see cref="SamplerSettings"/>.</summary>
public static class SamplerFactory
{
    public static IScheduler Create(DiffusionConfig config, SamplerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(settings);
        var diffusion = WithVariance(config, settings.Variance);
        var spacing = settings.Spacing ?? DefaultSpacing(settings.Kind);
        var clipping = settings.Clip ? new X0Clipping() : X0Clipping.None;
        IScheduler scheduler = settings.Kind switch
        {
            SamplerKind.Ddpm => new DdpmScheduler(diffusion, spacing, clipping),
            SamplerKind.Ddim => new DdimScheduler(diffusion, settings.Eta, spacing, clipping),
            SamplerKind.DpmSolver2M => new DpmSolverMultistepScheduler(diffusion, 2, spacing, clipping),
            SamplerKind.Euler => new ProbabilityFlowScheduler(diffusion, OdeMethod.Euler, spacing, clipping),
            SamplerKind.Heun => new ProbabilityFlowScheduler(diffusion, OdeMethod.Heun, spacing, clipping),
            SamplerKind.Sde => new ReverseSdeScheduler(diffusion, spacing, clipping),
            _ => throw new ArgumentOutOfRangeException(nameof(settings), settings.Kind, "Unknown sampler."),
        };
        scheduler.SetTimesteps(settings.Steps);
        return scheduler;
    }

    /// <summary>
    /// Each sampler's default timesteps: DDPM all-inclusive linspace (with every step it is all T); DDIM leading, as in
    /// the DDIM paper and diffusers; DPM-Solver++ log-SNR uniform (Lu et al.'s advice for low-resolution images); the
    /// ODE solvers Karras et al.'s σ spacing; the SDE linspace.
    /// </summary>
    public static TimestepSpacing DefaultSpacing(SamplerKind kind) => kind switch
    {
        SamplerKind.Ddpm => TimestepSpacing.Linspace,
        SamplerKind.Ddim => TimestepSpacing.Leading,
        SamplerKind.DpmSolver2M => TimestepSpacing.LogSnr,
        SamplerKind.Euler or SamplerKind.Heun => TimestepSpacing.Karras,
        _ => TimestepSpacing.Linspace,
    };

    /// <summary>
    /// Steps when none are asked for: 100 for DDPM (the lowest FID at up to 100 network calls for the shipped model,
    /// docs/results.md; all T with --steps T), all T for the SDE, 50 for DDIM and Euler, 20 for DPM-Solver++, 25 for
    /// Heun (49 calls); never more than T.
    /// </summary>
    public static int DefaultSteps(SamplerKind kind, int trainTimesteps) => Math.Min(trainTimesteps, kind switch
    {
        SamplerKind.Ddpm => 100,
        SamplerKind.Sde => trainTimesteps,
        SamplerKind.DpmSolver2M => 20,
        SamplerKind.Heun => 25,
        _ => 50,
    });

    /// <summary>A name for reports: "DDPM (fixed-large)", "DDIM (eta 0)", "DPM-Solver++ 2M (log-snr)", ...</summary>
    public static string Describe(SamplerSettings settings, DiffusionConfig config)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(config);
        string spacing = EnumNames.Kebab(settings.Spacing ?? DefaultSpacing(settings.Kind));
        return settings.Kind switch
        {
            SamplerKind.Ddpm => $"DDPM ({EnumNames.Kebab(WithVariance(config, settings.Variance).Variance)})",
            SamplerKind.Ddim => $"DDIM (eta {settings.Eta.ToString(System.Globalization.CultureInfo.InvariantCulture)})",
            SamplerKind.DpmSolver2M => $"DPM-Solver++ 2M ({spacing})",
            SamplerKind.Euler => $"Euler ODE ({spacing})",
            SamplerKind.Heun => $"Heun ODE ({spacing})",
            _ => $"reverse SDE ({spacing})",
        };
    }

    /// <summary>Network calls for <paramref name="steps"/> steps of <paramref name="kind"/> (Heun: 2·steps − 1).</summary>
    public static int NetworkCalls(SamplerKind kind, int steps) => kind == SamplerKind.Heun ? 2 * steps - 1 : steps;

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

/// <summary>
/// Sampling settings a checkpoint suggests (a diffusers scheduler_config.json has them): null fields leave the
/// sampler's own default. The spacing applies to DDPM and DDIM, the samplers such a config describes.
/// </summary>
public sealed record SamplingDefaults(TimestepSpacing? Spacing = null, bool? Clip = null);
