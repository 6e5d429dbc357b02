using System.Diagnostics;
using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.IO;
using Ddpm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>
/// A likelihood evaluation: the first <paramref name="Count"/> images of a split of a data set (null: the
/// checkpoint's), all T terms of the bound (<paramref name="Strata"/> 0) or a stratified estimate from K random
/// timesteps per image, with the reverse variance <paramref name="Variance"/> (null: the checkpoint's).
/// </summary>
public sealed record NllRequest(string? Dataset = null, string? DataDir = null, DataSplit Split = DataSplit.Test, int Count = 100, int Batch = 50,
    int Strata = 0, VarianceType? Variance = null, long Seed = 0);

/// <summary>The data splits an evaluation can use.</summary>
public enum DataSplit { Train, Test }

/// <summary>What a likelihood evaluation measured: bits/dim with its standard error over images, and the mean of each part of the bound.</summary>
public sealed record NllResult(string Checkpoint, string Dataset, string Split, int Images, string Estimator, int NetworkEvaluationsPerImage,
    string Variance, double BitsPerDim, double StandardError, double Prior, double Kl, double Decoder, double Seconds);

/// <summary>Runs likelihood evaluations (Ho et al. 2020, §4.1 and Table 2: NLL in bits/dim through the variational bound).</summary>
public static class NllEvaluation
{
    public static string SplitName(DataSplit split) => split == DataSplit.Train ? "train" : "test";

    public static NllResult Run(DiffusionModel model, NllRequest request, IProgress<JobProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        var unet = model.RequireImageModel("bits/dim, defined for 8-bit images,");
        int T = model.Timesteps;
        if (request.Strata < 0 || request.Strata > T - 1)
            throw new InvalidRequestException("strata", $"--strata must be from 1 to T - 1 = {T - 1}, or 0 for all {T} terms; got {request.Strata}.");
        if (request.Count < 2) throw new InvalidRequestException("n", $"--n must be an integer >= 2 (the standard error needs two images); got {request.Count}.");
        if (request.Batch < 1) throw new InvalidRequestException("batch", $"--batch must be an integer >= 1; got {request.Batch}.");
        DiffusionConfig config;
        try { config = SamplerFactory.WithVariance(model.Config.Diffusion, request.Variance); }
        catch (ArgumentException e) { throw InvalidRequestException.FromArgument("variance", e); }
        string name = request.Dataset ?? model.Config.Dataset ?? throw new InvalidRequestException("dataset", "the checkpoint does not name its data set: pass --dataset.");
        string split = SplitName(request.Split);
        using var data = DatasetLoader.Load(name, request.DataDir, split, name.StartsWith(DatasetLoader.FolderPrefix, StringComparison.OrdinalIgnoreCase) ? unet.ImageSize : null);
        if (data.Channels != unet.InChannels || data.Height != unet.ImageSize || data.Width != unet.ImageSize)
            throw new InvalidRequestException("dataset", $"'{data.Name}' has {data.Channels}×{data.Height}×{data.Width} images but the checkpoint's model takes {unet.InChannels}×{unet.ImageSize}×{unet.ImageSize}: evaluate it on the data set it was trained on.");
        int count = request.Count;
        if (count > data.Count) throw new InvalidRequestException("n", $"--n {count} is more than the {data.Count:N0} images of the {split} split of '{data.Name}'.");
        if (model.Model.NumClasses > 0 && !data.IsLabelled)
            throw new InvalidRequestException("dataset", $"the checkpoint is class-conditional but '{data.Name}' has no labels.");

        using var diffusion = new GaussianDiffusion(config);
        using var generator = new Generator((ulong)request.Seed);
        int strata = request.Strata;
        int perImage = strata == 0 ? T : strata + 1;
        string estimator = strata == 0 ? $"all {T} terms" : $"stratified, {strata} timesteps per image";
        string phase = $"bits/dim ({estimator}), {count} images";
        var totals = new List<double>(count);
        double prior = 0, kl = 0, decoder = 0;
        var watch = Stopwatch.StartNew();
        progress?.Report(new JobProgress(phase, 0, (long)count * perImage));
        for (int start = 0; start < count; start += request.Batch)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            int size = Math.Min(request.Batch, count - start);
            var x0 = data.Images.narrow(0, start, size);
            var labels = model.Model.NumClasses > 0 ? data.Labels!.narrow(0, start, size) : null;
            var denoiser = model.Denoising.AsDenoiser(labels);
            long done = (long)start * perImage;
            var terms = new InlineProgress<int>(k => progress?.Report(new JobProgress(phase, done + (long)k * size, (long)count * perImage)));
            using var bound = strata == 0
                ? diffusion.CalcBpdLoop(denoiser, x0, generator, clipDenoised: true, terms)
                : diffusion.EstimateBpd(denoiser, x0, strata, generator, clipDenoised: true, terms);
            totals.AddRange(bound.Total.data<double>().ToArray());
            prior += bound.Prior.sum().item<double>();
            kl += bound.Kl.sum().item<double>();
            decoder += bound.Decoder.sum().item<double>();
        }
        watch.Stop();
        double mean = totals.Average();
        double se = Math.Sqrt(totals.Sum(v => (v - mean) * (v - mean)) / (count - 1) / count);
        return new NllResult(model.Directory, data.Name, split, count, estimator, perImage, EnumNames.Kebab(config.Variance),
            mean, se, prior / count, kl / count, decoder / count, watch.Elapsed.TotalSeconds);
    }
}
