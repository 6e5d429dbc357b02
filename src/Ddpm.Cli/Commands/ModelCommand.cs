using System.CommandLine;
using System.Globalization;
using Ddpm.Generation;
using Ddpm.IO;
using Ddpm.Models;
using Ddpm.Training;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm model info</c>: a U-Net preset's configuration, parameter count and analytic forward FLOPs.</summary>
public static class ModelCommand
{
    /// <summary>A required <c>--preset</c> naming a U-Net preset, checked while parsing.</summary>
    public static Option<string> PresetOption(string description = "U-Net preset", bool required = true) =>
        new("--preset")
        {
            Description = $"{description}: {string.Join(", ", UNetPresets.All.Keys)}.",
            HelpName = "NAME",
            Required = required,
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
        var preset = PresetOption("U-Net preset (or --checkpoint)", required: false);
        var checkpoint = CliOptions.Text("--checkpoint", "A model or checkpoint directory, ours or diffusers' (instead of --preset).", "DIR");
        var shape = new NetworkShapeOptions();
        var info = new Command("info", "Print a U-Net's configuration (a preset with the shape options of 'ddpm train' applied, or a checkpoint's), its parameter count and its forward FLOPs per image.") { preset, checkpoint };
        foreach (var option in shape.All) info.Add(option);
        info.SetAction(parse =>
        {
            string? name = parse.GetValue(preset), directory = parse.GetValue(checkpoint);
            if ((name is null) == (directory is null))
                throw new CliUsageException("give one of --preset NAME and --checkpoint DIR.");
            UNetConfig config;
            if (directory is not null)
            {
                config = Checkpoint.ReadConfig(directory).Model.UNet
                         ?? throw new CliUsageException($"'{directory}' holds a 2-D toy model, not a U-Net: 'model info' describes U-Nets.");
                if (shape.AnyGiven(parse))
                    throw new CliUsageException("the shape options apply to --preset; a checkpoint's shape is fixed.");
            }
            else
            {
                config = shape.Apply(UNetPresets.Get(name!), parse);
            }
            long parameters, flops;
            using (var network = new UNet(config))
            {
                parameters = network.ParameterCount;
                flops = network.ForwardFlops;
            }
            string heading = directory is null ? $"preset: {name}" : $"checkpoint: {directory}";
            foreach (var line in Describe(heading, config, parameters, flops)) context.Out.WriteLine(line);
            context.Out.Flush();
            return ExitCodes.Success;
        });

        var command = new Command("model", "Inspect model presets and checkpoints, and run a network on given tensors.") { info, CreateRun(context) };
        CliErrors.RequireSubcommand(command, $"{Program.Name} model");
        return command;
    }

    /// <summary><c>ddpm model run</c>: the network's output for the tensors of a safetensors file (<see cref="NetworkRun"/>).</summary>
    private static Command CreateRun(CliContext context)
    {
        var checkpoint = CommandInputs.CheckpointOption();
        var inputs = CliOptions.Text("--inputs", "A safetensors file with x [B, C, H, W], t [B] (integers) and, for a class-conditional model, class_labels [B].", "FILE");
        inputs.Required = true;
        var output = CliOptions.Text("--out", "The safetensors file to write, with the network's output as tensor 'out' (float32).", "FILE");
        output.Required = true;
        var run = new Command("run", "Run a model's network once on given tensors and write its output: how to compare a converted model with a Python reference.") { checkpoint, inputs, output };
        run.SetAction(parse =>
        {
            string outPath = parse.GetValue(output)!;
            SampleFiles.CheckFile(outPath, "out");
            var tensors = TensorFiles.ReadAll(parse.GetValue(inputs)!, "inputs");
            try
            {
                using var model = DiffusionModel.Load(parse.GetValue(checkpoint)!);
                using var result = NetworkRun.Run(model, tensors);
                SafeTensors.Save(outPath, new Dictionary<string, TorchSharp.torch.Tensor> { [NetworkRun.OutputName] = result });
                context.Out.WriteLine($"wrote {outPath}: out [{string.Join(", ", result.shape)}] from {model.Directory}");
            }
            finally
            {
                foreach (var t in tensors.Values) t.Dispose();
            }
            context.Out.Flush();
            return ExitCodes.Success;
        });
        return run;
    }

    /// <summary>The lines <c>ddpm model info</c> prints: "key: value", machine-readable numbers without separators.</summary>
    public static IEnumerable<string> Describe(string heading, UNetConfig config, long parameters, long forwardFlops)
    {
        var sizes = Enumerable.Range(0, config.Levels).Select(i => config.ImageSize >> i);
        var levelChannels = config.ChannelMultipliers.Select(m => m * config.BaseChannels);
        string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        yield return heading;
        yield return $"image: {config.InChannels}x{config.ImageSize}x{config.ImageSize}";
        yield return $"base_channels: {config.BaseChannels}";
        yield return $"channel_multipliers: {string.Join(",", config.ChannelMultipliers)}";
        yield return $"levels: {string.Join(", ", sizes.Zip(levelChannels, (s, c) => $"{s}x{s}x{c}"))}";
        yield return $"res_blocks_per_level: {config.ResBlocksPerLevel}";
        yield return $"attention_resolutions: {(config.AttentionResolutions.Length == 0 ? "none" : string.Join(",", config.AttentionResolutions))} (and the middle block)";
        yield return Invariant($"dropout: {config.Dropout}");
        yield return $"groups: {config.Groups}";
        yield return Invariant($"norm_eps: {config.NormEpsilon}");
        yield return $"downsample_padding: {EnumNames.Kebab(config.DownsamplePadding)}";
        yield return $"attention_heads: {(config.AttentionHeadChannels == 0 ? "1" : $"{config.AttentionHeadChannels} channels each")}";
        yield return Invariant($"timestep_embedding: {(config.FlipSinToCos ? "cos, sin" : "sin, cos")}, frequency shift {config.FrequencyShift}");
        yield return $"time_embedding_channels: {config.TimeEmbeddingChannels}";
        yield return $"num_classes: {config.NumClasses}";
        yield return $"parameters: {parameters}";
        yield return $"forward_flops_per_image: {forwardFlops}";
        yield return Invariant($"forward_gflops_per_image: {forwardFlops / 1e9:F3} GFLOP (2 per multiply-add; a training step costs ~3x: {3 * forwardFlops / 1e9:F3} GFLOP per image)");
    }
}
