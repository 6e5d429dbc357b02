using Ddpm.Sampling;
using Spectre.Console;

namespace Ddpm.Cli.Output;

/// <summary>Moves a Spectre.Console progress task as a sampler reports its steps (synchronously, on the sampling thread).</summary>
public sealed class SpectreSamplingProgress(ProgressTask task) : IProgress<SamplingProgress>
{
    public void Report(SamplingProgress value)
    {
        if (task.MaxValue != value.Total) task.MaxValue = value.Total;
        task.Value = value.Step;
    }
}
