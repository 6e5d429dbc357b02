using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>What the samplers do to the predicted x̂_0 of images: clamp to [−1, 1], dynamic thresholding, or nothing.</summary>
public sealed record X0Clipping(bool Clip = true, bool Thresholding = false, double ThresholdingRatio = 0.995, double ThresholdingMaxValue = 1.0)
{
    public static X0Clipping None { get; } = new(Clip: false);

    public void Validate()
    {
        if (Thresholding && !(ThresholdingRatio > 0 && ThresholdingRatio <= 1))
            throw new ArgumentException($"thresholdingRatio must be in (0, 1]; got {ThresholdingRatio}.", nameof(ThresholdingRatio));
        if (Thresholding && !(ThresholdingMaxValue >= 1))
            throw new ArgumentException($"thresholdingMaxValue must be >= 1; got {ThresholdingMaxValue}.", nameof(ThresholdingMaxValue));
    }
}

/// <summary>The model output at one timestep as x̂_0 and ε̂, with x̂_0 clipped or thresholded and ε̂ made consistent with it.</summary>
internal static class X0Prediction
{
    public static (Tensor X0, Tensor Epsilon) Predict(GaussianDiffusion diffusion, X0Clipping clipping, Tensor modelOutput, int timestep, Tensor sample)
    {
        var t = full(new long[] { sample.shape[0] }, timestep, dtype: ScalarType.Int64, device: sample.device);
        var (x0, epsilon) = diffusion.PredictX0AndEpsilon(modelOutput, sample, t);
        if (clipping.Thresholding || clipping.Clip)
        {
            x0 = clipping.Thresholding ? GaussianMath.DynamicThreshold(x0, clipping.ThresholdingRatio, clipping.ThresholdingMaxValue) : x0.clamp(-1.0, 1.0);
            epsilon = diffusion.PredictEpsilonFromX0(sample, t, x0);
        }
        return (x0, epsilon);
    }
}
