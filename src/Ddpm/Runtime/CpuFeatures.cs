namespace Ddpm.Runtime;

/// <summary>What the CPU can do, read once from the kernel's description of it.</summary>
public static class CpuFeatures
{
    private static readonly Lazy<IReadOnlySet<string>> Flags = new(ReadFlags);

    /// <summary>
    /// True when the CPU has native bfloat16 arithmetic (the avx512_bf16 or amx_bf16 flag), the instructions oneDNN's
    /// bfloat16 convolutions use. Without them libtorch emulates bfloat16 and it is slower than float32. Set the
    /// environment variable DDPM_NO_BF16=1 to pretend the CPU lacks them.
    /// </summary>
    public static bool HasBFloat16 =>
        Environment.GetEnvironmentVariable("DDPM_NO_BF16") is not ("1" or "true") &&
        (Flags.Value.Contains("avx512_bf16") || Flags.Value.Contains("amx_bf16"));

    /// <summary>True when the CPU has AMX tile instructions for bfloat16 (Intel Sapphire Rapids and later).</summary>
    public static bool HasAmxBFloat16 => Flags.Value.Contains("amx_bf16");

    /// <summary>The CPU's model name, or "unknown".</summary>
    public static string ModelName { get; } = ReadModelName();

    private static IReadOnlySet<string> ReadFlags()
    {
        try
        {
            if (!File.Exists("/proc/cpuinfo")) return new HashSet<string>();
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
            if (line is null) return new HashSet<string>();
            return line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        }
        catch (IOException)
        {
            return new HashSet<string>();
        }
    }

    private static string ReadModelName()
    {
        try
        {
            if (!File.Exists("/proc/cpuinfo")) return "unknown";
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown" : line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
