using Ddpm.IO;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>Tensors a user hands over in safetensors files (diffusers' latents, network inputs to compare with Python).</summary>
public static class TensorFiles
{
    /// <summary>
    /// Every tensor of the safetensors file <paramref name="path"/>; a missing or damaged file is an
    /// <see cref="InvalidRequestException"/> for <paramref name="field"/>. The caller disposes the tensors.
    /// </summary>
    public static Dictionary<string, Tensor> ReadAll(string path, string field)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            return SafeTensors.Load(path);
        }
        catch (FileNotFoundException)
        {
            throw new InvalidRequestException(field, $"--{field} '{path}' does not exist; give a .safetensors file.");
        }
        catch (CorruptFileException e)
        {
            throw new InvalidRequestException(field, $"--{field} '{path}' is not a valid safetensors file ({e.Problem}); write it with safetensors' save_file.");
        }
    }

    /// <summary>
    /// The tensor named by <paramref name="spec"/>, "FILE:NAME" or "FILE" when the file holds one tensor; every problem is
    /// an <see cref="InvalidRequestException"/> for <paramref name="field"/> that lists the names the file has.
    /// </summary>
    public static Tensor ReadNamed(string spec, string field)
    {
        ArgumentNullException.ThrowIfNull(spec);
        // FILE:NAME unless the whole text is a file (a path may hold a colon).
        int colon = spec.LastIndexOf(':');
        (string path, string? name) = colon > 0 && !File.Exists(spec) ? (spec[..colon], spec[(colon + 1)..]) : (spec, null);
        var tensors = ReadAll(path, field);
        try
        {
            string names = string.Join(", ", tensors.Keys.Order(StringComparer.Ordinal));
            if (name is null)
            {
                if (tensors.Count != 1)
                    throw new InvalidRequestException(field, $"--{field} '{path}' holds {tensors.Count} tensors ({names}): name one as FILE:NAME.");
                name = tensors.Keys.Single();
            }
            if (!tensors.Remove(name, out var chosen))
                throw new InvalidRequestException(field, $"--{field} '{path}' has no tensor '{name}'; it holds: {names}.");
            return chosen;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
