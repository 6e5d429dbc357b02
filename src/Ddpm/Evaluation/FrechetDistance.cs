using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Evaluation;

/// <summary>Mean and covariance of feature vectors, float64.</summary>
public sealed record GaussianStatistics(double[] Mean, double[,] Covariance, long Count)
{
    public int Dimension => Mean.Length;
}

/// <summary>
/// Accumulates Σx and Σxxᵀ in float64 over batches of features [B, d], so statistics of many images never need all
/// of them in memory; the result does not depend on the order of the batches beyond float64 rounding.
/// </summary>
public sealed class RunningStatistics : IDisposable
{
    private readonly Tensor _sum, _outer;

    public int Dimension { get; }
    public long Count { get; private set; }

    public RunningStatistics(int dimension)
    {
        if (dimension < 1) throw new ArgumentException($"The feature dimension must be >= 1; got {dimension}.", nameof(dimension));
        Dimension = dimension;
        _sum = zeros(dimension, dtype: ScalarType.Float64).DetachFromDisposeScope();
        _outer = zeros(dimension, dimension, dtype: ScalarType.Float64).DetachFromDisposeScope();
    }

    public void Add(Tensor features)
    {
        if (features.dim() != 2 || features.shape[1] != Dimension)
            throw new ArgumentException($"Features must have shape [B, {Dimension}]; got [{string.Join(",", features.shape)}].", nameof(features));
        using var scope = NewDisposeScope();
        var x = features.detach().to_type(ScalarType.Float64).cpu();
        _sum.add_(x.sum(new long[] { 0 })); // not sum(0): a literal 0 binds to the sum(ScalarType) overload
        _outer.add_(x.t().matmul(x));
        Count += x.shape[0];
    }

    /// <summary>The running sums Σx [d] and Σxxᵀ [d, d] (float64, owned by this object): what <see cref="Restore"/> takes back.</summary>
    internal (Tensor Sum, Tensor Outer) Sums => (_sum, _outer);

    /// <summary>Replaces the running sums and count by saved ones (see <see cref="FeatureProgress"/>); false when the shapes do not fit.</summary>
    internal bool Restore(Tensor sum, Tensor outer, long count)
    {
        if (count < 0 || !sum.shape.SequenceEqual(_sum.shape) || !outer.shape.SequenceEqual(_outer.shape)) return false;
        using var noGrad = no_grad();
        _sum.copy_(sum);
        _outer.copy_(outer);
        Count = count;
        return true;
    }

    /// <summary>The mean and the unbiased covariance (Σxxᵀ − n μμᵀ)/(n − 1).</summary>
    public GaussianStatistics Result()
    {
        if (Count < 2) throw new InvalidOperationException($"Statistics need at least 2 feature vectors; got {Count}.");
        using var scope = NewDisposeScope();
        var mean = _sum / Count;
        var cov = (_outer - Count * mean.outer(mean)) / (Count - 1);
        var covArray = new double[Dimension, Dimension];
        var flat = cov.contiguous().data<double>().ToArray();
        Buffer.BlockCopy(flat, 0, covArray, 0, flat.Length * sizeof(double));
        return new GaussianStatistics(mean.data<double>().ToArray(), covArray, Count);
    }

    public void Dispose()
    {
        _sum.Dispose();
        _outer.Dispose();
    }
}

/// <summary>
/// The Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2) (Heusel et al. 2017; Dowson &amp; Landau 1982):
/// ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}), all in float64. The matrix square roots come from
/// symmetric eigendecompositions, which stay real and stable where scipy's sqrtm of the non-symmetric Σ1Σ2 can
/// return complex noise.
/// </summary>
public static class FrechetDistance
{
    public static double Compute(GaussianStatistics a, GaussianStatistics b)
    {
        if (a.Dimension != b.Dimension)
            throw new ArgumentException($"The statistics have different feature dimensions ({a.Dimension} and {b.Dimension}): were they computed with the same feature network?", nameof(b));
        using var scope = NewDisposeScope();
        var mu1 = tensor(a.Mean, dtype: ScalarType.Float64);
        var mu2 = tensor(b.Mean, dtype: ScalarType.Float64);
        var s1 = ToTensor(a.Covariance);
        var s2 = ToTensor(b.Covariance);
        var sqrtS1 = SymmetricSqrt(s1);
        var middle = sqrtS1.matmul(s2).matmul(sqrtS1);
        middle = 0.5 * (middle + middle.t());
        var (eigenvalues, _) = linalg.eigh(middle);
        double traceSqrt = eigenvalues.clamp_min(0.0).sqrt().sum().item<double>();
        double meanTerm = (mu1 - mu2).square().sum().item<double>();
        double value = meanTerm + s1.trace().item<double>() + s2.trace().item<double>() - 2 * traceSqrt;
        return Math.Max(0.0, value);
    }

    private static Tensor ToTensor(double[,] m)
    {
        var flat = new double[m.Length];
        Buffer.BlockCopy(m, 0, flat, 0, flat.Length * sizeof(double));
        return tensor(flat, dtype: ScalarType.Float64).reshape(m.GetLength(0), m.GetLength(1));
    }

    /// <summary>U diag(√max(λ, 0)) Uᵀ of a symmetric positive semi-definite matrix.</summary>
    private static Tensor SymmetricSqrt(Tensor m)
    {
        var (values, vectors) = linalg.eigh(0.5 * (m + m.t()));
        return (vectors * values.clamp_min(0.0).sqrt().unsqueeze(0)).matmul(vectors.t());
    }
}
