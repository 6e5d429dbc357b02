using System.Text.Json.Nodes;
using Ddpm.IO;
using Ddpm.Models;
using Ddpm.Runtime;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Interop;

/// <summary>
/// Checkpoints in diffusers' format, read and written. Two layouts are read: flat, as the google/ddpm-* repositories
/// are (config.json, diffusion_pytorch_model.safetensors and scheduler_config.json side by side), and a pipeline
/// (model_index.json, unet/, scheduler/), which is also the layout written. Weights may be float32 or float16, with
/// attention under today's or the pre-2023 names.
/// </summary>
public static class DiffusersCheckpoint
{
    public const string ModelIndexFile = "model_index.json";
    public const string WeightsFile = "diffusion_pytorch_model.safetensors";
    public const string PickleWeightsFile = "diffusion_pytorch_model.bin";
    public const string SchedulerConfigFile = "scheduler_config.json";
    public const string UNetFolder = "unet";
    public const string SchedulerFolder = "scheduler";

    /// <summary>Whether <paramref name="dir"/> looks like a diffusers checkpoint (a model_index.json, or a config.json with diffusers' "_class_name").</summary>
    public static bool IsDiffusersDirectory(string dir)
    {
        if (!Directory.Exists(dir)) return false;
        if (File.Exists(Path.Combine(dir, ModelIndexFile))) return true;
        string config = Path.Combine(dir, Checkpoint.ConfigFile);
        if (!File.Exists(config)) return false;
        try
        {
            return JsonNode.Parse(File.ReadAllText(config)) is JsonObject json && json.ContainsKey("_class_name");
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }
    }

    /// <summary>The U-Net folder and the scheduler config file of a flat or pipeline checkpoint.</summary>
    private static (string UNetDir, string SchedulerConfig) Layout(string dir)
    {
        if (File.Exists(Path.Combine(dir, ModelIndexFile)))
        {
            var index = new ConfigReader(ConfigReader.Parse(Path.Combine(dir, ModelIndexFile)), Path.Combine(dir, ModelIndexFile));
            if (!index.Has(UNetFolder))
                throw new CheckpointException($"{Path.Combine(dir, ModelIndexFile)} names no unet: only pipelines with a UNet2DModel (DDPMPipeline, DDIMPipeline) can be read.");
            string unet = Path.Combine(dir, UNetFolder), scheduler = Path.Combine(dir, SchedulerFolder, SchedulerConfigFile);
            if (!File.Exists(Path.Combine(unet, Checkpoint.ConfigFile)))
                throw new CheckpointException($"'{dir}' is a diffusers pipeline without {UNetFolder}/{Checkpoint.ConfigFile}: the download is incomplete; fetch the unet folder too.");
            return (unet, scheduler);
        }
        return (dir, Path.Combine(dir, SchedulerConfigFile));
    }

    /// <summary>Our configuration of a diffusers checkpoint: the U-Net from its config.json, the diffusion from its scheduler config.</summary>
    public static CheckpointConfig ReadConfig(string dir) => ReadConfig(dir, Layout(dir));

    private static CheckpointConfig ReadConfig(string dir, (string UNetDir, string SchedulerConfig) layout)
    {
        var (unetDir, schedulerPath) = layout;
        string unetConfig = Path.Combine(unetDir, Checkpoint.ConfigFile);
        var unet = DiffusersUNetConfig.Read(ConfigReader.Parse(unetConfig), unetConfig);
        if (!File.Exists(schedulerPath))
            throw new CheckpointException($"'{dir}' has no {Path.GetRelativePath(dir, schedulerPath)}: the noise schedule is unknown; download it with the model (google/ddpm-* have one).");
        var (diffusion, defaults) = DiffusersSchedulerConfig.Read(ConfigReader.Parse(schedulerPath), schedulerPath);
        if (diffusion.LearnsVariance != unet.LearnSigma)
            throw new CheckpointException($"{schedulerPath} says variance_type {(diffusion.LearnsVariance ? "learned" : "fixed")}, but the U-Net has {unet.OutChannels} output channels for {unet.InChannels} input channels: the two configs do not belong together.");
        return new CheckpointConfig(new ModelConfig(unet), diffusion, Sampling: defaults);
    }

    /// <summary>
    /// The weights file of a U-Net folder: the float32 safetensors file, else its fp16 variant, else a PyTorch pickle
    /// (diffusion_pytorch_model.bin, which some older repositories such as google/ddpm-ema-church-256 ship alone).
    /// </summary>
    private static string WeightsPath(string unetDir)
    {
        foreach (string name in new[] { WeightsFile, "diffusion_pytorch_model.fp16.safetensors", PickleWeightsFile, "diffusion_pytorch_model.fp16.bin" })
            if (File.Exists(Path.Combine(unetDir, name))) return Path.Combine(unetDir, name);
        throw new CheckpointException($"'{unetDir}' has no {WeightsFile} (or {PickleWeightsFile}): the download is incomplete; fetch the weights file too.");
    }

    /// <summary>Builds our U-Net for a diffusers checkpoint and loads its weights (in eval mode, computing with <paramref name="compute"/>).</summary>
    public static (UNet Network, CheckpointConfig Config) Load(string dir, ComputeSettings? compute = null)
    {
        var layout = Layout(dir);
        var config = ReadConfig(dir, layout);
        string file = WeightsPath(layout.UNetDir);
        var network = new UNet(config.Model.UNet!);
        try
        {
            var shapes = Checkpoint.NamedTensors(network).ToDictionary(t => t.Name, t => t.Tensor.shape);
            Checkpoint.LoadWeightsFile(network, file, "download it again",
                theirs => DiffusersWeightNames.FromDiffusers(network.Config, theirs, shapes, file));
        }
        catch
        {
            network.Dispose();
            throw;
        }
        network.eval();
        Checkpoint.ApplyCompute(network, compute);
        return (network, config);
    }

    /// <summary>
    /// Writes <paramref name="network"/> and its diffusion as a diffusers pipeline directory (model_index.json, unet/,
    /// scheduler/), atomically. The weights are written in <paramref name="dtype"/>, with metadata {"format": "pt"}.
    /// </summary>
    public static void Save(string output, UNet network, CheckpointConfig config, ScalarType dtype = ScalarType.Float32)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(config);
        var unetConfig = DiffusersUNetConfig.Write(network.Config);
        var schedulerConfig = DiffusersSchedulerConfig.Write(config.Diffusion, config.Sampling);
        var index = new JsonObject
        {
            ["_class_name"] = "DDPMPipeline",
            ["_diffusers_version"] = DiffusersUNetConfig.DiffusersVersion,
            [SchedulerFolder] = new JsonArray("diffusers", DiffusersSchedulerConfig.DdpmClassName),
            [UNetFolder] = new JsonArray("diffusers", DiffusersUNetConfig.ClassName),
        };
        using var scope = NewDisposeScope();
        var ours = Checkpoint.NamedTensors(network).ToDictionary(t => t.Name, t => t.Tensor.detach().to_type(dtype));
        var theirs = DiffusersWeightNames.ToDiffusers(network.Config, ours);
        Checkpoint.WriteDirectory(output, temp =>
        {
            Directory.CreateDirectory(Path.Combine(temp, UNetFolder));
            Directory.CreateDirectory(Path.Combine(temp, SchedulerFolder));
            AtomicFile.WriteAllText(Path.Combine(temp, ModelIndexFile), index.ToJsonString(Json.Options));
            AtomicFile.WriteAllText(Path.Combine(temp, UNetFolder, Checkpoint.ConfigFile), unetConfig.ToJsonString(Json.Options));
            AtomicFile.WriteAllText(Path.Combine(temp, SchedulerFolder, SchedulerConfigFile), schedulerConfig.ToJsonString(Json.Options));
            SafeTensors.Save(Path.Combine(temp, UNetFolder, WeightsFile), theirs, new Dictionary<string, string> { ["format"] = "pt" });
        });
    }
}
