using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Ddpm.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Evaluation;

/// <summary>Where an interrupted run stood: batches and samples done, and the seconds they took.</summary>
public sealed record ResumePoint(int Batches, long Samples, double Seconds);

/// <summary>
/// Makes a long feature-accumulating run resumable. A 1000-step FID row on 10,000 samples runs for hours on a CPU; a
/// killed run used to lose all of it. After every batch the running float64 feature sums, the class counts and the
/// random generator's state are saved together (atomically) to one file, keyed by everything that determines the
/// samples. The same command started again restores them and goes on with the next batch, drawing exactly the noise
/// the uninterrupted run would have drawn, so it ends with bit-for-bit the same statistics. The file is deleted
/// when the run completes.
/// </summary>
public sealed class FeatureProgress
{
    public FeatureProgress(string path, string key)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        Path = path;
        Key = key;
    }

    public string Path { get; }
    public string Key { get; }

    /// <summary>A short key (16 hex digits of SHA-256) for the run that <paramref name="parts"/> describe.</summary>
    public static string MakeKey(IEnumerable<string> parts)
    {
        var text = string.Join("\n", parts.Select(p => p.Replace("\n", "\\n", StringComparison.Ordinal)));
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16].ToLowerInvariant();
    }

    /// <summary>
    /// Runs batches 0 … <paramref name="batches"/> − 1 of <paramref name="sampleBatch"/> (images [B, C, H, W] in
    /// [−1, 1] and, optionally, the classes they were requested for) into <paramref name="accumulator"/>, starting
    /// after the last batch a stopped run of the same key saved. <paramref name="generator"/> must be the generator
    /// <paramref name="sampleBatch"/> draws from: its state is part of what is saved. Returns where the run resumed
    /// from (null when it started afresh).
    /// </summary>
    public ResumePoint? Accumulate(FeatureAccumulator accumulator, Generator generator, int batches,
        Func<int, (Tensor Images, Tensor? Labels)> sampleBatch, Action<int>? batchDone = null)
    {
        ArgumentNullException.ThrowIfNull(accumulator);
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(sampleBatch);
        if (accumulator.Count != 0) throw new ArgumentException("The accumulator must be empty.", nameof(accumulator));
        var resumed = TryRestore(accumulator, generator, batches);
        double before = resumed?.Seconds ?? 0;
        var watch = Stopwatch.StartNew();
        for (int b = resumed?.Batches ?? 0; b < batches; b++)
        {
            using (var scope = NewDisposeScope())
            {
                var (images, labels) = sampleBatch(b);
                accumulator.Add(images, labels);
            }
            if (b + 1 < batches) Save(accumulator, generator, b + 1, before + watch.Elapsed.TotalSeconds);
            batchDone?.Invoke(b);
        }
        if (File.Exists(Path)) File.Delete(Path);
        return resumed;
    }

    /// <summary>
    /// Restores a saved state of this key into an empty <paramref name="accumulator"/> and <paramref name="generator"/>;
    /// null (nothing restored) when there is no file, it belongs to another run, or it cannot be read.
    /// </summary>
    public ResumePoint? TryRestore(FeatureAccumulator accumulator, Generator generator, int batches)
    {
        if (!File.Exists(Path)) return null;
        Dictionary<string, Tensor> tensors;
        Dictionary<string, string> metadata;
        try { (tensors, metadata) = SafeTensors.LoadWithMetadata(Path); }
        catch (Exception e) when (e is CorruptFileException or IOException) { return null; }
        try
        {
            if (!metadata.TryGetValue("key", out var key) || key != Key) return null;
            int done = int.Parse(metadata["batches"], CultureInfo.InvariantCulture);
            if (done < 1 || done >= batches) return null;
            var state = new FeatureAccumulator.State(tensors["sum"], tensors["outer"], long.Parse(metadata["count"], CultureInfo.InvariantCulture),
                tensors["class_counts"].data<long>().ToArray(),
                long.Parse(metadata["labelled"], CultureInfo.InvariantCulture), long.Parse(metadata["labelled_correct"], CultureInfo.InvariantCulture),
                long.Parse(metadata["unplaced"], CultureInfo.InvariantCulture));
            if (!accumulator.TryRestore(state)) return null;
            generator.set_state(tensors["generator_state"]);
            return new ResumePoint(done, state.Count, double.Parse(metadata["seconds"], CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is KeyNotFoundException or FormatException or OverflowException)
        {
            return null;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>Saves the state after <paramref name="batchesDone"/> batches, atomically (temporary file, then rename).</summary>
    public void Save(FeatureAccumulator accumulator, Generator generator, int batchesDone, double seconds)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
        var state = accumulator.Export();
        using var classes = tensor(state.ClassCounts, dtype: ScalarType.Int64);
        using var generatorState = generator.get_state();
        var metadata = new Dictionary<string, string>
        {
            ["key"] = Key,
            ["batches"] = batchesDone.ToString(CultureInfo.InvariantCulture),
            ["count"] = state.Count.ToString(CultureInfo.InvariantCulture),
            ["labelled"] = state.Labelled.ToString(CultureInfo.InvariantCulture),
            ["labelled_correct"] = state.LabelledCorrect.ToString(CultureInfo.InvariantCulture),
            ["unplaced"] = state.Unplaced.ToString(CultureInfo.InvariantCulture),
            ["seconds"] = seconds.ToString("R", CultureInfo.InvariantCulture),
        };
        SafeTensors.Save(Path, new Dictionary<string, Tensor>
        {
            ["sum"] = state.Sum, ["outer"] = state.Outer, ["class_counts"] = classes, ["generator_state"] = generatorState,
        }, metadata);
    }
}
