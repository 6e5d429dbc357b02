using System.Text.Json;
using Ddpm.IO;
using Ddpm.Training;

namespace Ddpm.Generation;

/// <summary>Reads the log.jsonl that <see cref="Trainer"/> writes, one <see cref="TrainingProgress"/> per line.</summary>
public static class TrainingLog
{
    /// <summary>The records of <paramref name="path"/> (a log.jsonl or its run directory); a bad file is an <see cref="InvalidRequestException"/>.</summary>
    public static List<TrainingProgress> Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path)) path = Path.Combine(path, Trainer.LogFile);
        if (!File.Exists(path)) throw new InvalidRequestException("log", $"'{path}' does not exist: pass a run's log.jsonl or its run directory.");
        var records = new List<TrainingProgress>();
        foreach (var (line, i) in File.ReadLines(path).Select((l, i) => (l, i)))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try { records.Add(JsonSerializer.Deserialize<TrainingProgress>(line, Json.Compact)!); }
            catch (JsonException) { throw new InvalidRequestException("log", $"{path} line {i + 1} is not a training log record: pass the log.jsonl written by 'ddpm train'."); }
        }
        if (records.Count == 0) throw new InvalidRequestException("log", $"{path} has no records yet.");
        return records;
    }
}
