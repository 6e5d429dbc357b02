using Ddpm.Schedules;
using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling"), multistep, in data prediction:
/// with α = √ᾱ, σ = √(1 − ᾱ), λ = log(α/σ) and h = λ_t − λ_s,
/// first order  x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) x̂_0(s)  (= DDIM),
/// second order x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) (D_0 + D_1/2), D_0 = x̂_0(s), D_1 = (x̂_0(s) − x̂_0(s′))/r,
/// r = (λ_s − λ_{s′})/h, with s′ the previous step (Algorithm 2, the "2M" variant diffusers implements). One network
/// call per step. The first step has no history and the last one ends at σ = 0 (x = x̂_0), so both are first order.
/// </summary>
public sealed class DpmSolverMultistepScheduler : IScheduler
{
    private readonly GaussianDiffusion _diffusion;
    private readonly double[] _alphasCumprod;
    private int[] _descending = Array.Empty<int>();
    private int _position;
    private Tensor? _previousX0;
    private double _previousLambda;

    public int Order { get; }
    public TimestepSpacing Spacing { get; }
    public X0Clipping Clipping { get; }
    public int TrainTimesteps => _diffusion.Timesteps;
    public IReadOnlyList<int> Timesteps => _descending;

    public DpmSolverMultistepScheduler(DiffusionConfig config, int order = 2, TimestepSpacing spacing = TimestepSpacing.LogSnr, X0Clipping? clipping = null)
    {
        if (order is not (1 or 2)) throw new ArgumentException($"order must be 1 or 2; got {order}.", nameof(order));
        Clipping = clipping ?? new X0Clipping();
        Clipping.Validate();
        _diffusion = new GaussianDiffusion(config);
        _alphasCumprod = _diffusion.Schedule.AlphasCumprod;
        Order = order;
        Spacing = spacing;
        SetTimesteps(Math.Min(TrainTimesteps, 20));
    }

    public void SetTimesteps(int inferenceSteps)
    {
        _descending = TimestepSelection.Select(_alphasCumprod, inferenceSteps, Spacing).Reverse().ToArray();
        Reset();
    }

    private void Reset()
    {
        _position = 0;
        _previousX0?.Dispose();
        _previousX0 = null;
    }

    private static double Lambda(double alphaBar) => NoiseLevel.Lambda(alphaBar);

    public SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null)
    {
        if (_position >= _descending.Length || _descending[_position] != timestep)
        {
            if (timestep != _descending[0])
                throw new ArgumentException($"Timestep {timestep} is not the next of the scheduler's timesteps; step through Timesteps in order.", nameof(timestep));
            Reset();
        }
        int i = _position;
        using var scope = NewDisposeScope();
        var (x0, _) = X0Prediction.Predict(_diffusion, Clipping, modelOutput, timestep, sample);
        double abarS = _alphasCumprod[timestep], lambdaS = Lambda(abarS);
        Tensor next;
        if (i + 1 == _descending.Length)
        {
            next = x0.alias(); // σ_t = 0: the first-order update is x̂_0 itself
        }
        else
        {
            double abarT = _alphasCumprod[_descending[i + 1]];
            double alphaT = Math.Sqrt(abarT), sigmaT = Math.Sqrt(1 - abarT), sigmaS = Math.Sqrt(1 - abarS);
            double h = Lambda(abarT) - lambdaS;
            double phi = Math.Exp(-h) - 1; // e^{−h} − 1 < 0
            var d = x0;
            if (Order == 2 && _previousX0 is not null)
            {
                double r = (lambdaS - _previousLambda) / h;
                d = x0 + (0.5 / r) * (x0 - _previousX0);
            }
            next = (sigmaT / sigmaS) * sample - (alphaT * phi) * d;
        }
        _previousX0?.Dispose();
        _previousX0 = x0.detach().clone().DetachFromDisposeScope();
        _previousLambda = lambdaS;
        _position = i + 1 == _descending.Length ? 0 : i + 1;
        if (_position == 0) Reset();
        return new SchedulerStepOutput(next.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }

    public Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => _diffusion.QSample(original, timesteps, noise);

    public void Dispose()
    {
        Reset();
        _diffusion.Dispose();
    }
}
