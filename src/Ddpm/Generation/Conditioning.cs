using Ddpm.Diffusion;
using Ddpm.Guidance;
using Ddpm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>
/// What samples are conditioned on: one class (null: the classes in turn, or none for an unconditional model), every
/// class (<paramref name="AllClasses"/>: each class's samples together), classifier-free guidance of weight w
/// (class-conditional models) and classifier guidance with the noise-aware classifier in directory
/// <paramref name="Classifier"/> at scale s (any image model).
/// </summary>
public sealed record ConditioningRequest(int? Class = null, bool AllClasses = false, double? GuidanceScale = null, string? Classifier = null, double ClassifierScale = 1.0)
{
    public static ConditioningRequest None { get; } = new();
}

/// <summary>
/// A <see cref="ConditioningRequest"/> checked against a model once: the number of classes samples can be asked for,
/// the label of each sample, and per batch the guided denoiser. Holds the classifier: dispose it.
/// </summary>
public sealed class Conditioning : IDisposable
{
    private readonly DiffusionModel _model;
    private readonly ConditioningRequest _request;
    private readonly NoisyClassifier? _classifier;
    private readonly GaussianDiffusion? _diffusion;

    /// <summary>Number of classes the samples can be asked for (0: unconditional sampling).</summary>
    public int Classes { get; }

    /// <summary>A phrase for reports ("classifier-free guidance w = 3"), or null without guidance.</summary>
    public string? Description { get; }

    private Conditioning(DiffusionModel model, ConditioningRequest request, NoisyClassifier? classifier, int classes, string? description)
    {
        _model = model;
        _request = request;
        _classifier = classifier;
        _diffusion = classifier is null ? null : new GaussianDiffusion(model.Config.Diffusion);
        Classes = classes;
        Description = description;
    }

    /// <summary>Checks <paramref name="request"/> against <paramref name="model"/> and loads the classifier, if any.</summary>
    public static Conditioning Create(DiffusionModel model, ConditioningRequest? request = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        request ??= ConditioningRequest.None;
        int modelClasses = model.Model.NumClasses;
        NoisyClassifier? classifier = null;
        try
        {
            if (request.Classifier is not null)
            {
                var unet = model.Model.UNet ?? throw Invalid("classifier", $"--classifier needs an image model; '{model.Directory}' holds a 2-D toy model.");
                (classifier, var info) = NoisyClassifier.Load(request.Classifier);
                if (info.Config.Channels != unet.InChannels || info.Config.ImageSize != unet.ImageSize)
                    throw Invalid("classifier", $"the classifier '{request.Classifier}' takes {info.Config.Channels}×{info.Config.ImageSize}×{info.Config.ImageSize} images but the model makes {unet.InChannels}×{unet.ImageSize}×{unet.ImageSize}: train a classifier on the model's data set.");
                if (info.Config.Schedule != model.Config.Diffusion.Schedule)
                    throw Invalid("classifier", $"the classifier '{request.Classifier}' was trained on another noise schedule ({info.Config.Schedule.Kind}, T = {info.Config.Schedule.Timesteps}) than the model ({model.Config.Diffusion.Schedule.Kind}, T = {model.Config.Diffusion.Schedule.Timesteps}): train it with the model's schedule.");
                if (modelClasses > 0 && info.Config.NumClasses != modelClasses)
                    throw Invalid("classifier", $"the classifier has {info.Config.NumClasses} classes but the checkpoint {modelClasses}.");
                if (model.Device.type != DeviceType.CPU) classifier.to(model.Device);
            }
            if (request.GuidanceScale is not null && modelClasses == 0)
                throw Invalid("guidance-scale", $"--guidance-scale needs a class-conditional checkpoint (ddpm train --class-conditional), but '{model.Directory}' is unconditional; use --classifier DIR for classifier guidance instead.");
            int classes = modelClasses > 0 ? modelClasses : classifier?.Config.NumClasses ?? 0;
            if ((request.Class is not null || request.AllClasses) && classes == 0)
                throw Invalid("class", $"--class needs a class-conditional checkpoint or --classifier DIR, but '{model.Directory}' is unconditional (trained without labels); drop --class.");
            if (request.Class is int k && (k < 0 || k >= classes))
                throw Invalid("class", $"--class must be from 0 to {classes - 1} (the {(modelClasses > 0 ? "checkpoint" : "classifier")} has {classes} classes); got {k}.");
            var parts = new List<string>();
            if (request.GuidanceScale is double w) parts.Add(FormattableString.Invariant($"classifier-free guidance w = {w}"));
            if (classifier is not null) parts.Add(FormattableString.Invariant($"classifier guidance s = {request.ClassifierScale}"));
            return new Conditioning(model, request, classifier, classes, parts.Count > 0 ? string.Join(", ", parts) : null);
        }
        catch
        {
            classifier?.Dispose();
            throw;
        }
    }

    /// <summary>Samples to draw: <paramref name="count"/>, or <paramref name="count"/> per class with <see cref="ConditioningRequest.AllClasses"/>.</summary>
    public int TotalCount(int count) => _request.AllClasses ? count * Classes : count;

    /// <summary>The class of sample <paramref name="index"/>: the requested one, or each class's block with AllClasses, or the classes in turn.</summary>
    public int ClassOf(int index, int count) => _request.AllClasses ? index / count : _request.Class ?? index % Classes;

    /// <summary>The labels [size] int64 of samples start … start + size − 1, or null for unconditional sampling.</summary>
    public Tensor? Labels(int start, int size, int count) => Classes > 0
        ? tensor(Enumerable.Range(start, size).Select(i => (long)ClassOf(i, count)).ToArray(), dtype: ScalarType.Int64)
        : null;

    /// <summary>
    /// The model call for one batch with these labels: the network with its labels, classifier-free guidance, and
    /// classifier guidance in the form <paramref name="sampler"/> takes (<see cref="ClassifierGuidance.ForSampler"/>).
    /// </summary>
    public GuidedDenoiser ForBatch(Tensor? labels, SamplerKind sampler)
    {
        var network = _model.Denoising;
        bool conditional = _model.Model.NumClasses > 0;
        Denoiser denoiser = _request.GuidanceScale is double w && labels is not null
            ? ClassifierFreeGuidance.Create((x, t, y) => network.AsDenoiser(y)(x, t), labels, w, _model.Model.UNet!.NullClass, _model.Model.UNet.InChannels)
            : network.AsDenoiser(conditional ? labels : null);
        if (_classifier is null || labels is null) return new GuidedDenoiser(denoiser);
        return ClassifierGuidance.ForSampler(sampler, denoiser, _diffusion!, _classifier.LogProbability, labels, _request.ClassifierScale);
    }

    public void Dispose()
    {
        _classifier?.Dispose();
        _diffusion?.Dispose();
    }

    private static InvalidRequestException Invalid(string field, string message) => new(field, message);
}
