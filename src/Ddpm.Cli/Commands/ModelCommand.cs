using System.CommandLine;
using System.Globalization;
using Ddpm.Models;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm model info</c>: a U-Net preset's configuration, parameter count and analytic forward FLOPs.</summary>
public static class ModelCommand
{
    /// <summary>A required <c>--preset</c> naming a U-Net preset, checked while parsing.</summary>
    public static Option<string> PresetOption(string description = "U-Net preset") =>
        new("--preset")
        {
            Description = $"{description}: {string.Join(", ", UNetPresets.All.Keys)}.",
            HelpName = "NAME",
            Required = true,
            CustomParser = r =>
            {
                string value = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (!UNetPresets.All.ContainsKey(value))
                {
                    r.AddError($"unknown preset '{value}' for --preset. Known presets: {string.Join(", ", UNetPresets.All.Keys)}");
                    return "";
                }
                return value;
            },
        };

    public static Command Create(CliContext context)
    {
        var preset = PresetOption();
        var shape = new NetworkShapeOptions();
        var info = new Command("info", "Print a U-Net preset's configuration (with the shape options of 'ddpm train' applied), its parameter count and its forward FLOPs per image.") { preset };
        foreach (var option in shape.All) info.Add(option);
        info.SetAction(parse =>
        {
            string name = parse.GetValue(preset)!;
            var config = shape.Apply(UNetPresets.Get(name), parse);
            long parameters, flops;
            using (var network = new UNet(config))
            {
                parameters = network.ParameterCount;
                flops = network.ForwardFlops;
            }
            foreach (var line in Describe(name, config, parameters, flops)) context.Out.WriteLine(line);
            context.Out.Flush();
            return ExitCodes.Success;
        });

        var command = new Command("model", "Inspect model presets.") { info };
        CliErrors.RequireSubcommand(command, $"{Program.Name} model");
        return command;
    }

    /// <summary>The lines <c>ddpm model info</c> prints: "key: value", machine-readable numbers without separators.</summary>
    public static IEnumerable<string> Describe(string name, UNetConfig config, long parameters, long forwardFlops)
    {
        var sizes = Enumerable.Range(0, config.Levels).Select(i => config.ImageSize >> i);
        var levelChannels = config.ChannelMultipliers.Select(m => m * config.BaseChannels);
        string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        yield return $"preset: {name}";
        yield return $"image: {config.InChannels}x{config.ImageSize}x{config.ImageSize}";
        yield return $"base_channels: {config.BaseChannels}";
        yield return $"channel_multipliers: {string.Join(",", config.ChannelMultipliers)}";
        yield return $"levels: {string.Join(", ", sizes.Zip(levelChannels, (s, c) => $"{s}x{s}x{c}"))}";
        yield return $"res_blocks_per_level: {config.ResBlocksPerLevel}";
        yield return $"attention_resolutions: {(config.AttentionResolutions.Length == 0 ? "none" : string.Join(",", config.AttentionResolutions))} (and the middle block)";
        yield return Invariant($"dropout: {config.Dropout}");
        yield return $"groups: {config.Groups}";
        yield return $"time_embedding_channels: {config.TimeEmbeddingChannels}";
        yield return $"num_classes: {config.NumClasses}";
        yield return $"parameters: {parameters}";
        yield return $"forward_flops_per_image: {forwardFlops}";
        yield return Invariant($"forward_gflops_per_image: {forwardFlops / 1e9:F3} GFLOP (2 per multiply-add; a training step costs ~3x: {3 * forwardFlops / 1e9:F3} GFLOP per image)");
    }
}
