using System.Globalization;
using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Imaging;
using Ddpm.Schedules;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>
/// The forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) on images of a data set: the one at
/// <paramref name="Index"/>, or the first <paramref name="Count"/> (at most the data set's size), at the paper's noise
/// levels <paramref name="Levels"/> (1 … T; 0 is the clean image) of <paramref name="Schedule"/>. Every noisy image is
/// an independent draw from one generator seeded with <paramref name="Seed"/>, column after column.
/// </summary>
public sealed record ForwardProcessRequest(IReadOnlyList<int> Levels, ScheduleConfig Schedule, long Seed = 0, int? Index = null, int? Count = null);

/// <summary>
/// The noised images as a grid of [Rows · Columns, C, H, W] in [−1, 1] (row r, column c at r · Columns + c: one row per
/// image, one column per level), a label per column ("x0", "t = 250") and √ᾱ_t per column (1 for t = 0). Owns its tensor.
/// </summary>
public sealed record ForwardProcessResult(Tensor Grid, int Rows, int Columns, IReadOnlyList<string> Labels, IReadOnlyList<double> SqrtAlphaBar) : IDisposable
{
    /// <summary>The grid as a picture with the column labels above it, each pixel enlarged to about 56 pixels per image side.</summary>
    public SKBitmap Render() => LabelledGrid.Render(Grid, Columns, Labels, LabelledGrid.ScaleFor(Grid.shape[2]));

    public void Dispose() => Grid.Dispose();
}

/// <summary>Runs the forward process on real images: what <c>ddpm forward</c> draws and the web page's slider shows.</summary>
public static class ForwardProcessJob
{
    /// <summary>At most this many levels (columns) per request.</summary>
    public const int MaxLevels = 64;

    /// <summary>
    /// Noises the chosen images of <paramref name="data"/> at each level of <paramref name="request"/>. Problems with the
    /// request are <see cref="InvalidRequestException"/>s, raised before any work.
    /// </summary>
    public static ForwardProcessResult Run(ImageDataset data, ForwardProcessRequest request)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Levels);
        ArgumentNullException.ThrowIfNull(request.Schedule);
        CheckLevels(request.Levels, request.Schedule.Timesteps);
        if (request.Index is not null && request.Count is not null)
            throw new InvalidRequestException("index", "--index and --n exclude each other: --index I shows one image, --n N the first N.");
        if (request.Count is < 1)
            throw new InvalidRequestException("n", $"--n must be an integer >= 1; got {request.Count}.");
        long start, count;
        if (request.Index is int i)
        {
            if (i < 0 || i >= data.Count)
                throw new InvalidRequestException("index", $"--index {i} is out of range: '{data.Name}' has {data.Count} images (0 to {data.Count - 1}).");
            (start, count) = (i, 1);
        }
        else
        {
            (start, count) = (0, Math.Min(request.Count ?? data.Count, data.Count));
        }

        DiffusionConfig diffusionConfig;
        try
        {
            diffusionConfig = new DiffusionConfig(request.Schedule);
            diffusionConfig.Validate();
        }
        catch (ArgumentException e)
        {
            throw InvalidRequestException.FromArgument("schedule", e);
        }
        using var diffusion = new GaussianDiffusion(diffusionConfig);
        using var generator = new Generator((ulong)request.Seed);
        using var scope = NewDisposeScope();
        var x0 = data.Images.narrow(0, start, count);
        var columns = new List<Tensor>();
        foreach (int t in request.Levels)
        {
            if (t == 0)
            {
                columns.Add(x0);
                continue;
            }
            var noise = randn(x0.shape, generator: generator);
            var index = full(new long[] { count }, t - 1, dtype: ScalarType.Int64); // the library's timesteps are 0-based: the paper's t is index + 1
            columns.Add(diffusion.QSample(x0, index, noise));
        }
        // [count, columns, C, H, W] → rows of images, one column per level.
        var grid = stack(columns.ToArray(), 1).reshape(new[] { count * columns.Count }.Concat(x0.shape.Skip(1)).ToArray()).MoveToOuterDisposeScope();
        var labels = request.Levels.Select(t => t == 0 ? "x0" : $"t = {t}").ToArray();
        var alphaBar = diffusion.Schedule.AlphasCumprod;
        var sqrtAlphaBar = request.Levels.Select(t => t == 0 ? 1.0 : Math.Sqrt(alphaBar[t - 1])).ToArray();
        return new ForwardProcessResult(grid, (int)count, columns.Count, labels, sqrtAlphaBar);
    }

    /// <summary>
    /// Checks the levels of a request against a schedule of <paramref name="T"/> steps (front ends call it before they
    /// read a data set, so that a wrong level fails fast); every problem is an <see cref="InvalidRequestException"/> on "t".
    /// </summary>
    public static void CheckLevels(IReadOnlyList<int> levels, int T)
    {
        ArgumentNullException.ThrowIfNull(levels);
        if (levels.Count == 0)
            throw new InvalidRequestException("t", "--t lists no timesteps; give e.g. --t 0,100,250,500,1000.");
        if (levels.Count > MaxLevels)
            throw new InvalidRequestException("t", $"--t lists {levels.Count} timesteps; at most {MaxLevels} columns are drawn.");
        var beyond = levels.Where(t => t < 0 || t > T).ToArray();
        if (beyond.Length > 0)
            throw new InvalidRequestException("t", $"--t {string.Join(",", beyond)} is outside 0..{T}: the schedule has T = {T} steps; drop those levels or use a schedule with more steps.");
    }

    /// <summary>"t=0: clean, t=100: sqrt(abar)=0.947, …": the signal kept at each level, in words.</summary>
    public static string DescribeLevels(ForwardProcessResult result, IReadOnlyList<int> levels)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(levels);
        return string.Join(", ", levels.Select((t, k) => t == 0
            ? "t=0: clean"
            : string.Create(CultureInfo.InvariantCulture, $"t={t}: sqrt(abar)={result.SqrtAlphaBar[k]:0.000}")));
    }
}
