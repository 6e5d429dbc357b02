using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// An exponential moving average of the weights (Ho et al. 2020 use decay 0.9999): shadow ← d·shadow + (1 − d)·p.
/// With warm-up the decay is min(d, (1 + k)/(10 + k)) after k updates, so early averages are not dominated by
/// the random initialisation.
/// </summary>
public sealed class ExponentialMovingAverage : IDisposable
{
    private readonly IReadOnlyList<(string Name, Tensor Parameter)> _parameters;
    private readonly Tensor[] _shadow;

    public double Decay { get; }
    public bool Warmup { get; }
    public long Updates { get; private set; }

    public ExponentialMovingAverage(IEnumerable<(string Name, Tensor Parameter)> parameters, double decay, bool warmup)
    {
        _parameters = parameters.ToArray();
        Decay = decay;
        Warmup = warmup;
        using var noGrad = no_grad();
        _shadow = _parameters.Select(p => p.Parameter.detach().clone().DetachFromDisposeScope()).ToArray();
    }

    public double CurrentDecay => Warmup ? Math.Min(Decay, (1.0 + Updates) / (10.0 + Updates)) : Decay;

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
