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
            default:
                throw new ArgumentException($"Unknown timestep spacing {spacing}.", nameof(spacing));
        }
        for (int i = 1; i < n; i++)
            if (steps[i] <= steps[i - 1])
                throw new InvalidOperationException($"Timestep selection produced a non-increasing list at {i}: {steps[i - 1]}, {steps[i]}.");
        return steps;
    }
}
