using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using Ddpm.Data;
using Ddpm.Models;
using Ddpm.Sampling;
using Ddpm.Runtime;
using Ddpm.Training;
using SkiaSharp;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary>A network loaded from a checkpoint for inference.</summary>
public sealed record LoadedModel(nn.Module Network, CheckpointConfig Config, string Directory, bool Ema) : IDisposable
{
    public IDenoisingNetwork Denoising => (IDenoisingNetwork)Network;
    public ModelConfig Model => Config.Model;
    public int Timesteps => Config.Diffusion.Schedule.Timesteps;

    public void Dispose() => Network.Dispose();
}

/// <summary>Options and inputs shared by the commands that read checkpoints and images (sample, forward, interpolate).</summary>
public static class CommandInputs
{
    /// <summary>An optional integer in [<paramref name="min"/>, <paramref name="max"/>]; null when not given.</summary>
    public static Option<int?> OptionalInt(string name, string description, int min, int max = int.MaxValue, string? helpName = null) =>
        new(name)
        {
            Description = description,
            HelpName = helpName ?? "N",
            CustomParser = r =>
            {
                string range = max == int.MaxValue ? $"an integer >= {min}" : $"an integer from {min} to {max}";
                string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value))
                {
                    r.AddError($"{name} must be {range}; got '{text}'");
                    return null;
                }
                if (value < min || value > max)
                {
                    r.AddError($"{name} must be {range}; got {value}");
                    return null;
                }
                return value;
            },
        };

    /// <summary>A required text option.</summary>
    public static Option<string> RequiredText(string name, string description, string helpName) =>
        new(name)
        {
            Description = description,
            HelpName = helpName,
            Required = true,
            CustomParser = r =>
            {
                string value = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (string.IsNullOrWhiteSpace(value)) r.AddError($"{name} needs a value ({helpName})");
                return value;
            },
        };

    /// <summary>The checkpoint option: a checkpoint directory, or a run directory (its newest checkpoint).</summary>
    public static Option<string> CheckpointOption() =>
        RequiredText("--checkpoint", "Checkpoint directory written by 'ddpm train' (RUN/checkpoints/step-N), or a run directory (its newest checkpoint).", "DIR");

    /// <summary>A required output PNG file path: not a directory, ending in .png. Its directory is created when it is written.</summary>
    public static Option<string> OutputPng(string name = "--out", string description = "Output PNG file (its directory is created if missing).") =>
        new(name)
        {
            Description = description,
            Required = true,
            HelpName = "FILE.png",
            CustomParser = r =>
            {
                string value = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (string.IsNullOrWhiteSpace(value))
                {
                    r.AddError($"{name} needs a file path, e.g. {name} out/image.png");
                    return "";
                }
                if (value.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
                {
                    r.AddError($"{name} '{value}' contains characters that are not allowed in a path");
                    return "";
                }
                if (Directory.Exists(value) || value.EndsWith('/') || value.EndsWith(Path.DirectorySeparatorChar))
                {
                    r.AddError($"{name} '{value}' is a directory; give a file path such as {Path.Combine(value, "image.png")}");
                    return "";
                }
                if (!value.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
                {
                    r.AddError($"{name} '{value}' must name a .png file (the output is a PNG image)");
                    return "";
                }
                return value;
            },
        };

    /// <summary>
    /// Loads the network of a checkpoint directory (or of a run directory's newest checkpoint): the EMA weights unless
    /// <paramref name="rawWeights"/>. Every problem is a <see cref="CheckpointException"/> whose message names the fix.
    /// </summary>
    public static LoadedModel LoadCheckpoint(string path, bool rawWeights, ComputeSettings? compute = null)
    {
        string dir = path;
        if (Directory.Exists(path) && !File.Exists(Path.Combine(path, Checkpoint.ConfigFile)) && Directory.Exists(Path.Combine(path, "checkpoints")))
            dir = Checkpoint.Resolve(path);
        if (rawWeights && Directory.Exists(dir) && File.Exists(Path.Combine(dir, Checkpoint.ConfigFile)) && !File.Exists(Path.Combine(dir, Checkpoint.ModelFile)))
            throw new CheckpointException($"'{dir}' has no {Checkpoint.ModelFile} (a shipped model keeps only the EMA weights): drop --raw-weights.");
        var (network, config) = Checkpoint.LoadNetwork(dir, useEma: !rawWeights, compute);
        bool ema = !rawWeights && File.Exists(Path.Combine(dir, Checkpoint.EmaFile));
        return new LoadedModel(network, config, dir, ema);
    }

    /// <summary>
    /// One image for a model, as [1, C, H, W] float32 in [−1, 1] with the model's channels and size. <paramref name="value"/>
    /// is a PNG or JPEG file (converted to grey for 1-channel models, centre-cropped and resized), or DATASET:INDEX
    /// (the test split of an image data set; <c>dataset:INDEX</c> means the checkpoint's own data set).
    /// </summary>
    public static Tensor LoadImage(string option, string value, LoadedModel model, string? dataDir)
    {
        var unet = model.Model.UNet ?? throw new CliUsageException($"'{model.Directory}' holds a 2-D toy model; {option} needs an image model.");
        if (File.Exists(value)) return LoadImageFile(option, value, unet.InChannels, unet.ImageSize);
        var match = Regex.Match(value, @"^(?<name>[A-Za-z0-9][A-Za-z0-9_.\-]*(?::[^:]+)?):(?<index>-?\d+)$");
        if (!match.Success)
        {
            if (Directory.Exists(value))
                throw new CliUsageException($"{option} '{value}' is a directory; give a PNG or JPEG file, or DATASET:INDEX (e.g. fashion-mnist:12).");
            throw new CliUsageException($"{option} '{value}': no such file, and not of the form DATASET:INDEX; give a PNG or JPEG file, or e.g. fashion-mnist:12 or dataset:12 (the checkpoint's data set).");
        }
        string name = match.Groups["name"].Value;
        if (!int.TryParse(match.Groups["index"].Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int index) || index < 0)
            throw new CliUsageException($"{option} '{value}': the index must be an integer >= 0.");
        if (name.Equals("dataset", StringComparison.OrdinalIgnoreCase))
            name = model.Config.Dataset ?? throw new CliUsageException($"{option} '{value}': the checkpoint does not name its data set; write NAME:{index}, e.g. fashion-mnist:{index}.");
        if (ToyDatasets.IsToy(name))
            throw new CliUsageException($"{option} '{value}': '{name}' is a 2-D toy point set, not an image data set.");
        bool folder = name.StartsWith(DatasetLoader.FolderPrefix, StringComparison.OrdinalIgnoreCase);
        using var dataset = DatasetLoader.Load(name, folder ? null : dataDir, folder ? "train" : "test", folder ? unet.ImageSize : null);
        if (index >= dataset.Count)
            throw new CliUsageException($"{option} '{value}': index {index} is out of range; the {(folder ? "" : "test split of ")}'{dataset.Name}' has {dataset.Count} images (0 to {dataset.Count - 1}).");
        using var scope = NewDisposeScope();
        var image = dataset.Images.narrow(0, index, 1);
        return Conform(image, unet.InChannels, unet.ImageSize).MoveToOuterDisposeScope();
    }

    /// <summary>Converts [N, C, H, W] images in [−1, 1] to <paramref name="channels"/> (1 or 3) and <paramref name="size"/>².</summary>
    public static Tensor Conform(Tensor images, int channels, int size)
    {
        using var scope = NewDisposeScope();
        var x = images;
        if (x.shape[1] == 3 && channels == 1)
            x = (0.299 * x.narrow(1, 0, 1) + 0.587 * x.narrow(1, 1, 1) + 0.114 * x.narrow(1, 2, 1));
        else if (x.shape[1] == 1 && channels == 3)
            x = x.expand(-1, 3, -1, -1);
        else if (x.shape[1] != channels)
            throw new CliUsageException($"cannot convert {x.shape[1]}-channel images to the model's {channels} channels.");
        if (x.shape[2] != size || x.shape[3] != size)
        {
            // Centre square, then area averaging when shrinking and bilinear when enlarging.
            long h = x.shape[2], w = x.shape[3], side = Math.Min(h, w);
            x = x.narrow(2, (h - side) / 2, side).narrow(3, (w - side) / 2, side);
            x = side > size
                ? nn.functional.interpolate(x, new long[] { size, size }, mode: InterpolationMode.Area)
                : nn.functional.interpolate(x, new long[] { size, size }, mode: InterpolationMode.Bilinear, align_corners: false);
        }
        return x.clamp(-1.0, 1.0).contiguous().MoveToOuterDisposeScope();
    }

    private static Tensor LoadImageFile(string option, string path, int channels, int size)
    {
        using (var codec = SKCodec.Create(path, out var result))
        {
            if (codec is null)
                throw new CliUsageException($"{option} '{path}' is not a readable image ({result}); give a PNG or JPEG file, or DATASET:INDEX (e.g. fashion-mnist:12).");
            if (codec.EncodedFormat is not (SKEncodedImageFormat.Png or SKEncodedImageFormat.Jpeg))
                throw new CliUsageException($"{option} '{path}' is a {codec.EncodedFormat.ToString().ToUpperInvariant()} image; give a PNG or JPEG file (convert it first), or DATASET:INDEX.");
        }
        byte[] chw;
        try
        {
            chw = ImageFolder.LoadImage(path, size);
        }
        catch (DatasetException e)
        {
            throw new CliUsageException($"{option}: {e.Message.Replace("remove or replace the file", "give a complete PNG or JPEG file, or DATASET:INDEX")}");
        }
        int plane = size * size;
        var values = new float[channels * plane];
        for (int i = 0; i < plane; i++)
        {
            if (channels == 1)
            {
                double grey = 0.299 * chw[i] + 0.587 * chw[plane + i] + 0.114 * chw[2 * plane + i];
                values[i] = (float)(Math.Round(grey) / 127.5 - 1.0);
            }
            else
            {
                for (int c = 0; c < 3; c++) values[c * plane + i] = (float)(chw[c * plane + i] / 127.5 - 1.0);
            }
        }
        if (channels is not (1 or 3))
            throw new CliUsageException($"the model has {channels} channels; image files can be used only with 1- or 3-channel models.");
        return tensor(values, new long[] { 1, channels, size, size }, ScalarType.Float32);
    }

    /// <summary>Runs <paramref name="work"/> under one Spectre progress bar of <paramref name="total"/> steps.</summary>
    public static void WithProgress(CliContext context, string description, long total, Action<ProgressTask> work)
    {
        context.Console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(description), maxValue: Math.Max(1, total));
                work(task);
                task.Value = task.MaxValue;
                task.StopTask();
            });
    }
}

/// <summary>Reports a sampler's steps as <paramref name="offset"/> + step of one Spectre task spanning several runs.</summary>
public sealed class OffsetProgress(ProgressTask task, long offset) : IProgress<SamplingProgress>
{
    public void Report(SamplingProgress value) => task.Value = offset + value.Step;
}
