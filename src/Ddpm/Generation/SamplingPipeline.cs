using Ddpm.Runtime;
using System.Diagnostics;
using Ddpm.Data;
using Ddpm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>
/// Which steps of the denoising chain to keep for an animation: those of the first <paramref name="Samples"/> samples
/// of the first batch, at most <paramref name="MaxFrames"/> steps (evenly spaced, always the last).
/// </summary>
public sealed record FrameCapture(int Samples = 16, int MaxFrames = 48)
{
    /// <summary>The step indices (0-based, ascending) kept out of <paramref name="steps"/>.</summary>
    public int[] Steps(int steps)
    {
        if (steps <= MaxFrames) return Enumerable.Range(0, steps).ToArray();
        return Enumerable.Range(0, MaxFrames).Select(i => (int)Math.Round((double)i * (steps - 1) / (MaxFrames - 1))).Distinct().ToArray();
    }
}

/// <summary>
/// A sampling job: <paramref name="Count"/> samples (per class with <see cref="ConditioningRequest.AllClasses"/>) in
/// batches of <paramref name="Batch"/>, all randomness from one generator seeded with <paramref name="Seed"/>.
/// <paramref name="InitialNoise"/>, when given, is x_T of every sample ([N, ...] for the N samples, float32; diffusers'
/// latents) instead of a draw from the generator.
/// </summary>
public sealed record SamplingRequest(SamplerChoice Sampler, int Count = 16, int Batch = 64, long Seed = 0, ConditioningRequest? Conditioning = null, FrameCapture? Frames = null,
    Tensor? InitialNoise = null);

/// <summary>
/// One kept step of the chain: after step <see cref="Step"/> (0-based) at model timestep <see cref="Timestep"/>, the
/// sample is at the paper's noise level <see cref="LevelAfter"/> (0: clean); x_t and x̂_0 of the captured samples.
/// </summary>
public sealed record DenoisingFrame(int Step, int Timestep, int LevelAfter, Tensor Sample, Tensor PredictedX0);

/// <summary>One step of one batch, as it happens (valid only during the callback).</summary>
public readonly record struct SampleStep(int Batch, int Batches, SamplingStepView View);

/// <summary>What a sampling job made. Owns its tensors: dispose it.</summary>
public sealed class SamplingResult : IDisposable
{
    internal SamplingResult(Tensor samples, Tensor? labels, IReadOnlyList<DenoisingFrame> frames, SamplerSettings settings, string description,
        int networkCalls, TimeSpan elapsed, int countPerClass, bool allClasses, Tensor? reference, string? referenceName)
    {
        Samples = samples;
        Labels = labels;
        Frames = frames;
        Settings = settings;
        Description = description;
        NetworkCalls = networkCalls;
        Elapsed = elapsed;
        CountPerClass = countPerClass;
        AllClasses = allClasses;
        Reference = reference;
        ReferenceName = referenceName;
    }

    /// <summary>[N, C, H, W] images in [−1, 1] or [N, 2] points, float32.</summary>
    public Tensor Samples { get; }
    /// <summary>The class of each sample [N] int64, or null for unconditional sampling.</summary>
    public Tensor? Labels { get; }
    public IReadOnlyList<DenoisingFrame> Frames { get; }
    public SamplerSettings Settings { get; }
    /// <summary>The sampler and guidance in words: "DDIM (eta 0), classifier-free guidance w = 3".</summary>
    public string Description { get; }
    /// <summary>Network calls per batch (Heun: 2·steps − 1).</summary>
    public int NetworkCalls { get; }
    public TimeSpan Elapsed { get; }
    /// <summary>The requested count: per class with <see cref="AllClasses"/>.</summary>
    public int CountPerClass { get; }
    public bool AllClasses { get; }
    public bool IsImages => Samples.dim() == 4;
    /// <summary>For toy models trained on a known point set: points of that set for comparison (drawn after the samples), else null.</summary>
    public Tensor? Reference { get; }
    public string? ReferenceName { get; }

    public void Dispose()
    {
        Samples.Dispose();
        Labels?.Dispose();
        Reference?.Dispose();
        foreach (var f in Frames) { f.Sample.Dispose(); f.PredictedX0.Dispose(); }
    }
}

/// <summary>Runs sampling jobs: the batch-and-label loop every front end shares.</summary>
public static class SamplingPipeline
{
    /// <summary>Toy models get at most this many reference points.</summary>
    public const int MaxReferencePoints = 20_000;

    /// <summary>
    /// Draws the samples of <paramref name="request"/> from <paramref name="model"/>. Progress is reported in network
    /// calls over all batches; <paramref name="onStep"/> sees every step of every batch; cancellation is checked
    /// before each step. Problems with the request are <see cref="InvalidRequestException"/>s, raised before any work.
    /// </summary>
    public static SamplingResult Run(DiffusionModel model, SamplingRequest request, IProgress<JobProgress>? progress = null,
        Action<SampleStep>? onStep = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        if (request.Count < 1) throw new InvalidRequestException("n", $"--n must be an integer >= 1; got {request.Count}.");
        if (request.Batch < 1) throw new InvalidRequestException("batch", $"--batch must be an integer >= 1; got {request.Batch}.");
        bool image = model.Model.IsImageModel;
        var settings = request.Sampler.Resolve(model.Config.Diffusion, clip: image, model.Config.Sampling);
        using var conditioning = Conditioning.Create(model, request.Conditioning);
        bool allClasses = request.Conditioning?.AllClasses ?? false;
        int count = conditioning.TotalCount(request.Count);
        if (request.InitialNoise is { } noise)
        {
            var expected = new[] { (long)count }.Concat(model.Model.SampleShape).ToArray();
            if (!noise.shape.SequenceEqual(expected))
                throw new InvalidRequestException("initial-noise", $"the initial noise has shape [{string.Join(", ", noise.shape)}] but {count} samples of this model need [{string.Join(", ", expected)}]: pass x_T for every sample, or change --n.");
        }
        using var scheduler = SamplerFactory.Create(model.Config.Diffusion, settings);
        int calls = scheduler.Timesteps.Count;
        int batches = (count + request.Batch - 1) / request.Batch;
        string description = SamplerFactory.Describe(settings, model.Config.Diffusion);
        if (conditioning.Description is not null) description += ", " + conditioning.Description;
        string phase = $"{description}, {settings.Steps} steps, {count} samples";
        var timesteps = scheduler.Timesteps.ToArray();
        int[] frameSteps = request.Frames?.Steps(calls) ?? Array.Empty<int>();

        using var generator = new Generator((ulong)request.Seed);
        var parts = new List<Tensor>();
        var labelParts = new List<Tensor>();
        var frames = new List<DenoisingFrame>();
        var watch = Stopwatch.StartNew();
        try
        {
            progress?.Report(new JobProgress(phase, 0, (long)calls * batches));
            for (int b = 0; b < batches; b++)
            {
                int start = b * request.Batch, size = Math.Min(request.Batch, count - start);
                var labels = conditioning.Labels(start, size, request.Count);
                if (labels is not null) labelParts.Add(labels);
                var guided = conditioning.ForBatch(labels, settings.Kind);
                int batch = b;
                Action<SamplingStepView>? stepObserver = onStep is null && (b > 0 || frameSteps.Length == 0) ? null : view =>
                {
                    onStep?.Invoke(new SampleStep(batch, batches, view));
                    if (batch == 0) CaptureFrame(frames, frameSteps, timesteps, view, image ? Math.Min(request.Frames?.Samples ?? 0, size) : size);
                };
                long done = (long)b * calls;
                var stepProgress = progress is null ? null : new InlineProgress<SamplingProgress>(p => progress.Report(new JobProgress(phase, done + p.Step, (long)calls * batches)));
                var shape = new[] { (long)size }.Concat(model.Model.SampleShape).ToArray();
                using var noiseScope = NewDisposeScope();
                var xT = (request.InitialNoise is { } given
                    ? given.narrow(0, start, size).to_type(ScalarType.Float32)
                    : randn(shape, dtype: ScalarType.Float32, generator: generator)).On(model.Device);
                var samples = DiffusionSampler.Sample(scheduler, guided.Denoiser, xT, generator, progress: stepProgress, onStep: stepObserver,
                    meanShift: guided.MeanShift, cancellationToken: cancellationToken);
                parts.Add(samples.On(CPU).DetachFromDisposeScope());
            }
            watch.Stop();
            var (reference, referenceName) = image ? (null, null) : ReferencePoints(model, request.Count, generator);
            var all = cat(parts.ToArray(), 0).DetachFromDisposeScope();
            var allLabels = labelParts.Count > 0 ? cat(labelParts.ToArray(), 0).DetachFromDisposeScope() : null;
            var result = new SamplingResult(all, allLabels, frames.ToList(), settings, description, calls, watch.Elapsed, request.Count, allClasses, reference, referenceName);
            frames.Clear();
            return result;
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
            foreach (var l in labelParts) l.Dispose();
            foreach (var f in frames) { f.Sample.Dispose(); f.PredictedX0.Dispose(); }
        }
    }

    /// <summary>Keeps x_t and x̂_0 of the first <paramref name="keep"/> samples when the step is one of <paramref name="frameSteps"/>.</summary>
    private static void CaptureFrame(List<DenoisingFrame> frames, int[] frameSteps, int[] timesteps, SamplingStepView view, long keep)
    {
        if (Array.BinarySearch(frameSteps, view.Step) < 0) return;
        // The paper's t of the sample after this step: the next timestep in the list (+1), or 0 after the last.
        int level = view.Step + 1 < timesteps.Length ? timesteps[view.Step + 1] + 1 : 0;
        frames.Add(new DenoisingFrame(view.Step, view.Timestep, level,
            view.Sample.narrow(0, 0, keep).detach().clone().On(CPU).DetachFromDisposeScope(),
            view.PredictedX0.narrow(0, 0, keep).detach().clone().On(CPU).DetachFromDisposeScope()));
    }

    /// <summary>For a toy model trained on a known point set: points of that set, drawn after the samples so that they do not depend on it.</summary>
    private static (Tensor? Points, string? Name) ReferencePoints(DiffusionModel model, int count, Generator generator)
    {
        string? dataset = model.Config.Dataset;
        if (dataset is null || !ToyDatasets.Names.Contains(dataset.Trim().ToLowerInvariant())) return (null, null);
        return (ToyDatasets.Sample(dataset, Math.Min(count, MaxReferencePoints), generator).DetachFromDisposeScope(), dataset);
    }
}
