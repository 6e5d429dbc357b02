using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Ddpm.Runtime;

namespace Ddpm.Cli;

/// <summary>
/// Factories for validated options. Every value is checked while parsing, so an invalid command line is rejected
/// before any work starts or any file is written; the messages name the option, the allowed range and the value.
/// </summary>
public static class CliOptions
{
    /// <summary>An integer option in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static Option<int> Int(string name, string description, int defaultValue, int min, int max = int.MaxValue, string? rangeNote = null, string? helpName = null) =>
        new(name)
        {
            Description = description,
            HelpName = helpName,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r => (int)ParseInteger(r, name, min, max, rangeNote),
        };

    /// <summary>A 64-bit integer option in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static Option<long> Long(string name, string description, long defaultValue, long min, long max = long.MaxValue, string? rangeNote = null, string? helpName = null) =>
        new(name)
        {
            Description = description,
            HelpName = helpName,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r => ParseInteger(r, name, min, max, rangeNote),
        };

    /// <summary>The random seed: a non-negative integer.</summary>
    public static Option<long> Seed(long defaultValue = 0) =>
        Long("--seed", "Random seed (a non-negative integer); the same seed gives the same output.", defaultValue, 0, helpName: "SEED");

    /// <summary>A required output directory. It may exist (files in it are replaced) but must not be a file.</summary>
    public static Option<string> OutputDirectory(string name = "--out", string description = "Output directory (created if missing).") =>
        new(name)
        {
            Description = description,
            Required = true,
            HelpName = "DIR",
            CustomParser = r =>
            {
                string value = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (string.IsNullOrWhiteSpace(value))
                {
                    r.AddError($"{name} needs a directory path, e.g. {name} out/demo");
                    return "";
                }
                if (value.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
                {
                    r.AddError($"{name} '{value}' contains characters that are not allowed in a path");
                    return "";
                }
                if (File.Exists(value))
                {
                    r.AddError($"{name} '{value}' is an existing file; give a directory path");
                    return "";
                }
                return value;
            },
        };

    /// <summary>A number option in [<paramref name="min"/>, <paramref name="max"/>] (bounds inclusive unless stated).</summary>
    public static Option<double> Double(string name, string description, double defaultValue, double min, double max, bool minExclusive = false, bool maxExclusive = false, string? helpName = null) =>
        new(name)
        {
            Description = description,
            HelpName = helpName ?? "X",
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r =>
            {
                string range = $"a number in {(minExclusive ? "(" : "[")}{min.ToString(CultureInfo.InvariantCulture)}, {(double.IsPositiveInfinity(max) ? "inf" : max.ToString(CultureInfo.InvariantCulture))}{(maxExclusive ? ")" : "]")}";
                if (r.Tokens.Count != 1) { r.AddError($"{name} needs one value, {range}"); return default; }
                string text = r.Tokens[0].Value;
                if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
                {
                    r.AddError($"{name} must be {range}; got '{text}'");
                    return default;
                }
                bool ok = (minExclusive ? value > min : value >= min) && (maxExclusive ? value < max : value <= max);
                if (!ok) { r.AddError($"{name} must be {range}; got {text}"); return default; }
                return value;
            },
        };

    /// <summary>An enum option written in kebab-case (fixed-small, loss-aware, ...).</summary>
    public static Option<T> Choice<T>(string name, string description, T defaultValue) where T : struct, Enum =>
        new(name)
        {
            Description = $"{description} One of: {string.Join(", ", Enum.GetValues<T>().Select(Kebab))}.",
            HelpName = string.Join("|", Enum.GetValues<T>().Select(Kebab)),
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r =>
            {
                string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                foreach (var value in Enum.GetValues<T>())
                    if (string.Equals(Kebab(value), text, StringComparison.OrdinalIgnoreCase)) return value;
                r.AddError($"{name} must be one of {string.Join(", ", Enum.GetValues<T>().Select(Kebab))}; got '{text}'");
                return default;
            },
        };

    /// <summary>FixedSmall → fixed-small, X0 → x0; a [Description] on the member overrides it (DpmSolver2M → dpm++2m).</summary>
    public static string Kebab<T>(T value) where T : struct, Enum => Ddpm.IO.EnumNames.Kebab(value);

    /// <summary>--precision auto|fp32|bf16: how a U-Net computes (auto: bf16 where the CPU has native bfloat16).</summary>
    public static Option<PrecisionChoice> Precision() =>
        Choice("--precision", "Network arithmetic: bf16 (float32 weights, bfloat16 convolutions) or fp32; auto picks bf16 where the CPU has AVX-512 BF16 or AMX.", PrecisionChoice.Auto);

    /// <summary>--device cpu|cuda|cuda:N: where the network and its tensors live.</summary>
    public static Option<string> Device() => new("--device")
    {
        Description = "Where the network runs: cpu, cuda or cuda:N. CUDA needs a build against the libtorch-cuda package (-p:TorchBackend=cuda), which is untested; this build is CPU-only.",
        HelpName = "cpu|cuda|cuda:N",
        DefaultValueFactory = _ => ComputeDevice.Cpu,
    };

    /// <summary>The canonical name of a --device value this build can use; anything else is a usage error.</summary>
    public static string ValidDevice(string? device)
    {
        try
        {
            return ComputeDevice.Validate(device ?? ComputeDevice.Cpu);
        }
        catch (ArgumentException e)
        {
            throw new CliUsageException(e.Message.Split(" (Parameter")[0]);
        }
    }

    /// <summary>The compute settings for a choice on this machine; bf16 on a CPU without it, or a device this build cannot use, is a usage error.</summary>
    public static ComputeSettings Compute(PrecisionChoice precision, bool channelsLast = false, string device = ComputeDevice.Cpu)
    {
        try
        {
            return ComputeSettings.Resolve(precision, channelsLast, device: device);
        }
        catch (ArgumentException e)
        {
            throw new CliUsageException(e.Message.Split(" (Parameter")[0]);
        }
    }

    /// <summary>An optional text option.</summary>
    public static Option<string?> Text(string name, string description, string? helpName = null, string? defaultValue = null) =>
        new(name) { Description = description, HelpName = helpName, DefaultValueFactory = _ => defaultValue };

    private static long ParseInteger(ArgumentResult r, string name, long min, long max, string? rangeNote)
    {
        string range = max == long.MaxValue || max == int.MaxValue ? $"an integer >= {min}" : $"an integer from {min} to {max}";
        if (rangeNote is not null) range += $" ({rangeNote})";
        if (r.Tokens.Count != 1)
        {
            r.AddError($"{name} needs one value, {range}");
            return default;
        }
        string text = r.Tokens[0].Value;
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
        {
            r.AddError($"{name} must be {range}; got '{text}'");
            return default;
        }
        if (value < min || value > max)
        {
            r.AddError($"{name} must be {range}; got {value}");
            return default;
        }
        return value;
    }
}
