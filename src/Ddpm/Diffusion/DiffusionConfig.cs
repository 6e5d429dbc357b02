using System.Text.Json.Serialization;
using Ddpm.Schedules;

namespace Ddpm.Diffusion;

/// <summary>What the network predicts.</summary>
public enum PredictionType
{
    /// <summary>The noise ε (Ho et al. 2020, Eq. 11–12).</summary>
    Epsilon,
    /// <summary>The clean sample x_0.</summary>
    X0,
    /// <summary>v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans &amp; Ho 2022).</summary>
    V,
}

/// <summary>The variance Σ_θ(x_t, t) = σ_t² I of the reverse process.</summary>
public enum VarianceType
{
    /// <summary>σ_t² = β̃_t, the posterior variance (the lower bound of §3.2).</summary>
    FixedSmall,
    /// <summary>σ_t² = β_t, with β̃_2 at the first step as in the paper's code (the upper bound of §3.2).</summary>
    FixedLarge,
    /// <summary>The network outputs log σ_t² directly in extra channels.</summary>
    Learned,
    /// <summary>The network outputs v ∈ [−1, 1]; log σ_t² = ((v + 1)/2) log β_t + (1 − (v + 1)/2) log β̃_t (Nichol &amp; Dhariwal 2021, Eq. 15).</summary>
    LearnedRange,
}

/// <summary>The training objective.</summary>
public enum LossType
{
    /// <summary>L_simple: the mean squared error on the prediction target (Eq. 14).</summary>
    Simple,
    /// <summary>The variational bound term L_{t−1} (KL of Gaussians, Eq. 5), or L_0 (discretised decoder) at t = 1, in bits/dim.</summary>
    Kl,
    /// <summary>L_simple + λ L_vlb with the mean's gradient stopped in the bound (Nichol &amp; Dhariwal 2021, Eq. 16); needs a learned variance.</summary>
    Hybrid,
}

/// <summary>How the mean-squared-error term is weighted across timesteps.</summary>
public enum LossWeighting
{
    /// <summary>Every timestep's MSE on the prediction target counts alike (Ho et al. 2020, Eq. 14).</summary>
    Uniform,

    /// <summary>
    /// Min-SNR-γ (Hang et al. 2023, Eq. 10): the loss is min(SNR_t, γ)·‖x_0 − x̂_0‖², SNR_t = ᾱ_t/(1 − ᾱ_t), which caps the
    /// weight of the nearly clean timesteps. On the target's MSE this is a factor min(SNR_t, γ)/SNR_t for ε-prediction,
    /// min(SNR_t, γ) for x_0 and min(SNR_t, γ)/(SNR_t + 1) for v (<see cref="GaussianDiffusion.MseWeights"/>).
    /// </summary>
    MinSnr,
}

/// <summary>Everything that defines a Gaussian diffusion apart from the network.</summary>
/// <param name="Weighting">How the MSE term is weighted over t (with <see cref="MinSnrGamma"/> for <see cref="LossWeighting.MinSnr"/>).</param>
public sealed record DiffusionConfig(
    ScheduleConfig Schedule,
    PredictionType Prediction = PredictionType.Epsilon,
    VarianceType Variance = VarianceType.FixedSmall,
    LossType Loss = LossType.Simple,
    double HybridVbWeight = 0.001,
    LossWeighting Weighting = LossWeighting.Uniform,
    double MinSnrGamma = 5.0)
{
    public DiffusionConfig() : this(new ScheduleConfig()) { }

    [JsonIgnore] public bool LearnsVariance => Variance is VarianceType.Learned or VarianceType.LearnedRange;

    /// <summary>Throws an ArgumentException naming the first inconsistent option.</summary>
    public void Validate()
    {
        if (Loss == LossType.Simple && LearnsVariance)
            throw new ArgumentException($"Variance {Variance} is learned only through the bound: use loss Hybrid or Kl, or a fixed variance (FixedSmall, FixedLarge).", nameof(Variance));
        if (Loss == LossType.Hybrid && !LearnsVariance)
            throw new ArgumentException($"Loss Hybrid trains the variance through the bound with the mean's gradient stopped; with variance {Variance} that term has no gradient. Use Learned or LearnedRange, or loss Simple.", nameof(Loss));
        if (!(MinSnrGamma > 0) || double.IsInfinity(MinSnrGamma))
            throw new ArgumentException($"the min-SNR γ must be a finite number > 0 (Hang et al. use 5); got {MinSnrGamma}.", nameof(MinSnrGamma));
        if (Weighting == LossWeighting.MinSnr && Loss == LossType.Kl)
            throw new ArgumentException("min-SNR weighting weights the MSE term, and loss Kl has none: use loss Simple or Hybrid, or uniform weighting.", nameof(Weighting));
        if (!(HybridVbWeight >= 0) || double.IsInfinity(HybridVbWeight))
            throw new ArgumentException($"HybridVbWeight must be a finite number >= 0; got {HybridVbWeight}.", nameof(HybridVbWeight));
    }
}
