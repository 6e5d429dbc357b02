using Ddpm.Runtime;
using Ddpm.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Diffusion;

/// <summary>The mean and variance of a Gaussian over samples, with the log-variance kept for numerical use.</summary>
public sealed record GaussianParams(Tensor Mean, Tensor Variance, Tensor LogVariance);

/// <summary>p_θ(x_{t−1} | x_t) and the predictions it was derived from.</summary>
public sealed record ReverseStep(Tensor Mean, Tensor Variance, Tensor LogVariance, Tensor PredictedX0, Tensor PredictedEpsilon);

/// <summary>Per-example loss terms, each of shape [B]; <see cref="Mse"/> and <see cref="Vb"/> are null when the loss has no such term.</summary>
public sealed record LossTerms(Tensor Loss, Tensor? Mse, Tensor? Vb);

/// <summary>
/// The variational bound −log p_θ(x_0) ≤ L_T + Σ_{t=1}^{T−1} L_t + L_0 per example in bits/dim, float64 [B] each:
/// <see cref="Total"/> = <see cref="Prior"/> (L_T) + <see cref="Kl"/> (Σ L_t, summed or estimated) + <see cref="Decoder"/> (L_0).
/// The full bound also keeps every term, <see cref="Terms"/> [B, T] (L_0 at index 0), and the squared error of the
/// predicted x_0 at each t, <see cref="X0Mse"/> [B, T]; an estimate has neither.
/// </summary>
public sealed record BitsPerDim(Tensor Total, Tensor Prior, Tensor Kl, Tensor Decoder, Tensor? Terms = null, Tensor? X0Mse = null) : IDisposable
{
    public void Dispose()
    {
        foreach (var t in new[] { Total, Prior, Kl, Decoder, Terms, X0Mse }) t?.Dispose();
    }
}

/// <summary>
/// All diffusion math of Ho et al. 2020 and its follow-ups, independent of the network: the forward process,
/// the posterior, the parameterisations, the reverse variances, the losses and the likelihood bound.
/// Coefficients are computed once in float64 and cast to the dtype of the sample they multiply.
/// Timesteps are 0-based: index t holds the paper's t + 1.
/// </summary>
public sealed class GaussianDiffusion : IDisposable
{
    public DiffusionConfig Config { get; }
    public NoiseSchedule Schedule { get; }
    public int Timesteps => Schedule.Timesteps;
    public PredictionType Prediction => Config.Prediction;
    public VarianceType Variance => Config.Variance;
    public LossType Loss => Config.Loss;
    public bool LearnsVariance => Config.LearnsVariance;

    private readonly Tensor _betas, _logBetas, _sqrtAlphas, _sqrtAlphasCumprod, _sqrtOneMinusAlphasCumprod,
        _logOneMinusAlphasCumprod, _sqrtRecipAlphasCumprod, _sqrtRecipM1AlphasCumprod, _posteriorVariance,
        _posteriorLogVarianceClipped, _posteriorMeanCoefX0, _posteriorMeanCoefXt, _fixedLargeVariance, _fixedLargeLogVariance, _mseWeights;

    public GaussianDiffusion(DiffusionConfig config) : this(config, config.Schedule.Build()) { }

    /// <summary>A diffusion over an explicit schedule (for example a respaced one); the schedule in <paramref name="config"/> is not rebuilt.</summary>
    public GaussianDiffusion(DiffusionConfig config, NoiseSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(schedule);
        config.Validate();
        Config = config;
        Schedule = schedule;
        var s = schedule;
        _betas = Constant(s.Betas);
        _logBetas = Constant(s.Betas.Select(v => Math.Log(v)).ToArray());
        _sqrtAlphas = Constant(s.Alphas.Select(v => Math.Sqrt(v)).ToArray());
        _sqrtAlphasCumprod = Constant(s.SqrtAlphasCumprod);
        _sqrtOneMinusAlphasCumprod = Constant(s.SqrtOneMinusAlphasCumprod);
        _logOneMinusAlphasCumprod = Constant(s.LogOneMinusAlphasCumprod);
        _sqrtRecipAlphasCumprod = Constant(s.SqrtRecipAlphasCumprod);
        _sqrtRecipM1AlphasCumprod = Constant(s.SqrtRecipM1AlphasCumprod);
        _posteriorVariance = Constant(s.PosteriorVariance);
        _posteriorLogVarianceClipped = Constant(s.PosteriorLogVarianceClipped);
        _posteriorMeanCoefX0 = Constant(s.PosteriorMeanCoefX0);
        _posteriorMeanCoefXt = Constant(s.PosteriorMeanCoefXt);
        // Fixed-large: σ² = β_t, except β̃_2 at the first step (the paper's code), so that L_0 stays sensible.
        var large = s.Betas.ToArray();
        if (s.Timesteps > 1) large[0] = s.PosteriorVariance[1];
        _fixedLargeVariance = Constant(large);
        _fixedLargeLogVariance = Constant(large.Select(v => Math.Log(v)).ToArray());
        MseWeights = MseWeightsFor(config, s);
        _mseWeights = Constant(MseWeights);
    }

    /// <summary>The weight of the MSE term at each t (index t is the paper's t + 1), in float64; all ones for uniform weighting.</summary>
    public double[] MseWeights { get; }

    /// <summary>
    /// Min-SNR-γ as a factor on the target's MSE. With SNR = ᾱ/(1 − ᾱ): ‖ε − ε̂‖² = SNR·‖x_0 − x̂_0‖² and
    /// ‖v − v̂‖² = (SNR + 1)·‖x_0 − x̂_0‖², so min(SNR, γ)·‖x_0 − x̂_0‖² is the factor min(SNR, γ)/SNR on ε's MSE,
    /// min(SNR, γ) on x_0's and min(SNR, γ)/(SNR + 1) on v's (Hang et al. 2023, §3.4).
    /// </summary>
    private static double[] MseWeightsFor(DiffusionConfig config, NoiseSchedule schedule)
    {
        var weights = new double[schedule.Timesteps];
        for (int t = 0; t < weights.Length; t++)
        {
            if (config.Weighting == LossWeighting.Uniform)
            {
                weights[t] = 1.0;
                continue;
            }
            double alphaBar = schedule.AlphasCumprod[t];
            double snr = alphaBar / (1 - alphaBar);
            double capped = Math.Min(snr, config.MinSnrGamma);
            weights[t] = config.Prediction switch
            {
                PredictionType.Epsilon => capped / snr,
                PredictionType.X0 => capped,
                _ => capped / (snr + 1),
            };
        }
        return weights;
    }

    private static Tensor Constant(double[] values) =>
        tensor(values, dtype: ScalarType.Float64).DetachFromDisposeScope();

    /// <summary>coef[t] for each batch element, cast to x's dtype and shaped [B, 1, 1, ...] to broadcast over x.</summary>
    private Tensor Extract(Tensor coefficients, Tensor t, Tensor x)
    {
        CheckTimesteps(t, x);
        var shape = new long[x.dim()];
        Array.Fill(shape, 1L);
        shape[0] = x.shape[0];
        return coefficients.to(x.device).index_select(0, t).to_type(x.dtype).reshape(shape);
    }

    private void CheckTimesteps(Tensor t, Tensor x)
    {
        if (t.dim() != 1 || x.dim() < 1 || t.shape[0] != x.shape[0])
            throw new ArgumentException($"timesteps must have shape [B] matching the batch of the sample; got [{string.Join(",", t.shape)}] for a sample of shape [{string.Join(",", x.shape)}].", nameof(t));
        if (t.dtype != ScalarType.Int64)
            throw new ArgumentException($"timesteps must be int64; got {t.dtype}.", nameof(t));
        if (t.numel() > 0)
        {
            long min = t.min().item<long>(), max = t.max().item<long>();
            if (min < 0 || max >= Timesteps)
                throw new ArgumentException($"timesteps must lie in [0, {Timesteps - 1}]; got values in [{min}, {max}].", nameof(t));
        }
    }

    private static void CheckSameShape(Tensor a, Tensor b, string nameA, string nameB)
    {
        if (!a.shape.SequenceEqual(b.shape))
            throw new ArgumentException($"{nameB} must have the shape of {nameA} [{string.Join(",", a.shape)}]; got [{string.Join(",", b.shape)}].", nameB);
    }

    // ---------------------------------------------------------------- forward process

    /// <summary>q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) (Eq. 4).</summary>
    public GaussianParams QMeanVariance(Tensor x0, Tensor t)
    {
        var mean = Extract(_sqrtAlphasCumprod, t, x0) * x0;
        var variance = (1.0 - Extract(_sqrtAlphasCumprod, t, x0).square()).expand_as(x0);
        var logVariance = Extract(_logOneMinusAlphasCumprod, t, x0).expand_as(x0);
        return new GaussianParams(mean, variance, logVariance);
    }

    /// <summary>A draw from q(x_t | x_0): √ᾱ_t x_0 + √(1 − ᾱ_t) ε (Eq. 4, reparameterised).</summary>
    public Tensor QSample(Tensor x0, Tensor t, Tensor noise)
    {
        CheckSameShape(x0, noise, "x0", "noise");
        return Extract(_sqrtAlphasCumprod, t, x0) * x0 + Extract(_sqrtOneMinusAlphasCumprod, t, x0) * noise;
    }

    /// <summary>One forward step q(x_t | x_{t−1}) = N(√α_t x_{t−1}, β_t I) (Eq. 2).</summary>
    public Tensor QStep(Tensor xPrevious, Tensor t, Tensor noise)
    {
        CheckSameShape(xPrevious, noise, "xPrevious", "noise");
        return Extract(_sqrtAlphas, t, xPrevious) * xPrevious + Extract(_betas, t, xPrevious).sqrt() * noise;
    }

    /// <summary>The posterior q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I) (Eq. 6–7), with the clipped log-variance.</summary>
    public GaussianParams QPosteriorMeanVariance(Tensor x0, Tensor xt, Tensor t)
    {
        CheckSameShape(x0, xt, "x0", "xt");
        var mean = Extract(_posteriorMeanCoefX0, t, xt) * x0 + Extract(_posteriorMeanCoefXt, t, xt) * xt;
        var variance = Extract(_posteriorVariance, t, xt).expand_as(xt);
        var logVariance = Extract(_posteriorLogVarianceClipped, t, xt).expand_as(xt);
        return new GaussianParams(mean, variance, logVariance);
    }

    // ---------------------------------------------------------------- parameterisations

    /// <summary>x_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t (Eq. 4 solved for x_0).</summary>
    /// <summary>√(1 − ᾱ_t) per example, broadcastable against <paramref name="like"/> and in its dtype.</summary>
    public Tensor SqrtOneMinusAlphasCumprod(Tensor t, Tensor like) => Extract(_sqrtOneMinusAlphasCumprod, t, like);

    public Tensor PredictX0FromEpsilon(Tensor xt, Tensor t, Tensor epsilon) =>
        Extract(_sqrtRecipAlphasCumprod, t, xt) * xt - Extract(_sqrtRecipM1AlphasCumprod, t, xt) * epsilon;

    /// <summary>ε = (x_t / √ᾱ_t − x_0) / √(1/ᾱ_t − 1).</summary>
    public Tensor PredictEpsilonFromX0(Tensor xt, Tensor t, Tensor x0) =>
        (Extract(_sqrtRecipAlphasCumprod, t, xt) * xt - x0) / Extract(_sqrtRecipM1AlphasCumprod, t, xt);

    /// <summary>x_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v.</summary>
    public Tensor PredictX0FromV(Tensor xt, Tensor t, Tensor v) =>
        Extract(_sqrtAlphasCumprod, t, xt) * xt - Extract(_sqrtOneMinusAlphasCumprod, t, xt) * v;

    /// <summary>ε = √(1 − ᾱ_t) x_t + √ᾱ_t v.</summary>
    public Tensor PredictEpsilonFromV(Tensor xt, Tensor t, Tensor v) =>
        Extract(_sqrtOneMinusAlphasCumprod, t, xt) * xt + Extract(_sqrtAlphasCumprod, t, xt) * v;

    /// <summary>v = √ᾱ_t ε − √(1 − ᾱ_t) x_0.</summary>
    public Tensor VTarget(Tensor x0, Tensor t, Tensor epsilon) =>
        Extract(_sqrtAlphasCumprod, t, x0) * epsilon - Extract(_sqrtOneMinusAlphasCumprod, t, x0) * x0;

    /// <summary>The training target for the configured parameterisation.</summary>
    public Tensor Target(Tensor x0, Tensor t, Tensor epsilon) => Prediction switch
    {
        PredictionType.Epsilon => epsilon.alias(),
        PredictionType.X0 => x0.alias(),
        PredictionType.V => VTarget(x0, t, epsilon),
        _ => throw new InvalidOperationException($"Unknown prediction type {Prediction}."),
    };

    /// <summary>Splits a raw model output into the prediction and, for a learned variance, the variance channels.</summary>
    public (Tensor Prediction, Tensor? VarianceOutput) SplitOutput(Tensor modelOutput, Tensor xt)
    {
        if (!LearnsVariance)
        {
            CheckSameShape(xt, modelOutput, "the sample", "the model output");
            return (modelOutput, null);
        }
        if (modelOutput.dim() < 2 || modelOutput.shape[1] != 2 * xt.shape[1])
            throw new ArgumentException($"With a learned variance the model output needs 2×{xt.shape[1]} channels in dimension 1; got shape [{string.Join(",", modelOutput.shape)}].", nameof(modelOutput));
        var parts = modelOutput.chunk(2, 1);
        return (parts[0], parts[1]);
    }

    /// <summary>The predicted x_0 and ε from a raw model output, before any clipping.</summary>
    public (Tensor X0, Tensor Epsilon) PredictX0AndEpsilon(Tensor modelOutput, Tensor xt, Tensor t)
    {
        var (prediction, _) = SplitOutput(modelOutput, xt);
        return Prediction switch
        {
            PredictionType.Epsilon => (PredictX0FromEpsilon(xt, t, prediction), prediction),
            PredictionType.X0 => (prediction, PredictEpsilonFromX0(xt, t, prediction)),
            PredictionType.V => (PredictX0FromV(xt, t, prediction), PredictEpsilonFromV(xt, t, prediction)),
            _ => throw new InvalidOperationException($"Unknown prediction type {Prediction}."),
        };
    }

    // ---------------------------------------------------------------- reverse process

    /// <summary>
    /// p_θ(x_{t−1} | x_t): the mean μ̃_t(x_t, x̂_0) of Eq. 7 with x̂_0 from the model (Eq. 11 for ε-prediction),
    /// and the configured variance. <paramref name="clipDenoised"/> clamps x̂_0 to [−1, 1] first.
    /// </summary>
    public ReverseStep PMeanVariance(Tensor modelOutput, Tensor xt, Tensor t, bool clipDenoised = true)
    {
        var (prediction, varianceOutput) = SplitOutput(modelOutput, xt);
        Tensor variance, logVariance;
        switch (Variance)
        {
            case VarianceType.FixedSmall:
                variance = Extract(_posteriorVariance, t, xt).expand_as(xt);
                logVariance = Extract(_posteriorLogVarianceClipped, t, xt).expand_as(xt);
                break;
            case VarianceType.FixedLarge:
                variance = Extract(_fixedLargeVariance, t, xt).expand_as(xt);
                logVariance = Extract(_fixedLargeLogVariance, t, xt).expand_as(xt);
                break;
            case VarianceType.Learned:
                logVariance = varianceOutput!;
                variance = logVariance.exp();
                break;
            case VarianceType.LearnedRange:
                var frac = (varianceOutput! + 1.0) / 2.0;
                logVariance = frac * Extract(_logBetas, t, xt) + (1.0 - frac) * Extract(_posteriorLogVarianceClipped, t, xt);
                variance = logVariance.exp();
                break;
            default:
                throw new InvalidOperationException($"Unknown variance type {Variance}.");
        }

        Tensor x0 = Prediction switch
        {
            PredictionType.Epsilon => PredictX0FromEpsilon(xt, t, prediction),
            PredictionType.X0 => prediction,
            PredictionType.V => PredictX0FromV(xt, t, prediction),
            _ => throw new InvalidOperationException($"Unknown prediction type {Prediction}."),
        };
        if (clipDenoised) x0 = x0.clamp(-1.0, 1.0);
        var epsilon = PredictEpsilonFromX0(xt, t, x0);
        var mean = QPosteriorMeanVariance(x0, xt, t).Mean;
        return new ReverseStep(mean, variance, logVariance, x0, epsilon);
    }

    // ---------------------------------------------------------------- losses

    /// <summary>
    /// The terms L_{t−1} = KL(q(x_{t−1}|x_t, x_0) ‖ p_θ(x_{t−1}|x_t)) for t &gt; 1 and L_0 = −log p_θ(x_0|x_1)
    /// (discretised decoder) at t = 1, each averaged over dimensions and in bits. Shape [B].
    /// </summary>
    public Tensor VbTermsBpd(Tensor modelOutput, Tensor x0, Tensor xt, Tensor t, bool clipDenoised = false)
    {
        using var scope = NewDisposeScope();
        var posterior = QPosteriorMeanVariance(x0, xt, t);
        var p = PMeanVariance(modelOutput, xt, t, clipDenoised);
        var kl = GaussianMath.MeanFlat(GaussianMath.NormalKl(posterior.Mean, posterior.LogVariance, p.Mean, p.LogVariance)) / Math.Log(2.0);
        var decoderNll = -GaussianMath.MeanFlat(GaussianMath.DiscretizedGaussianLogLikelihood(x0, p.Mean, 0.5 * p.LogVariance)) / Math.Log(2.0);
        return where(t == 0, decoderNll, kl).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The per-example training loss at timesteps <paramref name="t"/>: L_simple (MSE on the target), the bound
    /// term, or the hybrid mse + λ·T·vb_t with the mean frozen in vb_t (so λ·T·vb_t estimates λ·L_vlb).
    /// </summary>
    public LossTerms TrainingLosses(Denoiser model, Tensor x0, Tensor t, Tensor noise)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckSameShape(x0, noise, "x0", "noise");
        CheckTimesteps(t, x0);
        using var scope = NewDisposeScope();
        var xt = QSample(x0, t, noise);
        var output = model(xt, t);
        LossTerms terms;
        if (Loss == LossType.Kl)
        {
            var vb = VbTermsBpd(output, x0, xt, t, clipDenoised: false);
            terms = new LossTerms(vb, null, vb);
        }
        else
        {
            var (prediction, varianceOutput) = SplitOutput(output, xt);
            var mse = GaussianMath.MeanFlat((Target(x0, t, noise) - prediction).square());
            // The reported Mse stays unweighted, so logs compare across weightings; the loss carries the weight.
            var weighted = Config.Weighting == LossWeighting.Uniform ? mse : mse * _mseWeights.to(mse.device).index_select(0, t).to_type(mse.dtype);
            if (Loss == LossType.Hybrid)
            {
                // Nichol & Dhariwal 2021 §3.1: the bound only trains Σ_θ; μ_θ learns from L_simple alone.
                var frozen = cat(new[] { prediction.detach(), varianceOutput! }, 1);
                var vb = VbTermsBpd(frozen, x0, xt, t, clipDenoised: false);
                terms = new LossTerms(weighted + Config.HybridVbWeight * Timesteps * vb, mse, vb);
            }
            else
            {
                terms = new LossTerms(weighted, mse, null);
            }
        }
        // Loss may be the same tensor as Mse or Vb: move each distinct tensor out once, or a second move would push it
        // past the caller's scope as well.
        var moved = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        Tensor? MoveOnce(Tensor? t)
        {
            if (t is not null && moved.Add(t)) t.MoveToOuterDisposeScope();
            return t;
        }
        return new LossTerms(MoveOnce(terms.Loss)!, MoveOnce(terms.Mse), MoveOnce(terms.Vb));
    }

    /// <summary>L_T = KL(q(x_T | x_0) ‖ N(0, I)) in bits/dim, shape [B]. Independent of the model.</summary>
    public Tensor PriorBpd(Tensor x0)
    {
        using var scope = NewDisposeScope();
        var last = full(new long[] { x0.shape[0] }, Timesteps - 1, dtype: ScalarType.Int64, device: x0.device);
        var q = QMeanVariance(x0, last);
        var kl = GaussianMath.NormalKl(q.Mean, q.LogVariance, zeros_like(q.Mean), zeros_like(q.LogVariance));
        return (GaussianMath.MeanFlat(kl) / Math.Log(2.0)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The full variational bound −log p_θ(x_0) ≤ L_T + Σ_{t>1} L_{t−1} + L_0 in bits/dim, summing all T terms
    /// (improved-diffusion's calc_bpd_loop). Runs under no_grad; results are float64.
    /// </summary>
    public BitsPerDim CalcBpdLoop(Denoiser model, Tensor x0, Generator? generator = null, bool clipDenoised = true,
        IProgress<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var noGrad = no_grad();
        long batch = x0.shape[0];
        var vbAll = zeros(new long[] { batch, Timesteps }, dtype: ScalarType.Float64).DetachFromDisposeScope();
        var mseAll = zeros(new long[] { batch, Timesteps }, dtype: ScalarType.Float64).DetachFromDisposeScope();
        for (int step = Timesteps - 1; step >= 0; step--)
        {
            using var scope = NewDisposeScope();
            var t = full(new long[] { batch }, step, dtype: ScalarType.Int64, device: x0.device);
            var noise = randn(x0.shape, dtype: x0.dtype, generator: generator).On(x0.device);
            var xt = QSample(x0, t, noise);
            var output = model(xt, t);
            var vb = VbTermsBpd(output, x0, xt, t, clipDenoised);
            var predictedX0 = PMeanVariance(output, xt, t, clipDenoised).PredictedX0;
            vbAll.select(1, step).copy_(vb.to_type(ScalarType.Float64).cpu());
            mseAll.select(1, step).copy_(GaussianMath.MeanFlat((predictedX0 - x0).square()).to_type(ScalarType.Float64).cpu());
            progress?.Report(Timesteps - step);
        }
        var prior = PriorBpd(x0).to_type(ScalarType.Float64).cpu().DetachFromDisposeScope();
        var total = (vbAll.sum(1) + prior).DetachFromDisposeScope();
        var kl = vbAll.narrow(1, 1, Timesteps - 1).sum(1).DetachFromDisposeScope();
        var decoder = vbAll.select(1, 0).clone().DetachFromDisposeScope();
        return new BitsPerDim(total, prior, kl, decoder, vbAll, mseAll);
    }

    /// <summary>
    /// An unbiased estimate of the same bound from <paramref name="strata"/> + 1 network evaluations per image instead
    /// of T: the prior L_T and the decoder L_0 exactly, and Σ_{t=1}^{T−1} L_t by stratified sampling: the T − 1 KL terms
    /// are cut into <paramref name="strata"/> contiguous blocks of near-equal size n_k, one t is drawn uniformly
    /// within each block for each image, and the block contributes n_k·L_t. Each image gets its own draws, so the
    /// spread of the per-image totals already contains the sampling error. Results are float64 [B].
    /// </summary>
    public BitsPerDim EstimateBpd(Denoiser model, Tensor x0, int strata, Generator? generator = null, bool clipDenoised = true,
        IProgress<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (Timesteps < 2)
            throw new ArgumentException("The stratified estimate needs T >= 2 (it has a KL part and a decoder part).", nameof(strata));
        if (strata < 1 || strata > Timesteps - 1)
            throw new ArgumentException($"strata must be from 1 to T - 1 = {Timesteps - 1}; got {strata}. Use the full bound for all T terms.", nameof(strata));
        using var noGrad = no_grad();
        long batch = x0.shape[0];
        Tensor Term(Tensor t)
        {
            using var scope = NewDisposeScope();
            var noise = randn(x0.shape, dtype: x0.dtype, generator: generator).On(x0.device);
            var xt = QSample(x0, t, noise);
            return VbTermsBpd(model(xt, t), x0, xt, t, clipDenoised).to_type(ScalarType.Float64).cpu().MoveToOuterDisposeScope();
        }
        var decoder = Term(full(new long[] { batch }, 0, dtype: ScalarType.Int64, device: x0.device)).DetachFromDisposeScope();
        progress?.Report(1);
        var kl = zeros(new long[] { batch }, dtype: ScalarType.Float64).DetachFromDisposeScope();
        int klTerms = Timesteps - 1;
        for (int k = 0; k < strata; k++)
        {
            using var scope = NewDisposeScope();
            int begin = 1 + (int)((long)k * klTerms / strata), end = 1 + (int)((long)(k + 1) * klTerms / strata);
            var t = randint(begin, end, new long[] { batch }, dtype: ScalarType.Int64, generator: generator).to(x0.device);
            kl.add_(Term(t), alpha: end - begin);
            progress?.Report(k + 2);
        }
        var prior = PriorBpd(x0).to_type(ScalarType.Float64).cpu().DetachFromDisposeScope();
        var total = (prior + kl + decoder).DetachFromDisposeScope();
        return new BitsPerDim(total, prior, kl, decoder);
    }

    public void Dispose()
    {
        foreach (var t in new[] { _betas, _logBetas, _sqrtAlphas, _sqrtAlphasCumprod, _sqrtOneMinusAlphasCumprod,
                     _logOneMinusAlphasCumprod, _sqrtRecipAlphasCumprod, _sqrtRecipM1AlphasCumprod, _posteriorVariance,
                     _posteriorLogVarianceClipped, _posteriorMeanCoefX0, _posteriorMeanCoefXt, _fixedLargeVariance, _fixedLargeLogVariance, _mseWeights })
            t.Dispose();
    }
}
