using System.CommandLine;
using System.Text.Json;
using Ddpm.Generation;
using Ddpm.Imaging;
using Ddpm.IO;
using Ddpm.Training;
using SkiaSharp;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm plot loss</c> and <c>ddpm export</c>: turning a training run into a figure and a shippable model.</summary>
public static class ToolsCommands
{
    public static Command CreatePlot(CliContext context)
    {
        var log = CliOptions.Text("--log", "A run's log.jsonl (or the run directory).", "FILE");
        log.Required = true;
        var output = new Option<string>("--out") { Description = "The PNG to write.", Required = true, HelpName = "FILE" };
        var smooth = CliOptions.Int("--smooth", "Moving-average window in log lines.", 20, 1);
        var loss = new Command("loss", "Plot the training loss of a run (raw and moving average, log scale).") { log, output, smooth };
        loss.SetAction(parse =>
        {
            var records = TrainingLog.Read(parse.GetValue(log)!);
            var steps = records.Select(r => (double)r.Step).ToArray();
            var raw = records.Select(r => r.Loss).ToArray();
            int w = parse.GetValue(smooth);
            var averaged = raw.Select((_, i) => raw.Skip(Math.Max(0, i - w + 1)).Take(Math.Min(w, i + 1)).Average()).ToArray();
            string hours = (records[^1].ElapsedSeconds / 3600).ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
            LinePlot.SavePng(parse.GetValue(output)!, new[]
            {
                new LineSeries("loss", steps, raw, new SKColor(31, 119, 180, 90), 1f),
                new LineSeries($"mean of {w}", steps, averaged, new SKColor(214, 39, 40), 2f),
            }, new LinePlotOptions { Title = $"training loss ({records[^1].Step:N0} steps, {hours} h)", XLabel = "step", YLabel = "loss", LogY = true });
            context.Console.MarkupLine($"wrote [bold]{Markup.Escape(parse.GetValue(output)!)}[/]");
            return ExitCodes.Success;
        });
        var plot = new Command("plot", "Figures from runs and evaluations.") { loss, CreatePlotFid(context) };
        CliErrors.RequireSubcommand(plot, $"{Program.Name} plot");
        return plot;
    }

    /// <summary><c>ddpm plot fid</c>: FID against network calls, one line per sampler, from <c>ddpm eval fid --out</c> reports.</summary>
    private static Command CreatePlotFid(CliContext context)
    {
        var reports = new Option<string[]>("--reports") { Description = "JSON reports written by 'ddpm eval fid --out' (files or directories of them).", Required = true, AllowMultipleArgumentsPerToken = true, HelpName = "PATH" };
        var output = new Option<string>("--out") { Description = "The PNG to write.", Required = true, HelpName = "FILE" };
        var command = new Command("fid", "Plot FID against the number of network calls per sample, one line per sampler, and print the table.") { reports, output };
        command.SetAction(parse =>
        {
            var files = new List<string>();
            foreach (string path in parse.GetValue(reports)!)
            {
                if (Directory.Exists(path)) files.AddRange(Directory.GetFiles(path, "*.json").Order(StringComparer.Ordinal));
                else if (File.Exists(path)) files.Add(path);
                else throw new CliUsageException($"'{path}' does not exist: pass the JSON files written by 'ddpm eval fid --out' or their directory.");
            }
            var rows = new List<FidResult>();
            foreach (string file in files)
            {
                try { rows.Add(JsonSerializer.Deserialize<FidResult>(File.ReadAllText(file), Json.Options)!); }
                catch (JsonException) { throw new CliUsageException($"{file} is not a report of 'ddpm eval fid --out'."); }
            }
            // Guided sampling costs more than its network calls (a doubled batch, a classifier's gradient) and aims at
            // a class, not at the data distribution: it has no place on a curve of samplers.
            var guided = rows.Count(r => r.Guidance is not null);
            var sampled = rows.Where(r => r.NetworkCalls is not null && r.Guidance is null).ToList();
            if (guided > 0) context.Out.WriteLine($"left out {guided} report(s) of guided sampling");
            if (sampled.Count == 0) throw new CliUsageException("none of the reports evaluates samples (they hold no network calls): pass reports of 'ddpm eval fid --checkpoint'.");
            var palette = new[] { new SKColor(31, 119, 180), new SKColor(214, 39, 40), new SKColor(44, 160, 44), new SKColor(148, 103, 189), new SKColor(255, 127, 14), new SKColor(140, 86, 75) };
            var series = sampled.GroupBy(r => r.Sampler).Select((g, i) =>
            {
                var points = g.OrderBy(r => r.NetworkCalls).ToArray();
                return new LineSeries(g.Key, points.Select(r => (double)r.NetworkCalls!.Value).ToArray(), points.Select(r => r.Fid).ToArray(), palette[i % palette.Length], 2f, Markers: true);
            }).ToList();
            long n = sampled.Min(r => r.Samples);
            LinePlot.SavePng(parse.GetValue(output)!, series, new LinePlotOptions
            {
                Title = $"FID vs network calls ({n:N0}+ samples each; our classifier's features, not Inception)",
                XLabel = "network calls per sample", YLabel = "FID", LogX = true, LogY = true,
            });
            context.Out.WriteLine("| sampler | steps | network calls | samples | FID | seconds |");
            context.Out.WriteLine("|---|---|---|---|---|---|");
            foreach (var r in sampled.OrderBy(r => r.Sampler, StringComparer.Ordinal).ThenBy(r => r.NetworkCalls))
                context.Out.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"| {r.Sampler} | {r.Steps} | {r.NetworkCalls} | {r.Samples:N0} | {r.Fid:0.00} | {r.Seconds:0} |"));
            context.Out.WriteLine($"wrote {parse.GetValue(output)}");
            return ExitCodes.Success;
        });
        return command;
    }

    public static Command CreateExport(CliContext context)
    {
        var checkpoint = CliOptions.Text("--checkpoint", "A checkpoint directory, a run directory (its newest checkpoint) or a diffusers model directory.", "DIR");
        checkpoint.Required = true;
        var output = CliOptions.OutputDirectory(description: "The model directory to write (config.json + ema.safetensors).");
        var half = new Option<bool>("--float16") { Description = "Store the weights as float16 (half the size; sampling runs in float32)." };
        var format = CliOptions.Choice("--format", "ddpm: config.json + ema.safetensors (as under models/); diffusers: a diffusers pipeline directory (model_index.json, unet/, scheduler/) that DDPMPipeline.from_pretrained reads.", ExportFormat.Ddpm);
        var export = new Command("export", "Write a checkpoint's EMA weights as a standalone model directory that 'ddpm sample --checkpoint' accepts, ours or diffusers'.") { checkpoint, output, half, format };
        export.SetAction(parse =>
        {
            var result = ModelExport.Run(parse.GetValue(checkpoint)!, parse.GetValue(output)!, parse.GetValue(half), parse.GetValue(format));
            context.Console.MarkupLine($"wrote [bold]{Markup.Escape(result.Directory)}[/] ({result.Bytes / 1e6:F1} MB, {result.DType}) from {Markup.Escape(result.Source)}");
            return ExitCodes.Success;
        });
        return export;
    }
}
