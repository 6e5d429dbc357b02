using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>The Transformer sinusoidal embedding of integer timesteps used by the DDPM networks (Ho et al. 2020, App. B).</summary>
public static class TimestepEmbedding
{
    /// <summary>
    /// emb[i] = sin(t · 10000^{−i/(h−s)}) for i &lt; h and cos for the second half, h = dim/2 and the frequency shift
    /// s = 1 (the paper's code); <paramref name="flipSinToCos"/> puts the cosines first (diffusers' flip_sin_to_cos).
    /// Shape [B, dim] in <paramref name="dtype"/>. An odd dim gets a zero last column.
    /// </summary>
    public static Tensor Sinusoidal(Tensor timesteps, long dim, ScalarType dtype = ScalarType.Float32,
        bool flipSinToCos = false, double frequencyShift = 1)
    {
        if (dim < 2) throw new ArgumentException($"The embedding dimension must be >= 2; got {dim}.", nameof(dim));
        long half = dim / 2;
        if (half > 1 && !(half - frequencyShift > 0))
            throw new ArgumentException($"The frequency shift must be below half the embedding dimension ({half}); got {frequencyShift}.", nameof(frequencyShift));
        using var scope = NewDisposeScope();
        // With one frequency it is 10000^0 = 1 whatever the denominator.
        double scale = half > 1 ? Math.Log(10000.0) / (half - frequencyShift) : 0.0;
        var frequencies = exp(arange(half, dtype: ScalarType.Float64, device: timesteps.device) * -scale);
        var args = timesteps.to_type(ScalarType.Float64).unsqueeze(1) * frequencies.unsqueeze(0);
        var embedding = flipSinToCos ? cat(new[] { args.cos(), args.sin() }, 1) : cat(new[] { args.sin(), args.cos() }, 1);
        if (dim % 2 == 1) embedding = nn.functional.pad(embedding, new long[] { 0, 1 });
        return embedding.to_type(dtype).MoveToOuterDisposeScope();
    }
}
