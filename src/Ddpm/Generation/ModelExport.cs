using Ddpm.IO;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>What an export wrote: the model directory, its size, the weights' type and the checkpoint it came from.</summary>
public sealed record ExportResult(string Directory, long Bytes, ScalarType DType, string Source);

/// <summary>Turns a checkpoint into a standalone model directory (config.json + ema.safetensors), as shipped under models/.</summary>
public static class ModelExport
{
    /// <summary>
    /// Writes the EMA weights of <paramref name="checkpoint"/> (a checkpoint or run directory) to <paramref name="output"/>,
    /// as float16 when <paramref name="float16"/> (half the size; sampling runs in float32). The directory appears whole or not at all.
    /// </summary>
    public static ExportResult Run(string checkpoint, string output, bool float16 = false)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ArgumentNullException.ThrowIfNull(output);
        string dir = Checkpoint.Resolve(checkpoint);
        var (network, config) = Checkpoint.LoadNetwork(dir, useEma: true);
        using (network)
        {
            var dtype = float16 ? ScalarType.Float16 : ScalarType.Float32;
            using var scope = NewDisposeScope();
            var weights = Checkpoint.NamedTensors(network).ToDictionary(p => p.Name, p => p.Tensor.detach().to_type(dtype));
            Checkpoint.WriteDirectory(output, temp =>
            {
                AtomicFile.WriteAllText(Path.Combine(temp, Checkpoint.ConfigFile), Json.Serialize(config));
                SafeTensors.Save(Path.Combine(temp, Checkpoint.EmaFile), weights, new Dictionary<string, string> { ["source"] = Path.GetFileName(dir) });
            });
            long bytes = new DirectoryInfo(output).GetFiles().Sum(f => f.Length);
            return new ExportResult(output, bytes, dtype, dir);
        }
    }
}
