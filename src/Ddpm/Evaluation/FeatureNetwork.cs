using Ddpm.IO;
using Ddpm.Runtime;
using Ddpm.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Evaluation;

/// <summary>The shape of a <see cref="FeatureNetwork"/>.</summary>
/// <param name="Channels">Image channels (1 or 3).</param>
/// <param name="ImageSize">Image side in pixels (at least 8).</param>
/// <param name="NumClasses">Classes of the data set the network is trained on.</param>
/// <param name="Width">Channels of the first stage; the next two have 2× and 4×.</param>
/// <param name="FeatureDimension">Width of the penultimate layer, whose activations are the FID features.</param>
public sealed record FeatureNetConfig(int Channels = 1, int ImageSize = 28, int NumClasses = 10, int Width = 32, int FeatureDimension = 128)
{
    public void Validate()
    {
        if (Channels is not (1 or 3)) throw new ArgumentException($"Channels must be 1 or 3; got {Channels}.", nameof(Channels));
        if (ImageSize < 8) throw new ArgumentException($"ImageSize must be at least 8 (two 2× poolings); got {ImageSize}.", nameof(ImageSize));
        if (NumClasses < 2) throw new ArgumentException($"NumClasses must be at least 2; got {NumClasses}.", nameof(NumClasses));
        if (Width < 8 || Width % 8 != 0) throw new ArgumentException($"Width must be a positive multiple of 8 (GroupNorm with 8 groups); got {Width}.", nameof(Width));
        if (FeatureDimension < 2) throw new ArgumentException($"FeatureDimension must be at least 2; got {FeatureDimension}.", nameof(FeatureDimension));
    }
}

/// <summary>What <c>config.json</c> of a feature-network directory holds.</summary>
public sealed record FeatureNetInfo(FeatureNetConfig Config, string Dataset, double TestAccuracy, int Epochs, long Seed, int FormatVersion = 1);

/// <summary>
/// The classifier whose penultimate activations are our FID features. FID is defined with Inception-v3 pool3
/// features (Heusel et al. 2017), but those weights cannot be downloaded here, so the network is ours: FID values
/// computed with it are comparable with each other, never with Inception-FID values from papers.
/// Architecture: three stages of 3×3 convolutions with GroupNorm and ReLU (two 2× max-poolings between them),
/// global average pooling, a fully connected layer with ReLU (the features) and a linear classifier.
/// </summary>
public sealed class FeatureNetwork : nn.Module<Tensor, Tensor>
{
    public const string ConfigFile = ModelDirectory.ConfigFile;
    public const string WeightsFile = ModelDirectory.WeightsFile;

    private readonly Sequential body;
    private readonly Linear features;
    private readonly Linear classifier;

    public FeatureNetConfig Config { get; }

    public FeatureNetwork(FeatureNetConfig config) : base("FeatureNetwork")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        int w = config.Width;
        body = nn.Sequential(
            Layers.Conv2d(config.Channels, w, 3, padding: 1), Layers.GroupNorm(8, w), nn.ReLU(),
            Layers.Conv2d(w, w, 3, padding: 1), Layers.GroupNorm(8, w), nn.ReLU(),
            nn.MaxPool2d(2),
            Layers.Conv2d(w, 2 * w, 3, padding: 1), Layers.GroupNorm(8, 2 * w), nn.ReLU(),
            Layers.Conv2d(2 * w, 2 * w, 3, padding: 1), Layers.GroupNorm(8, 2 * w), nn.ReLU(),
            nn.MaxPool2d(2),
            Layers.Conv2d(2 * w, 4 * w, 3, padding: 1), Layers.GroupNorm(8, 4 * w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten());
        features = nn.Linear(4 * w, config.FeatureDimension);
        classifier = nn.Linear(config.FeatureDimension, config.NumClasses);
        RegisterComponents();
    }

    /// <summary>The class logits [B, NumClasses] of images [B, C, H, W] in [−1, 1].</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        return classifier.forward(Features(images)).MoveToOuterDisposeScope();
    }

    /// <summary>The penultimate activations [B, FeatureDimension]: the FID features.</summary>
    public Tensor Features(Tensor images)
    {
        CheckImages(images);
        using var scope = NewDisposeScope();
        return nn.functional.relu(features.forward(body.forward(images))).MoveToOuterDisposeScope();
    }

    /// <summary>Features and logits of one batch in one pass.</summary>
    public (Tensor Features, Tensor Logits) FeaturesAndLogits(Tensor images)
    {
        using var scope = NewDisposeScope();
        var f = Features(images);
        var logits = classifier.forward(f);
        return (f.MoveToOuterDisposeScope(), logits.MoveToOuterDisposeScope());
    }

    private void CheckImages(Tensor images)
    {
        if (images.dim() != 4 || images.shape[1] != Config.Channels || images.shape[2] != Config.ImageSize || images.shape[3] != Config.ImageSize)
            throw new ArgumentException(
                $"The feature network takes [B, {Config.Channels}, {Config.ImageSize}, {Config.ImageSize}] images; got [{string.Join(", ", images.shape)}]: " +
                "use a feature network trained on the same data set as the model.", nameof(images));
    }

    /// <summary>Writes config.json and the weights as the directory <paramref name="dir"/>, atomically.</summary>
    public void Save(string dir, FeatureNetInfo info) => ModelDirectory.Save(dir, info, this);

    /// <summary>Loads a feature network written by <c>ddpm fid-net train</c>, in eval mode.</summary>
    public static (FeatureNetwork Network, FeatureNetInfo Info) Load(string dir) =>
        ModelDirectory.Load<FeatureNetwork, FeatureNetInfo>(dir, info => new FeatureNetwork(info.Config), info => info.Config.Validate(),
            "feature network", $"train one with 'ddpm fid-net train --dataset NAME --out {dir}', or use models/fid-fashion-mnist");

    /// <summary>A short fingerprint of the weights: cached real-data statistics are keyed by it.</summary>
    public static string Fingerprint(string dir) => ModelDirectory.Fingerprint(dir);
}
