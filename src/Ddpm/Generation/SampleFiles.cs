using Ddpm.Imaging;
using Ddpm.IO;
using SkiaSharp;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>
/// A sampling result on disk: images as one PNG each and a grid (one row per class when every class was asked for),
/// points as CSV and a scatter plot, and optionally an animated GIF of the denoising chain (x_t beside x̂_0).
/// </summary>
public static class SampleFiles
{
    public const string GridFile = "grid.png";
    public const string GifFile = "denoising.gif";
    public const string CsvFile = "samples.csv";
    public const string ScatterFile = "scatter.png";
    public const int GifFrameDelay = 8;       // centiseconds
    public const int GifLastFrameDelay = 250; // the final samples stay on screen
    private const float TitleSize = 12f;

    public static string SampleFile(int index) => $"sample-{index:D4}.png";

    /// <summary>Writes <paramref name="result"/> into <paramref name="directory"/> (created); returns the paths written, the grid or CSV first.</summary>
    public static IReadOnlyList<string> Write(SamplingResult result, string directory)
    {
        ArgumentNullException.ThrowIfNull(result);
        CheckDirectory(directory);
        return result.IsImages ? WriteImages(result, directory) : WritePoints(result, directory);
    }

    /// <summary>Refuses an output path that is an existing file: call it before sampling, so that no work is lost to a bad path.</summary>
    public static void CheckDirectory(string directory)
    {
        if (File.Exists(directory))
            throw new InvalidRequestException("out", $"--out '{directory}' is an existing file; give a directory path.");
    }

    /// <summary>Refuses an output file path that is an existing directory or lies in a missing folder, before any work.</summary>
    public static void CheckFile(string path, string field)
    {
        if (Directory.Exists(path))
            throw new InvalidRequestException(field, $"--{field} '{path}' is a directory; give a file path.");
        string? parent = Path.GetDirectoryName(Path.GetFullPath(path));
        if (parent is not null && !Directory.Exists(parent))
            throw new InvalidRequestException(field, $"--{field} '{path}': the folder '{parent}' does not exist; create it first.");
    }

    /// <summary>
    /// Writes the samples as float32 (tensor "samples", before 8-bit rounding) and their classes ("class_labels", int64)
    /// when there are any, to the safetensors file <paramref name="path"/>, atomically.
    /// </summary>
    public static void WriteTensors(SamplingResult result, string path)
    {
        ArgumentNullException.ThrowIfNull(result);
        var tensors = new Dictionary<string, Tensor> { ["samples"] = result.Samples };
        if (result.Labels is not null) tensors["class_labels"] = result.Labels;
        SafeTensors.Save(path, tensors);
    }

    private static List<string> WriteImages(SamplingResult result, string dir)
    {
        var all = result.Samples;
        var files = new List<string>();
        // Render everything first, then write.
        var palette = all.shape[1] == 1 ? GifPalette.Grey : GifPalette.ColorCube;
        (List<GifFrame> Frames, int Width, int Height)? gif = result.Frames.Count > 0 ? RenderImageFrames(result, palette) : null;
        for (int i = 0; i < all.shape[0]; i++)
        {
            string path = Path.Combine(dir, SampleFile(i));
            using var one = all.narrow(0, i, 1);
            ImageGrid.SavePng(one, path, columns: 1, padding: 0);
            files.Add(path);
        }
        string grid = Path.Combine(dir, GridFile);
        ImageGrid.SavePng(all, grid, columns: result.AllClasses ? result.CountPerClass : null, scale: LabelledGrid.ScaleFor(all.shape[2], 32));
        files.Insert(0, grid);
        if (gif is { } g)
        {
            string path = Path.Combine(dir, GifFile);
            AnimatedGif.Save(path, g.Width, g.Height, palette, g.Frames);
            files.Insert(1, path);
        }
        return files;
    }

    private static (List<GifFrame> Frames, int Width, int Height) RenderImageFrames(SamplingResult result, GifPalette palette)
    {
        var frames = result.Frames;
        var gifFrames = new List<GifFrame>();
        int width = 0, height = 0;
        int scale = LabelledGrid.ScaleFor(result.Samples.shape[2], 48);
        var leftTitles = frames.Select(f => $"x_t, t = {f.LevelAfter}").ToArray();
        var rightTitles = frames.Select(f => $"predicted x0, step {f.Step + 1}/{result.NetworkCalls}").ToArray();
        // Every frame gets the width of the widest titles, so that all frames have one size.
        int leftMin = TitleWidth(leftTitles), rightMin = TitleWidth(rightTitles);
        for (int i = 0; i < frames.Count; i++)
        {
            var f = frames[i];
            int columns = (int)Math.Ceiling(Math.Sqrt(f.Sample.shape[0]));
            using var left = LabelledGrid.Render(f.Sample, columns, null, scale);
            using var right = LabelledGrid.Render(f.PredictedX0, columns, null, scale);
            using var frame = WithTitles(left, right, leftTitles[i], rightTitles[i], leftMin, rightMin);
            width = frame.Width;
            height = frame.Height;
            gifFrames.Add(new GifFrame(AnimatedGif.Indices(frame, palette), FrameDelay(i, frames.Count)));
        }
        return (gifFrames, width, height);
    }

    private static int FrameDelay(int index, int count) => index == count - 1 ? GifLastFrameDelay : GifFrameDelay;

    /// <summary>The width a panel needs for the widest of <paramref name="titles"/>.</summary>
    private static int TitleWidth(params string[] titles) => titles.Max(t => (int)Math.Ceiling(PlotText.Measure(t, TitleSize)) + 4);

    /// <summary>
    /// Two panels side by side, each under a title, each at least <paramref name="leftMin"/> / <paramref name="rightMin"/>
    /// wide (padded with white), so that every frame of an animation has the same size whatever its titles.
    /// </summary>
    private static SKBitmap WithTitles(SKBitmap left, SKBitmap right, string leftTitle, string rightTitle, int leftMin, int rightMin)
    {
        const int band = 20, gap = 16;
        int leftWidth = Math.Max(left.Width, leftMin);
        int rightWidth = Math.Max(right.Width, rightMin);
        var result = new SKBitmap(leftWidth + gap + rightWidth, band + Math.Max(left.Height, right.Height), SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var canvas = new SKCanvas(result);
        canvas.Clear(SKColors.White);
        var sampling = new SKSamplingOptions(SKFilterMode.Nearest, SKMipmapMode.None);
        using (var image = SKImage.FromBitmap(left)) canvas.DrawImage(image, 0, band, sampling);
        using (var image = SKImage.FromBitmap(right)) canvas.DrawImage(image, leftWidth + gap, band, sampling);
        PlotText.Draw(canvas, leftTitle, 2, band - 6, SKTextAlign.Left, TitleSize, new SKColor(20, 20, 20));
        PlotText.Draw(canvas, rightTitle, leftWidth + gap + 2, band - 6, SKTextAlign.Left, TitleSize, new SKColor(20, 20, 20));
        canvas.Flush();
        return result;
    }

    private static List<string> WritePoints(SamplingResult result, string dir)
    {
        var (xs, ys) = ScatterPanel.Columns(result.Samples);
        float[]? rx = null, ry = null;
        if (result.Reference is not null) (rx, ry) = ScatterPanel.Columns(result.Reference);
        string sampler = EnumNames.Kebab(result.Settings.Kind);
        var panel = new ScatterPanel($"{result.CountPerClass} samples, {result.Settings.Steps} {sampler} steps", xs, ys, rx, ry) { ReferenceLabel = result.ReferenceName ?? "data" };

        List<GifFrame>? gifFrames = null;
        SKSizeI size = default;
        if (result.Frames.Count > 0)
        {
            gifFrames = new List<GifFrame>();
            for (int i = 0; i < result.Frames.Count; i++)
            {
                var f = result.Frames[i];
                var panels = new[]
                {
                    ScatterPanel.FromTensor($"x_t, t = {f.LevelAfter}", f.Sample),
                    ScatterPanel.FromTensor($"predicted x0, step {f.Step + 1}/{result.NetworkCalls}", f.PredictedX0),
                };
                using var bitmap = ScatterPlot.Render(panels);
                size = new SKSizeI(bitmap.Width, bitmap.Height);
                gifFrames.Add(new GifFrame(AnimatedGif.Indices(bitmap, GifPalette.ColorCube), FrameDelay(i, result.Frames.Count)));
            }
        }

        var files = new List<string> { Path.Combine(dir, CsvFile), Path.Combine(dir, ScatterFile) };
        PointsCsv.Write(files[0], xs, ys);
        ScatterPlot.SavePng(files[1], new[] { panel });
        if (gifFrames is not null)
        {
            files.Add(Path.Combine(dir, GifFile));
            AnimatedGif.Save(files[2], size.Width, size.Height, GifPalette.ColorCube, gifFrames);
        }
        return files;
    }
}
