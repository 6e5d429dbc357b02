using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>The result of one reverse step: the sample at the previous (less noisy) timestep and the predicted x_0.</summary>
public sealed record SchedulerStepOutput(Tensor PrevSample, Tensor PredictedX0);

/// <summary>
/// The diffusers scheduler protocol: choose the inference timesteps, then walk them in order calling the model at
/// each and passing its output to <see cref="Step"/>. A scheduler holds its coefficients as tensors: dispose it.
/// </summary>
public interface IScheduler : IDisposable
{
    /// <summary>T, the number of training timesteps the model knows.</summary>
    int TrainTimesteps { get; }

    /// <summary>Chooses <paramref name="inferenceSteps"/> timesteps out of T.</summary>
    void SetTimesteps(int inferenceSteps);

    /// <summary>The timesteps the model is called at, in sampling order (descending), each in [0, T−1].</summary>
    IReadOnlyList<int> Timesteps { get; }

    /// <summary>One reverse step from <paramref name="sample"/> at timestep <paramref name="timestep"/> (one of <see cref="Timesteps"/>).</summary>
    SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null);

    /// <summary>q(x_t | x_0): the training-time noising of <paramref name="original"/> at per-example <paramref name="timesteps"/>.</summary>
    Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps);
}
