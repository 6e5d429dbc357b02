using TorchSharp;

namespace Ddpm.Diffusion;

/// <summary>
/// A network (or an oracle) evaluated at a noisy sample x_t, shape [B, ...], and integer timesteps t ∈ [0, T−1],
/// shape [B] int64. It returns its raw output: the prediction target (ε, x_0 or v) with, for a learned variance,
/// the variance channels concatenated along dimension 1.
/// </summary>
public delegate torch.Tensor Denoiser(torch.Tensor sample, torch.Tensor timesteps);
