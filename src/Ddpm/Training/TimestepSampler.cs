using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>
/// Draws training timesteps and the importance weights that keep the loss unbiased: E_p[w_t L_t] = E_uniform[L_t]
/// with w_t = 1/(T p_t).
/// </summary>
public sealed class TimestepSampler
{
    /// <summary>Losses remembered per timestep before loss-aware sampling switches on (improved-diffusion: 10).</summary>
    public const int HistoryPerTimestep = 10;
    private const double UniformMix = 0.001;

    private readonly double[,] _history;
    private readonly int[] _counts;

    public int Timesteps { get; }
    public TimestepSampling Kind { get; }

    public TimestepSampler(int timesteps, TimestepSampling kind)
    {
        Timesteps = timesteps;
        Kind = kind;
        _history = new double[timesteps, HistoryPerTimestep];
        _counts = new int[timesteps];
    }

    /// <summary>p_t: uniform until every t has a full history, then ∝ √(mean of the last 10 L_t²), mixed with 0.1 % uniform.</summary>
    public double[] Probabilities()
    {
        var p = new double[Timesteps];
        if (Kind == TimestepSampling.Uniform || _counts.Any(c => c < HistoryPerTimestep))
        {
            Array.Fill(p, 1.0 / Timesteps);
            return p;
        }
        for (int t = 0; t < Timesteps; t++)
        {
            double sum = 0;
            for (int k = 0; k < HistoryPerTimestep; k++) sum += _history[t, k] * _history[t, k];
            p[t] = Math.Sqrt(sum / HistoryPerTimestep);
        }
        double total = p.Sum();
        for (int t = 0; t < Timesteps; t++) p[t] = p[t] / total * (1 - UniformMix) + UniformMix / Timesteps;
        return p;
    }

    /// <summary>Draws <paramref name="batch"/> timesteps and their weights 1/(T p_t).</summary>
    public (Tensor Timesteps, Tensor Weights) Sample(int batch, Generator generator)
    {
        if (Kind == TimestepSampling.Uniform)
            return (randint(0, Timesteps, new long[] { batch }, generator: generator), ones(batch));
        var p = Probabilities();
        using var scope = NewDisposeScope();
        var probabilities = tensor(p, dtype: ScalarType.Float64);
        var t = multinomial(probabilities, batch, replacement: true, generator: generator);
        var weights = (1.0 / (Timesteps * probabilities.index_select(0, t))).to_type(ScalarType.Float32);
        return (t.MoveToOuterDisposeScope(), weights.MoveToOuterDisposeScope());
    }

    /// <summary>Records per-example losses (before weighting) at their timesteps.</summary>
    public void Update(long[] timesteps, float[] losses)
    {
        if (Kind == TimestepSampling.Uniform) return;
        for (int i = 0; i < timesteps.Length; i++)
        {
            int t = (int)timesteps[i];
            if (_counts[t] == HistoryPerTimestep)
            {
                for (int k = 0; k < HistoryPerTimestep - 1; k++) _history[t, k] = _history[t, k + 1];
                _history[t, HistoryPerTimestep - 1] = losses[i];
            }
            else
            {
                _history[t, _counts[t]++] = losses[i];
            }
        }
    }

    /// <summary>The history as a flat array [T × 10] plus the counts, for checkpoints.</summary>
    public (double[] History, int[] Counts) State()
    {
        var flat = new double[Timesteps * HistoryPerTimestep];
        Buffer.BlockCopy(_history, 0, flat, 0, flat.Length * sizeof(double));
        return (flat, _counts.ToArray());
    }

    public void LoadState(double[] history, int[] counts)
    {
        if (history.Length != Timesteps * HistoryPerTimestep || counts.Length != Timesteps)
            throw new InvalidDataException($"The timestep-sampler state has {counts.Length} timesteps; the diffusion has {Timesteps}.");
        Buffer.BlockCopy(history, 0, _history, 0, history.Length * sizeof(double));
        Array.Copy(counts, _counts, counts.Length);
    }
}
