using Ddpm.IO;
using Ddpm.Generation;
using System.Diagnostics;
using System.Globalization;
using Ddpm.Cli.Output;
using Ddpm.Diffusion;
using Ddpm.Imaging;
using Ddpm.Oracles;
using Ddpm.Sampling;
using Ddpm.Schedules;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary>The options of <c>ddpm demo toy</c>.</summary>
public sealed record ToyDemoOptions(string OutputDirectory, long Seed, int Count, int DdimSteps);

/// <summary>Sample mean and standard deviation (n − 1) of each coordinate of a 2-D point set.</summary>
public readonly record struct PointStats(double MeanX, double MeanY, double StdX, double StdY)
{
    public static PointStats Of(float[] xs, float[] ys) => new(Mean(xs), Mean(ys), Std(xs), Std(ys));

    private static double Mean(float[] v) => v.Length == 0 ? double.NaN : v.Sum(x => (double)x) / v.Length;

    private static double Std(float[] v)
    {
        if (v.Length < 2) return double.NaN;
        double m = Mean(v);
        return Math.Sqrt(v.Sum(x => (x - m) * (x - m)) / (v.Length - 1));
    }
}

/// <summary>What one sampler produced.</summary>
public sealed record ToySamplerResult(string Name, int Steps, float[] Xs, float[] Ys, PointStats Stats, TimeSpan Elapsed);

/// <summary>Everything <c>ddpm demo toy</c> computed and wrote.</summary>
public sealed record ToyDemoResult(PointStats Exact, PointStats Data, ToySamplerResult Ddpm, ToySamplerResult Ddim, IReadOnlyList<string> Files);

/// <summary>
/// <c>ddpm demo toy</c>: data from a mixture of 8 Gaussians (std 0.05) on a circle of radius 0.8, denoised by the
/// mixture's exact posterior-mean denoiser (no network) under the paper's linear schedule (T = 1000, σ² = β̃,
/// ε-prediction), once with DDPM ancestral sampling over all 1000 steps and once with deterministic DDIM (η = 0).
/// Both should reproduce the data distribution; the plot and the summary show how well.
/// </summary>
public static class ToyDemo
{
    public const int TrainTimesteps = 1000;
    public const int DefaultCount = 2000;
    public const int MaxCount = 100_000;   // the oracle costs ~50 ms per step at n = 20000; 1000 DDPM steps grow to many minutes beyond this
    public const int DefaultDdimSteps = 50;
    public const int Modes = 8;
    public const double Radius = 0.8;
    public const double ComponentStd = 0.05;

    public const string PlotFile = "toy-samples.png";
    public const string DdpmCsvFile = "samples-ddpm.csv";
    public const string DdimCsvFile = "samples-ddim.csv";

    /// <summary>The mixture: <see cref="Modes"/> equally weighted isotropic Gaussians on a circle.</summary>
    public static MixtureComponent[] Components()
    {
        double variance = ComponentStd * ComponentStd;
        return Enumerable.Range(0, Modes).Select(k =>
        {
            double angle = 2 * Math.PI * k / Modes;
            return new MixtureComponent(1.0, new[] { Radius * Math.Cos(angle), Radius * Math.Sin(angle) }, new[,] { { variance, 0.0 }, { 0.0, variance } });
        }).ToArray();
    }

    public static ToyDemoResult Run(ToyDemoOptions options, CliContext context)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(context);
        if (options.Count < 1 || options.Count > MaxCount)
            throw new ArgumentException($"--n must be an integer from 1 to {MaxCount}; got {options.Count}.", nameof(options));
        if (options.DdimSteps < 1 || options.DdimSteps > TrainTimesteps)
            throw new ArgumentException($"--ddim-steps must be an integer from 1 to {TrainTimesteps}; got {options.DdimSteps}.", nameof(options));
        if (options.Seed < 0)
            throw new ArgumentException($"--seed must be a non-negative integer; got {options.Seed}.", nameof(options));
        if (File.Exists(options.OutputDirectory))
            throw new CliUsageException($"--out '{options.OutputDirectory}' is an existing file; give a directory path.");

        var config = new DiffusionConfig(new ScheduleConfig());   // linear β 1e-4 → 0.02, T = 1000, ε, σ² = β̃, L_simple
        config.Validate();
        var schedule = config.Schedule.Build();
        using var oracle = new GaussianMixtureOracle(Components());
        var denoiser = oracle.Denoiser(schedule, config.Prediction);
        using var generator = new Generator((ulong)options.Seed);
        long n = options.Count;

        float[] dataXs, dataYs;
        using (var data = oracle.Sample(n, generator))
            (dataXs, dataYs) = ScatterPanel.Columns(data);

        using var ddpmScheduler = new DdpmScheduler(config, clipping: X0Clipping.None);
        using var ddimScheduler = new DdimScheduler(config, eta: 0.0, clipping: X0Clipping.None);
        ddimScheduler.SetTimesteps(options.DdimSteps);

        ToySamplerResult? ddpm = null, ddim = null;
        context.Console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(progress =>
            {
                var ddpmTask = progress.AddTask($"DDPM ({ddpmScheduler.Timesteps.Count} steps)", maxValue: ddpmScheduler.Timesteps.Count);
                var ddimTask = progress.AddTask($"DDIM ({ddimScheduler.Timesteps.Count} steps, eta 0)", autoStart: false, maxValue: ddimScheduler.Timesteps.Count);
                ddpm = RunSampler("DDPM", ddpmScheduler, denoiser, n, generator, ddpmTask);
                ddimTask.StartTask();
                ddim = RunSampler("DDIM", ddimScheduler, denoiser, n, generator, ddimTask);
            });

        // Everything is computed: only now write, each file atomically.
        string directory = options.OutputDirectory;
        var files = new List<string>
        {
            Path.Combine(directory, DdpmCsvFile),
            Path.Combine(directory, DdimCsvFile),
            Path.Combine(directory, PlotFile),
        };
        PointsCsv.Write(files[0], ddpm!.Xs, ddpm.Ys);
        PointsCsv.Write(files[1], ddim!.Xs, ddim.Ys);
        ScatterPlot.SavePng(files[2], new[]
        {
            new ScatterPanel($"data (n = {n})", dataXs, dataYs),
            new ScatterPanel($"DDPM, {ddpm.Steps} steps", ddpm.Xs, ddpm.Ys, dataXs, dataYs) { ReferenceLabel = "data" },
            new ScatterPanel($"DDIM, {ddim.Steps} steps (eta 0)", ddim.Xs, ddim.Ys, dataXs, dataYs) { ReferenceLabel = "data" },
        });

        double exactStd = Math.Sqrt(Radius * Radius / 2 + ComponentStd * ComponentStd);
        var result = new ToyDemoResult(new PointStats(0, 0, exactStd, exactStd), PointStats.Of(dataXs, dataYs), ddpm, ddim, files);
        PrintSummary(context, options, result);
        return result;
    }

    private static ToySamplerResult RunSampler(string name, IScheduler scheduler, Denoiser denoiser, long n, Generator generator, ProgressTask task)
    {
        var watch = Stopwatch.StartNew();
        using var samples = DiffusionSampler.Sample(scheduler, denoiser, new long[] { n, 2 }, generator,
            progress: new SpectreSamplingProgress(task));
        watch.Stop();
        task.Value = task.MaxValue;
        task.StopTask();
        var (xs, ys) = ScatterPanel.Columns(samples);
        return new ToySamplerResult(name, scheduler.Timesteps.Count, xs, ys, PointStats.Of(xs, ys), watch.Elapsed);
    }

    private static void PrintSummary(CliContext context, ToyDemoOptions options, ToyDemoResult r)
    {
        static string F(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("set").AddColumn(new TableColumn("steps").RightAligned()).AddColumn(new TableColumn("time").RightAligned())
            .AddColumn(new TableColumn("mean x").RightAligned()).AddColumn(new TableColumn("mean y").RightAligned())
            .AddColumn(new TableColumn("std x").RightAligned()).AddColumn(new TableColumn("std y").RightAligned());
        void Row(string set, string steps, string time, PointStats s) =>
            table.AddRow(Markup.Escape(set), steps, time, F(s.MeanX), F(s.MeanY), F(s.StdX), F(s.StdY));
        Row("mixture (exact)", "", "", r.Exact);
        Row($"data (n={options.Count})", "", "", r.Data);
        foreach (var s in new[] { r.Ddpm, r.Ddim })
            Row(s.Name, s.Steps.ToString(CultureInfo.InvariantCulture), $"{s.Elapsed.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture)} s", s.Stats);
        context.Console.Write(table);
        foreach (var file in r.Files)
            context.Console.MarkupLine($"wrote [bold]{Markup.Escape(file)}[/]");
    }
}
