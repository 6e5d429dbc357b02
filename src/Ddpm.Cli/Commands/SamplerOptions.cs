using System.CommandLine;
using Ddpm.Diffusion;
using Ddpm.Generation;
using Ddpm.Runtime;
using Ddpm.Sampling;

namespace Ddpm.Cli.Commands;

/// <summary>
/// The sampler options shared by <c>ddpm sample</c> and <c>ddpm eval fid</c>: --sampler, --steps, --eta, --spacing and
/// --variance, checked together against a checkpoint.
/// </summary>
public sealed class SamplerOptions
{
    public Option<SamplerKind> Sampler { get; }
    public Option<int?> Steps { get; }
    public Option<double> Eta { get; }
    public Option<TimestepSpacing?> Spacing { get; }
    public Option<VarianceType?> Variance { get; }
    public Option<PrecisionChoice> Precision { get; }
    public Option<string?> ClipSample { get; }
    public Option<string> Device { get; }

    public SamplerOptions(SamplerKind defaultSampler)
    {
        Sampler = CliOptions.Choice("--sampler", "Sampler: ddpm (ancestral), ddim, dpm++2m (DPM-Solver++ 2M), euler / heun (probability-flow ODE), sde (reverse SDE, Euler–Maruyama).", defaultSampler);
        Steps = CommandInputs.OptionalInt("--steps", "Sampling steps, 1 to the checkpoint's T (default: 100 for ddpm, T for sde, 50 for ddim and euler, 20 for dpm++2m, 25 for heun).", 1, helpName: "S");
        Eta = CliOptions.Double("--eta", "DDIM's η: 0 is deterministic, 1 is DDPM-like (ddim only).", 0.0, 0.0, 1.0, helpName: "E");
        Spacing = OptionalChoice<TimestepSpacing>("--spacing", "Timestep selection (default: linspace for ddpm and sde, leading for ddim, log-snr for dpm++2m, karras for euler and heun).");
        Variance = VarianceOption("DDPM's reverse variance σ_t²: fixed-small (β̃_t) or fixed-large (β_t) (default: the checkpoint's; ddpm only).");
        Precision = CliOptions.Precision();
        Device = CliOptions.Device();
        ClipSample = new Option<string?>("--clip-sample")
        {
            Description = "Clip the predicted x̂₀ to [−1, 1] at every step: true or false (default: the checkpoint's scheduler config, else true for images).",
            HelpName = "true|false",
        };
    }

    /// <summary>--variance fixed-small|fixed-large, null when not given.</summary>
    public static Option<VarianceType?> VarianceOption(string description) =>
        new("--variance")
        {
            Description = description,
            HelpName = "fixed-small|fixed-large",
            CustomParser = r =>
            {
                string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (text == CliOptions.Kebab(VarianceType.FixedSmall)) return VarianceType.FixedSmall;
                if (text == CliOptions.Kebab(VarianceType.FixedLarge)) return VarianceType.FixedLarge;
                r.AddError($"--variance must be fixed-small or fixed-large; got '{text}'");
                return null;
            },
        };

    public IEnumerable<Option> All => new Option[] { Sampler, Steps, Eta, Spacing, Variance, Precision, ClipSample, Device };

    /// <summary>The values given on the command line.</summary>
    public sealed record Values(SamplerKind Sampler, int? Steps, double Eta, bool EtaGiven, TimestepSpacing? Spacing, VarianceType? Variance,
        PrecisionChoice Precision = PrecisionChoice.Fp32, bool? Clip = null, string Device = ComputeDevice.Cpu);

    public Values Read(ParseResult parse) =>
        new(parse.GetValue(Sampler), parse.GetValue(Steps), parse.GetValue(Eta), parse.GetResult(Eta) is { Implicit: false }, parse.GetValue(Spacing), parse.GetValue(Variance),
            parse.GetValue(Precision), ParseClip(parse.GetValue(ClipSample)), parse.GetValue(Device) ?? ComputeDevice.Cpu);

    /// <summary>--clip-sample's value: null when not given, else true or false (a bool option would be a flag that swallows no value).</summary>
    private static bool? ParseClip(string? text) =>
        text is null ? null
        : bool.TryParse(text, out bool value) ? value
        : throw new CliUsageException($"--clip-sample must be true or false; got '{text}'.");

    /// <summary>How and where the network computes for these values (a usage error for bf16 on a CPU without it, or a device this build cannot use).</summary>
    public static ComputeSettings Compute(Values v) => CliOptions.Compute(v.Precision, device: v.Device);

    /// <summary>The library's sampler choice for these values (eta only when given, so that it is checked against the sampler).</summary>
    public static SamplerChoice Choice(Values v)
    {
        ArgumentNullException.ThrowIfNull(v);
        return new SamplerChoice(v.Sampler, v.Steps, v.EtaGiven ? v.Eta : null, v.Spacing, v.Variance, v.Clip);
    }

    /// <summary>An optional enum option (kebab-case names); null when not given.</summary>
    public static Option<T?> OptionalChoice<T>(string name, string description) where T : struct, Enum =>
        new(name)
        {
            Description = $"{description} One of: {string.Join(", ", Enum.GetValues<T>().Select(CliOptions.Kebab))}.",
            HelpName = string.Join("|", Enum.GetValues<T>().Select(CliOptions.Kebab)),
            CustomParser = r =>
            {
                string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                foreach (var value in Enum.GetValues<T>())
                    if (string.Equals(CliOptions.Kebab(value), text, StringComparison.OrdinalIgnoreCase)) return value;
                r.AddError($"{name} must be one of {string.Join(", ", Enum.GetValues<T>().Select(CliOptions.Kebab))}; got '{text}'");
                return null;
            },
        };
}
