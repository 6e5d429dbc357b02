using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Ddpm.Cli.Output;
using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Imaging;
using Ddpm.Sampling;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary>The options of <c>ddpm sample</c>; <see cref="Class"/> is null when not given.</summary>
public sealed record SampleOptions(
    string Checkpoint,
    string OutputDirectory,
    SamplerOptions.Values Sampling,
    int Count = 16,
    int Batch = 64,
    long Seed = 0,
    bool RawWeights = false,
    bool Gif = false,
    int? Class = null,
    bool AllClasses = false,
    double? GuidanceScale = null,
    string? Classifier = null,
    double ClassifierScale = 1.0);

/// <summary>What <c>ddpm sample</c> did.</summary>
public sealed record SampleResult(int Count, int Steps, string Sampler, TimeSpan Elapsed, IReadOnlyList<string> Files);

/// <summary>
/// <c>ddpm sample</c>: draws samples from a checkpoint with DDPM or DDIM, all randomness from one generator seeded
/// with --seed, and writes them as PNGs and a grid (image models) or as CSV and a scatter plot (2-D toy models), and
/// optionally an animated GIF of the denoising chain.
/// </summary>
public static class SampleCommand
{
    public const string GridFile = "grid.png";
    public const string GifFile = "denoising.gif";
    public const string CsvFile = "samples.csv";
    public const string ScatterFile = "scatter.png";
    public const int DefaultDdimSteps = 50;
    /// <summary>The GIF shows the chain of the first this-many samples.</summary>
    public const int GifSamples = 16;
    /// <summary>At most this many frames (the steps are subsampled evenly; the last is always included).</summary>
    public const int GifFrames = 48;
    public const int GifFrameDelay = 8;       // centiseconds
    public const int GifLastFrameDelay = 250; // the final samples stay on screen

    public static string SampleFile(int index) => $"sample-{index:D4}.png";

    public static Command Create(CliContext context)
    {
        var checkpoint = CommandInputs.CheckpointOption();
        var sampling = new SamplerOptions(SamplerKind.Ddpm);
        var n = CliOptions.Int("--n", "Number of samples.", 16, 1, 1_000_000, helpName: "N");
        var batch = CliOptions.Int("--batch", "Samples per batch.", 64, 1, 65_536, helpName: "B");
        var seed = CliOptions.Seed();
        var output = CliOptions.OutputDirectory(description: "Output directory (created when the samples are written).");
        var raw = new Option<bool>("--raw-weights") { Description = "Use the raw weights (model.safetensors) instead of the EMA weights." };
        var gif = new Option<bool>("--gif") { Description = $"Also write {GifFile}: the denoising chain of the first {GifSamples} samples (x_t beside the predicted x_0)." };
        var cls = new Option<string?>("--class")
        {
            Description = "Class to sample, or 'all' for --n samples of every class, one grid row per class (class-conditional checkpoints or --classifier; default: classes 0, 1, 2, ... in turn).",
            HelpName = "K|all",
        };
        var guidance = CliOptions.Double("--guidance-scale", "Classifier-free guidance weight w: (1 + w)·ε(x, y) − w·ε(x, ∅); 0 is the conditional model (class-conditional checkpoints only).", 0.0, 0.0, 100.0, helpName: "W");
        var classifier = CliOptions.Text("--classifier", "Noise-aware classifier directory (ddpm classifier train) for classifier guidance.", "DIR");
        var classifierScale = CliOptions.Double("--classifier-scale", "Classifier-guidance scale s (with --classifier).", 1.0, 0.0, 1000.0, helpName: "S");

        var command = new Command("sample", "Draw samples from a trained checkpoint with DDPM, DDIM, DPM-Solver++, the probability-flow ODE or the reverse SDE.")
        {
            checkpoint, n, batch, seed, output, raw, gif, cls, guidance, classifier, classifierScale,
        };
        foreach (var option in sampling.All) command.Add(option);
        command.SetAction(parse =>
        {
            string? classText = parse.GetValue(cls);
            int? classIndex = null;
            bool all = string.Equals(classText, "all", StringComparison.OrdinalIgnoreCase);
            if (classText is not null && !all)
            {
                if (!int.TryParse(classText, System.Globalization.NumberStyles.None, CultureInfo.InvariantCulture, out int k))
                    throw new CliUsageException($"--class must be a class index (an integer >= 0) or 'all'; got '{classText}'.");
                classIndex = k;
            }
            if (parse.GetResult(classifierScale) is { Implicit: false } && parse.GetValue(classifier) is null)
                throw new CliUsageException("--classifier-scale needs --classifier DIR.");
            var options = new SampleOptions(parse.GetValue(checkpoint)!, parse.GetValue(output)!, sampling.Read(parse), parse.GetValue(n), parse.GetValue(batch), parse.GetValue(seed),
                parse.GetValue(raw), parse.GetValue(gif), classIndex, all,
                parse.GetResult(guidance) is { Implicit: false } ? parse.GetValue(guidance) : null, parse.GetValue(classifier), parse.GetValue(classifierScale));
            Run(options, context);
            return ExitCodes.Success;
        });
        return command;
    }

    public static SampleResult Run(SampleOptions options, CliContext context)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Count < 1) throw new CliUsageException($"--n must be an integer >= 1; got {options.Count}.");
        if (options.Batch < 1) throw new CliUsageException($"--batch must be an integer >= 1; got {options.Batch}.");
        if (File.Exists(options.OutputDirectory))
            throw new CliUsageException($"--out '{options.OutputDirectory}' is an existing file; give a directory path.");

        using var model = CommandInputs.LoadCheckpoint(options.Checkpoint, options.RawWeights, SamplerOptions.Compute(options.Sampling));
        bool image = model.Model.IsImageModel;
        var settings = SamplerOptions.Resolve(options.Sampling, model.Config.Diffusion, clip: image);
        int steps = settings.Steps;
        using var guide = Guide.Create(options, model);
        int classes = guide.Classes;
        int count = options.AllClasses ? options.Count * classes : options.Count;
        int ClassOf(int i) => options.AllClasses ? i / options.Count : options.Class ?? i % classes;

        using var scheduler = SamplerFactory.Create(model.Config.Diffusion, settings);
        var sampleShape = model.Model.SampleShape;
        int batches = (count + options.Batch - 1) / options.Batch;
        string samplerName = SamplerFactory.Describe(settings, model.Config.Diffusion);
        int calls = scheduler.Timesteps.Count; // network calls per batch (Heun: 2·steps − 1)

        using var generator = new Generator((ulong)options.Seed);
        var parts = new List<Tensor>();
        var frames = new List<(int Step, int Timestep, Tensor Sample, Tensor X0)>();
        int[] frameSteps = options.Gif ? FrameSteps(calls) : Array.Empty<int>();
        var timesteps = scheduler.Timesteps.ToArray();
        var watch = Stopwatch.StartNew();
        try
        {
            if (guide.Description is not null) samplerName += ", " + guide.Description;
            CommandInputs.WithProgress(context, $"{samplerName}, {steps} steps, {count} samples", (long)calls * batches, task =>
            {
                for (int b = 0; b < batches; b++)
                {
                    int start = b * options.Batch, size = Math.Min(options.Batch, count - start);
                    using var labels = classes > 0
                        ? tensor(Enumerable.Range(start, size).Select(i => (long)ClassOf(i)).ToArray(), dtype: ScalarType.Int64)
                        : null;
                    var denoiser = guide.Denoiser(labels, scheduler);
                    var shape = new[] { (long)size }.Concat(sampleShape).ToArray();
                    Action<SamplingStepView>? onStep = null;
                    if (b == 0 && options.Gif)
                    {
                        long keep = image ? Math.Min(GifSamples, size) : size;
                        onStep = view =>
                        {
                            if (Array.BinarySearch(frameSteps, view.Step) < 0) return;
                            frames.Add((view.Step, view.Timestep,
                                view.Sample.narrow(0, 0, keep).detach().clone().DetachFromDisposeScope(),
                                view.PredictedX0.narrow(0, 0, keep).detach().clone().DetachFromDisposeScope()));
                        };
                    }
                    var samples = DiffusionSampler.Sample(scheduler, denoiser, shape, generator, progress: new OffsetProgress(task, (long)b * calls), onStep: onStep);
                    parts.Add(samples.DetachFromDisposeScope());
                }
            });
            watch.Stop();

            using var all = cat(parts.ToArray(), 0);
            var files = image
                ? WriteImages(options, all, frames, timesteps, calls)
                : WriteToy(options, model, all, frames, timesteps, calls, generator);
            var result = new SampleResult(count, steps, samplerName, watch.Elapsed, files);
            // Plain lines (not Spectre markup): they are not wrapped at the console width, so paths stay whole.
            context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"sampled {result.Count} {(image ? "images" : "points")} with {samplerName} over {steps} steps in {watch.Elapsed.TotalSeconds:0.0} s ({watch.Elapsed.TotalSeconds / result.Count:0.000} s per sample)"));
            context.Out.WriteLine($"weights: {(model.Ema ? "EMA" : "raw")} weights of {model.Directory}");
            context.Out.WriteLine($"wrote {options.OutputDirectory}: {Describe(files)}");
            context.Out.Flush();
            return result;
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
            foreach (var f in frames) { f.Sample.Dispose(); f.X0.Dispose(); }
        }
    }

    private static string Describe(IReadOnlyList<string> files)
    {
        var names = files.Select(Path.GetFileName).ToList();
        var samples = names.Where(n => n!.StartsWith("sample-", StringComparison.Ordinal)).ToList();
        var others = names.Where(n => !n!.StartsWith("sample-", StringComparison.Ordinal)).ToList();
        if (samples.Count > 2) others.Add($"{samples[0]} … {samples[^1]}");
        else others.AddRange(samples);
        return string.Join(", ", others);
    }

    /// <summary>The step indices (0-based, ascending) shown in the GIF: all of them up to <see cref="GifFrames"/>, else evenly spaced, always the last.</summary>
    public static int[] FrameSteps(int steps)
    {
        if (steps <= GifFrames) return Enumerable.Range(0, steps).ToArray();
        return Enumerable.Range(0, GifFrames).Select(i => (int)Math.Round((double)i * (steps - 1) / (GifFrames - 1))).Distinct().ToArray();
    }

    /// <summary>The paper's t of the sample after step <paramref name="step"/>: the next timestep in the list (+1), or 0 after the last.</summary>
    private static int LevelAfter(int[] timesteps, int step) => step + 1 < timesteps.Length ? timesteps[step + 1] + 1 : 0;

    private static List<string> WriteImages(SampleOptions options, Tensor all, List<(int Step, int Timestep, Tensor Sample, Tensor X0)> frames, int[] timesteps, int steps)
    {
        string dir = options.OutputDirectory;
        var files = new List<string>();
        // Render everything first, then write.
        List<GifFrame>? gifFrames = null;
        int gifWidth = 0, gifHeight = 0;
        var palette = all.shape[1] == 1 ? GifPalette.Grey : GifPalette.ColorCube;
        if (options.Gif && frames.Count > 0)
        {
            gifFrames = new List<GifFrame>();
            int scale = LabelledGrid.ScaleFor(all.shape[2], 48);
            var leftTitles = frames.Select(f => $"x_t, t = {LevelAfter(timesteps, f.Step)}").ToArray();
            var rightTitles = frames.Select(f => $"predicted x0, step {f.Step + 1}/{steps}").ToArray();
            // Every frame gets the width of the widest titles, so that all frames have one size.
            int leftMin = TitleWidth(leftTitles), rightMin = TitleWidth(rightTitles);
            for (int i = 0; i < frames.Count; i++)
            {
                var f = frames[i];
                int columns = (int)Math.Ceiling(Math.Sqrt(f.Sample.shape[0]));
                using var left = LabelledGrid.Render(f.Sample, columns, null, scale);
                using var right = LabelledGrid.Render(f.X0, columns, null, scale);
                using var frame = WithTitles(left, right, leftTitles[i], rightTitles[i], leftMin, rightMin);
                gifWidth = frame.Width;
                gifHeight = frame.Height;
                gifFrames.Add(new GifFrame(AnimatedGif.Indices(frame, palette), i == frames.Count - 1 ? GifLastFrameDelay : GifFrameDelay));
            }
        }

        for (int i = 0; i < all.shape[0]; i++)
        {
            string path = Path.Combine(dir, SampleFile(i));
            using var one = all.narrow(0, i, 1);
            ImageGrid.SavePng(one, path, columns: 1, padding: 0);
            files.Add(path);
        }
        string grid = Path.Combine(dir, GridFile);
        ImageGrid.SavePng(all, grid, columns: options.AllClasses ? options.Count : null, scale: LabelledGrid.ScaleFor(all.shape[2], 32));
        files.Insert(0, grid);
        if (gifFrames is not null)
        {
            string gif = Path.Combine(dir, GifFile);
            AnimatedGif.Save(gif, gifWidth, gifHeight, palette, gifFrames);
            files.Insert(1, gif);
        }
        return files;
    }

    private const float TitleSize = 12f;

    /// <summary>The width a panel needs for the widest of <paramref name="titles"/>.</summary>
    private static int TitleWidth(params string[] titles) => titles.Max(t => (int)Math.Ceiling(PlotText.Measure(t, TitleSize)) + 4);

    /// <summary>
    /// Two panels side by side, each under a title, each at least <paramref name="leftMin"/> / <paramref name="rightMin"/>
    /// wide (padded with white), so that every frame of an animation has the same size whatever its titles.
    /// </summary>
    private static SKBitmap WithTitles(SKBitmap left, SKBitmap right, string leftTitle, string rightTitle, int leftMin, int rightMin)
    {
        const float textSize = TitleSize;
        const int band = 20, gap = 16;
        int leftWidth = Math.Max(left.Width, leftMin);
        int rightWidth = Math.Max(right.Width, rightMin);
        var result = new SKBitmap(leftWidth + gap + rightWidth, band + Math.Max(left.Height, right.Height), SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var canvas = new SKCanvas(result);
        canvas.Clear(SKColors.White);
        var sampling = new SKSamplingOptions(SKFilterMode.Nearest, SKMipmapMode.None);
        using (var image = SKImage.FromBitmap(left)) canvas.DrawImage(image, 0, band, sampling);
        using (var image = SKImage.FromBitmap(right)) canvas.DrawImage(image, leftWidth + gap, band, sampling);
        PlotText.Draw(canvas, leftTitle, 2, band - 6, SKTextAlign.Left, textSize, new SKColor(20, 20, 20));
        PlotText.Draw(canvas, rightTitle, leftWidth + gap + 2, band - 6, SKTextAlign.Left, textSize, new SKColor(20, 20, 20));
        canvas.Flush();
        return result;
    }

    private static List<string> WriteToy(SampleOptions options, LoadedModel model, Tensor all, List<(int Step, int Timestep, Tensor Sample, Tensor X0)> frames,
        int[] timesteps, int steps, Generator generator)
    {
        string dir = options.OutputDirectory;
        var (xs, ys) = ScatterPanel.Columns(all);
        // Reference points from the training set when it is a known toy set (drawn after sampling: the samples do not depend on it).
        float[]? rx = null, ry = null;
        string? dataset = model.Config.Dataset;
        if (dataset is not null && ToyDatasets.Names.Contains(dataset.Trim().ToLowerInvariant()))
        {
            using var reference = ToyDatasets.Sample(dataset, Math.Min(options.Count, 20_000), generator);
            (rx, ry) = ScatterPanel.Columns(reference);
        }
        var panel = new ScatterPanel($"{options.Count} samples, {steps} {CliOptions.Kebab(options.Sampling.Sampler)} steps", xs, ys, rx, ry) { ReferenceLabel = dataset ?? "data" };

        List<GifFrame>? gifFrames = null;
        SKSizeI size = default;
        if (options.Gif && frames.Count > 0)
        {
            gifFrames = new List<GifFrame>();
            for (int i = 0; i < frames.Count; i++)
            {
                var f = frames[i];
                var panels = new[]
                {
                    ScatterPanel.FromTensor($"x_t, t = {LevelAfter(timesteps, f.Step)}", f.Sample),
                    ScatterPanel.FromTensor($"predicted x0, step {f.Step + 1}/{steps}", f.X0),
                };
                using var bitmap = ScatterPlot.Render(panels);
                size = new SKSizeI(bitmap.Width, bitmap.Height);
                gifFrames.Add(new GifFrame(AnimatedGif.Indices(bitmap, GifPalette.ColorCube), i == frames.Count - 1 ? GifLastFrameDelay : GifFrameDelay));
            }
        }

        var files = new List<string> { Path.Combine(dir, CsvFile), Path.Combine(dir, ScatterFile) };
        PointsCsv.Write(files[0], xs, ys);
        ScatterPlot.SavePng(files[1], new[] { panel });
        if (gifFrames is not null)
        {
            files.Add(Path.Combine(dir, GifFile));
            AnimatedGif.Save(files[2], size.Width, size.Height, GifPalette.ColorCube, gifFrames);
        }
        return files;
    }
}
