using System.CommandLine;
using System.Globalization;
using Ddpm.Models;

namespace Ddpm.Cli.Commands;

/// <summary>
/// The U-Net's shape on top of a preset, shared by <c>ddpm train</c> and <c>ddpm model info</c>: --image-size,
/// --in-channels, --channels, --channel-mult, --res-blocks, --attention-resolutions, --dropout and --groups. Each option
/// replaces one field of the preset; the result is checked as the U-Net's constructor checks it.
/// </summary>
public sealed class NetworkShapeOptions
{
    public Option<int?> ImageSize { get; } = CommandInputs.OptionalInt("--image-size", "Image height and width (a multiple of 2^(levels-1)); data sets are resized to it.", 1, 4096, helpName: "PX");
    public Option<int?> InChannels { get; } = CommandInputs.OptionalInt("--in-channels", "Image channels: 1 (grey) or 3 (RGB).", 1, 64, helpName: "C");
    public Option<int?> Channels { get; } = CommandInputs.OptionalInt("--channels", "Base channels ch of the first level (a multiple of --groups).", 1, 4096, helpName: "CH");
    public Option<int[]?> ChannelMult { get; } = IntList("--channel-mult", "Channel multipliers per level, e.g. 1,2,2 (every level but the last halves the resolution).", allowNone: false);
    public Option<int?> ResBlocks { get; } = CommandInputs.OptionalInt("--res-blocks", "Residual blocks per level.", 1, 64, helpName: "N");
    public Option<int[]?> AttentionResolutions { get; } = IntList("--attention-resolutions", "Feature-map sizes with self-attention, e.g. 16 or 14,7, or 'none' (the middle block always has it).", allowNone: true);
    public Option<double?> Dropout { get; } = new("--dropout")
    {
        Description = "Dropout rate in the residual blocks, in [0, 1).",
        HelpName = "P",
        CustomParser = r =>
        {
            string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
            if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double p) && p >= 0 && p < 1) return p;
            r.AddError($"--dropout must be a number in [0, 1); got '{text}'");
            return null;
        },
    };
    public Option<int?> Groups { get; } = CommandInputs.OptionalInt("--groups", "GroupNorm groups (every level's channels must be a multiple).", 1, 4096, helpName: "G");

    public IEnumerable<Option> All => new Option[] { ImageSize, InChannels, Channels, ChannelMult, ResBlocks, AttentionResolutions, Dropout, Groups };

    /// <summary>True when any shape option was given.</summary>
    public bool AnyGiven(ParseResult parse) => All.Any(o => parse.GetResult(o) is { Implicit: false });

    /// <summary>The preset with the given fields replaced, validated; an impossible shape is a usage error naming the field.</summary>
    public UNetConfig Apply(UNetConfig preset, ParseResult parse)
    {
        // Array options read as empty, not null, when absent: ask whether each was given.
        T Or<T>(Option<T> option, T fallback) => parse.GetResult(option) is { Implicit: false } ? parse.GetValue(option)! : fallback;
        var config = preset with
        {
            ImageSize = Or(ImageSize, (int?)preset.ImageSize)!.Value,
            InChannels = Or(InChannels, (int?)preset.InChannels)!.Value,
            BaseChannels = Or(Channels, (int?)preset.BaseChannels)!.Value,
            ChannelMultipliers = Or(ChannelMult, preset.ChannelMultipliers)!,
            ResBlocksPerLevel = Or(ResBlocks, (int?)preset.ResBlocksPerLevel)!.Value,
            AttentionResolutions = Or(AttentionResolutions, preset.AttentionResolutions)!,
            Dropout = Or(Dropout, (double?)preset.Dropout)!.Value,
            Groups = Or(Groups, (int?)preset.Groups)!.Value,
        };
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CliUsageException($"the network shape does not work: {e.Message.Split(" (Parameter")[0]}");
        }
        return config;
    }

    /// <summary>A comma-separated list of positive integers (or 'none' for an empty list where allowed); null when not given.</summary>
    private static Option<int[]?> IntList(string name, string description, bool allowNone) =>
        new(name)
        {
            Description = description,
            HelpName = allowNone ? "N,N,...|none" : "N,N,...",
            CustomParser = r =>
            {
                string text = r.Tokens.Count == 1 ? r.Tokens[0].Value.Trim() : "";
                if (allowNone && text.Equals("none", StringComparison.OrdinalIgnoreCase)) return Array.Empty<int>();
                var parts = text.Split(',', StringSplitOptions.TrimEntries);
                var values = new List<int>();
                foreach (var part in parts)
                {
                    if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int v) || v < 1)
                    {
                        r.AddError($"{name} must be a comma-separated list of integers >= 1{(allowNone ? " or 'none'" : "")}, e.g. 1,2,2; got '{text}'");
                        return null;
                    }
                    values.Add(v);
                }
                return values.ToArray();
            },
        };
}
