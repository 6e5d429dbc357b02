using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Evaluation;
using Ddpm.IO;
using Ddpm.Models;
using Ddpm.Runtime;
using Ddpm.Sampling;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary>What <c>ddpm eval nll</c> measured (bits/dim; the standard error is over images).</summary>
public sealed record NllReport(string Checkpoint, string Dataset, string Split, int Images, string Estimator, int NetworkEvaluationsPerImage,
    string Variance, double BitsPerDim, double StandardError, double Prior, double Kl, double Decoder, double Seconds);

/// <summary>What <c>ddpm eval fid</c> measured.</summary>
public sealed record FidReport(string Source, string Sampler, int? Steps, int? NetworkCalls, double? Eta, string? Variance, long Samples, string Reference, long ReferenceImages,
    string FeatureNetwork, double FeatureNetworkTestAccuracy, double Fid, IReadOnlyList<double> ClassFractions, double? RequestedClassAccuracy,
    string? Guidance, double Seconds, string Note, long? ResumedAfterSamples = null, string? Compute = null,
    double? UnplacedFraction = null, double? ClassEntropyBits = null);

/// <summary><c>ddpm eval nll</c> and <c>ddpm eval fid</c>: the paper's two metrics.</summary>
public static class EvalCommand
{
    public const string FidNote = "FID with our own Fashion-MNIST classifier's features (not Inception-v3): compare only with FIDs computed the same way.";

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
        var split = CliOptions.Choice("--split", "Split to evaluate.", SplitName.Test);
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

    /// <summary>The data set splits, as a choice.</summary>
    public enum SplitName { Train, Test }

    private static string Name(SplitName split) => split == SplitName.Train ? "train" : "test";

    public static NllReport RunNll(CliContext context, string checkpointPath, string? datasetName, string? dataDir, SplitName split, int count, int batch,
        int strata, VarianceType? variance, long seed, string? outputJson, bool rawWeights)
    {
        using var model = CommandInputs.LoadCheckpoint(checkpointPath, rawWeights);
        var unet = model.Model.UNet ?? throw new CliUsageException($"'{model.Directory}' holds a 2-D toy model; bits/dim is defined for 8-bit images.");
        int T = model.Timesteps;
        if (strata > T - 1) throw new CliUsageException($"--strata must be from 1 to T - 1 = {T - 1}, or 0 for all {T} terms; got {strata}.");
        DiffusionConfig config;
        try { config = SamplerFactory.WithVariance(model.Config.Diffusion, variance); }
        catch (ArgumentException e) { throw new CliUsageException(e.Message); }
        string name = datasetName ?? model.Config.Dataset ?? throw new CliUsageException("the checkpoint does not name its data set: pass --dataset.");
        using var data = DatasetLoader.Load(name, dataDir, Name(split), name.StartsWith(DatasetLoader.FolderPrefix, StringComparison.OrdinalIgnoreCase) ? unet.ImageSize : null);
        if (data.Channels != unet.InChannels || data.Height != unet.ImageSize || data.Width != unet.ImageSize)
            throw new CliUsageException($"'{data.Name}' has {data.Channels}×{data.Height}×{data.Width} images but the checkpoint's model takes {unet.InChannels}×{unet.ImageSize}×{unet.ImageSize}: evaluate it on the data set it was trained on.");
        if (count > data.Count) throw new CliUsageException($"--n {count} is more than the {data.Count:N0} images of the {Name(split)} split of '{data.Name}'.");
        if (model.Model.NumClasses > 0 && !data.IsLabelled)
            throw new CliUsageException($"the checkpoint is class-conditional but '{data.Name}' has no labels.");

        using var diffusion = new GaussianDiffusion(config);
        using var generator = new Generator((ulong)seed);
        int perImage = strata == 0 ? T : strata + 1;
        var totals = new List<double>(count);
        double prior = 0, kl = 0, decoder = 0;
        var watch = Stopwatch.StartNew();
        string estimator = strata == 0 ? $"all {T} terms" : $"stratified, {strata} timesteps per image";
        CommandInputs.WithProgress(context, $"bits/dim ({estimator}), {count} images", (long)count * perImage, task =>
        {
            for (int start = 0; start < count; start += batch)
            {
                using var scope = NewDisposeScope();
                int size = Math.Min(batch, count - start);
                var x0 = data.Images.narrow(0, start, size);
                var labels = model.Model.NumClasses > 0 ? data.Labels!.narrow(0, start, size) : null;
                var denoiser = model.Denoising.AsDenoiser(labels);
                long done = (long)start * perImage;
                var progress = new InlineProgress<int>(k => task.Value = done + (long)k * size);
                Tensor total, p, k, d;
                if (strata == 0)
                {
                    var r = diffusion.CalcBpdLoop(denoiser, x0, generator, clipDenoised: true, progress);
                    using (r.Vb) using (r.X0Mse)
                    {
                        total = r.Total; p = r.Prior;
                        d = r.Vb.select(1, 0).clone();
                        k = r.Vb.narrow(1, 1, T - 1).sum(1);
                    }
                }
                else
                {
                    var r = diffusion.EstimateBpd(denoiser, x0, strata, generator, clipDenoised: true, progress);
                    (total, p, k, d) = (r.Total, r.Prior, r.Kl, r.Decoder);
                }
                using (total) using (p) using (k) using (d)
                {
                    totals.AddRange(total.data<double>().ToArray());
                    prior += p.sum().item<double>();
                    kl += k.sum().item<double>();
                    decoder += d.sum().item<double>();
                }
            }
        });
        watch.Stop();
        double mean = totals.Average();
        double se = Math.Sqrt(totals.Sum(v => (v - mean) * (v - mean)) / (count - 1) / count);
        var report = new NllReport(model.Directory, data.Name, Name(split), count, estimator, perImage, CliOptions.Kebab(config.Variance),
            mean, se, prior / count, kl / count, decoder / count, watch.Elapsed.TotalSeconds);
        context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"NLL {report.BitsPerDim:0.0000} ± {report.StandardError:0.0000} bits/dim (standard error over {count} images of the {report.Split} split of {data.Name}; {estimator}; variance {report.Variance})"));
        context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  prior L_T {report.Prior:0.00000}, KL terms L_1..L_{T - 1} {report.Kl:0.0000}, decoder L_0 {report.Decoder:0.0000}; {report.Seconds:0.0} s ({report.Seconds / count:0.00} s per image)"));
        if (outputJson is not null) WriteJson(context, outputJson, report);
        return report;
    }

    // ------------------------------------------------------------------ fid

    private static Command CreateFid(CliContext context)
    {
        var checkpoint = CliOptions.Text("--checkpoint", "Checkpoint (or run) directory whose samples are evaluated.", "DIR");
        var real = new Option<SplitName?>("--real")
        {
            Description = "Evaluate real images of this split instead of samples (e.g. --real train: FID(train vs test), the floor).",
            HelpName = "train|test",
            CustomParser = r =>
            {
                string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (text == "train") return SplitName.Train;
                if (text == "test") return SplitName.Test;
                r.AddError($"--real must be train or test; got '{text}'");
                return null;
            },
        };
        var fidNet = CommandInputs.RequiredText("--fid-net", "Feature network directory written by 'ddpm fid-net train' (shipped: models/fid-fashion-mnist).", "DIR");
        var dataset = CliOptions.Text("--dataset", "Reference data set (default: the checkpoint's).", "NAME");
        var dataDir = CliOptions.Text("--data-dir", "Directory of the data set files (default: the data set's standard location).", "DIR");
        var split = CliOptions.Choice("--split", "Reference split.", SplitName.Test);
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
            SplitName? realSplit = parse.GetValue(real);
            if ((ckpt is null) == (realSplit is null))
                throw new CliUsageException("give either --checkpoint DIR (evaluate its samples) or --real train|test (evaluate real images).");
            var values = sampling.Read(parse);
            // Checked before anything is loaded; checked again against the checkpoint in RunFid.
            SamplerOptions.Resolve(values with { Steps = 1 }, new DiffusionConfig(), clip: true);
            RunFid(context, new FidOptions(ckpt, realSplit, parse.GetValue(fidNet)!, parse.GetValue(dataset), parse.GetValue(dataDir), parse.GetValue(split),
                values, parse.GetValue(n), parse.GetValue(batch), parse.GetValue(seed), parse.GetValue(cache), parse.GetValue(output),
                new Guide.Request(parse.GetValue(cls), false, parse.GetResult(guidance) is { Implicit: false } ? parse.GetValue(guidance) : null,
                    parse.GetValue(classifier), parse.GetValue(classifierScale))));
            return ExitCodes.Success;
        });
        return fid;
    }

    public sealed record FidOptions(string? Checkpoint, SplitName? Real, string FidNet, string? Dataset, string? DataDir, SplitName Split,
        SamplerOptions.Values Sampling, int Count, int Batch, long Seed, string? StatsCache, string? OutputJson, Guide.Request? Guidance = null);

    public static FidReport RunFid(CliContext context, FidOptions o)
    {
        var (network, info) = FeatureNetwork.Load(o.FidNet);
        using var _ = network;
        using var model = o.Checkpoint is null ? null : CommandInputs.LoadCheckpoint(o.Checkpoint, rawWeights: false, SamplerOptions.Compute(o.Sampling));
        string name = o.Dataset ?? model?.Config.Dataset
            ?? throw new CliUsageException(model is null ? "--real needs --dataset NAME." : "the checkpoint does not name its data set: pass --dataset.");
        var config = network.Config;
        if (model is not null)
        {
            var unet = model.Model.UNet ?? throw new CliUsageException($"'{model.Directory}' holds a 2-D toy model; FID is defined for images.");
            if (unet.InChannels != config.Channels || unet.ImageSize != config.ImageSize)
                throw new CliUsageException($"the model makes {unet.InChannels}×{unet.ImageSize}×{unet.ImageSize} images but the feature network '{o.FidNet}' takes {config.Channels}×{config.ImageSize}×{config.ImageSize}: use a feature network trained on the model's data set.");
        }
        var watch = Stopwatch.StartNew();

        // Reference statistics: cached per (data set, split, count, feature network).
        using var reference = DatasetLoader.Load(name, o.DataDir, Name(o.Split));
        if (reference.Channels != config.Channels || reference.Height != config.ImageSize || reference.Width != config.ImageSize)
            throw new CliUsageException($"'{reference.Name}' has {reference.Channels}×{reference.Height}×{reference.Width} images but the feature network takes {config.Channels}×{config.ImageSize}×{config.ImageSize}: use a feature network trained on '{reference.Name}'.");
        string cacheDir = o.StatsCache ?? ReferenceStatistics.DefaultDirectory();
        string cachePath = Path.Combine(cacheDir, ReferenceStatistics.FileName(FeatureNetwork.Fingerprint(o.FidNet), reference.Name, Name(o.Split), reference.Count));
        var cached = ReferenceStatistics.TryLoad(cachePath);
        GaussianStatistics referenceStats;
        if (cached is { } hit)
        {
            referenceStats = hit.Statistics;
            context.Out.WriteLine($"reference statistics from the cache: {cachePath}");
        }
        else
        {
            using var accumulator = new FeatureAccumulator(network);
            CommandInputs.WithProgress(context, $"features of the {Name(o.Split)} split ({reference.Count:N0} images)", reference.Count, task =>
                AddImages(accumulator, reference, Enumerable.Range(0, (int)reference.Count).ToArray(), o.Batch, done => task.Value = done));
            referenceStats = accumulator.Statistics();
            ReferenceStatistics.Save(cachePath, referenceStats, accumulator.ClassCounts);
            context.Out.WriteLine($"reference statistics cached in {cachePath}");
        }

        using var candidate = new FeatureAccumulator(network);
        ResumePoint? resumed = null;
        string source, samplerName;
        string? guideDescription = null;
        int? steps = null, networkCalls = null;
        if (o.Real is SplitName realSplit)
        {
            using var images = DatasetLoader.Load(name, o.DataDir, Name(realSplit));
            if (o.Count > images.Count) throw new CliUsageException($"--n {o.Count} is more than the {images.Count:N0} images of the {Name(realSplit)} split.");
            // A seeded random subset, so that --n below the split's size is not biased by the file's order.
            using var generator = new Generator((ulong)o.Seed);
            using var order = randperm(images.Count, generator: generator);
            var indices = order.narrow(0, 0, o.Count).data<long>().Select(i => (int)i).ToArray();
            CommandInputs.WithProgress(context, $"features of {o.Count:N0} {Name(realSplit)} images", o.Count, task =>
                AddImages(candidate, images, indices, o.Batch, done => task.Value = done));
            source = $"{images.Name}:{Name(realSplit)}";
            samplerName = "real images";
        }
        else
        {
            var settings = SamplerOptions.Resolve(o.Sampling, model!.Config.Diffusion, clip: true);
            int s = settings.Steps;
            steps = s;
            using var scheduler = SamplerFactory.Create(model.Config.Diffusion, settings);
            samplerName = SamplerFactory.Describe(settings, model.Config.Diffusion);
            int calls = scheduler.Timesteps.Count;
            networkCalls = calls;
            using var guide = Guide.Create(o.Guidance ?? new Guide.Request(null, false, null, null, 1.0), model);
            guideDescription = guide.Description;
            if (guideDescription is not null) samplerName += ", " + guideDescription;
            int classes = guide.Classes;
            using var generator = new Generator((ulong)o.Seed);
            int batches = (o.Count + o.Batch - 1) / o.Batch;
            string key = ProgressKey(o, model, settings);
            var saved = new FeatureProgress(Path.Combine(cacheDir, "progress", $"fid-{key}.safetensors"), key);
            if (batches > 1)
                context.Out.WriteLine($"progress is saved after every batch in {saved.Path}: if this run stops, the same command resumes it");
            CommandInputs.WithProgress(context, $"{samplerName}, {s} steps, {o.Count:N0} samples", (long)batches * calls, task =>
            {
                resumed = saved.Accumulate(candidate, generator, batches, b =>
                {
                    int start = b * o.Batch, size = Math.Min(o.Batch, o.Count - start);
                    var labels = classes > 0 ? tensor(Enumerable.Range(start, size).Select(i => (long)(o.Guidance?.Class ?? i % classes)).ToArray(), dtype: ScalarType.Int64) : null;
                    var shape = new[] { (long)size }.Concat(model.Model.SampleShape).ToArray();
                    return (DiffusionSampler.Sample(scheduler, guide.Denoiser(labels, scheduler), shape, generator, progress: new OffsetProgress(task, (long)b * calls)), labels);
                });
            });
            if (resumed is not null)
                context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"resumed: the first {resumed.Samples:N0} samples ({resumed.Batches} batches, {resumed.Seconds:0} s) came from an earlier run of this command"));
            source = model.Directory;
        }
        double value = FrechetDistance.Compute(candidate.Statistics(), referenceStats);
        watch.Stop();
        var fractions = candidate.ClassCounts.Select(c => (double)c / candidate.Count).ToArray();
        var report = new FidReport(source, samplerName, steps, networkCalls, o.Sampling.Sampler == SamplerKind.Ddim && o.Real is null ? o.Sampling.Eta : null,
            o.Sampling.Variance is null ? null : CliOptions.Kebab(o.Sampling.Variance.Value), candidate.Count, $"{reference.Name}:{Name(o.Split)}", reference.Count,
            o.FidNet, info.TestAccuracy, value, fractions, candidate.Labelled > 0 ? (double)candidate.LabelledCorrect / candidate.Labelled : null,
            guideDescription, watch.Elapsed.TotalSeconds + (resumed?.Seconds ?? 0), FidNote, resumed?.Samples,
            model is null ? null : NetworkCompute(model).Describe(), (double)candidate.Unplaced / candidate.Count, ClassEntropyBits(fractions));
        context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"FID {value:0.000}: {report.Samples:N0} {(o.Real is null ? "samples" : "images")} ({samplerName}{(steps is null ? "" : $", {steps} steps")}) vs {report.ReferenceImages:N0} images of {report.Reference}; {report.Seconds:0.0} s"));
        context.Out.WriteLine($"  {FidNote}");
        context.Out.WriteLine("  classes assigned by the feature network: " + string.Join(" ", fractions.Select((f, k) => string.Create(CultureInfo.InvariantCulture, $"{k}:{f:P1}"))));
        context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  unplaced (top-class probability < {FeatureAccumulator.PlacementThreshold}): {report.UnplacedFraction:P1}; class-histogram entropy {ClassEntropyBits(fractions):F3} bits (uniform: {Math.Log2(fractions.Length):F3})"));
        if (report.RequestedClassAccuracy is double accuracy)
            context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  the feature network agrees with the requested class for {accuracy:P1} of the samples"));
        if (o.OutputJson is not null) WriteJson(context, o.OutputJson, report);
        return report;
    }

    /// <summary>The entropy of the assigned-class histogram in bits: log2(K) when every class is equally common.</summary>
    public static double ClassEntropyBits(IReadOnlyList<double> fractions) => -fractions.Where(f => f > 0).Sum(f => f * Math.Log2(f));

    private static ComputeSettings NetworkCompute(LoadedModel model) => model.Network is UNet unet ? unet.Compute : ComputeSettings.Reference;

    /// <summary>Everything that decides a sample run's features: the weights, the diffusion and sampler settings, guidance, seed, batching, count and feature network.</summary>
    private static string ProgressKey(FidOptions o, LoadedModel model, SamplerSettings settings) => FeatureProgress.MakeKey(
    [
        "eval fid v1",
        ModelDirectory.FileFingerprint(Path.Combine(model.Directory, model.Ema ? Checkpoint.EmaFile : Checkpoint.ModelFile)),
        Json.Serialize(model.Config), Json.Serialize(settings), Json.Serialize(o.Guidance), NetworkCompute(model).Describe(),
        o.Guidance?.Classifier is string classifier ? ModelDirectory.Fingerprint(classifier) : "no classifier",
        FeatureNetwork.Fingerprint(o.FidNet),
        string.Create(CultureInfo.InvariantCulture, $"seed {o.Seed}, batch {o.Batch}, count {o.Count}"),
    ]);

    private static void AddImages(FeatureAccumulator accumulator, ImageDataset data, int[] indices, int batch, Action<long> progress)
    {
        for (int start = 0; start < indices.Length; start += batch)
        {
            using var scope = NewDisposeScope();
            int size = Math.Min(batch, indices.Length - start);
            using var index = tensor(indices.AsSpan(start, size).ToArray().Select(i => (long)i).ToArray(), dtype: ScalarType.Int64);
            accumulator.Add(data.Images.index_select(0, index));
            progress(start + size);
        }
    }

    private static void WriteJson<T>(CliContext context, string path, T report)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(path, Json.Serialize(report) + "\n");
        context.Out.WriteLine($"wrote {path}");
    }
}
