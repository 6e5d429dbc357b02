using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Diffusion;

/// <summary>Closed forms for Gaussians used by the variational bound.</summary>
public static class GaussianMath
{
    /// <summary>Bins of 8-bit data scaled to [−1, 1] have half-width 1/255.</summary>
    public const double HalfBinWidth = 1.0 / 255.0;

    /// <summary>
    /// KL(N(μ1, e^{logσ1²}) ‖ N(μ2, e^{logσ2²})) elementwise:
    /// ½ (−1 + logσ2² − logσ1² + e^{logσ1² − logσ2²} + (μ1 − μ2)² e^{−logσ2²}).
    /// </summary>
    public static Tensor NormalKl(Tensor mean1, Tensor logVar1, Tensor mean2, Tensor logVar2) =>
        0.5 * (-1.0 + logVar2 - logVar1 + (logVar1 - logVar2).exp() + (mean1 - mean2).square() * (-logVar2).exp());

    /// <summary>
    /// log p(x) under the discretised Gaussian decoder of §3.3 (Eq. 13): the Gaussian mass of the bin
    /// [x − 1/255, x + 1/255], with the outermost bins extended to ∓∞. <paramref name="x"/> holds data in [−1, 1]
    /// on the 256-level grid.
    /// </summary>
    public static Tensor DiscretizedGaussianLogLikelihood(Tensor x, Tensor means, Tensor logScales)
    {
        if (!x.shape.SequenceEqual(means.shape) || !x.shape.SequenceEqual(logScales.shape))
            throw new ArgumentException($"x, means and logScales must have the same shape; got [{string.Join(",", x.shape)}], [{string.Join(",", means.shape)}], [{string.Join(",", logScales.shape)}].", nameof(means));
        using var scope = NewDisposeScope();
        var centered = x - means;
        var invStd = (-logScales).exp();
        var plusIn = invStd * (centered + HalfBinWidth);
        var minIn = invStd * (centered - HalfBinWidth);
        // Φ(plus) and 1 − Φ(min) = Φ(−min) evaluated without cancellation.
        var logCdfPlus = special.ndtr(plusIn).clamp_min(1e-12).log();
        var logOneMinusCdfMin = special.ndtr(-minIn).clamp_min(1e-12).log();
        var cdfDelta = special.ndtr(plusIn) - special.ndtr(minIn);
        var logDelta = cdfDelta.clamp_min(1e-12).log();
        var result = where(x < -0.999, logCdfPlus, where(x > 0.999, logOneMinusCdfMin, logDelta));
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Mean over every dimension but the first (the batch).</summary>
    public static Tensor MeanFlat(Tensor x) =>
        x.dim() <= 1 ? x.alias() : x.flatten(1).mean(new long[] { 1 });

    /// <summary>
    /// Dynamic thresholding (Saharia et al. 2022): per sample, s = max(1, quantile(|x0|, ratio)) capped at
    /// <paramref name="maxValue"/>; x0 is clamped to [−s, s] and divided by s.
    /// </summary>
    public static Tensor DynamicThreshold(Tensor x0, double ratio = 0.995, double maxValue = 1.0)
    {
        if (!(ratio > 0 && ratio <= 1)) throw new ArgumentException($"The thresholding ratio must be in (0, 1]; got {ratio}.", nameof(ratio));
        if (!(maxValue >= 1)) throw new ArgumentException($"The thresholding maximum must be >= 1; got {maxValue}.", nameof(maxValue));
        using var scope = NewDisposeScope();
        // The ratio-quantile of |x̂_0| per sample, linearly interpolated between order statistics at position
        // ratio·(n − 1) (torch.quantile's rule, which diffusers' thresholding uses).
        var sorted = x0.abs().flatten(1).sort(1).Values;
        long n = sorted.shape[1];
        double position = ratio * (n - 1);
        long lower = (long)Math.Floor(position), upper = Math.Min(lower + 1, n - 1);
        var low = sorted.select(1, lower);
        var s = (low + (position - lower) * (sorted.select(1, upper) - low)).clamp(1.0, maxValue);
        var shape = new long[x0.dim()];
        Array.Fill(shape, 1L);
        shape[0] = x0.shape[0];
        s = s.reshape(shape);
        return (x0.maximum(-s).minimum(s) / s).MoveToOuterDisposeScope();
    }
}
