using Ddpm.Data;
using Ddpm.Models;
using Ddpm.Training;
using TorchSharp;

namespace Ddpm.Generation;

/// <summary>What a training run starts from: a preset by name, and the training split of a data set checked against the model.</summary>
public static class TrainingInput
{
    /// <summary>The model of preset <paramref name="name"/>; an unknown name is an <see cref="InvalidRequestException"/> listing the known ones.</summary>
    public static ModelConfig Preset(string name) => ModelPresets.TryGet(name)
        ?? throw new InvalidRequestException("preset", $"unknown preset '{name}'. Known presets: {string.Join(", ", ModelPresets.Names)}.");

    /// <summary>The default preset for a data set: the toy MLP for 2-D toy data, else fashion-mnist.</summary>
    public static string DefaultPreset(string dataset) => ToyDatasets.IsToy(dataset) ? ModelPresets.ToyMlp : "fashion-mnist";

    /// <summary>Loads the training split of <paramref name="name"/> as training data for <paramref name="model"/> (toy sets: 100,000 points drawn with <paramref name="seed"/>).</summary>
    public static TrainingData LoadData(string name, string? dataDir, ModelConfig model, long seed)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(model);
        if (ToyDatasets.IsToy(name))
        {
            if (model.IsImageModel) throw new InvalidRequestException("preset", $"'{name}' is 2-D toy data: train it with --preset {ModelPresets.ToyMlp}.");
            var points = ToyDatasets.Sample(name, 100_000, new torch.Generator((ulong)seed)).DetachFromDisposeScope();
            return new TrainingData(points, null, name);
        }
        if (!model.IsImageModel) throw new InvalidRequestException("preset", $"--preset {ModelPresets.ToyMlp} is for 2-D toy data (toy:moons, toy:swissroll, toy:8gaussians, toy:checkerboard); pick an image preset for '{name}'.");
        var dataset = DatasetLoader.Load(name, dataDir, "train", model.UNet!.ImageSize);
        if (dataset.Channels != model.UNet.InChannels || dataset.ImageSize != model.UNet.ImageSize)
            throw new InvalidRequestException("dataset", $"'{name}' has {dataset.Channels}×{dataset.Height}×{dataset.Width} images but the model expects {model.UNet.InChannels}×{model.UNet.ImageSize}×{model.UNet.ImageSize}: " +
                (dataset.Channels != model.UNet.InChannels ? $"pass --in-channels {dataset.Channels}{(dataset.Channels == 3 ? " (or --preset rgb32)" : "")}." : $"pass --image-size {dataset.ImageSize}."));
        return new TrainingData(dataset.Images, dataset.Labels, dataset.Name, dataset.NumClasses);
    }
}
