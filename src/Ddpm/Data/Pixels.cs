using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>8-bit pixels to the model's [−1, 1] range, written straight into tensor memory.</summary>
internal static class Pixels
{
    // A table instead of tensor arithmetic: p/127.5 − 1 computed in double is exact at both ends (−1 and 1), which a
    // float32 multiply by 1/127.5 need not be, and one managed pass costs less than the tensor ops' temporaries.
    private static readonly float[] Table = Enumerable.Range(0, 256).Select(p => (float)(p / 127.5 - 1.0)).ToArray();

    // Tensor.bytes is a Span (at most 2 GiB): large tensors are written through narrowed views.
    private const int ChunkElements = 1 << 24;

    /// <summary>A detached float32 tensor of <paramref name="shape"/>, contiguous and uninitialised.</summary>
    public static Tensor NewImageTensor(params long[] shape) =>
        empty(shape, ScalarType.Float32).DetachFromDisposeScope();

    /// <summary>Writes p/127.5 − 1 for each byte of <paramref name="source"/> to elements [offset, offset + length) of <paramref name="destination"/> (contiguous float32).</summary>
    public static void ToUnitRange(ReadOnlySpan<byte> source, Tensor destination, long offset)
    {
        if (destination.dtype != ScalarType.Float32 || !destination.is_contiguous())
            throw new ArgumentException("The destination must be a contiguous float32 tensor.", nameof(destination));
        using var flat = destination.view(-1);
        for (int start = 0; start < source.Length; start += ChunkElements)
        {
            int length = Math.Min(ChunkElements, source.Length - start);
            using var part = flat.narrow(0, offset + start, length);
            var target = MemoryMarshal.Cast<byte, float>(part.bytes);
            var src = source.Slice(start, length);
            var table = Table;
            for (int i = 0; i < target.Length; i++)
                target[i] = table[src[i]];
        }
    }

    /// <summary>Labels as a detached int64 tensor.</summary>
    public static Tensor LabelTensor(ReadOnlySpan<byte> labels)
    {
        var values = new long[labels.Length];
        for (int i = 0; i < values.Length; i++)
            values[i] = labels[i];
        return tensor(values, dtype: ScalarType.Int64).DetachFromDisposeScope();
    }
}
