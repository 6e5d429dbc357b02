using Ddpm.Interop;
using Ddpm.IO;
using Ddpm.Training;
using Microsoft.Extensions.Logging;

namespace Ddpm.Web;

/// <summary>
/// One servable model as <c>GET /api/models</c> lists it: its folder name, what its images are, its classes (with their
/// names where the data set is known), T, what the network predicts and its schedule.
/// </summary>
public sealed record ModelInfo(
    string Name,
    int ImageSize,
    int Channels,
    int Classes,
    IReadOnlyList<string>? ClassNames,
    bool Conditional,
    int Timesteps,
    string Prediction,
    string Schedule,
    string? Dataset,
    string Format);

/// <summary>A listed model and the checkpoint directory it was found in (never shown to clients).</summary>
public sealed record ModelEntry(ModelInfo Info, string Directory, CheckpointConfig Config);

/// <summary>
/// The models under the models directory: every directory directly under it that holds an image diffusion checkpoint
/// (ours, a run directory's newest checkpoint, or a diffusers model). Directories <see cref="Checkpoint.ReadConfig"/>
/// rejects (a FID feature network, a classifier, a half-written copy) and 2-D toy models are skipped. A client names a
/// model by its folder name, which is looked up here and never used as a path.
/// </summary>
public sealed class ModelCatalog(string modelsDirectory, ILogger<ModelCatalog> logger)
{
    private volatile IReadOnlyDictionary<string, ModelEntry> _entries = new Dictionary<string, ModelEntry>(StringComparer.Ordinal);

    /// <summary>The models as last scanned, by name.</summary>
    public IReadOnlyDictionary<string, ModelEntry> Entries => _entries;

    /// <summary>Scans the models directory again (models added or removed while the server runs are picked up).</summary>
    public IReadOnlyDictionary<string, ModelEntry> Refresh()
    {
        var found = new SortedDictionary<string, ModelEntry>(StringComparer.Ordinal);
        if (Directory.Exists(modelsDirectory))
        {
            foreach (var dir in Directory.GetDirectories(modelsDirectory).OrderBy(d => d, StringComparer.Ordinal))
            {
                string name = Path.GetFileName(dir);
                try
                {
                    string checkpoint = dir;
                    if (!File.Exists(Path.Combine(dir, Checkpoint.ConfigFile)) && !DiffusersCheckpoint.IsDiffusersDirectory(dir) && Directory.Exists(Path.Combine(dir, "checkpoints")))
                        checkpoint = Checkpoint.Resolve(dir);
                    var config = Checkpoint.ReadConfig(checkpoint);
                    if (config.Model.UNet is not { } unet)
                    {
                        logger.LogDebug("skipping {Name}: a 2-D toy model, not an image model", name);
                        continue;
                    }
                    var schedule = config.Diffusion.Schedule;
                    var info = new ModelInfo(name, unet.ImageSize, unet.InChannels, unet.NumClasses, unet.NumClasses > 0 ? ClassNames.For(config.Dataset, unet.NumClasses) : null,
                        unet.NumClasses > 0, schedule.Timesteps, EnumNames.Kebab(config.Diffusion.Prediction), EnumNames.Kebab(schedule.Kind), config.Dataset,
                        DiffusersCheckpoint.IsDiffusersDirectory(checkpoint) ? "diffusers" : "ddpm");
                    found[name] = new ModelEntry(info, checkpoint, config);
                }
                catch (Exception e) // whatever makes a directory unreadable only keeps it out of the listing
                {
                    logger.LogDebug("skipping {Name}: {Reason}", name, e.Message);
                }
            }
        }
        _entries = found;
        return found;
    }

    /// <summary>The model called <paramref name="name"/>, or a 400 naming the field and the models there are.</summary>
    public ModelEntry Find(string? name, string field = "model")
    {
        if (string.IsNullOrWhiteSpace(name))
            throw new ApiProblemException(400, field, $"{field} is required: give the name of a model from GET /api/models ({Known()}).");
        if (_entries.TryGetValue(name, out var entry)) return entry;
        throw new ApiProblemException(400, field, $"{field} '{Shorten(name)}' is not a served model; use one of: {Known()}.");
    }

    private string Known() => _entries.Count == 0 ? "none are served: put checkpoint directories under the models directory" : string.Join(", ", _entries.Keys);

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..80] + "…";
}

/// <summary>The class names of the data sets Ddpm reads, where the classes have names.</summary>
public static class ClassNames
{
    private static readonly Dictionary<string, string[]> Known = new(StringComparer.OrdinalIgnoreCase)
    {
        ["fashion-mnist"] = new[] { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot" },
        ["mnist"] = Enumerable.Range(0, 10).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
        ["cifar10"] = new[] { "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck" },
    };

    /// <summary>The names of <paramref name="classes"/> classes of <paramref name="dataset"/>, or null when unknown or the count differs.</summary>
    public static IReadOnlyList<string>? For(string? dataset, int classes) =>
        dataset is not null && Known.TryGetValue(dataset.Trim(), out var names) && names.Length == classes ? names : null;
}
