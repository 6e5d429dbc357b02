using System.Runtime.CompilerServices;
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
    public static Tensor NewImageTensor(params long[] shape)
    {
        var result = empty(shape, ScalarType.Float32).DetachFromDisposeScope();
        PreferHugePages(result);
        return result;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int madvise(IntPtr address, UIntPtr length, int advice);

    private const int MadvHugePage = 14;
    private const long HugePage = 2L << 20;

    /// <summary>
    /// Fresh memory costs a page fault per 4 KiB page on first touch; in VMs that is slow (measured here: 0.6 s to
    /// fill the 188 MB Fashion-MNIST tensor, 0.12 s after this). Asking Linux for transparent huge pages on the
    /// tensor's 2 MiB-aligned interior cuts the faults 512-fold. Only a hint: any failure is ignored.
    /// </summary>
    private static unsafe void PreferHugePages(Tensor tensor)
    {
        long bytes = tensor.numel() * tensor.element_size();
        if (!OperatingSystem.IsLinux() || bytes < 2 * HugePage)
            return;
        try
        {
            // The first element's address, through a one-element view (Tensor.bytes stops at 2 GiB).
            using var flat = tensor.view(-1);
            using var first = flat.narrow(0, 0, 1);
            long start = (long)Unsafe.AsPointer(ref MemoryMarshal.GetReference(first.bytes));
            long alignedStart = (start + HugePage - 1) & ~(HugePage - 1);
            long alignedEnd = (start + bytes) & ~(HugePage - 1);
            if (alignedEnd > alignedStart)
                _ = madvise((IntPtr)alignedStart, (UIntPtr)(ulong)(alignedEnd - alignedStart), MadvHugePage);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
        }
    }

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

    /// <summary>
    /// The 8-bit levels 0..255 held in <paramref name="levels"/> (any integer or integral-valued tensor) as the same
    /// float32 values <see cref="ToUnitRange"/> writes, so that quantised samples and data set images agree bit for bit.
    /// </summary>
    public static Tensor LevelsToUnitRange(Tensor levels)
    {
        using var scope = NewDisposeScope();
        using var table = tensor(Table, device: levels.device);
        return table.index_select(0, levels.to_type(ScalarType.Int64).flatten()).view(levels.shape).MoveToOuterDisposeScope();
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
