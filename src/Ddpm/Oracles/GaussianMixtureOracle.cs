using Ddpm.Diffusion;
using Ddpm.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Oracles;

/// <summary>One component of a Gaussian mixture in d dimensions: weight, mean and covariance (a zero covariance is a point).</summary>
public sealed record MixtureComponent(double Weight, double[] Mean, double[,] Covariance);

/// <summary>
/// A denoiser that needs no training: for data x_0 from a Gaussian mixture Σ_k w_k N(μ_k, Σ_k), the optimal
/// prediction E[x_0 | x_t] is known in closed form. With x_t = a x_0 + b ε (a = √ᾱ_t, b = √(1 − ᾱ_t)) and
/// Σ_k = U Λ Uᵀ, component k sees x_t ~ N(a μ_k, a²Σ_k + b² I), its posterior mean is
/// μ_k + U diag(aλ/(a²λ + b²)) Uᵀ (x_t − a μ_k), and the components are weighted by their posterior
/// responsibilities. A single component is the Gaussian-data oracle (then ε* is linear in x_t); zero covariances
/// give data on K points, where E[x_0 | x_t] is the posterior-weighted mean of the points.
/// All arithmetic is float64; outputs take the dtype of the input.
/// </summary>
public sealed class GaussianMixtureOracle : IDisposable
{
    private readonly Tensor _logWeights;              // [K]
    private readonly Tensor _means;                   // [K, d]
    private readonly Tensor[] _eigenvalues;           // K × [d]
    private readonly Tensor[] _eigenvectors;          // K × [d, d]
    private readonly Tensor[] _choleskyLike;          // K × [d, d]: U diag(√λ), to sample

    public IReadOnlyList<MixtureComponent> Components { get; }
    public int Dimension { get; }

    public GaussianMixtureOracle(IReadOnlyList<MixtureComponent> components)
    {
        ArgumentNullException.ThrowIfNull(components);
        if (components.Count == 0) throw new ArgumentException("A mixture needs at least one component.", nameof(components));
        Dimension = components[0].Mean.Length;
        if (Dimension < 1) throw new ArgumentException("Component means must have at least one dimension.", nameof(components));
        double totalWeight = 0;
        foreach (var c in components)
        {
            if (c.Mean.Length != Dimension || c.Covariance.GetLength(0) != Dimension || c.Covariance.GetLength(1) != Dimension)
                throw new ArgumentException($"Every component needs a mean of length {Dimension} and a {Dimension}×{Dimension} covariance.", nameof(components));
            if (!(c.Weight > 0)) throw new ArgumentException($"Component weights must be > 0; got {c.Weight}.", nameof(components));
            totalWeight += c.Weight;
        }
        Components = components.ToArray();
        using var scope = NewDisposeScope();
        _logWeights = tensor(components.Select(c => Math.Log(c.Weight / totalWeight)).ToArray(), dtype: ScalarType.Float64).DetachFromDisposeScope();
        _means = tensor(components.SelectMany(c => c.Mean).ToArray(), dtype: ScalarType.Float64).reshape(components.Count, Dimension).DetachFromDisposeScope();
        _eigenvalues = new Tensor[components.Count];
        _eigenvectors = new Tensor[components.Count];
        _choleskyLike = new Tensor[components.Count];
        for (int k = 0; k < components.Count; k++)
        {
            var cov = tensor(Flatten(components[k].Covariance), dtype: ScalarType.Float64).reshape(Dimension, Dimension);
            if ((cov - cov.t()).abs().max().item<double>() > 1e-12)
                throw new ArgumentException($"The covariance of component {k} is not symmetric.", nameof(components));
            var (values, vectors) = linalg.eigh(cov);
            if (values.min().item<double>() < -1e-12)
                throw new ArgumentException($"The covariance of component {k} is not positive semi-definite.", nameof(components));
            values = values.clamp_min(0.0);
            _eigenvalues[k] = values.DetachFromDisposeScope();
            _eigenvectors[k] = vectors.DetachFromDisposeScope();
            _choleskyLike[k] = (vectors * values.sqrt().unsqueeze(0)).DetachFromDisposeScope();
        }
    }

    /// <summary>Data N(mean, covariance): the Gaussian oracle.</summary>
    public static GaussianMixtureOracle Gaussian(double[] mean, double[,] covariance) =>
        new(new[] { new MixtureComponent(1.0, mean, covariance) });

    /// <summary>Data on K points with the given probabilities.</summary>
    public static GaussianMixtureOracle Points(double[][] points, double[] weights)
    {
        if (points.Length != weights.Length) throw new ArgumentException($"Got {points.Length} points but {weights.Length} weights.", nameof(weights));
        int d = points.Length > 0 ? points[0].Length : 0;
        return new(points.Select((p, i) => new MixtureComponent(weights[i], p, new double[d, d])).ToArray());
    }

    private static double[] Flatten(double[,] m)
    {
        var result = new double[m.Length];
        Buffer.BlockCopy(m, 0, result, 0, m.Length * sizeof(double));
        return result;
    }

    /// <summary>The mixture's mean Σ w_k μ_k.</summary>
    public double[] Mean()
    {
        double total = Components.Sum(c => c.Weight);
        return Enumerable.Range(0, Dimension).Select(j => Components.Sum(c => c.Weight * c.Mean[j]) / total).ToArray();
    }

    /// <summary>The mixture's covariance Σ w_k (Σ_k + μ_k μ_kᵀ) − μ μᵀ.</summary>
    public double[,] Covariance()
    {
        double total = Components.Sum(c => c.Weight);
        var mean = Mean();
        var cov = new double[Dimension, Dimension];
        for (int i = 0; i < Dimension; i++)
            for (int j = 0; j < Dimension; j++)
                cov[i, j] = Components.Sum(c => c.Weight * (c.Covariance[i, j] + c.Mean[i] * c.Mean[j])) / total - mean[i] * mean[j];
        return cov;
    }

    /// <summary>n exact draws from the mixture, shape [n, d].</summary>
    public Tensor Sample(long n, Generator? generator = null, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var component = multinomial(_logWeights.exp(), n, replacement: true, generator: generator);
        var z = randn(new long[] { n, Dimension }, dtype: ScalarType.Float64, generator: generator);
        var x = _means.index_select(0, component).clone();
        for (int k = 0; k < Components.Count; k++)
        {
            var mask = (component == k).unsqueeze(1).to_type(ScalarType.Float64);
            x = x + mask * z.matmul(_choleskyLike[k].t());
        }
        return x.to_type(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>E[x_0 | x_t] for x_t of shape [B, d] at per-example ᾱ_t, shape [B] (float64).</summary>
    public Tensor PosteriorMeanX0(Tensor xt, Tensor alphaBar) => PosteriorX0(xt, alphaBar, withVariance: false).Mean;

    /// <summary>
    /// E[x_0 | x_t] and the diagonal of Cov[x_0 | x_t] (law of total variance over the components; within a
    /// component Cov = U diag(λ b²/(a²λ + b²)) Uᵀ), both [B, d] float64.
    /// </summary>
    public (Tensor Mean, Tensor? Variance) PosteriorX0(Tensor xt, Tensor alphaBar, bool withVariance)
    {
        if (xt.dim() != 2 || xt.shape[1] != Dimension)
            throw new ArgumentException($"The oracle expects samples of shape [B, {Dimension}]; got [{string.Join(",", xt.shape)}].", nameof(xt));
        using var scope = NewDisposeScope();
        var x = xt.to_type(ScalarType.Float64);
        var a = alphaBar.to_type(ScalarType.Float64).sqrt().unsqueeze(1);       // [B, 1]
        var b2 = (1.0 - alphaBar.to_type(ScalarType.Float64)).unsqueeze(1);     // [B, 1]
        var logResponsibility = new List<Tensor>();
        var componentMeans = new List<Tensor>();
        var componentVariances = new List<Tensor>();
        for (int k = 0; k < Components.Count; k++)
        {
            var mu = _means[k].unsqueeze(0);                                    // [1, d]
            var y = (x - a * mu).matmul(_eigenvectors[k]);                      // [B, d] in the eigenbasis
            var lambda = _eigenvalues[k].unsqueeze(0);                          // [1, d]
            var variance = a.square() * lambda + b2;                            // [B, d]
            var logDensity = -0.5 * ((y.square() / variance).sum(1) + variance.log().sum(1));
            logResponsibility.Add(_logWeights[k] + logDensity);
            var shrink = a * lambda / variance;
            componentMeans.Add(mu + (y * shrink).matmul(_eigenvectors[k].t()));
            if (withVariance)
                componentVariances.Add((lambda * b2 / variance).matmul(_eigenvectors[k].square().t()));
        }
        var responsibility = stack(logResponsibility, 1).softmax(1).unsqueeze(2); // [B, K, 1]
        var means = stack(componentMeans, 1);                                   // [B, K, d]
        var mean = (means * responsibility).sum(1);
        if (!withVariance) return (mean.MoveToOuterDisposeScope(), null);
        var secondMoment = ((stack(componentVariances, 1) + means.square()) * responsibility).sum(1);
        var total = (secondMoment - mean.square()).clamp_min(0.0);
        return (mean.MoveToOuterDisposeScope(), total.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The optimal network for <paramref name="schedule"/>: it returns E[target | x_t] for the chosen
    /// parameterisation (ε, x_0 or v), all linear in E[x_0 | x_t]. With <paramref name="withReverseLogVariance"/>
    /// it also returns, concatenated along dimension 1, the log of the true reverse variance per coordinate,
    /// Var[x_{t−1} | x_t] = β̃_t + c_t² Var[x_0 | x_t] (c_t the x_0 coefficient of μ̃_t, Eq. 7), for use with
    /// <see cref="VarianceType.Learned"/>.
    /// </summary>
    public Denoiser Denoiser(NoiseSchedule schedule, PredictionType prediction = PredictionType.Epsilon, bool withReverseLogVariance = false)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        var alphaBars = tensor(schedule.AlphasCumprod, dtype: ScalarType.Float64).DetachFromDisposeScope();
        var posteriorVariance = tensor(schedule.PosteriorVariance, dtype: ScalarType.Float64).DetachFromDisposeScope();
        var x0Coefficient = tensor(schedule.PosteriorMeanCoefX0, dtype: ScalarType.Float64).DetachFromDisposeScope();
        return (sample, timesteps) =>
        {
            using var scope = NewDisposeScope();
            var t = timesteps.cpu();
            var alphaBar = alphaBars.index_select(0, t);
            var x = sample.to_type(ScalarType.Float64);
            var (x0, x0Variance) = PosteriorX0(x, alphaBar, withReverseLogVariance);
            var a = alphaBar.sqrt().unsqueeze(1);
            var b = (1.0 - alphaBar).sqrt().unsqueeze(1);
            var epsilon = (x - a * x0) / b;
            var output = prediction switch
            {
                PredictionType.Epsilon => epsilon,
                PredictionType.X0 => x0,
                PredictionType.V => a * epsilon - b * x0,
                _ => throw new ArgumentException($"Unknown prediction type {prediction}.", nameof(prediction)),
            };
            if (withReverseLogVariance)
            {
                var reverse = posteriorVariance.index_select(0, t).unsqueeze(1) + x0Coefficient.index_select(0, t).square().unsqueeze(1) * x0Variance!;
                output = cat(new[] { output, reverse.clamp_min(1e-20).log() }, 1);
            }
            return output.to_type(sample.dtype).MoveToOuterDisposeScope();
        };
    }

    public void Dispose()
    {
        _logWeights.Dispose();
        _means.Dispose();
        foreach (var t in _eigenvalues.Concat(_eigenvectors).Concat(_choleskyLike)) t.Dispose();
    }
}
