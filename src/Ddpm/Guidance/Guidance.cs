using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Guidance;

/// <summary>
/// A class-conditional network: its output at (x_t, t) for per-example class labels y [B] int64, where the label
/// <c>nullClass</c> of <see cref="ClassifierFreeGuidance.Create"/> means "no class".
/// </summary>
public delegate Tensor ConditionalDenoiser(Tensor xt, Tensor t, Tensor labels);

/// <summary>log p_φ(y | x_t, t) for each example, shape [B]: a noise-aware classifier.</summary>
public delegate Tensor ClassifierLogProbability(Tensor xt, Tensor t, Tensor labels);

/// <summary>Classifier-free guidance (Ho &amp; Salimans 2022).</summary>
public static class ClassifierFreeGuidance
{
    /// <summary>
    /// ε̃ = (1 + w)·ε_θ(x_t, t, y) − w·ε_θ(x_t, t, ∅) (Ho &amp; Salimans 2022, Eq. 6), with both predictions from one
    /// network call on a doubled batch. w = 0 is the conditional model itself (one call, no doubling). The combination
    /// has weights summing to 1, so it can be applied to the network's output in any parameterisation (ε, x_0 and v are
    /// affine in each other at fixed x_t). Only the first <paramref name="guidedChannels"/> channels are combined; a
    /// learned-variance half, if any, is taken from the conditional prediction (as in GLIDE).
    /// </summary>
    public static Denoiser Create(ConditionalDenoiser network, Tensor labels, double scale, long nullClass, long guidedChannels)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(labels);
        if (!(scale >= 0) || double.IsInfinity(scale))
            throw new ArgumentException($"The guidance scale w must be a finite number >= 0 (0 = the conditional model); got {scale}.", nameof(scale));
        if (scale == 0) return (x, t) => network(x, t, labels.to(x.device));
        return (x, t) =>
        {
            using var scope = NewDisposeScope();
            long b = x.shape[0];
            var y = labels.to(x.device);
            var both = network(cat(new[] { x, x }, 0), cat(new[] { t, t }, 0), cat(new[] { y, full_like(y, nullClass) }, 0));
            var conditional = both.narrow(0, 0, b);
            var unconditional = both.narrow(0, b, b);
            long c = Math.Min(guidedChannels, conditional.shape[1]);
            var guided = conditional.narrow(1, 0, c) * (1 + scale) - unconditional.narrow(1, 0, c) * scale;
            var result = c < conditional.shape[1] ? cat(new[] { guided, conditional.narrow(1, c, conditional.shape[1] - c) }, 1) : guided;
            return result.MoveToOuterDisposeScope();
        };
    }
}

/// <summary>The model call for one batch: the denoiser, and for the samplers that take one, a guidance shift of the reverse mean.</summary>
public sealed record GuidedDenoiser(Denoiser Denoiser, Sampling.MeanShift? MeanShift = null);

/// <summary>Classifier guidance (Dhariwal &amp; Nichol 2021, §4).</summary>
public static class ClassifierGuidance
{
    /// <summary>
    /// Classifier guidance for <paramref name="sampler"/>: DDPM shifts its reverse mean (Algorithm 1, see
    /// <see cref="ScaledGradient"/>); every other sampler gets the guided noise prediction (Algorithm 2, see <see cref="EpsilonGuided"/>).
    /// </summary>
    public static GuidedDenoiser ForSampler(Sampling.SamplerKind sampler, Denoiser model, GaussianDiffusion diffusion, ClassifierLogProbability classifier, Tensor labels, double scale) =>
        sampler == Sampling.SamplerKind.Ddpm
            ? new GuidedDenoiser(model, ScaledGradient(classifier, labels, scale))
            : new GuidedDenoiser(EpsilonGuided(model, diffusion, classifier, labels, scale));

    /// <summary>∇_{x_t} log p_φ(y | x_t, t), shape of <paramref name="xt"/>, computed with autograd even inside no_grad.</summary>
    public static Tensor Gradient(ClassifierLogProbability classifier, Tensor xt, Tensor t, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        using var scope = NewDisposeScope();
        using var grad = enable_grad();
        var x = xt.detach().requires_grad_(true);
        // The examples are independent, so the gradient of the sum is each example's own gradient.
        var logp = classifier(x, t, labels.to(xt.device)).sum();
        var g = autograd.grad(new[] { logp }, new[] { x })[0];
        return g.detach().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The ε-form for DDIM, DPM-Solver and the ODE samplers (Dhariwal &amp; Nichol 2021, Algorithm 2, after Song et al.
    /// 2021's score view): ε̂' = ε̂ − s·√(1 − ᾱ_t)·∇ log p_φ(y | x_t), i.e. the score of p(x_t)·p(y | x_t)^s. Returned
    /// as a denoiser in the model's own parameterisation, so every sampler can use it; a learned-variance half is
    /// passed through.
    /// </summary>
    public static Denoiser EpsilonGuided(Denoiser model, GaussianDiffusion diffusion, ClassifierLogProbability classifier, Tensor labels, double scale)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(diffusion);
        CheckScale(scale);
        if (scale == 0) return model;
        return (x, t) =>
        {
            using var scope = NewDisposeScope();
            var output = model(x, t);
            var (prediction, varianceOutput) = diffusion.SplitOutput(output, x);
            var (_, epsilon) = diffusion.PredictX0AndEpsilon(prediction, x, t);
            var sqrtOneMinusAlphaBar = diffusion.SqrtOneMinusAlphasCumprod(t, x);
            var guidedEpsilon = epsilon - scale * sqrtOneMinusAlphaBar * Gradient(classifier, x, t, labels).to_type(x.dtype);
            var guidedX0 = diffusion.PredictX0FromEpsilon(x, t, guidedEpsilon);
            var guided = diffusion.Target(guidedX0, t, guidedEpsilon);
            var result = varianceOutput is null ? guided : cat(new[] { guided, varianceOutput }, 1);
            return result.MoveToOuterDisposeScope();
        };
    }

    /// <summary>
    /// For DDPM ancestral sampling (Algorithm 1): the function <c>(x_t, t) ↦ s·∇ log p_φ(y | x_t, t)</c> that
    /// the scheduler multiplies by its step's variance Σ and adds to the mean (<see cref="Sampling.MeanShift"/>).
    /// </summary>
    public static Sampling.MeanShift ScaledGradient(ClassifierLogProbability classifier, Tensor labels, double scale)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        CheckScale(scale);
        return (x, timestep) =>
        {
            using var scope = NewDisposeScope();
            var t = full(new long[] { x.shape[0] }, timestep, dtype: ScalarType.Int64, device: x.device);
            return (scale * Gradient(classifier, x, t, labels).to_type(x.dtype)).MoveToOuterDisposeScope();
        };
    }

    private static void CheckScale(double scale)
    {
        if (!(scale >= 0) || double.IsInfinity(scale))
            throw new ArgumentException($"The classifier scale s must be a finite number >= 0; got {scale}.", nameof(scale));
    }
}
