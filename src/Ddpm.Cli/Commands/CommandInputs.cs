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
        RequiredText("--checkpoint", "Checkpoint directory written by 'ddpm train' (RUN/checkpoints/step-N), a run directory (its newest checkpoint), a model under models/ or a diffusers model directory (flat, as google/ddpm-*, or a pipeline).", "DIR");

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
