using System.Security.Cryptography;
using Ddpm.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// A small model saved as a directory: <c>config.json</c> (what the model is and how it was trained) and
/// <c>model.safetensors</c> (its weights), written atomically. Used for the FID feature network and the noise-aware
/// classifier; diffusion checkpoints have their own, richer layout (<see cref="Checkpoint"/>).
/// </summary>
public static class ModelDirectory
{
    public const string ConfigFile = "config.json";
    public const string WeightsFile = "model.safetensors";

    public static void Save<TInfo>(string dir, TInfo info, nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(info);
        ArgumentNullException.ThrowIfNull(module);
        Checkpoint.WriteDirectory(dir, temp =>
        {
            File.WriteAllText(Path.Combine(temp, ConfigFile), Json.Serialize(info));
            SafeTensors.Save(Path.Combine(temp, WeightsFile), Checkpoint.NamedTensors(module).ToDictionary(p => p.Name, p => p.Tensor));
        });
    }

    /// <summary>
    /// Loads a model directory: reads and validates its info, builds the module with <paramref name="create"/> and
    /// copies the weights in; eval mode. Every problem is a <see cref="CheckpointException"/> naming
    /// <paramref name="what"/> and the command that writes it (<paramref name="fix"/>).
    /// </summary>
    public static (TModule Module, TInfo Info) Load<TModule, TInfo>(string dir, Func<TInfo, TModule> create, Action<TInfo> validate, string what, string fix)
        where TModule : nn.Module
    {
        ArgumentNullException.ThrowIfNull(create);
        ArgumentNullException.ThrowIfNull(validate);
        string configPath = Path.Combine(dir, ConfigFile), weightsPath = Path.Combine(dir, WeightsFile);
        if (!Directory.Exists(dir))
            throw new CheckpointException($"{what} '{dir}' does not exist: {fix}.");
        if (!File.Exists(configPath) || !File.Exists(weightsPath))
            throw new CheckpointException($"'{dir}' is not a {what} (it needs {ConfigFile} and {WeightsFile}): {fix}.");
        TInfo info;
        try
        {
            info = Json.Read<TInfo>(configPath);
            validate(info);
        }
        catch (Exception e) when (e is InvalidDataException or System.Text.Json.JsonException or ArgumentException or NullReferenceException)
        {
            throw new CheckpointException($"{configPath} is not a valid {what} configuration ({e.Message}): {fix}.", e);
        }
        var module = create(info);
        try
        {
            Checkpoint.LoadWeightsFile(module, weightsPath, fix);
        }
        catch
        {
            module.Dispose();
            throw;
        }
        module.eval();
        return (module, info);
    }

    /// <summary>A short fingerprint of the weights file (cached statistics are keyed by it).</summary>
    public static string Fingerprint(string dir) => FileFingerprint(Path.Combine(dir, WeightsFile));

    /// <summary>The first 16 hex digits of the SHA-256 of a file's bytes.</summary>
    public static string FileFingerprint(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexString(SHA256.HashData(stream))[..16].ToLowerInvariant();
    }
}
