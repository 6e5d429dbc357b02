using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>The Transformer sinusoidal embedding of integer timesteps used by the DDPM networks (Ho et al. 2020, App. B).</summary>
public static class TimestepEmbedding
{
    /// <summary>
    /// emb[i] = sin(t · 10000^{−i/(h−1)}) for i &lt; h and cos for the second half, h = dim/2 (the paper's code);
    /// shape [B, dim] in <paramref name="dtype"/>. An odd dim gets a zero last column.
    /// </summary>
    public static Tensor Sinusoidal(Tensor timesteps, long dim, ScalarType dtype = ScalarType.Float32)
    {
        if (dim < 2) throw new ArgumentException($"The embedding dimension must be >= 2; got {dim}.", nameof(dim));
        using var scope = NewDisposeScope();
        long half = dim / 2;
        double scale = Math.Log(10000.0) / Math.Max(1, half - 1);
        var frequencies = exp(arange(half, dtype: ScalarType.Float64, device: timesteps.device) * -scale);
        var args = timesteps.to_type(ScalarType.Float64).unsqueeze(1) * frequencies.unsqueeze(0);
        var embedding = cat(new[] { args.sin(), args.cos() }, 1);
        if (dim % 2 == 1) embedding = nn.functional.pad(embedding, new long[] { 0, 1 });
        return embedding.to_type(dtype).MoveToOuterDisposeScope();
    }
}
