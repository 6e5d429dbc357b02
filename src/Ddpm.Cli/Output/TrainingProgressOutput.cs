using System.Globalization;
using Ddpm.Training;
using Spectre.Console;

namespace Ddpm.Cli.Output;

/// <summary>How <c>ddpm train</c> shows its log records: a live bar on a terminal, one plain line per record elsewhere.</summary>
public static class TrainingProgressText
{
    public static string Describe(TrainingProgress p) =>
        string.Create(CultureInfo.InvariantCulture, $"step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} grad {p.GradNorm:F3} lr {p.LearningRate:E2} {p.ImagesPerSecond:F1} img/s");

    /// <summary>h:mm:ss with the hours not wrapped at 24 (a TimeSpan's "hh" drops whole days).</summary>
    public static string Clock(TimeSpan span) => string.Create(CultureInfo.InvariantCulture, $"{(long)span.TotalHours}:{span:mm\\:ss}");
}

/// <summary>Updates a Spectre progress task synchronously (Progress&lt;T&gt; would post to a thread pool).</summary>
public sealed class TrainingProgressBar(ProgressTask task) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value)
    {
        task.Value = value.Step;
        task.Description = Markup.Escape(TrainingProgressText.Describe(value));
    }
}

/// <summary>One plain line per log record, with the elapsed time and an estimate of the time left (logs, CI).</summary>
public sealed class TrainingProgressLines(TextWriter output) : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value)
    {
        double secondsPerStep = value.ElapsedSeconds / Math.Max(1, value.Step);
        var eta = TimeSpan.FromSeconds((value.TotalSteps - value.Step) * secondsPerStep);
        output.WriteLine($"{TrainingProgressText.Describe(value)} elapsed {TrainingProgressText.Clock(TimeSpan.FromSeconds(value.ElapsedSeconds))} eta {TrainingProgressText.Clock(eta)}");
        output.Flush();
    }
}
