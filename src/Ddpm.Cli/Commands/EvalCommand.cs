using System.CommandLine;
using System.Globalization;
using Ddpm.Cli.Output;
using Ddpm.Diffusion;
using Ddpm.Evaluation;
using Ddpm.Generation;
using Ddpm.IO;
using Ddpm.Sampling;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm eval nll</c> and <c>ddpm eval fid</c>: the paper's two metrics.</summary>
public static class EvalCommand
{
    public static Command Create(CliContext context)
    {
        var command = new Command("eval", "Evaluate a checkpoint: negative log-likelihood in bits/dim, or FID.") { CreateNll(context), CreateFid(context) };
        CliErrors.RequireSubcommand(command, $"{Program.Name} eval");
        return command;
    }

    private static Option<string> OutputJson() =>
        new("--out")
        {
            Description = "Also write the result as JSON to this file.",
            HelpName = "FILE.json",
            CustomParser = r =>
            {
                string value = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (string.IsNullOrWhiteSpace(value) || Directory.Exists(value) || value.EndsWith('/'))
                    r.AddError($"--out needs a file path such as out/eval.json; got '{value}'");
                return value;
            },
        };

    // ------------------------------------------------------------------ nll

    private static Command CreateNll(CliContext context)
    {
        var checkpoint = CommandInputs.CheckpointOption();
        var dataset = CliOptions.Text("--dataset", "Data set (default: the checkpoint's).", "NAME");
        var dataDir = CliOptions.Text("--data-dir", "Directory of the data set files (default: the data set's standard location).", "DIR");
        var split = CliOptions.Choice("--split", "Split to evaluate.", DataSplit.Test);
        var n = CliOptions.Int("--n", "Number of images (the first N of the split).", 100, 2, 10_000_000, helpName: "N");
        var batch = CliOptions.Int("--batch", "Images per batch.", 50, 1, 65_536, helpName: "B");
        var strata = CliOptions.Int("--strata", "0: all T terms of the bound. K > 0: a stratified estimate from K random timesteps per image (K + 1 network evaluations instead of T).", 0, 0, helpName: "K");
        var variance = SamplerOptions.VarianceOption("Reverse variance of the bound: fixed-small or fixed-large (default: the checkpoint's).");
        var seed = CliOptions.Seed();
        var output = OutputJson();
        var raw = new Option<bool>("--raw-weights") { Description = "Use the raw weights instead of the EMA weights." };
        var nll = new Command("nll", "Negative log-likelihood in bits/dim through the variational bound (prior, KL terms and discretised decoder), with its standard error over images.")
        {
            checkpoint, dataset, dataDir, split, n, batch, strata, variance, seed, output, raw,
        };
        nll.SetAction(parse =>
        {
            RunNll(context, parse.GetValue(checkpoint)!, parse.GetValue(dataset), parse.GetValue(dataDir), parse.GetValue(split), parse.GetValue(n),
                parse.GetValue(batch), parse.GetValue(strata), parse.GetValue(variance), parse.GetValue(seed), parse.GetValue(output), parse.GetValue(raw));
            return ExitCodes.Success;
        });
        return nll;
    }

    public static NllResult RunNll(CliContext context, string checkpointPath, string? datasetName, string? dataDir, DataSplit split, int count, int batch,
        int strata, VarianceType? variance, long seed, string? outputJson, bool rawWeights)
    {
        using var model = DiffusionModel.Load(checkpointPath, rawWeights);
        var request = new NllRequest(datasetName, dataDir, split, count, batch, strata, variance, seed);
        var report = ProgressBars.Run(context, progress => NllEvaluation.Run(model, request, progress));
        context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"NLL {report.BitsPerDim:0.0000} ± {report.StandardError:0.0000} bits/dim (standard error over {report.Images} images of the {report.Split} split of {report.Dataset}; {report.Estimator}; variance {report.Variance})"));
        context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  prior L_T {report.Prior:0.00000}, KL terms L_1..L_{model.Timesteps - 1} {report.Kl:0.0000}, decoder L_0 {report.Decoder:0.0000}; {report.Seconds:0.0} s ({report.Seconds / report.Images:0.00} s per image)"));
        if (outputJson is not null) WriteJson(context, outputJson, report);
        return report;
    }

    // ------------------------------------------------------------------ fid

    private static Command CreateFid(CliContext context)
    {
        var checkpoint = CliOptions.Text("--checkpoint", "Checkpoint (or run) directory whose samples are evaluated.", "DIR");
        var real = new Option<DataSplit?>("--real")
        {
            Description = "Evaluate real images of this split instead of samples (e.g. --real train: FID(train vs test), the floor).",
            HelpName = "train|test",
            CustomParser = r =>
            {
                string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (text == "train") return DataSplit.Train;
                if (text == "test") return DataSplit.Test;
                r.AddError($"--real must be train or test; got '{text}'");
                return null;
            },
        };
        var fidNet = CommandInputs.RequiredText("--fid-net", "Feature network directory written by 'ddpm fid-net train' (shipped: models/fid-fashion-mnist).", "DIR");
        var dataset = CliOptions.Text("--dataset", "Reference data set (default: the checkpoint's).", "NAME");
        var dataDir = CliOptions.Text("--data-dir", "Directory of the data set files (default: the data set's standard location).", "DIR");
        var split = CliOptions.Choice("--split", "Reference split.", DataSplit.Test);
        var sampling = new SamplerOptions(SamplerKind.Ddim);
        var cls = CommandInputs.OptionalInt("--class", "Generate only this class (class-conditional checkpoints or --classifier; default: all classes in turn).", 0, helpName: "K");
        var guidance = CliOptions.Double("--guidance-scale", "Classifier-free guidance weight w (class-conditional checkpoints).", 0.0, 0.0, 100.0, helpName: "W");
        var classifier = CliOptions.Text("--classifier", "Noise-aware classifier directory for classifier guidance.", "DIR");
        var classifierScale = CliOptions.Double("--classifier-scale", "Classifier-guidance scale s.", 1.0, 0.0, 1000.0, helpName: "S");
        var n = CliOptions.Int("--n", "Number of samples.", 10_000, 2, 10_000_000, helpName: "N");
        var batch = CliOptions.Int("--batch", "Samples per batch.", 250, 1, 65_536, helpName: "B");
        var seed = CliOptions.Seed();
        var cache = CliOptions.Text("--stats-cache", "Directory for cached reference statistics (default: $DDPM_CACHE or ~/.cache/ddpm, fid-stats/).", "DIR");
        var output = OutputJson();
        var fid = new Command("fid", "Fréchet distance between the feature statistics of generated samples (or a real split) and of a reference split.")
        {
            checkpoint, real, fidNet, dataset, dataDir, split, n, batch, seed, cache, output, cls, guidance, classifier, classifierScale,
        };
        foreach (var option in sampling.All) fid.Add(option);
        fid.SetAction(parse =>
        {
            string? ckpt = parse.GetValue(checkpoint);
            DataSplit? realSplit = parse.GetValue(real);
            if ((ckpt is null) == (realSplit is null))
                throw new CliUsageException("give either --checkpoint DIR (evaluate its samples) or --real train|test (evaluate real images).");
            var values = sampling.Read(parse);
            // Checked before anything is loaded; checked again against the checkpoint by the evaluation.
            SamplerOptions.Choice(values with { Steps = 1 }).Resolve(new DiffusionConfig());
            RunFid(context, new FidOptions(ckpt, realSplit, parse.GetValue(fidNet)!, parse.GetValue(dataset), parse.GetValue(dataDir), parse.GetValue(split),
                values, parse.GetValue(n), parse.GetValue(batch), parse.GetValue(seed), parse.GetValue(cache), parse.GetValue(output),
                new ConditioningRequest(parse.GetValue(cls), false, parse.GetResult(guidance) is { Implicit: false } ? parse.GetValue(guidance) : null,
                    parse.GetValue(classifier), parse.GetValue(classifierScale))));
            return ExitCodes.Success;
        });
        return fid;
    }

    public sealed record FidOptions(string? Checkpoint, DataSplit? Real, string FidNet, string? Dataset, string? DataDir, DataSplit Split,
        SamplerOptions.Values Sampling, int Count, int Batch, long Seed, string? StatsCache, string? OutputJson, ConditioningRequest? Guidance = null);

    public static FidResult RunFid(CliContext context, FidOptions o)
    {
        using var model = o.Checkpoint is null ? null : DiffusionModel.Load(o.Checkpoint, rawWeights: false, SamplerOptions.Compute(o.Sampling));
        var request = new FidRequest(o.FidNet, o.Dataset, o.DataDir, o.Split, o.Count, o.Batch, o.Seed, o.StatsCache,
            o.Real is null ? SamplerOptions.Choice(o.Sampling) : null, o.Guidance, o.Real);
        var report = ProgressBars.Run(context, progress => FidEvaluation.Run(model, request, progress, context.Out.WriteLine));
        var fractions = report.ClassFractions;
        context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"FID {report.Fid:0.000}: {report.Samples:N0} {(o.Real is null ? "samples" : "images")} ({report.Sampler}{(report.Steps is null ? "" : $", {report.Steps} steps")}) vs {report.ReferenceImages:N0} images of {report.Reference}; {report.Seconds:0.0} s"));
        context.Out.WriteLine($"  {FidEvaluation.Note}");
        context.Out.WriteLine("  classes assigned by the feature network: " + string.Join(" ", fractions.Select((f, k) => string.Create(CultureInfo.InvariantCulture, $"{k}:{f:P1}"))));
        context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  unplaced (top-class probability < {FeatureAccumulator.PlacementThreshold}): {report.UnplacedFraction:P1}; class-histogram entropy {report.ClassEntropyBits:F3} bits (uniform: {Math.Log2(fractions.Count):F3})"));
        if (report.RequestedClassAccuracy is double accuracy)
            context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  the feature network agrees with the requested class for {accuracy:P1} of the samples"));
        if (o.OutputJson is not null) WriteJson(context, o.OutputJson, report);
        return report;
    }

    private static void WriteJson<T>(CliContext context, string path, T report)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(path, Json.Serialize(report) + "\n");
        context.Out.WriteLine($"wrote {path}");
    }
}
