using Ddpm.Schedules;

namespace Ddpm.Sampling;

/// <summary>How n inference timesteps are chosen out of T (Lin et al. 2023, Table 2; diffusers' timestep_spacing).</summary>
public enum TimestepSpacing
{
    /// <summary>round(linspace(0, T−1, n)): includes both ends.</summary>
    Linspace,
    /// <summary>0, k, 2k, ... with k = T / n (integer): DDIM's and diffusers' default; never reaches T−1.</summary>
    Leading,
    /// <summary>round(T − i·T/n) − 1: starts at T−1.</summary>
    Trailing,
    /// <summary>
    /// Uniform in log-SNR λ = log(√ᾱ/√(1 − ᾱ)) from t = T−1 to t = 0, each rounded to the nearest timestep (Lu et al.
    /// 2022 recommend it for low-resolution images).
    /// </summary>
    LogSnr,
    /// <summary>
    /// Karras et al. 2022 (Eq. 5): σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ with ρ = 7 and σ = √((1 − ᾱ)/ᾱ),
    /// from t = T−1 to t = 0, each rounded to the nearest timestep: dense steps at low noise.
    /// </summary>
    Karras,
}

public static class TimestepSelection
{
    /// <summary>The chosen timesteps in ascending order, strictly increasing, each in [0, T−1].</summary>
    public static int[] Select(int trainTimesteps, int inferenceSteps, TimestepSpacing spacing)
    {
        if (trainTimesteps < 1)
            throw new ArgumentException($"The number of training timesteps must be >= 1; got {trainTimesteps}.", nameof(trainTimesteps));
        if (inferenceSteps < 1 || inferenceSteps > trainTimesteps)
            throw new ArgumentException($"The number of inference steps must be in [1, {trainTimesteps}] (the training timesteps T); got {inferenceSteps}.", nameof(inferenceSteps));
        int n = inferenceSteps, T = trainTimesteps;
        var steps = new int[n];
        switch (spacing)
        {
            case TimestepSpacing.Linspace:
                for (int i = 0; i < n; i++)
                    steps[i] = n == 1 ? T - 1 : (int)Math.Round((double)i * (T - 1) / (n - 1), MidpointRounding.ToEven);
                break;
            case TimestepSpacing.Leading:
                int ratio = T / n;
                for (int i = 0; i < n; i++) steps[i] = i * ratio;
                break;
            case TimestepSpacing.Trailing:
                double stride = (double)T / n;
                for (int i = 0; i < n; i++) steps[n - 1 - i] = (int)Math.Round(T - i * stride, MidpointRounding.ToEven) - 1;
                break;
            case TimestepSpacing.LogSnr or TimestepSpacing.Karras:
                throw new ArgumentException($"Spacing {spacing} depends on the noise schedule: use Select(alphasCumprod, n, spacing).", nameof(spacing));
            default:
                throw new ArgumentException($"Unknown timestep spacing {spacing}.", nameof(spacing));
        }
        for (int i = 1; i < n; i++)
            if (steps[i] <= steps[i - 1])
                throw new InvalidOperationException($"Timestep selection produced a non-increasing list at {i}: {steps[i - 1]}, {steps[i]}.");
        return steps;
    }

    /// <summary>Karras et al.'s ρ.</summary>
    public const double KarrasRho = 7.0;

    /// <summary>
    /// The chosen timesteps for any spacing, ascending and strictly increasing. The schedule-dependent spacings place
    /// n noise levels σ = √((1 − ᾱ)/ᾱ) between σ(T−1) and σ(0), map each to the nearest timestep (log σ interpolated over
    /// t), and move apart any that collide at the dense end so that exactly n distinct timesteps remain.
    /// </summary>
    public static int[] Select(IReadOnlyList<double> alphasCumprod, int inferenceSteps, TimestepSpacing spacing)
    {
        ArgumentNullException.ThrowIfNull(alphasCumprod);
        int T = alphasCumprod.Count;
        if (spacing is not (TimestepSpacing.LogSnr or TimestepSpacing.Karras)) return Select(T, inferenceSteps, spacing);
        if (inferenceSteps < 1 || inferenceSteps > T)
            throw new ArgumentException($"The number of inference steps must be in [1, {T}] (the training timesteps T); got {inferenceSteps}.", nameof(inferenceSteps));
        int n = inferenceSteps;
        var logSigma = alphasCumprod.Select(NoiseLevel.LogSigma).ToArray();
        double hi = logSigma[T - 1], lo = logSigma[0];
        var targets = new double[n]; // descending log σ
        for (int i = 0; i < n; i++)
        {
            double u = n == 1 ? 0 : (double)i / (n - 1);
            targets[i] = spacing == TimestepSpacing.LogSnr
                ? hi + u * (lo - hi)
                : KarrasRho * Math.Log(Math.Pow(Math.Exp(hi), 1 / KarrasRho) + u * (Math.Pow(Math.Exp(lo), 1 / KarrasRho) - Math.Pow(Math.Exp(hi), 1 / KarrasRho)));
        }
        var steps = new int[n];
        for (int i = 0; i < n; i++)
        {
            // log σ increases with t: find the bracketing pair and interpolate the index.
            double target = targets[n - 1 - i];
            int k = Array.BinarySearch(logSigma, target);
            double index;
            if (k >= 0) index = k;
            else
            {
                int upper = ~k;
                if (upper <= 0) index = 0;
                else if (upper >= T) index = T - 1;
                else index = upper - 1 + (target - logSigma[upper - 1]) / (logSigma[upper] - logSigma[upper - 1]);
            }
            steps[i] = (int)Math.Round(index, MidpointRounding.ToEven);
        }
        for (int i = 1; i < n; i++) steps[i] = Math.Max(steps[i], steps[i - 1] + 1);
        for (int i = n - 1; i >= 0; i--) steps[i] = Math.Min(steps[i], (i == n - 1 ? T : steps[i + 1]) - 1);
        return steps;
    }
}
