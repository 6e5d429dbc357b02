using Ddpm.Interop;
using Ddpm.Models;
using Ddpm.Runtime;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>
/// A trained network with its configuration, loaded for inference: what every job of this folder takes. Load one
/// with <see cref="Load"/>; dispose it to free the weights.
/// </summary>
public sealed class DiffusionModel : IDisposable
{
    private DiffusionModel(torch.nn.Module network, CheckpointConfig config, string directory, bool ema)
    {
        Network = network;
        Config = config;
        Directory = directory;
        Ema = ema;
    }

    /// <summary>The network: a <see cref="UNet"/> or a <see cref="ToyMlp"/>.</summary>
    public torch.nn.Module Network { get; }
    public CheckpointConfig Config { get; }
    /// <summary>The checkpoint directory the weights came from (a run directory resolves to its newest checkpoint).</summary>
    public string Directory { get; }
    /// <summary>Whether the EMA weights were loaded (false: the raw weights).</summary>
    public bool Ema { get; }

    public IDenoisingNetwork Denoising => (IDenoisingNetwork)Network;
    public ModelConfig Model => Config.Model;
    /// <summary>T, the number of training timesteps.</summary>
    public int Timesteps => Config.Diffusion.Schedule.Timesteps;
    /// <summary>The numeric path the network runs in (fp32 for the toy network).</summary>
    public ComputeSettings Compute => Network is UNet unet ? unet.Compute : ComputeSettings.Reference;
    /// <summary>Where the network's parameters live (the CPU unless loaded with another <see cref="ComputeSettings.Device"/>).</summary>
    public Device Device => Network.parameters().FirstOrDefault()?.device ?? CPU;

    /// <summary>The image network's configuration, or an <see cref="InvalidRequestException"/> saying that <paramref name="what"/> needs an image model.</summary>
    public UNetConfig RequireImageModel(string what) =>
        Model.UNet ?? throw new InvalidRequestException("checkpoint", $"'{Directory}' holds a 2-D toy model; {what} needs an image model.");

    /// <summary>
    /// Loads the network of a checkpoint directory (or of a run directory's newest checkpoint): the EMA weights unless
    /// <paramref name="rawWeights"/>. Every problem is a <see cref="CheckpointException"/> whose message names the fix.
    /// </summary>
    public static DiffusionModel Load(string path, bool rawWeights = false, ComputeSettings? compute = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        string dir = path;
        if (System.IO.Directory.Exists(path) && !File.Exists(Path.Combine(path, Checkpoint.ConfigFile)) && System.IO.Directory.Exists(Path.Combine(path, "checkpoints")))
            dir = Checkpoint.Resolve(path);
        bool diffusers = DiffusersCheckpoint.IsDiffusersDirectory(dir);
        if (rawWeights && !diffusers && System.IO.Directory.Exists(dir) && File.Exists(Path.Combine(dir, Checkpoint.ConfigFile)) && !File.Exists(Path.Combine(dir, Checkpoint.ModelFile)))
            throw new CheckpointException($"'{dir}' has no {Checkpoint.ModelFile} (a shipped model keeps only the EMA weights): drop --raw-weights.");
        var (network, config) = Checkpoint.LoadNetwork(dir, useEma: !rawWeights, compute);
        bool ema = !rawWeights && !diffusers && File.Exists(Path.Combine(dir, Checkpoint.EmaFile));
        return new DiffusionModel(network, config, dir, ema);
    }

    public void Dispose() => Network.Dispose();
}
