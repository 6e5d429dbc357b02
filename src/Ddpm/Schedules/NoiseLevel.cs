namespace Ddpm.Schedules;

/// <summary>
/// The noise level of ᾱ_t in the variables the fast samplers work in, written once: σ = √((1 − ᾱ)/ᾱ), the noise of
/// x_t/√ᾱ (Karras et al. 2022, Eq. 5's σ; the probability-flow ODE runs in it), and the half log-SNR
/// λ = log(√ᾱ/√(1 − ᾱ)) = −log σ (Lu et al. 2022; DPM-Solver's steps are uniform-width in it).
/// </summary>
public static class NoiseLevel
{
    public static double Sigma(double alphaBar) => Math.Sqrt((1 - alphaBar) / alphaBar);

    public static double LogSigma(double alphaBar) => 0.5 * Math.Log((1 - alphaBar) / alphaBar);

    public static double Lambda(double alphaBar) => 0.5 * Math.Log(alphaBar / (1 - alphaBar));
}
