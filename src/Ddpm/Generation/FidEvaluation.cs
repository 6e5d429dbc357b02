using Ddpm.Runtime;
using System.Diagnostics;
using System.Globalization;
using Ddpm.Data;
using Ddpm.Evaluation;
using Ddpm.IO;
using Ddpm.Sampling;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>
/// An FID evaluation: the feature statistics of <paramref name="Count"/> samples (or, with <paramref name="Real"/>, of
/// a seeded random subset of that split's real images) against those of a reference split, both through the feature
/// network in directory <paramref name="FeatureNetwork"/>. Reference statistics are cached in
/// <paramref name="StatsCache"/> (null: <see cref="ReferenceStatistics.DefaultDirectory"/>), and a sampling run saves
/// its progress there after every batch, so that the same request resumes it.
/// </summary>
public sealed record FidRequest(string FeatureNetwork, string? Dataset = null, string? DataDir = null, DataSplit Split = DataSplit.Test,
    int Count = 10_000, int Batch = 250, long Seed = 0, string? StatsCache = null, SamplerChoice? Sampler = null,
    ConditioningRequest? Conditioning = null, DataSplit? Real = null);

/// <summary>What an FID evaluation measured (the JSON of <c>ddpm eval fid --out</c>).</summary>
public sealed record FidResult(string Source, string Sampler, int? Steps, int? NetworkCalls, double? Eta, string? Variance, long Samples, string Reference, long ReferenceImages,
    string FeatureNetwork, double FeatureNetworkTestAccuracy, double Fid, IReadOnlyList<double> ClassFractions, double? RequestedClassAccuracy,
    string? Guidance, double Seconds, string Note, long? ResumedAfterSamples = null, string? Compute = null,
    double? UnplacedFraction = null, double? ClassEntropyBits = null)
{
    /// <summary>The entropy of the assigned-class histogram in bits: log2(K) when every class is equally common.</summary>
    public static double Entropy(IReadOnlyList<double> fractions) => -fractions.Where(f => f > 0).Sum(f => f * Math.Log2(f));
}

/// <summary>Runs FID evaluations (Heusel et al. 2017) with our own feature network.</summary>
public static class FidEvaluation
{
    public const string Note = "FID with our own Fashion-MNIST classifier's features (not Inception-v3): compare only with FIDs computed the same way.";

    /// <summary>
    /// Evaluates the samples of <paramref name="model"/> (or real images, with <see cref="FidRequest.Real"/> and a null
    /// model). <paramref name="notes"/> receives lines worth showing as they happen (where the cache and the progress
    /// file are, what was resumed).
    /// </summary>
    public static FidResult Run(DiffusionModel? model, FidRequest request, IProgress<JobProgress>? progress = null, Action<string>? notes = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if ((model is null) == (request.Real is null))
            throw new InvalidRequestException("checkpoint", "give either --checkpoint DIR (evaluate its samples) or --real train|test (evaluate real images).");
        if (request.Count < 2) throw new InvalidRequestException("n", $"--n must be an integer >= 2; got {request.Count}.");
        if (request.Batch < 1) throw new InvalidRequestException("batch", $"--batch must be an integer >= 1; got {request.Batch}.");
        var (network, info) = Evaluation.FeatureNetwork.Load(request.FeatureNetwork);
        using var _ = network;
        string name = request.Dataset ?? model?.Config.Dataset
            ?? throw new InvalidRequestException("dataset", model is null ? "--real needs --dataset NAME." : "the checkpoint does not name its data set: pass --dataset.");
        var config = network.Config;
        if (model is not null)
        {
            var unet = model.RequireImageModel("FID, defined for images,");
            if (unet.InChannels != config.Channels || unet.ImageSize != config.ImageSize)
                throw new InvalidRequestException("fid-net", $"the model makes {unet.InChannels}×{unet.ImageSize}×{unet.ImageSize} images but the feature network '{request.FeatureNetwork}' takes {config.Channels}×{config.ImageSize}×{config.ImageSize}: use a feature network trained on the model's data set.");
        }
        var watch = Stopwatch.StartNew();
        string split = NllEvaluation.SplitName(request.Split);
        using var reference = DatasetLoader.Load(name, request.DataDir, split);
        if (reference.Channels != config.Channels || reference.Height != config.ImageSize || reference.Width != config.ImageSize)
            throw new InvalidRequestException("dataset", $"'{reference.Name}' has {reference.Channels}×{reference.Height}×{reference.Width} images but the feature network takes {config.Channels}×{config.ImageSize}×{config.ImageSize}: use a feature network trained on '{reference.Name}'.");
        string cacheDir = request.StatsCache ?? ReferenceStatistics.DefaultDirectory();
        var referenceStats = ReferenceStats(network, request, reference, cacheDir, progress, notes);

        using var candidate = new FeatureAccumulator(network);
        var source = request.Real is DataSplit realSplit
            ? RealFeatures(candidate, request, name, realSplit, progress, cancellationToken)
            : SampledFeatures(candidate, model!, request, cacheDir, progress, notes, cancellationToken);
        double value = FrechetDistance.Compute(candidate.Statistics(), referenceStats);
        watch.Stop();
        var fractions = candidate.ClassCounts.Select(c => (double)c / candidate.Count).ToArray();
        var settings = source.Settings;
        return new FidResult(source.Name, source.Description, settings?.Steps, source.NetworkCalls, settings is { Kind: SamplerKind.Ddim } ? settings.Eta : null,
            request.Sampler?.Variance is { } variance ? EnumNames.Kebab(variance) : null, candidate.Count, $"{reference.Name}:{split}", reference.Count,
            request.FeatureNetwork, info.TestAccuracy, value, fractions, candidate.Labelled > 0 ? (double)candidate.LabelledCorrect / candidate.Labelled : null,
            source.Guidance, watch.Elapsed.TotalSeconds + (source.Resumed?.Seconds ?? 0), Note, source.Resumed?.Samples,
            model?.Compute.Describe(), (double)candidate.Unplaced / candidate.Count, FidResult.Entropy(fractions));
    }

    /// <summary>Where the candidate features came from: a name, the sampler in words, its settings and calls, guidance, and a resumed start.</summary>
    private sealed record CandidateSource(string Name, string Description, SamplerSettings? Settings = null, int? NetworkCalls = null,
        string? Guidance = null, ResumePoint? Resumed = null);

    /// <summary>A seeded random subset of a real split, so that a count below the split's size is not biased by the file's order.</summary>
    private static CandidateSource RealFeatures(FeatureAccumulator candidate, FidRequest request, string name, DataSplit realSplit,
        IProgress<JobProgress>? progress, CancellationToken cancellationToken)
    {
        string realName = NllEvaluation.SplitName(realSplit);
        using var images = DatasetLoader.Load(name, request.DataDir, realName);
        if (request.Count > images.Count) throw new InvalidRequestException("n", $"--n {request.Count} is more than the {images.Count:N0} images of the {realName} split.");
        using var generator = new Generator((ulong)request.Seed);
        using var order = randperm(images.Count, generator: generator);
        var indices = order.narrow(0, 0, request.Count).data<long>().Select(i => (int)i).ToArray();
        AddImages(candidate, images, indices, request.Batch, $"features of {request.Count:N0} {realName} images", progress, cancellationToken);
        return new CandidateSource($"{images.Name}:{realName}", "real images");
    }

    /// <summary>Samples in batches into the features, saving progress after every batch so that the same request resumes.</summary>
    private static CandidateSource SampledFeatures(FeatureAccumulator candidate, DiffusionModel model, FidRequest request, string cacheDir,
        IProgress<JobProgress>? progress, Action<string>? notes, CancellationToken cancellationToken)
    {
        var settings = (request.Sampler ?? new SamplerChoice()).Resolve(model.Config.Diffusion, clip: true, model.Config.Sampling);
        using var scheduler = SamplerFactory.Create(model.Config.Diffusion, settings);
        string samplerName = SamplerFactory.Describe(settings, model.Config.Diffusion);
        int calls = scheduler.Timesteps.Count;
        var conditioningRequest = request.Conditioning ?? ConditioningRequest.None;
        if (conditioningRequest.AllClasses) throw new InvalidRequestException("class", "FID samples the classes in turn or one class; 'all' is for ddpm sample.");
        using var conditioning = Conditioning.Create(model, conditioningRequest);
        if (conditioning.Description is not null) samplerName += ", " + conditioning.Description;
        using var generator = new Generator((ulong)request.Seed);
        int batches = (request.Count + request.Batch - 1) / request.Batch;
        string key = ProgressKey(request, model, settings, conditioningRequest);
        var saved = new FeatureProgress(Path.Combine(cacheDir, "progress", $"fid-{key}.safetensors"), key);
        if (batches > 1)
            notes?.Invoke($"progress is saved after every batch in {saved.Path}: if this run stops, the same command resumes it");
        string phase = $"{samplerName}, {settings.Steps} steps, {request.Count:N0} samples";
        long total = (long)batches * calls;
        progress?.Report(new JobProgress(phase, 0, total));
        var resumed = saved.Accumulate(candidate, generator, batches, b =>
        {
            int start = b * request.Batch, size = Math.Min(request.Batch, request.Count - start);
            var labels = conditioning.Labels(start, size, request.Count);
            var guided = conditioning.ForBatch(labels, settings.Kind);
            var shape = new[] { (long)size }.Concat(model.Model.SampleShape).ToArray();
            long done = (long)b * calls;
            var stepProgress = new InlineProgress<SamplingProgress>(p => progress?.Report(new JobProgress(phase, done + p.Step, total)));
            return (DiffusionSampler.Sample(scheduler, guided.Denoiser, shape, generator, progress: stepProgress, meanShift: guided.MeanShift,
                cancellationToken: cancellationToken, device: model.Device).On(CPU), labels);
        });
        if (resumed is not null)
            notes?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"resumed: the first {resumed.Samples:N0} samples ({resumed.Batches} batches, {resumed.Seconds:0} s) came from an earlier run of this command"));
        return new CandidateSource(model.Directory, samplerName, settings, calls, conditioning.Description, resumed);
    }

    /// <summary>The reference split's feature statistics: cached per (feature network, data set, split, count).</summary>
    private static GaussianStatistics ReferenceStats(FeatureNetwork network, FidRequest request, ImageDataset reference, string cacheDir,
        IProgress<JobProgress>? progress, Action<string>? notes)
    {
        string split = NllEvaluation.SplitName(request.Split);
        string cachePath = Path.Combine(cacheDir, ReferenceStatistics.FileName(Evaluation.FeatureNetwork.Fingerprint(request.FeatureNetwork), reference.Name, split, reference.Count));
        if (ReferenceStatistics.TryLoad(cachePath) is { } hit)
        {
            notes?.Invoke($"reference statistics from the cache: {cachePath}");
            return hit.Statistics;
        }
        using var accumulator = new FeatureAccumulator(network);
        AddImages(accumulator, reference, Enumerable.Range(0, (int)reference.Count).ToArray(), request.Batch,
            $"features of the {split} split ({reference.Count:N0} images)", progress, CancellationToken.None);
        var statistics = accumulator.Statistics();
        ReferenceStatistics.Save(cachePath, statistics, accumulator.ClassCounts);
        notes?.Invoke($"reference statistics cached in {cachePath}");
        return statistics;
    }

    /// <summary>Everything that decides a sample run's features: the weights, the diffusion and sampler settings, guidance, seed, batching, count and feature network.</summary>
    private static string ProgressKey(FidRequest request, DiffusionModel model, SamplerSettings settings, ConditioningRequest conditioning) => FeatureProgress.MakeKey(
    [
        "eval fid v1",
        ModelDirectory.FileFingerprint(Path.Combine(model.Directory, model.Ema ? Checkpoint.EmaFile : Checkpoint.ModelFile)),
        Json.Serialize(model.Config), Json.Serialize(settings), Json.Serialize(conditioning), model.Compute.Describe(),
        conditioning.Classifier is string classifier ? ModelDirectory.Fingerprint(classifier) : "no classifier",
        Evaluation.FeatureNetwork.Fingerprint(request.FeatureNetwork),
        string.Create(CultureInfo.InvariantCulture, $"seed {request.Seed}, batch {request.Batch}, count {request.Count}"),
    ]);

    private static void AddImages(FeatureAccumulator accumulator, ImageDataset data, int[] indices, int batch, string phase,
        IProgress<JobProgress>? progress, CancellationToken cancellationToken)
    {
        progress?.Report(new JobProgress(phase, 0, indices.Length));
        for (int start = 0; start < indices.Length; start += batch)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            int size = Math.Min(batch, indices.Length - start);
            using var index = tensor(indices.AsSpan(start, size).ToArray().Select(i => (long)i).ToArray(), dtype: ScalarType.Int64);
            accumulator.Add(data.Images.index_select(0, index));
            progress?.Report(new JobProgress(phase, start + size, indices.Length));
        }
    }
}
