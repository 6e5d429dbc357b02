using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Ddpm.Diffusion;
using Ddpm.Imaging;
using Ddpm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary>How <c>ddpm interpolate</c> encodes and decodes.</summary>
public enum InterpolationMethod
{
    /// <summary>q(x_t | x_0) with one shared ε, slerp, DDPM ancestral decoding from t with shared noise (Ho et al. 2020, §4.3).</summary>
    Noise,
    /// <summary>Deterministic DDIM inversion to t, slerp, DDIM decoding (Song et al. 2020, §5.3).</summary>
    Ddim,
}

/// <summary>The options of <c>ddpm interpolate</c>; <see cref="T"/> is the paper's 1-based t (null: half the checkpoint's T).</summary>
public sealed record InterpolateOptions(
    string Checkpoint,
    string A,
    string B,
    string Output,
    int? T = null,
    int Steps = 8,
    InterpolationMethod Method = InterpolationMethod.Noise,
    long Seed = 0,
    string? DataDir = null,
    bool RawWeights = false,
    int DdimSteps = 50);

/// <summary>
/// <c>ddpm interpolate</c>: encodes two images to noise level t, interpolates the latents spherically and decodes each
/// interpolant back to an image; writes the strip a, λ = 0 … 1, b as one row.
/// </summary>
public static class InterpolateCommand
{
    public const int MaxSteps = 64;

    public static Command Create(CliContext context)
    {
        var checkpoint = CommandInputs.CheckpointOption();
        var a = CommandInputs.RequiredText("--a", "First image: a PNG or JPEG file, or DATASET:INDEX from the test split (e.g. fashion-mnist:12; dataset:12 = the checkpoint's data set).", "IMG");
        var b = CommandInputs.RequiredText("--b", "Second image, as --a.", "IMG");
        var t = CommandInputs.OptionalInt("--t", "Noise level to interpolate at, 1 to the checkpoint's T (paper numbering; default T/2, i.e. 500 for T = 1000).", 1, helpName: "T");
        var steps = CliOptions.Int("--steps", $"Number of interpolants, λ from 0 to 1 inclusive (2 to {MaxSteps}).", 8, 2, MaxSteps, helpName: "K");
        var output = CommandInputs.OutputPng(description: "Output PNG: a, the interpolants, b in one row (its directory is created if missing).");
        var method = CliOptions.Choice("--method", "noise: q(x_t|x_0) with shared noise and DDPM decoding; ddim: deterministic DDIM inversion and decoding.", InterpolationMethod.Noise);
        var seed = CliOptions.Seed();
        var dataDir = CliOptions.Text("--data-dir", "Directory of the data set named in DATASET:INDEX (fashion-mnist defaults to /usr/share/datasets/fashion-mnist).", "DIR");
        var raw = new Option<bool>("--raw-weights") { Description = "Use the raw weights instead of the EMA weights." };
        var ddimSteps = CliOptions.Int("--ddim-steps", "DDIM steps between x_0 and x_t for --method ddim (at most t).", 50, 1, helpName: "N");

        var command = new Command("interpolate", "Interpolate between two images in the latent space at noise level t (Ho et al. 2020, §4.3).")
        {
            checkpoint, a, b, t, steps, output, method, seed, dataDir, raw, ddimSteps,
        };
        command.SetAction(parse =>
        {
            if (parse.GetResult(ddimSteps) is { Implicit: false } && parse.GetValue(method) != InterpolationMethod.Ddim)
                throw new CliUsageException("--ddim-steps applies to --method ddim only; add --method ddim or drop --ddim-steps.");
            var options = new InterpolateOptions(parse.GetValue(checkpoint)!, parse.GetValue(a)!, parse.GetValue(b)!, parse.GetValue(output)!,
                parse.GetValue(t), parse.GetValue(steps), parse.GetValue(method), parse.GetValue(seed), parse.GetValue(dataDir), parse.GetValue(raw),
                parse.GetValue(ddimSteps));
            Run(options, context);
            return ExitCodes.Success;
        });
        return command;
    }

    public static void Run(InterpolateOptions options, CliContext context)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Steps < 2 || options.Steps > MaxSteps)
            throw new CliUsageException($"--steps must be from 2 to {MaxSteps}; got {options.Steps}.");

        using var model = CommandInputs.LoadCheckpoint(options.Checkpoint, options.RawWeights);
        if (!model.Model.IsImageModel)
            throw new CliUsageException($"'{model.Directory}' holds a 2-D toy model; 'ddpm interpolate' needs an image model.");
        int T = model.Timesteps;
        int level = options.T ?? Math.Max(1, T / 2);
        if (level < 1 || level > T)
            throw new CliUsageException($"--t must be from 1 to {T} (the checkpoint's diffusion steps T); got {level}.");
        using var scope = NewDisposeScope();
        var imageA = CommandInputs.LoadImage("--a", options.A, model, options.DataDir);
        var imageB = CommandInputs.LoadImage("--b", options.B, model, options.DataDir);

        using var diffusion = new GaussianDiffusion(model.Config.Diffusion);
        using var generator = new Generator((ulong)options.Seed);
        var denoiser = model.Denoising.AsDenoiser();
        var lambdas = Interpolation.Weights(options.Steps);
        int index = level - 1;
        Tensor decoded = null!;
        var watch = Stopwatch.StartNew();
        string description;
        if (options.Method == InterpolationMethod.Noise)
        {
            description = $"noise: q(x_t|x_0) with shared noise at t = {level}, slerp, {level} DDPM steps";
            CommandInputs.WithProgress(context, description, level, task =>
            {
                var epsilon = randn(imageA.shape, generator: generator);
                var latentA = Interpolation.Encode(diffusion, imageA, index, epsilon);
                var latentB = Interpolation.Encode(diffusion, imageB, index, epsilon);
                var path = Interpolation.SlerpPath(latentA, latentB, lambdas);
                decoded = Interpolation.ReverseFrom(diffusion, denoiser, path, index, generator, sharedNoise: true, progress: new OffsetProgress(task, 0));
            });
        }
        else
        {
            var timesteps = Interpolation.DdimTimesteps(index, options.DdimSteps);
            description = $"ddim: {timesteps.Length}-step DDIM inversion to t = {level}, slerp, {timesteps.Length}-step DDIM decoding";
            CommandInputs.WithProgress(context, description, 2L * timesteps.Length, task =>
            {
                var latents = Interpolation.DdimInvert(diffusion, denoiser, cat(new[] { imageA, imageB }, 0), timesteps, new OffsetProgress(task, 0));
                var path = Interpolation.SlerpPath(latents.narrow(0, 0, 1), latents.narrow(0, 1, 1), lambdas);
                decoded = Interpolation.DdimDecode(diffusion, denoiser, path, timesteps, clip: true, new OffsetProgress(task, timesteps.Length));
            });
        }
        watch.Stop();

        var strip = cat(new[] { imageA, decoded, imageB }, 0);
        var labels = new[] { "a" }.Concat(lambdas.Select(l => l.ToString("0.##", CultureInfo.InvariantCulture))).Append("b").ToArray();
        using var bitmap = LabelledGrid.Render(strip, (int)strip.shape[0], labels, LabelledGrid.ScaleFor(strip.shape[2]));
        ImageGrid.SavePng(bitmap, options.Output);

        context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{description}; {options.Steps} interpolants in {watch.Elapsed.TotalSeconds:0.0} s"));
        context.Out.WriteLine($"weights: {(model.Ema ? "EMA" : "raw")} weights of {model.Directory}");
        context.Out.WriteLine($"wrote {options.Output}: a, lambda = {string.Join(" ", labels.Skip(1).Take(options.Steps))}, b");
        context.Out.Flush();
    }
}
