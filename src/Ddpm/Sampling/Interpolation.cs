using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Sampling;

/// <summary>
/// Interpolation in the latent space of a diffusion model (Ho et al. 2020, §4.3 and App. D; Song et al. 2020, §5.3):
/// encode two images to a noise level t, interpolate the latents, decode each interpolant with the reverse process
/// from t. Timesteps here are the library's 0-based indices (index i is the paper's t = i + 1).
/// </summary>
public static class Interpolation
{
    /// <summary>Below this angle (radians) between two latents, <see cref="Slerp"/> falls back to linear interpolation.</summary>
    public const double ParallelAngle = 1e-7;

    /// <summary>
    /// Spherical interpolation per example: with θ the angle between a[i] and b[i] (flattened over all but the first
    /// dimension), sin((1 − λ)θ)/sin θ · a + sin(λθ)/sin θ · b. λ = 0 gives a and λ = 1 gives b exactly. For two
    /// independent standard Gaussian vectors (nearly orthogonal, nearly equal norms in high dimension) the norm stays
    /// that of a typical sample, where linear interpolation would shrink it by up to √2 at λ = ½.
    /// </summary>
    public static Tensor Slerp(Tensor a, Tensor b, double lambda)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!a.shape.SequenceEqual(b.shape))
            throw new ArgumentException($"Slerp needs tensors of one shape; got [{string.Join(",", a.shape)}] and [{string.Join(",", b.shape)}].", nameof(b));
        if (a.dim() < 1)
            throw new ArgumentException("Slerp needs a batch dimension: tensors of shape [B, ...].", nameof(a));
        if (!double.IsFinite(lambda))
            throw new ArgumentException($"The interpolation weight must be finite; got {lambda}.", nameof(lambda));
        using var scope = NewDisposeScope();
        // The formula gives the endpoints exactly too (sin θ / sin θ = 1, sin 0 = 0), but not through a dtype round trip.
        if (lambda == 0) return a.detach().clone().MoveToOuterDisposeScope();
        if (lambda == 1) return b.detach().clone().MoveToOuterDisposeScope();
        long batch = a.shape[0];
        var fa = a.detach().reshape(batch, -1).to_type(ScalarType.Float64);
        var fb = b.detach().reshape(batch, -1).to_type(ScalarType.Float64);
        var dots = (fa * fb).sum(1).cpu().data<double>().ToArray();
        var normsA = fa.norm(1).cpu().data<double>().ToArray();
        var normsB = fb.norm(1).cpu().data<double>().ToArray();
        var ca = new double[batch];
        var cb = new double[batch];
        for (int i = 0; i < batch; i++)
        {
            double denominator = normsA[i] * normsB[i];
            double theta = denominator > 0 ? Math.Acos(Math.Clamp(dots[i] / denominator, -1.0, 1.0)) : 0.0;
            if (theta < ParallelAngle)
            {
                ca[i] = 1 - lambda;
                cb[i] = lambda;
            }
            else
            {
                double sin = Math.Sin(theta);
                ca[i] = Math.Sin((1 - lambda) * theta) / sin;
                cb[i] = Math.Sin(lambda * theta) / sin;
            }
        }
        var shape = new long[a.dim()];
        Array.Fill(shape, 1L);
        shape[0] = batch;
        var wa = tensor(ca, dtype: ScalarType.Float64).reshape(shape).to(a.device);
        var wb = tensor(cb, dtype: ScalarType.Float64).reshape(shape).to(a.device);
        var result = (wa * a.to_type(ScalarType.Float64) + wb * b.to_type(ScalarType.Float64)).to_type(a.dtype);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>The <paramref name="count"/> interpolation weights 0, 1/(count − 1), …, 1 (just 0.5 for one).</summary>
    public static double[] Weights(int count)
    {
        if (count < 1) throw new ArgumentException($"The number of interpolants must be >= 1; got {count}.", nameof(count));
        return count == 1 ? new[] { 0.5 } : Enumerable.Range(0, count).Select(i => i == count - 1 ? 1.0 : (double)i / (count - 1)).ToArray();
    }

    /// <summary>
    /// Slerps between latent <paramref name="a"/> [1, ...] and <paramref name="b"/> [1, ...] at each of
    /// <paramref name="lambdas"/>, stacked to [len(λ), ...].
    /// </summary>
    public static Tensor SlerpPath(Tensor a, Tensor b, IReadOnlyList<double> lambdas)
    {
        ArgumentNullException.ThrowIfNull(lambdas);
        if (a.dim() < 1 || a.shape[0] != 1 || b.dim() < 1 || b.shape[0] != 1)
            throw new ArgumentException($"SlerpPath takes one latent each, [1, ...]; got [{string.Join(",", a.shape)}] and [{string.Join(",", b.shape)}].", nameof(a));
        using var scope = NewDisposeScope();
        return cat(lambdas.Select(l => Slerp(a, b, l)).ToArray(), 0).MoveToOuterDisposeScope();
    }

    /// <summary>x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε at 0-based <paramref name="timestep"/> for every example (Eq. 4).</summary>
    public static Tensor Encode(GaussianDiffusion diffusion, Tensor x0, int timestep, Tensor noise)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        CheckTimestep(diffusion, timestep);
        using var scope = NewDisposeScope();
        var t = full(new long[] { x0.shape[0] }, timestep, dtype: ScalarType.Int64, device: x0.device);
        return diffusion.QSample(x0, t, noise).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// DDPM ancestral sampling (Algorithm 2) from x_t at 0-based <paramref name="fromTimestep"/> down to x_0 through
    /// <see cref="DdpmScheduler"/>: x_{s−1} = μ_θ(x_s, s) + σ_s z for s = t … 1, no noise at the last step, x̂_0
    /// clipped to [−1, 1] when <paramref name="clipDenoised"/>. With <paramref name="sharedNoise"/> every example gets
    /// the same z at a step (<see cref="SchedulerBase.SharedNoise"/>), so that nearby latents decode to a smooth strip.
    /// </summary>
    public static Tensor ReverseFrom(GaussianDiffusion diffusion, Denoiser model, Tensor xt, int fromTimestep, Generator? generator = null,
        bool sharedNoise = false, bool clipDenoised = true, IProgress<SamplingProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        CheckTimestep(diffusion, fromTimestep);
        // All timesteps 0 … t: the DDPM scheduler's respacing keeps consecutive β exactly, so this is Algorithm 2.
        using var scheduler = new DdpmScheduler(diffusion.Config, clipping: clipDenoised ? new X0Clipping() : X0Clipping.None) { SharedNoise = sharedNoise };
        scheduler.SetTimesteps(Enumerable.Range(0, fromTimestep + 1).ToArray());
        return DiffusionSampler.Sample(scheduler, model, xt, generator, progress);
    }

    /// <summary>
    /// <paramref name="count"/> 0-based timesteps from 0 to <paramref name="timestep"/> inclusive, ascending and
    /// evenly spaced (rounded), for DDIM inversion and decoding between x_0 and x_t.
    /// </summary>
    public static int[] DdimTimesteps(int timestep, int count)
    {
        if (timestep < 0) throw new ArgumentException($"The timestep must be >= 0; got {timestep}.", nameof(timestep));
        if (count < 1) throw new ArgumentException($"The number of DDIM steps must be >= 1; got {count}.", nameof(count));
        count = Math.Min(count, timestep + 1);
        if (count == 1) return new[] { timestep };
        return Enumerable.Range(0, count).Select(i => (int)Math.Round((double)i * timestep / (count - 1), MidpointRounding.ToEven)).Distinct().ToArray();
    }

    /// <summary>
    /// Deterministic DDIM inversion (η = 0) of data <paramref name="x0"/> to the noise level of the last of
    /// <paramref name="ascending"/> (0-based, increasing): at each timestep s, with the previous level p (ᾱ = 1 before
    /// the first), ε̂ = ε_θ(x_p, s) and x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s) ε̂ with x̂_0 = (x_p − √(1 − ᾱ_p) ε̂)/√ᾱ_p.
    /// No clipping, so that decoding with <see cref="DdimDecode"/> over the same timesteps approximately inverts it.
    /// </summary>
    public static Tensor DdimInvert(GaussianDiffusion diffusion, Denoiser model, Tensor x0, IReadOnlyList<int> ascending, IProgress<SamplingProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        CheckAscending(diffusion, ascending);
        using var scheduler = new DdimScheduler(diffusion.Config, eta: 0.0, clipping: X0Clipping.None, schedule: diffusion.Schedule);
        scheduler.SetTimesteps(ascending);
        return DiffusionSampler.Invert(scheduler, model, x0, progress);
    }

    /// <summary>
    /// Deterministic DDIM (η = 0) from x_t at the last of <paramref name="ascending"/> down to x_0, walking the
    /// timesteps in reverse (Song et al. 2020, Eq. 12 with σ = 0); x̂_0 is clipped to [−1, 1] when <paramref name="clip"/>.
    /// </summary>
    public static Tensor DdimDecode(GaussianDiffusion diffusion, Denoiser model, Tensor xt, IReadOnlyList<int> ascending, bool clip = true, IProgress<SamplingProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(model);
        CheckAscending(diffusion, ascending);
        using var scheduler = new DdimScheduler(diffusion.Config, eta: 0.0, clipping: clip ? new X0Clipping() : X0Clipping.None, schedule: diffusion.Schedule);
        scheduler.SetTimesteps(ascending);
        return DiffusionSampler.Sample(scheduler, model, xt, progress: progress);
    }

    private static void CheckTimestep(GaussianDiffusion diffusion, int timestep)
    {
        if (timestep < 0 || timestep >= diffusion.Timesteps)
            throw new ArgumentException($"The timestep index must be in [0, {diffusion.Timesteps - 1}] (t = 1..{diffusion.Timesteps}); got {timestep}.", nameof(timestep));
    }

    private static void CheckAscending(GaussianDiffusion diffusion, IReadOnlyList<int> ascending)
    {
        ArgumentNullException.ThrowIfNull(ascending);
        if (ascending.Count == 0) throw new ArgumentException("At least one timestep is needed.", nameof(ascending));
        for (int i = 0; i < ascending.Count; i++)
        {
            CheckTimestep(diffusion, ascending[i]);
            if (i > 0 && ascending[i] <= ascending[i - 1])
                throw new ArgumentException($"Timesteps must increase; got {ascending[i - 1]} then {ascending[i]}.", nameof(ascending));
        }
    }
}
