using Ddpm.Runtime;
using System.Text.Json.Serialization;
using Ddpm.Diffusion;
using Ddpm.IO;
using Ddpm.Interop;
using Ddpm.Sampling;
using Ddpm.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// What a checkpoint's config.json holds: enough to rebuild the model and the diffusion it was trained with.
/// <paramref name="Sampling"/> holds sampling settings the checkpoint suggests (a diffusers scheduler config has them).
/// </summary>
public sealed record CheckpointConfig(ModelConfig Model, DiffusionConfig Diffusion, TrainingConfig? Training = null, string? Dataset = null, int FormatVersion = 1,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] SamplingDefaults? Sampling = null);

/// <summary>trainer_state.json: everything besides tensors that an exact resume needs.</summary>
public sealed record TrainerState(
    long Step,
    long EmaUpdates,
    long OptimizerSteps,
    string GeneratorState,
    string GlobalRngState,
    double[]? SamplerHistory = null,
    int[]? SamplerCounts = null,
    double ElapsedSeconds = 0);

/// <summary>
/// A checkpoint is a directory: config.json, model.safetensors, ema.safetensors, optimizer.safetensors and
/// trainer_state.json. A shipped model may hold only config.json and ema.safetensors. Directories are written
/// under a temporary name and renamed, so a reader never sees half a checkpoint.
/// </summary>
public static class Checkpoint
{
    public const string ConfigFile = "config.json";
    public const string ModelFile = "model.safetensors";
    public const string EmaFile = "ema.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string StateFile = "trainer_state.json";

    /// <summary>Writes <paramref name="files"/> (name → writer into the directory) as the directory <paramref name="dir"/>, replacing it atomically.</summary>
    public static void WriteDirectory(string dir, Action<string> writeInto)
    {
        string full = Path.GetFullPath(dir);
        string parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            writeInto(temp);
            if (Directory.Exists(full))
            {
                string old = Path.Combine(parent, $".{Path.GetFileName(full)}.old-{Guid.NewGuid():N}");
                Directory.Move(full, old);
                Directory.Move(temp, full);
                Directory.Delete(old, recursive: true);
            }
            else
            {
                Directory.Move(temp, full);
            }
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
    }

    /// <summary>The configuration of a checkpoint directory of ours or of diffusers' (<see cref="DiffusersCheckpoint"/>).</summary>
    public static CheckpointConfig ReadConfig(string dir)
    {
        if (!Directory.Exists(dir))
            throw new CheckpointException($"checkpoint directory '{dir}' does not exist: pass a directory written by 'ddpm train' (e.g. RUN/checkpoints/step-0001000), a shipped model under models/ or a diffusers model directory.");
        if (DiffusersCheckpoint.IsDiffusersDirectory(dir)) return DiffusersCheckpoint.ReadConfig(dir);
        string path = Path.Combine(dir, ConfigFile);
        if (!File.Exists(path))
            throw new CheckpointException($"'{dir}' has no {ConfigFile}: it is neither a checkpoint of ours nor a diffusers model directory, or it was half-written; use another checkpoint directory.");
        try
        {
            var config = Json.Read<CheckpointConfig>(path);
            if (config.Model is null || config.Diffusion is null)
                throw new CheckpointException($"{path} lacks the model or diffusion section: the checkpoint is damaged; use another one.");
            config.Model.Validate();
            config.Diffusion.Validate();
            return config;
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException)
        {
            throw new CheckpointException($"{path} is not a valid checkpoint configuration ({e.Message}); use another checkpoint.", e);
        }
    }

    /// <summary>Named parameters and buffers of a module, the tensors a checkpoint stores.</summary>
    public static List<(string Name, Tensor Tensor)> NamedTensors(nn.Module module) =>
        module.named_parameters().Select(p => (p.name, (Tensor)p.parameter))
            .Concat(module.named_buffers().Select(b => (b.name, b.buffer))).ToList();

    /// <summary>Copies <paramref name="state"/> into the module's tensors; every tensor must be present with the same shape.</summary>
    public static void LoadInto(nn.Module module, IReadOnlyDictionary<string, Tensor> state, string source)
    {
        using var noGrad = no_grad();
        var named = NamedTensors(module);
        foreach (var (name, target) in named)
        {
            if (!state.TryGetValue(name, out var value))
                throw new CheckpointException($"{source} has no tensor '{name}': the checkpoint does not fit this model (was it trained with another preset?).");
            if (!value.shape.SequenceEqual(target.shape))
                throw new CheckpointException($"{source}: '{name}' has shape [{string.Join(",", value.shape)}] but the model needs [{string.Join(",", target.shape)}]: the checkpoint does not fit this model.");
            target.copy_(value.to_type(target.dtype));
        }
        var known = named.Select(n => n.Name).ToHashSet();
        var extra = state.Keys.Where(k => !known.Contains(k)).Take(3).ToArray();
        if (extra.Length > 0)
            throw new CheckpointException($"{source} holds tensors the model lacks ({string.Join(", ", extra)}): the checkpoint does not fit this model.");
    }

    /// <summary>
    /// Builds the network a checkpoint describes and loads its EMA weights (or the raw weights when
    /// <paramref name="useEma"/> is false or the checkpoint has no EMA file). The module is in eval mode; a U-Net runs
    /// with <paramref name="compute"/> (default: float32, NCHW).
    /// </summary>
    public static (nn.Module Network, CheckpointConfig Config) LoadNetwork(string dir, bool useEma = true, ComputeSettings? compute = null)
    {
        if (DiffusersCheckpoint.IsDiffusersDirectory(dir)) return DiffusersCheckpoint.Load(dir, compute);
        var config = ReadConfig(dir);
        string file = Path.Combine(dir, useEma && File.Exists(Path.Combine(dir, EmaFile)) ? EmaFile : ModelFile);
        if (!File.Exists(file))
            throw new CheckpointException($"'{dir}' has no {ModelFile} or {EmaFile}: the checkpoint is incomplete; use another one.");
        var network = config.Model.Create();
        try
        {
            LoadWeightsFile(network, file, "use another checkpoint");
        }
        catch
        {
            network.Dispose();
            throw;
        }
        network.eval();
        ApplyCompute(network, compute);
        return (network, config);
    }

    /// <summary>Moves a loaded network to <paramref name="compute"/>'s device and sets how a U-Net computes.</summary>
    internal static void ApplyCompute(nn.Module network, ComputeSettings? compute)
    {
        if (compute is null) return;
        if (compute.Device != ComputeDevice.Cpu) network.to(compute.TorchDevice);
        if (network is UNet unet) unet.Compute = compute;
    }

    /// <summary>
    /// Copies the tensors of the weights <paramref name="file"/> (safetensors, or a PyTorch pickle by its extension:
    /// <see cref="PyTorchStateDict"/>) into <paramref name="module"/>. A damaged file or
    /// one that does not fit the module is a <see cref="CheckpointException"/> ending with <paramref name="fix"/>.
    /// </summary>
    public static void LoadWeightsFile(nn.Module module, string file, string fix) =>
        LoadWeightsFile(module, file, fix, state => state);

    /// <summary>
    /// Copies the tensors of the weights <paramref name="file"/> (safetensors or a PyTorch pickle), as <paramref name="rename"/> maps them (run in a
    /// DisposeScope), into <paramref name="module"/>. A damaged file or one that does not fit the module is a
    /// <see cref="CheckpointException"/> ending with <paramref name="fix"/>.
    /// </summary>
    public static void LoadWeightsFile(nn.Module module, string file, string fix, Func<Dictionary<string, Tensor>, IReadOnlyDictionary<string, Tensor>> rename)
    {
        Dictionary<string, Tensor> state;
        try
        {
            state = PyTorchStateDict.IsPickleFile(file) ? PyTorchStateDict.Load(file) : SafeTensors.Load(file);
        }
        catch (CorruptFileException e)
        {
            throw new CheckpointException($"{file} is damaged ({e.Problem}): {fix}.", e);
        }
        try
        {
            using var scope = NewDisposeScope();
            LoadInto(module, rename(state), file);
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Fine-tuning's starting point: copies the (EMA) weights of a trained model or checkpoint at <paramref name="source"/>
    /// into <paramref name="module"/>, a fresh network of <paramref name="target"/>'s configuration. The two must be the
    /// same network trained with the same noise schedule and prediction, except that a class-conditional target may
    /// start from an unconditional source, so that classifier-free guidance (Ho &amp; Salimans 2022) is learned on top
    /// of an already trained denoiser. Its "no class" embedding row starts at zero, so the unconditional prediction
    /// starts as exactly the source's; the class rows keep their fresh N(0, 1) initialisation. (Zero rows would start
    /// the conditional predictions at the source's too, but Adam moves each weight by at most about the learning rate
    /// per step, so an embedding that must grow from 0 to O(1) needs thousands of steps: measured, a zero-initialised
    /// embedding after 1,000 steps at 2e-4 had mean |w| = 0.005, and w = 3 guidance drew the requested class for 12 %
    /// of samples, chance level.)
    /// </summary>
    /// <returns>The checkpoint directory the weights came from.</returns>
    public static string WarmStart(nn.Module module, CheckpointConfig target, string source)
    {
        string dir = Resolve(source);
        var (network, config) = LoadNetwork(dir);
        using (network)
        {
            if (config.Diffusion.Schedule != target.Diffusion.Schedule || config.Diffusion.Prediction != target.Diffusion.Prediction)
                throw new CheckpointException($"'{dir}' was trained with the {config.Diffusion.Schedule.Kind} schedule (T = {config.Diffusion.Schedule.Timesteps}) and {config.Diffusion.Prediction} prediction, not {target.Diffusion.Schedule.Kind} (T = {target.Diffusion.Schedule.Timesteps}) and {target.Diffusion.Prediction}: pass the same --schedule, --timesteps and --prediction, or start from scratch.");
            var sourceModel = config.Model.UNet is { } u ? config.Model with { UNet = u with { NumClasses = target.Model.NumClasses } } : config.Model;
            if (config.Model.NumClasses is not 0 && config.Model.NumClasses != target.Model.NumClasses
                || Json.Serialize(sourceModel) != Json.Serialize(target.Model))
                throw new CheckpointException($"'{dir}' holds another network than this run's (compare the model in its config.json with --preset): the weights do not fit this model.");
            var weights = NamedTensors(network).ToDictionary(t => t.Name, t => t.Tensor);
            using var noGrad = no_grad();
            foreach (var (name, tensor) in NamedTensors(module))
            {
                if (weights.TryGetValue(name, out var value)) tensor.copy_(value.to_type(tensor.dtype));
                else if (name.StartsWith(UNet.ClassEmbeddingName + ".", StringComparison.Ordinal))
                {
                    using var nullRow = tensor[target.Model.NumClasses];
                    nullRow.zero_();
                }
                else throw new CheckpointException($"'{dir}' has no tensor '{name}': the weights do not fit this model.");
            }
        }
        return dir;
    }

    /// <summary>The checkpoint directories under a run directory, oldest first.</summary>
    public static string[] List(string runDir)
    {
        string root = Path.Combine(runDir, "checkpoints");
        return Directory.Exists(root)
            ? Directory.GetDirectories(root, "step-*").Where(d => File.Exists(Path.Combine(d, StateFile))).Order(StringComparer.Ordinal).ToArray()
            : Array.Empty<string>();
    }

    /// <summary>A checkpoint directory itself, or the newest checkpoint of a run directory.</summary>
    public static string Resolve(string path)
    {
        if (File.Exists(Path.Combine(path, ConfigFile)) || DiffusersCheckpoint.IsDiffusersDirectory(path)) return path;
        var all = List(path);
        return all.Length > 0
            ? all[^1]
            : throw new CheckpointException($"'{path}' is neither a checkpoint directory nor a run directory with checkpoints: pass RUN or RUN/checkpoints/step-N from 'ddpm train'.");
    }

    public static string StepDirectory(string runDir, long step) => Path.Combine(runDir, "checkpoints", $"step-{step:D7}");
}

/// <summary>A checkpoint that is missing, damaged or does not fit the model; the message says which and what to do.</summary>
public sealed class CheckpointException : Exception
{
    public CheckpointException(string message, Exception? inner = null) : base(message, inner) { }
}
