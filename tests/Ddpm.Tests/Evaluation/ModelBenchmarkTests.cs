using Ddpm.Evaluation;
using Ddpm.Models;
using Ddpm.Runtime;

namespace Ddpm.Tests.Evaluation;

/// <summary>The model benchmark times the trainer's own step, phase by phase.</summary>
public class ModelBenchmarkTests
{
    [Fact]
    public void ThePhasesOfTheTimedTrainerStepAddUpToTheStepTime()
    {
        var result = ModelBenchmark.Run("tiny", UNetPresets.Tiny, batch: 4, steps: 3, warmup: 1, threads: 1, matmulSize: 64, compute: ComputeSettings.Reference);
        Assert.Equal(3, result.Steps);
        using (var reference = new UNet(UNetPresets.Tiny)) Assert.Equal(reference.ParameterCount, result.Parameters);
        double phases = result.ForwardMs + result.BackwardMs + result.ClipMs + result.OptimizerMs + result.EmaMs;
        Assert.All(new[] { result.ForwardMs, result.BackwardMs, result.ClipMs, result.OptimizerMs, result.EmaMs }, ms => Assert.True(ms > 0));
        // The phases cover the step but for the timestep-sampler update and the step counter: at most the step, most of it.
        Assert.InRange(phases, 0.5 * result.StepMs, result.StepMs);
        Assert.Equal(1000.0 / result.StepMs, result.TrainStepsPerS, 6);
    }
}
