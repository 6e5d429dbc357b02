using System.Diagnostics;
using System.Globalization;
using Ddpm.Diffusion;
using Ddpm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>How an interpolation encodes and decodes.</summary>
public enum InterpolationMethod
{
    /// <summary>q(x_t | x_0) with one shared ε, slerp, DDPM ancestral decoding from t with shared noise (Ho et al. 2020, §4.3).</summary>
    Noise,
    /// <summary>Deterministic DDIM inversion to t, slerp, DDIM decoding (Song et al. 2020, §5.3).</summary>
    Ddim,
}

/// <summary>
/// An interpolation between images <paramref name="A"/> and <paramref name="B"/> (files or DATASET:INDEX, see
/// <see cref="ImageInput.Load"/>) at the paper's noise level <paramref name="T"/> (1 … T; null: half the model's T),
/// with <paramref name="Steps"/> interpolants λ = 0 … 1.
/// </summary>
public sealed record InterpolationRequest(string A, string B, int? T = null, int Steps = 8, InterpolationMethod Method = InterpolationMethod.Noise,
    long Seed = 0, string? DataDir = null, int DdimSteps = 50);

/// <summary>The strip a, the interpolants, b as [Steps + 2, C, H, W] in [−1, 1], with a label per image and the recipe in words.</summary>
public sealed record InterpolationResult(Tensor Strip, IReadOnlyList<string> Labels, string Description, TimeSpan Elapsed) : IDisposable
{
    public void Dispose() => Strip.Dispose();
}

/// <summary>Runs interpolations in the latent space of a diffusion model (<see cref="Interpolation"/> holds the maths).</summary>
public static class InterpolationJob
{
    public const int MaxSteps = 64;

    public static InterpolationResult Run(DiffusionModel model, InterpolationRequest request, IProgress<JobProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        if (request.Steps < 2 || request.Steps > MaxSteps)
            throw new InvalidRequestException("steps", $"--steps must be from 2 to {MaxSteps}; got {request.Steps}.");
        if (request.DdimSteps < 1) throw new InvalidRequestException("ddim-steps", $"--ddim-steps must be an integer >= 1; got {request.DdimSteps}.");
        model.RequireImageModel("'ddpm interpolate'");
        int T = model.Timesteps;
        int level = request.T ?? Math.Max(1, T / 2);
        if (level < 1 || level > T)
            throw new InvalidRequestException("t", $"--t must be from 1 to {T} (the checkpoint's diffusion steps T); got {level}.");
        using var scope = NewDisposeScope();
        var imageA = ImageInput.Load("--a", request.A, model, request.DataDir);
        var imageB = ImageInput.Load("--b", request.B, model, request.DataDir);

        using var diffusion = new GaussianDiffusion(model.Config.Diffusion);
        using var generator = new Generator((ulong)request.Seed);
        var denoiser = model.Denoising.AsDenoiser();
        var lambdas = Interpolation.Weights(request.Steps);
        int index = level - 1; // the library's timesteps are 0-based: the paper's t is index + 1
        Tensor decoded;
        var watch = Stopwatch.StartNew();
        string description;
        if (request.Method == InterpolationMethod.Noise)
        {
            description = $"noise: q(x_t|x_0) with shared noise at t = {level}, slerp, {level} DDPM steps";
            var steps = Reporter(progress, description, level, 0);
            var epsilon = randn(imageA.shape, generator: generator);
            var latentA = Interpolation.Encode(diffusion, imageA, index, epsilon);
            var latentB = Interpolation.Encode(diffusion, imageB, index, epsilon);
            var path = Interpolation.SlerpPath(latentA, latentB, lambdas);
            decoded = Interpolation.ReverseFrom(diffusion, denoiser, path, index, generator, sharedNoise: true, progress: steps);
        }
        else
        {
            var timesteps = Interpolation.DdimTimesteps(index, request.DdimSteps);
            description = $"ddim: {timesteps.Length}-step DDIM inversion to t = {level}, slerp, {timesteps.Length}-step DDIM decoding";
            var latents = Interpolation.DdimInvert(diffusion, denoiser, cat(new[] { imageA, imageB }, 0), timesteps, Reporter(progress, description, 2L * timesteps.Length, 0));
            var path = Interpolation.SlerpPath(latents.narrow(0, 0, 1), latents.narrow(0, 1, 1), lambdas);
            decoded = Interpolation.DdimDecode(diffusion, denoiser, path, timesteps, clip: true, Reporter(progress, description, 2L * timesteps.Length, timesteps.Length));
        }
        watch.Stop();
        var strip = cat(new[] { imageA, decoded, imageB }, 0).MoveToOuterDisposeScope();
        var labels = new[] { "a" }.Concat(lambdas.Select(l => l.ToString("0.##", CultureInfo.InvariantCulture))).Append("b").ToArray();
        return new InterpolationResult(strip, labels, description, watch.Elapsed);
    }

    private static IProgress<SamplingProgress>? Reporter(IProgress<JobProgress>? progress, string phase, long total, long offset) =>
        progress is null ? null : new InlineProgress<SamplingProgress>(p => progress.Report(new JobProgress(phase, offset + p.Step, total)));
}
