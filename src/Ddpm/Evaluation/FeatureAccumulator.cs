using Ddpm.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Evaluation;

/// <summary>
/// Streams batches of images through a <see cref="FeatureNetwork"/>: the running Gaussian statistics of their features
/// (for FID) and the histogram of the classes the network assigns them (mode coverage). Nothing but the d×d sums is
/// kept, so 10,000 or 1,000,000 images cost the same memory. Images are first quantised to 8 bits exactly as a PNG
/// would store them, so generated samples and data set images are measured alike.
/// </summary>
public sealed class FeatureAccumulator : IDisposable
{
    private readonly FeatureNetwork _network;
    private readonly RunningStatistics _statistics;
    private readonly long[] _classCounts;

    public FeatureAccumulator(FeatureNetwork network)
    {
        _network = network ?? throw new ArgumentNullException(nameof(network));
        _statistics = new RunningStatistics(network.Config.FeatureDimension);
        _classCounts = new long[network.Config.NumClasses];
    }

    public long Count => _statistics.Count;

    /// <summary>How many images the network assigned to each class.</summary>
    public IReadOnlyList<long> ClassCounts => _classCounts;

    /// <summary>A sample is "unplaced" when the network's top class has a softmax probability below this.</summary>
    public const double PlacementThreshold = 0.5;

    /// <summary>
    /// Images the network cannot place: top-class probability below <see cref="PlacementThreshold"/>. Speckled textures
    /// and shapeless blobs land here; real test images rarely do (docs/results.md gives the test split's own fraction).
    /// </summary>
    public long Unplaced { get; private set; }

    /// <summary>Images added with requested labels, and how many of them the network assigned to the requested class.</summary>
    public long Labelled { get; private set; }
    public long LabelledCorrect { get; private set; }

    /// <summary>
    /// Adds images [B, C, H, W] with values in [−1, 1] (values outside are clamped). With <paramref name="requested"/>
    /// [B] (the classes the images were generated for), also counts how often the network agrees.
    /// </summary>
    public void Add(Tensor images, Tensor? requested = null)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (features, logits) = _network.FeaturesAndLogits(Quantise(images));
        _statistics.Add(features);
        var predicted = logits.argmax(1);
        Unplaced += logits.softmax(1).amax(new long[] { 1 }).lt(PlacementThreshold).sum().item<long>();
        var counts = predicted.bincount(null, _classCounts.Length).cpu().data<long>().ToArray();
        for (int k = 0; k < _classCounts.Length; k++) _classCounts[k] += counts[k];
        if (requested is not null)
        {
            Labelled += requested.shape[0];
            LabelledCorrect += predicted.eq(requested.to(predicted.device)).sum().item<long>();
        }
    }

    public GaussianStatistics Statistics() => _statistics.Result();

    /// <summary>Everything this accumulator has gathered, so that a stopped run can be resumed (<see cref="FeatureProgress"/>).</summary>
    internal sealed record State(Tensor Sum, Tensor Outer, long Count, long[] ClassCounts, long Labelled, long LabelledCorrect, long Unplaced);

    /// <summary>The current state; its tensors are this accumulator's own (read them, do not dispose them).</summary>
    internal State Export()
    {
        var (sum, outer) = _statistics.Sums;
        return new State(sum, outer, _statistics.Count, _classCounts.ToArray(), Labelled, LabelledCorrect, Unplaced);
    }

    /// <summary>Replaces the state by a saved one; false (and nothing changed) when it does not fit this feature network.</summary>
    internal bool TryRestore(State state)
    {
        if (state.ClassCounts.Length != _classCounts.Length || !_statistics.Restore(state.Sum, state.Outer, state.Count)) return false;
        state.ClassCounts.CopyTo(_classCounts, 0);
        Labelled = state.Labelled;
        LabelledCorrect = state.LabelledCorrect;
        Unplaced = state.Unplaced;
        return true;
    }

    /// <summary>round((x + 1)·127.5)/127.5 − 1: the values an 8-bit PNG of <paramref name="images"/> would hold.</summary>
    public static Tensor Quantise(Tensor images)
    {
        using var scope = NewDisposeScope();
        var levels = ((images.detach().to_type(ScalarType.Float32).clamp(-1, 1) + 1) * 127.5).round();
        return Ddpm.Data.Pixels.LevelsToUnitRange(levels).MoveToOuterDisposeScope();
    }

    public void Dispose() => _statistics.Dispose();
}

/// <summary>
/// Feature statistics of real images saved to disk, so that each (data set, split, count, feature network) is
/// measured once. The file name carries the feature network's fingerprint: retraining the network invalidates it.
/// </summary>
public static class ReferenceStatistics
{
    /// <summary>$DDPM_CACHE, else $XDG_CACHE_HOME/ddpm, else ~/.cache/ddpm; statistics go to its fid-stats folder.</summary>
    public static string DefaultDirectory()
    {
        string? root = Environment.GetEnvironmentVariable("DDPM_CACHE");
        if (string.IsNullOrEmpty(root))
        {
            string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            root = string.IsNullOrEmpty(xdg)
                ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "ddpm")
                : Path.Combine(xdg, "ddpm");
        }
        return Path.Combine(root, "fid-stats");
    }

    public static string FileName(string fingerprint, string dataset, string split, long count)
    {
        string safe = new(dataset.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());
        return $"{safe}-{split}-{count}-{fingerprint}.safetensors";
    }

    /// <summary>The cached statistics at <paramref name="path"/>, or null when there are none or the file is unreadable (it is then recomputed).</summary>
    public static (GaussianStatistics Statistics, long[] ClassCounts)? TryLoad(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var (tensors, metadata) = SafeTensors.LoadWithMetadata(path);
            try
            {
                var mean = tensors["mean"].data<double>().ToArray();
                int d = mean.Length;
                var flat = tensors["covariance"].data<double>().ToArray();
                if (flat.Length != d * d) return null;
                var covariance = new double[d, d];
                Buffer.BlockCopy(flat, 0, covariance, 0, flat.Length * sizeof(double));
                var classes = tensors["class_counts"].data<long>().ToArray();
                long count = long.Parse(metadata["count"], System.Globalization.CultureInfo.InvariantCulture);
                return (new GaussianStatistics(mean, covariance, count), classes);
            }
            finally
            {
                foreach (var t in tensors.Values) t.Dispose();
            }
        }
        catch (Exception e) when (e is CorruptFileException or KeyNotFoundException or FormatException or IOException)
        {
            return null;
        }
    }

    /// <summary>Writes the statistics atomically (temporary file, then rename).</summary>
    public static void Save(string path, GaussianStatistics statistics, IReadOnlyList<long> classCounts)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        int d = statistics.Dimension;
        var flat = new double[d * d];
        Buffer.BlockCopy(statistics.Covariance, 0, flat, 0, flat.Length * sizeof(double));
        using var mean = tensor(statistics.Mean, dtype: ScalarType.Float64);
        using var covariance = tensor(flat, new long[] { d, d }, ScalarType.Float64);
        using var classes = tensor(classCounts.ToArray(), dtype: ScalarType.Int64);
        var metadata = new Dictionary<string, string> { ["count"] = statistics.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["mean"] = mean, ["covariance"] = covariance, ["class_counts"] = classes }, metadata);
    }
}
