namespace Ddpm.Schedules;

/// <summary>The β-schedule families.</summary>
public enum ScheduleKind
{
    /// <summary>Ho et al. 2020: β linear from 1e-4 to 0.02 over T = 1000.</summary>
    Linear,
    /// <summary>Nichol &amp; Dhariwal 2021, Eq. 17: ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2), β clipped at 0.999.</summary>
    Cosine,
    /// <summary>Jabri et al. 2022 (as in denoising-diffusion-pytorch): ᾱ follows a scaled sigmoid of t.</summary>
    Sigmoid,
}

/// <summary>How a schedule is built; saved with a model so that sampling uses the schedule it was trained with.</summary>
public sealed record ScheduleConfig(
    ScheduleKind Kind = ScheduleKind.Linear,
    int Timesteps = 1000,
    double BetaStart = 1e-4,
    double BetaEnd = 0.02,
    double CosineOffset = 0.008,
    double SigmoidStart = -3.0,
    double SigmoidEnd = 3.0,
    double SigmoidTau = 1.0,
    double MaxBeta = 0.999)
{
    public NoiseSchedule Build() => NoiseSchedule.Create(this);
}

/// <summary>
/// A variance schedule β_1..β_T and every coefficient derived from it, computed once in float64.
/// Arrays are indexed 0..T−1: index i holds the paper's t = i + 1.
/// </summary>
public sealed class NoiseSchedule
{
    public int Timesteps { get; }
    /// <summary>β_t.</summary>
    public double[] Betas { get; }
    /// <summary>α_t = 1 − β_t.</summary>
    public double[] Alphas { get; }
    /// <summary>ᾱ_t = ∏_{s ≤ t} α_s (Eq. 4).</summary>
    public double[] AlphasCumprod { get; }
    /// <summary>ᾱ_{t−1}, with ᾱ_0 = 1.</summary>
    public double[] AlphasCumprodPrev { get; }
    /// <summary>ᾱ_{t+1}, with ᾱ_{T+1} = 0 (used by DDIM inversion).</summary>
    public double[] AlphasCumprodNext { get; }
    public double[] SqrtAlphasCumprod { get; }
    public double[] SqrtOneMinusAlphasCumprod { get; }
    public double[] LogOneMinusAlphasCumprod { get; }
    /// <summary>1/√ᾱ_t.</summary>
    public double[] SqrtRecipAlphasCumprod { get; }
    /// <summary>√(1/ᾱ_t − 1).</summary>
    public double[] SqrtRecipM1AlphasCumprod { get; }
    /// <summary>β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t (Eq. 7); zero at t = 1.</summary>
    public double[] PosteriorVariance { get; }
    /// <summary>log β̃_t with the t = 1 entry replaced by β̃_2, since β̃_1 = 0.</summary>
    public double[] PosteriorLogVarianceClipped { get; }
    /// <summary>Coefficient of x_0 in μ̃_t (Eq. 7): √ᾱ_{t−1} β_t / (1 − ᾱ_t).</summary>
    public double[] PosteriorMeanCoefX0 { get; }
    /// <summary>Coefficient of x_t in μ̃_t (Eq. 7): √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t).</summary>
    public double[] PosteriorMeanCoefXt { get; }

    /// <summary>Builds the schedule from explicit betas, each in (0, 1).</summary>
    public NoiseSchedule(IReadOnlyList<double> betas)
    {
        ArgumentNullException.ThrowIfNull(betas);
        if (betas.Count < 1)
            throw new ArgumentException($"A schedule needs T >= 1 timesteps; got {betas.Count}.", nameof(betas));
        for (int i = 0; i < betas.Count; i++)
            if (!(betas[i] > 0.0 && betas[i] < 1.0))
                throw new ArgumentException($"beta[{i}] = {betas[i]} is outside the allowed range (0, 1).", nameof(betas));

        int n = betas.Count;
        Timesteps = n;
        Betas = betas.ToArray();
        Alphas = new double[n];
        AlphasCumprod = new double[n];
        AlphasCumprodPrev = new double[n];
        AlphasCumprodNext = new double[n];
        SqrtAlphasCumprod = new double[n];
        SqrtOneMinusAlphasCumprod = new double[n];
        LogOneMinusAlphasCumprod = new double[n];
        SqrtRecipAlphasCumprod = new double[n];
        SqrtRecipM1AlphasCumprod = new double[n];
        PosteriorVariance = new double[n];
        PosteriorLogVarianceClipped = new double[n];
        PosteriorMeanCoefX0 = new double[n];
        PosteriorMeanCoefXt = new double[n];

        double cumprod = 1.0;
        for (int i = 0; i < n; i++)
        {
            Alphas[i] = 1.0 - Betas[i];
            AlphasCumprodPrev[i] = cumprod;
            cumprod *= Alphas[i];
            AlphasCumprod[i] = cumprod;
        }
        for (int i = 0; i < n; i++)
        {
            double abar = AlphasCumprod[i], abarPrev = AlphasCumprodPrev[i];
            AlphasCumprodNext[i] = i + 1 < n ? AlphasCumprod[i + 1] : 0.0;
            SqrtAlphasCumprod[i] = Math.Sqrt(abar);
            SqrtOneMinusAlphasCumprod[i] = Math.Sqrt(1.0 - abar);
            LogOneMinusAlphasCumprod[i] = Math.Log(1.0 - abar);
            SqrtRecipAlphasCumprod[i] = Math.Sqrt(1.0 / abar);
            SqrtRecipM1AlphasCumprod[i] = Math.Sqrt(1.0 / abar - 1.0);
            PosteriorVariance[i] = Betas[i] * (1.0 - abarPrev) / (1.0 - abar);
            PosteriorMeanCoefX0[i] = Betas[i] * Math.Sqrt(abarPrev) / (1.0 - abar);
            PosteriorMeanCoefXt[i] = (1.0 - abarPrev) * Math.Sqrt(Alphas[i]) / (1.0 - abar);
        }
        for (int i = 0; i < n; i++)
        {
            // β̃_1 = 0: use β̃_2 there so the log stays finite (as the paper's code does). With T = 1 fall back to β_1.
            double clipped = i == 0 ? (n > 1 ? PosteriorVariance[1] : Betas[0]) : PosteriorVariance[i];
            PosteriorLogVarianceClipped[i] = Math.Log(clipped);
        }
    }

    /// <summary>Builds the schedule a configuration describes.</summary>
    public static NoiseSchedule Create(ScheduleConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Timesteps < 1)
            throw new ArgumentException($"Timesteps must be >= 1; got {config.Timesteps}.", nameof(config));
        if (!(config.MaxBeta > 0 && config.MaxBeta < 1))
            throw new ArgumentException($"MaxBeta must be in (0, 1); got {config.MaxBeta}.", nameof(config));
        return config.Kind switch
        {
            ScheduleKind.Linear => Linear(config.Timesteps, config.BetaStart, config.BetaEnd),
            ScheduleKind.Cosine => Cosine(config.Timesteps, config.CosineOffset, config.MaxBeta),
            ScheduleKind.Sigmoid => Sigmoid(config.Timesteps, config.SigmoidStart, config.SigmoidEnd, config.SigmoidTau, config.MaxBeta),
            _ => throw new ArgumentException($"Unknown schedule kind {config.Kind}.", nameof(config)),
        };
    }

    /// <summary>The paper's schedule: β linearly spaced from <paramref name="betaStart"/> to <paramref name="betaEnd"/> (§4: 1e-4 to 0.02, T = 1000).</summary>
    public static NoiseSchedule Linear(int timesteps = 1000, double betaStart = 1e-4, double betaEnd = 0.02)
    {
        if (timesteps < 1) throw new ArgumentException($"Timesteps must be >= 1; got {timesteps}.", nameof(timesteps));
        if (!(betaStart > 0 && betaStart < 1)) throw new ArgumentException($"betaStart = {betaStart} is outside the allowed range (0, 1).", nameof(betaStart));
        if (!(betaEnd > 0 && betaEnd < 1)) throw new ArgumentException($"betaEnd = {betaEnd} is outside the allowed range (0, 1).", nameof(betaEnd));
        var betas = new double[timesteps];
        for (int i = 0; i < timesteps; i++)
            betas[i] = timesteps == 1 ? betaStart : betaStart + (betaEnd - betaStart) * i / (timesteps - 1);
        return new NoiseSchedule(betas);
    }

    /// <summary>Nichol &amp; Dhariwal 2021 Eq. 17: β_t = min(1 − ᾱ(t)/ᾱ(t−1), maxBeta).</summary>
    public static NoiseSchedule Cosine(int timesteps = 1000, double offset = 0.008, double maxBeta = 0.999)
    {
        if (timesteps < 1) throw new ArgumentException($"Timesteps must be >= 1; got {timesteps}.", nameof(timesteps));
        if (!(offset >= 0)) throw new ArgumentException($"The cosine offset s must be >= 0; got {offset}.", nameof(offset));
        double AlphaBar(double u) => Math.Pow(Math.Cos((u + offset) / (1 + offset) * Math.PI / 2), 2);
        return FromAlphaBar(timesteps, AlphaBar, maxBeta);
    }

    /// <summary>The sigmoid schedule of denoising-diffusion-pytorch: ᾱ(u) ∝ σ(end/τ) − σ((u(end − start) + start)/τ).</summary>
    public static NoiseSchedule Sigmoid(int timesteps = 1000, double start = -3, double end = 3, double tau = 1, double maxBeta = 0.999)
    {
        if (timesteps < 1) throw new ArgumentException($"Timesteps must be >= 1; got {timesteps}.", nameof(timesteps));
        if (!(end > start)) throw new ArgumentException($"The sigmoid range needs end > start; got [{start}, {end}].", nameof(end));
        if (!(tau > 0)) throw new ArgumentException($"The sigmoid temperature tau must be > 0; got {tau}.", nameof(tau));
        static double Sig(double z) => 1.0 / (1.0 + Math.Exp(-z));
        double vStart = Sig(start / tau), vEnd = Sig(end / tau);
        double Raw(double u) => (vEnd - Sig((u * (end - start) + start) / tau)) / (vEnd - vStart);
        double raw0 = Raw(0);
        return FromAlphaBar(timesteps, u => Raw(u) / raw0, maxBeta);
    }

    /// <summary>β_t = min(1 − ᾱ(t/T)/ᾱ((t−1)/T), maxBeta) for a continuous ᾱ on [0, 1].</summary>
    public static NoiseSchedule FromAlphaBar(int timesteps, Func<double, double> alphaBar, double maxBeta = 0.999)
    {
        var betas = new double[timesteps];
        for (int i = 0; i < timesteps; i++)
        {
            double t1 = (double)i / timesteps, t2 = (double)(i + 1) / timesteps;
            betas[i] = Math.Clamp(1.0 - alphaBar(t2) / alphaBar(t1), 1e-12, maxBeta);
        }
        return new NoiseSchedule(betas);
    }

    /// <summary>
    /// The schedule restricted to the kept timesteps (ascending indices into this schedule): the kept ᾱ stay the
    /// same and the betas are recomputed as β'_i = 1 − ᾱ_{k_i}/ᾱ_{k_{i−1}} (improved-diffusion's respacing).
    /// </summary>
    public NoiseSchedule Respace(IReadOnlyList<int> keptTimesteps)
    {
        ArgumentNullException.ThrowIfNull(keptTimesteps);
        if (keptTimesteps.Count < 1)
            throw new ArgumentException("Respacing needs at least one timestep.", nameof(keptTimesteps));
        var betas = new double[keptTimesteps.Count];
        double lastAlphaCumprod = 1.0;
        int previous = -1;
        for (int i = 0; i < keptTimesteps.Count; i++)
        {
            int k = keptTimesteps[i];
            if (k <= previous || k >= Timesteps)
                throw new ArgumentException($"Kept timesteps must be strictly increasing within [0, {Timesteps - 1}]; got {k} after {previous}.", nameof(keptTimesteps));
            // Consecutive timesteps keep their β exactly (the formula gives it up to rounding), so keeping all is the identity.
            betas[i] = k == previous + 1 ? Betas[k] : 1.0 - AlphasCumprod[k] / lastAlphaCumprod;
            lastAlphaCumprod = AlphasCumprod[k];
            previous = k;
        }
        return new NoiseSchedule(betas);
    }
}
