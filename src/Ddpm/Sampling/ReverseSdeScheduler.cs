using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// The reverse-time VP-SDE (Song et al. 2021, Eq. 6 with the VP-SDE of Eq. 11) with Euler–Maruyama steps. In the time
/// τ = −log ᾱ (τ' = β) the forward SDE is dx = −½x dτ + dw, so the reverse SDE is dx = [−½x − ∇log p_τ(x)] dτ + dw̄,
/// with the score ∇log p = −ε̂/√(1 − ᾱ). One step from t to the next timestep t′ covers Δτ = log(ᾱ_{t′}/ᾱ_t), the
/// exact integral of β over it:  x′ = x + (x/2 + ∇log p)·Δτ + √Δτ·z.  After the last timestep the sample is denoised
/// to x̂_0 = E[x_0 | x_t] (Song et al.'s final "denoise" step) instead of a step into τ = 0, where the score diverges.
/// One network call per step; first order in the weak sense, so it wants many steps.
/// </summary>
public sealed class ReverseSdeScheduler : IScheduler
{
    private readonly GaussianDiffusion _diffusion;
    private readonly double[] _alphasCumprod;
    private int[] _descending = Array.Empty<int>();
    private Dictionary<int, int> _indexOf = new();

    public TimestepSpacing Spacing { get; }
    public X0Clipping Clipping { get; }
    public int TrainTimesteps => _diffusion.Timesteps;
    public IReadOnlyList<int> Timesteps => _descending;

    public ReverseSdeScheduler(DiffusionConfig config, TimestepSpacing spacing = TimestepSpacing.Linspace, X0Clipping? clipping = null)
    {
        Clipping = clipping ?? new X0Clipping();
        Clipping.Validate();
        _diffusion = new GaussianDiffusion(config);
        _alphasCumprod = _diffusion.Schedule.AlphasCumprod;
        Spacing = spacing;
        SetTimesteps(TrainTimesteps);
    }

    public void SetTimesteps(int inferenceSteps)
    {
        _descending = TimestepSelection.Select(_alphasCumprod, inferenceSteps, Spacing).Reverse().ToArray();
        _indexOf = _descending.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i);
    }

    public SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null)
    {
        if (!_indexOf.TryGetValue(timestep, out int i))
            throw new ArgumentException($"Timestep {timestep} is not one of the scheduler's timesteps; call SetTimesteps and step through Timesteps.", nameof(timestep));
        using var scope = NewDisposeScope();
        var (x0, epsilon) = X0Prediction.Predict(_diffusion, Clipping, modelOutput, timestep, sample);
        Tensor next;
        if (i + 1 == _descending.Length)
        {
            next = x0.alias();
        }
        else
        {
            double abar = _alphasCumprod[timestep], abarNext = _alphasCumprod[_descending[i + 1]];
            double dTau = Math.Log(abarNext / abar);
            var score = epsilon / -Math.Sqrt(1 - abar);
            var noise = randn(sample.shape, dtype: sample.dtype, device: sample.device, generator: generator);
            next = sample + dTau * (0.5 * sample + score) + Math.Sqrt(dTau) * noise;
        }
        return new SchedulerStepOutput(next.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }

    public Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => _diffusion.QSample(original, timesteps, noise);

    public void Dispose() => _diffusion.Dispose();
}
