using Ddpm.Interop;
using Ddpm.IO;
using Ddpm.Models;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>What an export wrote: the model directory, its size, the weights' type and the checkpoint it came from.</summary>
public sealed record ExportResult(string Directory, long Bytes, ScalarType DType, string Source);

/// <summary>The layout an export writes.</summary>
public enum ExportFormat
{
    /// <summary>Ours: config.json + ema.safetensors, as shipped under models/.</summary>
    Ddpm,
    /// <summary>A diffusers pipeline: model_index.json, unet/ (UNet2DModel) and scheduler/ (DDPMScheduler).</summary>
    Diffusers,
}

/// <summary>Turns a checkpoint into a standalone model directory, ours (as shipped under models/) or diffusers'.</summary>
public static class ModelExport
{
    /// <summary>
    /// Writes the EMA weights of <paramref name="checkpoint"/> (a checkpoint, run or diffusers directory) to
    /// <paramref name="output"/> in <paramref name="format"/>, as float16 when <paramref name="float16"/> (half the size;
    /// sampling runs in float32). The directory appears whole or not at all.
    /// </summary>
    public static ExportResult Run(string checkpoint, string output, bool float16 = false, ExportFormat format = ExportFormat.Ddpm)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ArgumentNullException.ThrowIfNull(output);
        string dir = Checkpoint.Resolve(checkpoint);
        var (network, config) = Checkpoint.LoadNetwork(dir, useEma: true);
        using (network)
        {
            var dtype = float16 ? ScalarType.Float16 : ScalarType.Float32;
            if (format == ExportFormat.Diffusers)
            {
                if (network is not UNet unet)
                    throw new InvalidRequestException("format", $"'{dir}' holds a 2-D toy model, which diffusers has no class for: export it with --format ddpm.");
                DiffusersCheckpoint.Save(output, unet, config, dtype);
                return new ExportResult(output, DirectoryBytes(output), dtype, dir);
            }
            using var scope = NewDisposeScope();
            var weights = Checkpoint.NamedTensors(network).ToDictionary(p => p.Name, p => p.Tensor.detach().to_type(dtype));
            Checkpoint.WriteDirectory(output, temp =>
            {
                AtomicFile.WriteAllText(Path.Combine(temp, Checkpoint.ConfigFile), Json.Serialize(config));
                SafeTensors.Save(Path.Combine(temp, Checkpoint.EmaFile), weights, new Dictionary<string, string> { ["source"] = Path.GetFileName(dir) });
            });
            return new ExportResult(output, DirectoryBytes(output), dtype, dir);
        }
    }

    private static long DirectoryBytes(string dir) => new DirectoryInfo(dir).GetFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
}
