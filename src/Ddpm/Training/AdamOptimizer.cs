using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// Adam (Kingma &amp; Ba 2015) with PyTorch's update rule, holding its moments as plain tensors so that a checkpoint
/// saves and restores them exactly (TorchSharp's optimizer state is neither safetensors nor PyTorch-compatible).
/// p ← p − lr · m̂ / (√v̂ + ε), m̂ = m/(1 − β1^k), v̂ = v/(1 − β2^k).
/// </summary>
public sealed class AdamOptimizer : IDisposable
{
    private readonly IReadOnlyList<(string Name, Tensor Parameter)> _parameters;
    private readonly Tensor[] _m, _v;

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double LearningRate { get; set; }
    /// <summary>Updates taken so far (k in the bias corrections).</summary>
    public long StepCount { get; private set; }

    public AdamOptimizer(IEnumerable<(string Name, Tensor Parameter)> parameters, double learningRate, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8)
    {
        _parameters = parameters.ToArray();
        LearningRate = learningRate;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        using var noGrad = no_grad();
        _m = _parameters.Select(p => zeros_like(p.Parameter).DetachFromDisposeScope()).ToArray();
        _v = _parameters.Select(p => zeros_like(p.Parameter).DetachFromDisposeScope()).ToArray();
    }

    public void ZeroGrad()
    {
        foreach (var (_, p) in _parameters) p.grad?.zero_();
    }

    public void Step()
    {
        using var noGrad = no_grad();
        StepCount++;
        double correction1 = 1 - Math.Pow(Beta1, StepCount), correction2 = 1 - Math.Pow(Beta2, StepCount);
        double stepSize = LearningRate / correction1, sqrtCorrection2 = Math.Sqrt(correction2);
        for (int i = 0; i < _parameters.Count; i++)
        {
            using var scope = NewDisposeScope();
            var p = _parameters[i].Parameter;
            var g = p.grad;
            if (g is null) continue;
            _m[i].mul_(Beta1).add_(g, alpha: 1 - Beta1);
            _v[i].mul_(Beta2).addcmul_(g, g, value: 1 - Beta2);
            var denominator = (_v[i].sqrt() / sqrtCorrection2).add_(Epsilon);
            p.addcdiv_(_m[i], denominator, value: -stepSize);
        }
    }

    /// <summary>The moments as named tensors ("m.NAME", "v.NAME"); live views, copy before changing them.</summary>
    public Dictionary<string, Tensor> StateTensors()
    {
        var state = new Dictionary<string, Tensor>();
        for (int i = 0; i < _parameters.Count; i++)
        {
            state["m." + _parameters[i].Name] = _m[i];
            state["v." + _parameters[i].Name] = _v[i];
        }
        return state;
    }

    /// <summary>Restores the moments saved by <see cref="StateTensors"/> and the step count.</summary>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, long stepCount)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < _parameters.Count; i++)
        {
            string name = _parameters[i].Name;
            if (!state.TryGetValue("m." + name, out var m) || !state.TryGetValue("v." + name, out var v))
                throw new InvalidDataException($"The optimizer state has no moments for parameter '{name}': the checkpoint does not fit this model.");
            if (!m.shape.SequenceEqual(_m[i].shape) || !v.shape.SequenceEqual(_v[i].shape))
                throw new InvalidDataException($"The optimizer moments for '{name}' have shape [{string.Join(",", m.shape)}], the model needs [{string.Join(",", _m[i].shape)}]: the checkpoint does not fit this model.");
            _m[i].copy_(m);
            _v[i].copy_(v);
        }
        StepCount = stepCount;
    }

    public void Dispose()
    {
        foreach (var t in _m.Concat(_v)) t.Dispose();
    }
}
