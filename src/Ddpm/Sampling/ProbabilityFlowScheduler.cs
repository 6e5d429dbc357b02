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
/// every interior timestep twice: the first call at a level is the corrector of the step that reached it, the second
/// the predictor of the next step. Which one a call is follows from the timestep and the pending predictor's level.
/// </summary>
public sealed class ProbabilityFlowScheduler : SchedulerBase
{
    private int[] _calls = Array.Empty<int>();    // the model's timesteps, in call order
    private Tensor? _startSample, _startSlope;     // Heun: x̃ and slope at the start of the pending step
    private int _pendingLevel = -1;                // Heun: the level the pending step starts from
    private int _correctedLevel = -1;              // Heun: the level whose corrector ran last

    public OdeMethod Method { get; }
    public override IReadOnlyList<int> Timesteps => _calls;

    public ProbabilityFlowScheduler(DiffusionConfig config, OdeMethod method = OdeMethod.Heun, TimestepSpacing? spacing = null, X0Clipping? clipping = null)
        : base(new GaussianDiffusion(config), method == OdeMethod.Euler ? SamplerKind.Euler : SamplerKind.Heun, spacing, clipping)
    {
        Method = method;
        UseDefaultSteps();
    }

    /// <summary>The chosen levels as ODE steps (Heun: 2·steps − 1 network calls).</summary>
    protected override void UseTimesteps(int[] ascending)
    {
        base.UseTimesteps(ascending);
        _calls = Method == OdeMethod.Euler
            ? Levels
            : Levels.SelectMany((t, i) => i == 0 ? new[] { t } : new[] { t, t }).ToArray();
        ForgetPending();
    }

    private void ForgetPending()
    {
        _startSample?.Dispose();
        _startSlope?.Dispose();
        _startSample = _startSlope = null;
        _pendingLevel = _correctedLevel = -1;
    }

    private double AlphaBar(int level) => level < Levels.Length ? AlphasCumprod[Levels[level]] : 1.0;
    private double Sigma(int level) => NoiseLevel.Sigma(AlphaBar(level));

    public override SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null, Tensor? meanShift = null)
    {
        if (meanShift is not null) throw NoMeanShift();
        int level = IndexOf(timestep);  // the level the model was evaluated at
        bool corrector = false;
        if (Method == OdeMethod.Heun)
        {
            if (level == 0) ForgetPending(); // a new run
            else if (_startSample is not null && _pendingLevel == level - 1) corrector = true;
            else if (_correctedLevel != level)
                throw new ArgumentException($"Timestep {timestep} is not the next of the scheduler's calls; Heun needs the calls of Timesteps in order.", nameof(timestep));
        }
        using var scope = NewDisposeScope();
        var (x0, epsilon) = Predict(modelOutput, timestep, sample);
        double a = AlphaBar(level);
        Tensor next;
        if (!corrector)
        {
            // Predictor (Euler) from level to level + 1; σ = 0 after the last level.
            var xTilde = sample / Math.Sqrt(a);
            double h = Sigma(level + 1) - Sigma(level);
            var euler = level + 1 < Levels.Length ? xTilde + h * epsilon : x0;
            if (Method == OdeMethod.Heun && level + 1 < Levels.Length)
            {
                _startSample = xTilde.DetachFromDisposeScope();
                _startSlope = epsilon.DetachFromDisposeScope();
                _pendingLevel = level;
            }
            else if (Method == OdeMethod.Heun)
            {
                ForgetPending(); // the run is over
            }
            next = euler * Math.Sqrt(AlphaBar(level + 1));
        }
        else
        {
            // Corrector: the trapezoid of the slopes at both ends of the step from level − 1 to level.
            double h = Sigma(level) - Sigma(level - 1);
            var corrected = _startSample! + (0.5 * h) * (_startSlope! + epsilon);
            ForgetPending();
            _correctedLevel = level;
            next = corrected * Math.Sqrt(a);
        }
        return new SchedulerStepOutput(next.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }

    public override void Dispose()
    {
        ForgetPending();
        base.Dispose();
    }
}
