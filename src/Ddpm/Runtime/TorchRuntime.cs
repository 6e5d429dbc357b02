using System.Runtime.InteropServices;

namespace Ddpm.Runtime;

/// <summary>
/// Process-wide memory settings for libtorch on Linux/glibc, applied once at start-up, before the first tensor is
/// allocated (docs/performance.md, "Memory allocation").
/// </summary>
/// <remarks>
/// A training step allocates every activation afresh (autograd keeps them until the backward pass). With glibc's
/// defaults, blocks above the (dynamic) mmap threshold are mmapped and unmapped on every step, and memory at the top of
/// the heap is trimmed back to the kernel, so the next step touches new pages again; on this VM each first-touched
/// 4 KiB page costs about 6–20 µs. The settings below keep freed memory in the process and let libtorch back large
/// tensors with 2 MiB transparent huge pages:
/// <list type="bullet">
/// <item><c>THP_MEM_ALLOC_ENABLE=1</c>: c10's CPU allocator aligns blocks of 2 MiB and more to 2 MiB and
/// madvise(MADV_HUGEPAGE)s them. c10 reads it once, at its first allocation, with getenv, so it is set here with
/// libc's setenv (.NET's Environment.SetEnvironmentVariable does not change the native environment).</item>
/// <item><c>mallopt(M_MMAP_THRESHOLD, 32 MiB)</c> and <c>mallopt(M_TRIM_THRESHOLD, 2 GiB)</c>: the same as the
/// environment variables MALLOC_MMAP_THRESHOLD_=33554432 / MALLOC_TRIM_THRESHOLD_, which glibc reads only when the
/// process starts, so they cannot be set from inside it.</item>
/// </list>
/// Each setting is skipped when the user already set the corresponding environment variable. The cost is resident
/// memory: the process keeps its peak working set instead of returning it between steps.
/// </remarks>
public static class TorchRuntime
{
    /// <summary>Set to 1 to leave glibc and libtorch's allocation settings at their defaults.</summary>
    public const string DisableVariable = "DDPM_DEFAULT_MALLOC";

    private const int M_TRIM_THRESHOLD = -1;
    private const int M_MMAP_THRESHOLD = -3;
    private const int MmapThreshold = 32 * 1024 * 1024;   // glibc's maximum (HEAP_MAX_SIZE / 2 on 64-bit)
    private static int _initialized;

    /// <summary>What <see cref="Initialize"/> changed (empty when nothing, e.g. not Linux, disabled, or already applied).</summary>
    public static IReadOnlyList<string> Applied { get; private set; } = Array.Empty<string>();

    /// <summary>
    /// Applies the settings once per process; call it first thing in Main, before any TorchSharp call. Returns the
    /// settings applied. Never throws: on a platform without glibc it does nothing.
    /// </summary>
    public static IReadOnlyList<string> Initialize()
    {
        if (Interlocked.Exchange(ref _initialized, 1) == 1) return Applied;
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(DisableVariable) is "1" or "true") return Applied;
        var applied = new List<string>();
        try
        {
            if (Environment.GetEnvironmentVariable("THP_MEM_ALLOC_ENABLE") is null && setenv("THP_MEM_ALLOC_ENABLE", "1", 0) == 0)
                applied.Add("THP_MEM_ALLOC_ENABLE=1");
            if (Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is null && mallopt(M_MMAP_THRESHOLD, MmapThreshold) == 1)
                applied.Add($"M_MMAP_THRESHOLD={MmapThreshold}");
            if (Environment.GetEnvironmentVariable("MALLOC_TRIM_THRESHOLD_") is null && mallopt(M_TRIM_THRESHOLD, int.MaxValue) == 1)
                applied.Add($"M_TRIM_THRESHOLD={int.MaxValue}");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc (e.g. musl without mallopt): keep the defaults.
        }
        Applied = applied;
        return Applied;
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int setenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);
}
