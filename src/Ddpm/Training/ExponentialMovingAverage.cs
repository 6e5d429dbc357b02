using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// An exponential moving average of the weights (Ho et al. 2020 use decay 0.9999): shadow ← d·shadow + (1 − d)·p.
/// With warm-up the decay is min(d, (1 + k)/(10 + k)) after k updates, so early averages are not dominated by
/// the random initialisation. With <see cref="EmaProfile.Power"/> the decay of the k-th update is (1 − 1/k)^(γ+1)
/// (<see cref="PowerEma"/>).
/// </summary>
public sealed class ExponentialMovingAverage : IDisposable
{
    private readonly IReadOnlyList<(string Name, Tensor Parameter)> _parameters;
    private readonly Tensor[] _shadow;

    public double Decay { get; }
    public bool Warmup { get; }
    public long Updates { get; private set; }

    public ExponentialMovingAverage(IEnumerable<(string Name, Tensor Parameter)> parameters, double decay, bool warmup,
        EmaProfile profile = EmaProfile.Constant, double relativeStd = 0.05)
    {
        _parameters = parameters.ToArray();
        Decay = decay;
        Warmup = warmup;
        Profile = profile;
        Exponent = profile == EmaProfile.Power ? PowerEma.ExponentFromStd(relativeStd) : 0;
        using var noGrad = no_grad();
        _shadow = _parameters.Select(p => p.Parameter.detach().clone().DetachFromDisposeScope()).ToArray();
    }

    public EmaProfile Profile { get; }

    /// <summary>γ of the power profile (0 for a constant decay).</summary>
    public double Exponent { get; }

    /// <summary>The decay the next update uses.</summary>
    public double CurrentDecay => Profile == EmaProfile.Power
        ? PowerEma.Decay(Updates + 1, Exponent)
        : Warmup ? Math.Min(Decay, (1.0 + Updates) / (10.0 + Updates)) : Decay;

    public void Update()
    {
        using var noGrad = no_grad();
        double d = CurrentDecay;
        for (int i = 0; i < _parameters.Count; i++)
            _shadow[i].mul_(d).add_(_parameters[i].Parameter, alpha: 1 - d);
        Updates++;
    }

    /// <summary>The averaged weights by parameter name; live tensors.</summary>
    public Dictionary<string, Tensor> StateTensors() =>
        _parameters.Select((p, i) => (p.Name, _shadow[i])).ToDictionary(p => p.Name, p => p.Item2);

    public void LoadState(IReadOnlyDictionary<string, Tensor> state, long updates)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < _parameters.Count; i++)
        {
            string name = _parameters[i].Name;
            if (!state.TryGetValue(name, out var value) || !value.shape.SequenceEqual(_shadow[i].shape))
                throw new InvalidDataException($"The EMA weights lack a tensor of shape [{string.Join(",", _shadow[i].shape)}] for '{name}': the checkpoint does not fit this model.");
            _shadow[i].copy_(value);
        }
        Updates = updates;
    }

    public void Dispose()
    {
        foreach (var t in _shadow) t.Dispose();
    }
}

/// <summary>
/// EDM2's power-function EMA (Karras et al. 2024, §3.1): the average after K steps weights step k by about k^γ. The
/// update shadow ← β_k·shadow + (1 − β_k)·p with β_k = (1 − 1/k)^(γ+1) gives step k the weight
/// (k^(γ+1) − (k − 1)^(γ+1)) / K^(γ+1) (the product of the later decays telescopes), the discrete form of (γ + 1) k^γ / K^(γ+1). Its width relative to the run,
/// σ_rel = √((γ + 1) / ((γ + 2)² (γ + 3))), names the average; EDM2 uses σ_rel = 0.05–0.10.
/// </summary>
public static class PowerEma
{
    /// <summary>σ_rel of γ = 0 (the plain mean of all steps); narrower widths have γ &gt; 0.</summary>
    public static readonly double MaxStd = Math.Sqrt(1.0 / 12.0);

    /// <summary>σ_rel of the profile with exponent γ.</summary>
    public static double RelativeStd(double exponent) =>
        Math.Sqrt((exponent + 1) / ((exponent + 2) * (exponent + 2) * (exponent + 3)));

    /// <summary>
    /// γ for a relative width σ_rel in (0, 1/√12): the positive root of γ³ + 7γ² + (16 − σ⁻²)γ + (12 − σ⁻²) = 0, which is
    /// σ_rel's definition multiplied out. σ_rel falls monotonically in γ, so bisection finds it.
    /// </summary>
    public static double ExponentFromStd(double relativeStd)
    {
        if (!(relativeStd > 0 && relativeStd < MaxStd))
            throw new ArgumentException($"σ_rel must be in (0, {MaxStd:0.####}); got {relativeStd}.", nameof(relativeStd));
        double low = 0, high = 1;
        while (RelativeStd(high) > relativeStd) high *= 2;
        for (int i = 0; i < 200 && high - low > 1e-12 * high; i++)
        {
            double mid = 0.5 * (low + high);
            if (RelativeStd(mid) > relativeStd) low = mid;
            else high = mid;
        }
        return 0.5 * (low + high);
    }

    /// <summary>β_k = (1 − 1/k)^(γ+1) for the k-th update (k ≥ 1; the first update copies the weights).</summary>
    public static double Decay(long update, double exponent) => Math.Pow(1.0 - 1.0 / update, exponent + 1);
}
