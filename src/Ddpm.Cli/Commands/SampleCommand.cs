using System.CommandLine;
using System.Globalization;
using Ddpm.Cli.Output;
using Ddpm.Generation;
using Ddpm.Sampling;

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
    double ClassifierScale = 1.0,
    string? InitialNoise = null,
    string? SaveTensors = null);

/// <summary>
/// <c>ddpm sample</c>: draws samples from a checkpoint (<see cref="SamplingPipeline"/>) and writes them as PNGs and a
/// grid, or as CSV and a scatter plot for 2-D toy models, and optionally an animated GIF of the denoising chain
/// (<see cref="SampleFiles"/>).
/// </summary>
public static class SampleCommand
{
    /// <summary>The GIF shows the chain of the first this-many samples, at most <see cref="GifFrames"/> steps.</summary>
    public const int GifSamples = 16;
    public const int GifFrames = 48;

    public static Command Create(CliContext context)
    {
        var checkpoint = CommandInputs.CheckpointOption();
        // DDPM with 100 steps (its default steps): the lowest FID at up to 100 network calls for the shipped model
        // (docs/results.md); DPM-Solver++ 2M with 20 steps is within 0.1 at a fifth of the calls.
        var sampling = new SamplerOptions(SamplerKind.Ddpm);
        var n = CliOptions.Int("--n", "Number of samples.", 16, 1, 1_000_000, helpName: "N");
        var batch = CliOptions.Int("--batch", "Samples per batch.", 64, 1, 65_536, helpName: "B");
        var seed = CliOptions.Seed();
        var output = CliOptions.OutputDirectory(description: "Output directory (created when the samples are written).");
        var raw = new Option<bool>("--raw-weights") { Description = "Use the raw weights (model.safetensors) instead of the EMA weights." };
        var gif = new Option<bool>("--gif") { Description = $"Also write {SampleFiles.GifFile}: the denoising chain of the first {GifSamples} samples (x_t beside the predicted x_0)." };
        var cls = new Option<string?>("--class")
        {
            Description = "Class to sample, or 'all' for --n samples of every class, one grid row per class (class-conditional checkpoints or --classifier; default: classes 0, 1, 2, ... in turn).",
            HelpName = "K|all",
        };
        var guidance = CliOptions.Double("--guidance-scale", "Classifier-free guidance weight w: (1 + w)·ε(x, y) − w·ε(x, ∅); 0 is the conditional model (class-conditional checkpoints only).", 0.0, 0.0, 100.0, helpName: "W");
        var classifier = CliOptions.Text("--classifier", "Noise-aware classifier directory (ddpm classifier train) for classifier guidance.", "DIR");
        var classifierScale = CliOptions.Double("--classifier-scale", "Classifier-guidance scale s (with --classifier).", 1.0, 0.0, 1000.0, helpName: "S");
        var initialNoise = CliOptions.Text("--initial-noise", "Start from this x_T instead of drawing it: a safetensors file and the tensor's name ([N, C, H, W] for the N samples; the name may be left out when the file holds one tensor), e.g. diffusers' latents.", "FILE[:NAME]");
        var saveTensors = CliOptions.Text("--save-tensors", "Also write the samples as float32 before 8-bit rounding (tensor 'samples', and 'class_labels' when conditional) to this safetensors file.", "FILE");

        var command = new Command("sample", "Draw samples from a trained checkpoint with DDPM, DDIM, DPM-Solver++, the probability-flow ODE or the reverse SDE.")
        {
            checkpoint, n, batch, seed, output, raw, gif, cls, guidance, classifier, classifierScale, initialNoise, saveTensors,
        };
        foreach (var option in sampling.All) command.Add(option);
        command.SetAction(parse =>
        {
            string? classText = parse.GetValue(cls);
            int? classIndex = null;
            bool all = string.Equals(classText, "all", StringComparison.OrdinalIgnoreCase);
            if (classText is not null && !all)
            {
                if (!int.TryParse(classText, NumberStyles.None, CultureInfo.InvariantCulture, out int k))
                    throw new CliUsageException($"--class must be a class index (an integer >= 0) or 'all'; got '{classText}'.");
                classIndex = k;
            }
            if (parse.GetResult(classifierScale) is { Implicit: false } && parse.GetValue(classifier) is null)
                throw new CliUsageException("--classifier-scale needs --classifier DIR.");
            var options = new SampleOptions(parse.GetValue(checkpoint)!, parse.GetValue(output)!, sampling.Read(parse), parse.GetValue(n), parse.GetValue(batch), parse.GetValue(seed),
                parse.GetValue(raw), parse.GetValue(gif), classIndex, all,
                parse.GetResult(guidance) is { Implicit: false } ? parse.GetValue(guidance) : null, parse.GetValue(classifier), parse.GetValue(classifierScale),
                parse.GetValue(initialNoise), parse.GetValue(saveTensors));
            Run(options, context);
            return ExitCodes.Success;
        });
        return command;
    }

    public static void Run(SampleOptions options, CliContext context)
    {
        ArgumentNullException.ThrowIfNull(options);
        SampleFiles.CheckDirectory(options.OutputDirectory);
        if (options.SaveTensors is not null) SampleFiles.CheckFile(options.SaveTensors, "save-tensors");
        using var initialNoise = options.InitialNoise is null ? null : TensorFiles.ReadNamed(options.InitialNoise, "initial-noise");
        var request = new SamplingRequest(SamplerOptions.Choice(options.Sampling), options.Count, options.Batch, options.Seed,
            new ConditioningRequest(options.Class, options.AllClasses, options.GuidanceScale, options.Classifier, options.ClassifierScale),
            options.Gif ? new FrameCapture(GifSamples, GifFrames) : null, initialNoise);
        using var model = DiffusionModel.Load(options.Checkpoint, options.RawWeights, SamplerOptions.Compute(options.Sampling));
        using var result = ProgressBars.Run(context, progress => SamplingPipeline.Run(model, request, progress));
        var files = SampleFiles.Write(result, options.OutputDirectory).ToList();
        if (options.SaveTensors is not null)
        {
            SampleFiles.WriteTensors(result, options.SaveTensors);
            files.Add(options.SaveTensors);
        }
        // Plain lines (not Spectre markup): they are not wrapped at the console width, so paths stay whole.
        int count = (int)result.Samples.shape[0];
        double seconds = result.Elapsed.TotalSeconds;
        context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"sampled {count} {(result.IsImages ? "images" : "points")} with {result.Description} over {result.Settings.Steps} steps in {seconds:0.0} s ({seconds / count:0.000} s per sample)"));
        context.Out.WriteLine($"weights: {(model.Ema ? "EMA" : "raw")} weights of {model.Directory}");
        context.Out.WriteLine($"wrote {options.OutputDirectory}: {Describe(files)}");
        context.Out.Flush();
    }

    /// <summary>The files written, with a run of sample-NNNN.png shortened to its first and last.</summary>
    private static string Describe(IReadOnlyList<string> files)
    {
        var names = files.Select(Path.GetFileName).ToList();
        var samples = names.Where(n => n!.StartsWith("sample-", StringComparison.Ordinal)).ToList();
        var others = names.Where(n => !n!.StartsWith("sample-", StringComparison.Ordinal)).ToList();
        if (samples.Count > 2) others.Add($"{samples[0]} … {samples[^1]}");
        else others.AddRange(samples);
        return string.Join(", ", others);
    }
}
