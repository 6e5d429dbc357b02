using Ddpm.Runtime;
using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>Where a sampling loop is: step <see cref="Step"/> of <see cref="Total"/>, at model timestep <see cref="Timestep"/>.</summary>
public readonly record struct SamplingProgress(int Step, int Total, int Timestep);

/// <summary>A view of one step, valid only during the callback: the new sample and the predicted x_0.</summary>
public readonly record struct SamplingStepView(int Step, int Timestep, Tensor Sample, Tensor PredictedX0);

/// <summary>Runs any scheduler over any denoiser.</summary>
public static class DiffusionSampler
{
    /// <summary>
    /// Draws x_T ~ N(0, I) of <paramref name="shape"/> from <paramref name="generator"/> (on the CPU), moves it to
    /// <paramref name="device"/> (the network's; default CPU) and denoises it.
    /// </summary>
    public static Tensor Sample(IScheduler scheduler, Denoiser model, long[] shape, Generator? generator = null,
        ScalarType dtype = ScalarType.Float32, IProgress<SamplingProgress>? progress = null, Action<SamplingStepView>? onStep = null,
        MeanShift? meanShift = null, CancellationToken cancellationToken = default, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length < 1 || shape.Any(s => s < 1))
            throw new ArgumentException($"The sample shape must have positive sizes; got [{string.Join(",", shape)}].", nameof(shape));
        using var scope = NewDisposeScope();
        var xT = randn(shape, dtype: dtype, generator: generator).On(device ?? CPU);
        return Sample(scheduler, model, xT, generator, progress, onStep, meanShift, cancellationToken).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Denoises <paramref name="xT"/> through the scheduler's timesteps. Runs under no_grad; memory stays flat.
    /// <paramref name="meanShift"/> (classifier guidance for the stochastic samplers) is evaluated at each step's x_t
    /// and handed to <see cref="IScheduler.Step"/>; <paramref name="cancellationToken"/> is checked before each step.
    /// </summary>
    public static Tensor Sample(IScheduler scheduler, Denoiser model, Tensor xT, Generator? generator = null,
        IProgress<SamplingProgress>? progress = null, Action<SamplingStepView>? onStep = null,
        MeanShift? meanShift = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(model);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var timesteps = scheduler.Timesteps;
        var x = xT.alias();
        for (int i = 0; i < timesteps.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int t = timesteps[i];
            var tBatch = full(new long[] { x.shape[0] }, t, dtype: ScalarType.Int64, device: x.device);
            var output = model(x, tBatch);
            var step = scheduler.Step(output, t, x, generator, meanShift?.Invoke(x, t));
            x = step.PrevSample;
            onStep?.Invoke(new SamplingStepView(i, t, x, step.PredictedX0));
            scope.DisposeEverythingBut(x);
            progress?.Report(new SamplingProgress(i + 1, timesteps.Count, t));
        }
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// DDIM inversion: runs the deterministic DDIM map backwards from data <paramref name="x0"/> to x_T through the
    /// scheduler's timesteps in ascending order.
    /// </summary>
    public static Tensor Invert(DdimScheduler scheduler, Denoiser model, Tensor x0, IProgress<SamplingProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(model);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var ascending = scheduler.Timesteps.Reverse().ToArray();
        var x = x0.alias();
        for (int i = 0; i < ascending.Length; i++)
        {
            int t = ascending[i];
            var tBatch = full(new long[] { x.shape[0] }, t, dtype: ScalarType.Int64, device: x.device);
            x = scheduler.InverseStep(model(x, tBatch), t, x);
            scope.DisposeEverythingBut(x);
            progress?.Report(new SamplingProgress(i + 1, ascending.Length, t));
        }
        return x.MoveToOuterDisposeScope();
    }
}
