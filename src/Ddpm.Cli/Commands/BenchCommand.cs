using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpm.Evaluation;
using Ddpm.IO;
using Ddpm.Models;

namespace Ddpm.Cli.Commands;

/// <summary>
/// <c>ddpm bench model</c> (training and inference throughput against the machine's matmul peak) and
/// <c>ddpm bench memory</c> (resident memory growth over a training run). Each prints progress lines and ends with
/// one JSON line on stdout.
/// </summary>
public static class BenchCommand
{
    /// <summary>The largest growth of resident memory from the baseline to the last step that <c>bench memory</c> accepts, in percent.</summary>
    public const double DefaultMaxGrowthPercent = 5.0;

    public static Command Create(CliContext context)
    {
        var command = new Command("bench", "Measure training/inference throughput and memory use.") { Model(context), Memory(context) };
        CliErrors.RequireSubcommand(command, $"{Program.Name} bench");
        return command;
    }

    private static Command Model(CliContext context)
    {
        var preset = ModelCommand.PresetOption();
        var batch = CliOptions.Int("--batch", "Batch size.", 32, 1, 65536, helpName: "B");
        var steps = CliOptions.Int("--steps", "Timed training steps, and timed inference forwards.", 10, 1, 1_000_000, helpName: "S");
        var warmup = CliOptions.Int("--warmup", "Untimed warm-up steps before each measurement (the allocator needs ~7 training steps to reach its steady state).", 8, 0, 1_000_000, helpName: "W");
        var threads = ThreadsOption();
        var matmul = CliOptions.Int("--matmul-size", "n of the n×n float32 matmul that measures the peak.", 2048, 64, 16384, helpName: "N");
        var precision = CliOptions.Precision();
        var channelsLast = new Option<bool>("--channels-last") { Description = "Channels-last (NHWC) activations." };
        var command = new Command("model", "Training steps/s (forward, backward, clipping, Adam, EMA) and inference forwards/s of a preset, " +
                                           "and the float32 matmul and 3x3-convolution peaks; ends with one JSON line.")
        {
            preset, batch, steps, warmup, threads, matmul, precision, channelsLast,
        };
        command.SetAction(parse =>
        {
            string name = parse.GetValue(preset)!;
            int t = parse.GetValue(threads);
            var result = ModelBenchmark.Run(name, UNetPresets.Get(name), parse.GetValue(batch), parse.GetValue(steps), parse.GetValue(warmup),
                t == 0 ? null : t, parse.GetValue(matmul), new LineProgress(context.Out), CliOptions.Compute(parse.GetValue(precision), parse.GetValue(channelsLast)));
            context.Out.WriteLine(Invariant($"training: {result.TrainImagesPerS:F1} img/s ({result.StepMs:F1} ms/step: forward {result.ForwardMs:F1}, backward {result.BackwardMs:F1}, clip {result.ClipMs:F1}, Adam {result.OptimizerMs:F1}, EMA {result.EmaMs:F1}), {result.TrainGflops:F1} GFLOP/s"));
            context.Out.WriteLine(Invariant($"inference: {result.InferImagesPerS:F1} img/s, {result.InferGflops:F1} GFLOP/s"));
            context.Out.WriteLine(Invariant($"peak: matmul {result.PeakGflops:F1} GFLOP/s, 3x3 conv {result.ConvPeakGflops:F1} GFLOP/s; training ({result.Compute}) reaches {100 * result.FractionOfPeak:F1} % and {100 * result.FractionOfConvPeak:F1} % of them"));
            if (result.Bf16ConvPeakGflops is double bf16Conv)
                context.Out.WriteLine(Invariant($"bf16 peak: matmul {result.Bf16PeakGflops:F1} GFLOP/s, 3x3 conv {bf16Conv:F1} GFLOP/s; training reaches {100 * result.FractionOfBf16ConvPeak:F1} % of the conv peak"));
            context.Out.WriteLine(JsonSerializer.Serialize(result, Json.Compact));
            context.Out.Flush();
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Memory(CliContext context)
    {
        var preset = ModelCommand.PresetOption();
        var batch = CliOptions.Int("--batch", "Batch size.", 8, 1, 65536, helpName: "B");
        var steps = CliOptions.Int("--steps", "Training steps in all.", 1000, 2, 100_000_000, helpName: "S");
        var baseline = CliOptions.Int("--baseline", "The step whose resident memory is the reference.", 100, 1, 100_000_000, helpName: "K");
        var maxGrowth = CliOptions.Double("--max-growth", "Largest accepted growth from the baseline to the last step, in percent; more exits with code 1.",
            DefaultMaxGrowthPercent, 0, double.PositiveInfinity, helpName: "PERCENT");
        var threads = ThreadsOption();
        var command = new Command("memory", "Train a preset with the real trainer on random data and compare the resident memory at " +
                                            "--baseline steps with the one after --steps; ends with one JSON line.")
        {
            preset, batch, steps, baseline, maxGrowth, threads,
        };
        command.SetAction(parse =>
        {
            string name = parse.GetValue(preset)!;
            int k = parse.GetValue(baseline), n = parse.GetValue(steps);
            if (n <= k) throw new CliUsageException($"--steps ({n}) must be larger than --baseline ({k}).");
            int t = parse.GetValue(threads);
            var result = ModelBenchmark.MemoryCheck(name, UNetPresets.Get(name), parse.GetValue(batch), n, k, t == 0 ? null : t, new LineProgress(context.Out));
            double limit = parse.GetValue(maxGrowth);
            bool within = result.GrowthPercent <= limit;
            var json = new JsonObject
            {
                ["preset"] = result.Preset,
                ["batch"] = result.Batch,
                ["steps"] = result.Steps,
                ["baseline_steps"] = result.BaselineSteps,
                [$"rss_after_{k}_mb"] = Math.Round(result.RssBaselineMb, 2),
                [$"rss_after_{n}_mb"] = Math.Round(result.RssFinalMb, 2),
                ["growth_percent"] = Math.Round(result.GrowthPercent, 3),
                ["max_growth_percent"] = limit,
                ["within_limit"] = within,
                [$"live_tensors_after_{k}"] = result.LiveTensorsBaseline,
                [$"live_tensors_after_{n}"] = result.LiveTensorsFinal,
                ["threads"] = result.Threads,
                ["ms_per_step"] = Math.Round(1000 * result.SecondsPerStep, 3),
            };
            context.Out.WriteLine(json.ToJsonString());
            context.Out.Flush();
            if (!within)
            {
                CliErrors.WriteError(context.Err, Invariant($"resident memory grew {result.GrowthPercent:F2} % from step {k} to step {n} ({result.RssBaselineMb:F1} -> {result.RssFinalMb:F1} MB), more than --max-growth {limit}."));
                return ExitCodes.Failure;
            }
            return ExitCodes.Success;
        });
        return command;
    }

    private static Option<int> ThreadsOption() =>
        CliOptions.Int("--threads", "libtorch intra-op threads for the run (0: leave the default, torch.get_num_threads()).", 0, 0, 1024, helpName: "T");

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    /// <summary>Writes each progress message as one line, synchronously.</summary>
    private sealed class LineProgress(TextWriter output) : IProgress<string>
    {
        public void Report(string value)
        {
            output.WriteLine(value);
            output.Flush();
        }
    }
}
