using Ddpm.Diffusion;
using Ddpm.Guidance;
using Ddpm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary>
/// The conditioning of <c>ddpm sample</c>: class labels, classifier-free guidance (--guidance-scale, class-conditional
/// checkpoints) and classifier guidance (--classifier, any image checkpoint), checked against the checkpoint once.
/// </summary>
public sealed class Guide : IDisposable
{
    private readonly LoadedModel _model;
    private readonly NoisyClassifier? _classifier;
    private readonly GaussianDiffusion? _diffusion;
    private readonly double? _guidanceScale;
    private readonly double _classifierScale;

    /// <summary>Number of classes the samples can be asked for (0: unconditional sampling).</summary>
    public int Classes { get; }

    /// <summary>A phrase for the summary line, or null without guidance.</summary>
    public string? Description { get; }

    private Guide(LoadedModel model, NoisyClassifier? classifier, double? guidanceScale, double classifierScale, int classes, string? description)
    {
        _model = model;
        _classifier = classifier;
        _guidanceScale = guidanceScale;
        _classifierScale = classifierScale;
        _diffusion = classifier is null ? null : new GaussianDiffusion(model.Config.Diffusion);
        Classes = classes;
        Description = description;
    }

    /// <summary>What to condition on: a class or all classes in turn, and the two guidance methods.</summary>
    public sealed record Request(int? Class, bool AllClasses, double? GuidanceScale, string? Classifier, double ClassifierScale);

    public static Guide Create(SampleOptions options, LoadedModel model) =>
        Create(new Request(options.Class, options.AllClasses, options.GuidanceScale, options.Classifier, options.ClassifierScale), model);

    public static Guide Create(Request options, LoadedModel model)
    {
        int modelClasses = model.Model.NumClasses;
        NoisyClassifier? classifier = null;
        try
        {
            if (options.Classifier is not null)
            {
                var unet = model.Model.UNet ?? throw new CliUsageException($"--classifier needs an image model; '{model.Directory}' holds a 2-D toy model.");
                (classifier, var info) = NoisyClassifier.Load(options.Classifier);
                if (info.Config.Channels != unet.InChannels || info.Config.ImageSize != unet.ImageSize)
                    throw new CliUsageException($"the classifier '{options.Classifier}' takes {info.Config.Channels}×{info.Config.ImageSize}×{info.Config.ImageSize} images but the model makes {unet.InChannels}×{unet.ImageSize}×{unet.ImageSize}: train a classifier on the model's data set.");
                if (info.Config.Schedule != model.Config.Diffusion.Schedule)
                    throw new CliUsageException($"the classifier '{options.Classifier}' was trained on another noise schedule ({info.Config.Schedule.Kind}, T = {info.Config.Schedule.Timesteps}) than the model ({model.Config.Diffusion.Schedule.Kind}, T = {model.Config.Diffusion.Schedule.Timesteps}): train it with the model's schedule.");
                if (modelClasses > 0 && info.Config.NumClasses != modelClasses)
                    throw new CliUsageException($"the classifier has {info.Config.NumClasses} classes but the checkpoint {modelClasses}.");
            }
            if (options.GuidanceScale is not null && modelClasses == 0)
                throw new CliUsageException($"--guidance-scale needs a class-conditional checkpoint (ddpm train --class-conditional), but '{model.Directory}' is unconditional; use --classifier DIR for classifier guidance instead.");
            int classes = modelClasses > 0 ? modelClasses : classifier?.Config.NumClasses ?? 0;
            if ((options.Class is not null || options.AllClasses) && classes == 0)
                throw new CliUsageException($"--class needs a class-conditional checkpoint or --classifier DIR, but '{model.Directory}' is unconditional (trained without labels); drop --class.");
            if (options.Class is int k && (k < 0 || k >= classes))
                throw new CliUsageException($"--class must be from 0 to {classes - 1} (the {(modelClasses > 0 ? "checkpoint" : "classifier")} has {classes} classes); got {k}.");
            var parts = new List<string>();
            if (options.GuidanceScale is double w) parts.Add(FormattableString.Invariant($"classifier-free guidance w = {w}"));
            if (classifier is not null) parts.Add(FormattableString.Invariant($"classifier guidance s = {options.ClassifierScale}"));
            return new Guide(model, classifier, options.GuidanceScale, options.ClassifierScale, classes, parts.Count > 0 ? string.Join(", ", parts) : null);
        }
        catch
        {
            classifier?.Dispose();
            throw;
        }
    }

    /// <summary>The denoiser for one batch with these labels; for DDPM, classifier guidance is set on the scheduler as a mean shift.</summary>
    public Denoiser Denoiser(Tensor? labels, IScheduler scheduler)
    {
        var network = _model.Denoising;
        bool conditional = _model.Model.NumClasses > 0;
        Denoiser denoiser = _guidanceScale is double w && labels is not null
            ? ClassifierFreeGuidance.Create((x, t, y) => network.AsDenoiser(y)(x, t), labels, w, _model.Model.UNet!.NullClass, _model.Model.UNet.InChannels)
            : network.AsDenoiser(conditional ? labels : null);
        if (_classifier is not null && labels is not null)
        {
            ClassifierLogProbability logp = _classifier.LogProbability;
            if (scheduler is DdpmScheduler ddpm) ddpm.MeanShift = ClassifierGuidance.ScaledGradient(logp, labels, _classifierScale);
            else denoiser = ClassifierGuidance.EpsilonGuided(denoiser, _diffusion!, logp, labels, _classifierScale);
        }
        return denoiser;
    }

    public void Dispose()
    {
        _classifier?.Dispose();
        _diffusion?.Dispose();
    }
}
