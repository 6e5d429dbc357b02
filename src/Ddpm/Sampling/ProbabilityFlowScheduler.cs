using Ddpm.Schedules;
using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>The step rule of <see cref="ProbabilityFlowScheduler"/>.</summary>
public enum OdeMethod
{
    /// <summary>First order; one network call per step.</summary>
    Euler,
    /// <summary>Heun's second-order method (Karras et al. 2022, Algorithm 1); two calls per step, one on the last.</summary>
    Heun,
}

/// <summary>
/// The probability-flow ODE of the VP-SDE (Song et al. 2021, Eq. 13) solved with Euler or Heun steps. In the variables
/// x̃ = x_t/√ᾱ_t and σ = √((1 − ᾱ_t)/ᾱ_t) that ODE reads dx̃/dσ = ε̂(x̃, σ) (Karras et al. 2022, §3 and Eq. 4 with
/// s = 1/√(1 + σ²)), which is what the steps integrate: σ runs from σ(T−1) through the chosen timesteps to 0, where
/// the last step lands on x̂_0. An Euler step in these variables is exactly a DDIM step with η = 0 (Song et al.
/// 2020, §4.3); Heun corrects each step with the slope at its end, except the last, whose end has σ = 0.
/// Samples enter and leave in the model's variables x_t.
/// Heun needs two network calls per step, so (as in diffusers' HeunDiscreteScheduler) <see cref="Timesteps"/> lists
/// every interior timestep twice and <see cref="Step"/> alternates between the predictor and the corrector.
/// </summary>
public sealed class ProbabilityFlowScheduler : IScheduler
{
    private readonly GaussianDiffusion _diffusion;
    private readonly double[] _alphasCumprod;
    private int[] _levels = Array.Empty<int>();   // distinct timesteps, descending
    private int[] _calls = Array.Empty<int>();    // the model's timesteps, in call order
    private int _position;
    private Tensor? _startSample, _startSlope;     // Heun: x̃ and slope at the start of the current step

    public OdeMethod Method { get; }
    public TimestepSpacing Spacing { get; }
    public X0Clipping Clipping { get; }
    public int TrainTimesteps => _diffusion.Timesteps;
    public IReadOnlyList<int> Timesteps => _calls;

    public ProbabilityFlowScheduler(DiffusionConfig config, OdeMethod method = OdeMethod.Heun, TimestepSpacing spacing = TimestepSpacing.Karras, X0Clipping? clipping = null)
    {
        Clipping = clipping ?? new X0Clipping();
        Clipping.Validate();
        _diffusion = new GaussianDiffusion(config);
        _alphasCumprod = _diffusion.Schedule.AlphasCumprod;
        Method = method;
        Spacing = spacing;
        SetTimesteps(Math.Min(TrainTimesteps, 50));
    }

    /// <summary>Chooses <paramref name="steps"/> ODE steps (Heun: 2·steps − 1 network calls).</summary>
    public void SetTimesteps(int steps)
    {
        _levels = TimestepSelection.Select(_alphasCumprod, steps, Spacing).Reverse().ToArray();
        _calls = Method == OdeMethod.Euler
            ? _levels
            : _levels.SelectMany((t, i) => i == 0 ? new[] { t } : new[] { t, t }).ToArray();
        Reset();
    }

    private void Reset()
    {
        _position = 0;
        _startSample?.Dispose();
        _startSlope?.Dispose();
        _startSample = _startSlope = null;
    }

    private double AlphaBar(int level) => level < _levels.Length ? _alphasCumprod[_levels[level]] : 1.0;
    private double Sigma(int level) => NoiseLevel.Sigma(AlphaBar(level));

    public SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null)
    {
        if (_position >= _calls.Length || _calls[_position] != timestep)
        {
            if (timestep != _calls[0])
                throw new ArgumentException($"Timestep {timestep} is not the next of the scheduler's timesteps ({(_position < _calls.Length ? _calls[_position] : _calls[0])}); step through Timesteps in order.", nameof(timestep));
            Reset();
        }
        int p = _position;
        bool corrector = Method == OdeMethod.Heun && p % 2 == 1;
        int level = Method == OdeMethod.Euler ? p : (p + 1) / 2;  // the level the model was evaluated at
        using var scope = NewDisposeScope();
        var (x0, epsilon) = X0Prediction.Predict(_diffusion, Clipping, modelOutput, timestep, sample);
        double a = AlphaBar(level);
        Tensor next;
        if (!corrector)
        {
            // Predictor (Euler) from level to level + 1; σ = 0 after the last level.
            var xTilde = sample / Math.Sqrt(a);
            double h = Sigma(level + 1) - Sigma(level);
            var euler = level + 1 < _levels.Length ? xTilde + h * epsilon : x0;
            if (Method == OdeMethod.Heun && level + 1 < _levels.Length)
            {
                _startSample = xTilde.DetachFromDisposeScope();
                _startSlope = epsilon.DetachFromDisposeScope();
            }
            next = euler * Math.Sqrt(AlphaBar(level + 1));
        }
        else
        {
            // Corrector: the trapezoid of the slopes at both ends of the step from level − 1 to level.
            double h = Sigma(level) - Sigma(level - 1);
            var corrected = _startSample! + (0.5 * h) * (_startSlope! + epsilon);
            _startSample!.Dispose();
            _startSlope!.Dispose();
            _startSample = _startSlope = null;
            next = corrected * Math.Sqrt(a);
        }
        _position = p + 1 == _calls.Length ? 0 : p + 1;
        return new SchedulerStepOutput(next.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }

    public Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps) => _diffusion.QSample(original, timesteps, noise);

    public void Dispose()
    {
        Reset();
        _diffusion.Dispose();
    }
}
