using System.CommandLine;
using System.Globalization;
using Ddpm.Cli.Output;
using Ddpm.Generation;
using Ddpm.Imaging;

namespace Ddpm.Cli.Commands;

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
    public const int MaxSteps = InterpolationJob.MaxSteps;

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
        var request = new InterpolationRequest(options.A, options.B, options.T, options.Steps, options.Method, options.Seed, options.DataDir, options.DdimSteps);
        using var model = DiffusionModel.Load(options.Checkpoint, options.RawWeights);
        using var result = ProgressBars.Run(context, progress => InterpolationJob.Run(model, request, progress));
        using var bitmap = LabelledGrid.Render(result.Strip, (int)result.Strip.shape[0], result.Labels.ToArray(), LabelledGrid.ScaleFor(result.Strip.shape[2]));
        ImageGrid.SavePng(bitmap, options.Output);

        context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{result.Description}; {options.Steps} interpolants in {result.Elapsed.TotalSeconds:0.0} s"));
        context.Out.WriteLine($"weights: {(model.Ema ? "EMA" : "raw")} weights of {model.Directory}");
        context.Out.WriteLine($"wrote {options.Output}: a, lambda = {string.Join(" ", result.Labels.Skip(1).Take(options.Steps))}, b");
        context.Out.Flush();
    }
}
