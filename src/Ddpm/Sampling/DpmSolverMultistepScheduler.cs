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
/// The history is x̂_0 of the step before, kept with its timestep: a step uses it only when it belongs to the timestep
/// before its own in <see cref="SchedulerBase.Timesteps"/>.
/// </summary>
public sealed class DpmSolverMultistepScheduler : SchedulerBase
{
    private Tensor? _previousX0;
    private int _previousTimestep = -1;

    public int Order { get; }

    public DpmSolverMultistepScheduler(DiffusionConfig config, int order = 2, TimestepSpacing? spacing = null, X0Clipping? clipping = null)
        : base(new GaussianDiffusion(config), SamplerKind.DpmSolver2M, spacing, clipping)
    {
        if (order is not (1 or 2))
        {
            Diffusion.Dispose();
            throw new ArgumentException($"order must be 1 or 2; got {order}.", nameof(order));
        }
        Order = order;
        UseDefaultSteps();
    }

    protected override void UseTimesteps(int[] ascending)
    {
        base.UseTimesteps(ascending);
        ForgetHistory();
    }

    private void ForgetHistory()
    {
        _previousX0?.Dispose();
        _previousX0 = null;
        _previousTimestep = -1;
    }

    public override SchedulerStepOutput Step(Tensor modelOutput, int timestep, Tensor sample, Generator? generator = null, Tensor? meanShift = null)
    {
        if (meanShift is not null) throw NoMeanShift();
        int i = IndexOf(timestep);
        if (i == 0) ForgetHistory(); // a new run
        else if (_previousTimestep != Levels[i - 1])
            throw new ArgumentException($"Timestep {timestep} follows {Levels[i - 1]}, whose step has not been taken; DPM-Solver++ 2M needs the steps of Timesteps in order.", nameof(timestep));
        using var scope = NewDisposeScope();
        var (x0, _) = Predict(modelOutput, timestep, sample);
        double abarS = AlphasCumprod[timestep], lambdaS = NoiseLevel.Lambda(abarS);
        Tensor next;
        if (i + 1 == Levels.Length)
        {
            next = x0.alias(); // σ_t = 0: the first-order update is x̂_0 itself
        }
        else
        {
            double abarT = AlphaBarAfter(i);
            double alphaT = Math.Sqrt(abarT), sigmaT = Math.Sqrt(1 - abarT), sigmaS = Math.Sqrt(1 - abarS);
            double h = NoiseLevel.Lambda(abarT) - lambdaS;
            double phi = Math.Exp(-h) - 1; // e^{−h} − 1 < 0
            var d = x0;
            if (Order == 2 && _previousX0 is not null)
            {
                double r = (lambdaS - NoiseLevel.Lambda(AlphasCumprod[_previousTimestep])) / h;
                d = x0 + (0.5 / r) * (x0 - _previousX0);
            }
            next = (sigmaT / sigmaS) * sample - (alphaT * phi) * d;
        }
        ForgetHistory();
        if (i + 1 < Levels.Length)
        {
            _previousX0 = x0.detach().clone().DetachFromDisposeScope();
            _previousTimestep = timestep;
        }
        return new SchedulerStepOutput(next.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }

    public override void Dispose()
    {
        ForgetHistory();
        base.Dispose();
    }
}
