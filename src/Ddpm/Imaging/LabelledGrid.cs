using SkiaSharp;
using TorchSharp;

namespace Ddpm.Imaging;

/// <summary>An <see cref="ImageGrid"/> with a text label above each column (and optionally a title band).</summary>
public static class LabelledGrid
{
    /// <summary>The smallest integer scale that draws an image side of <paramref name="side"/> pixels at least <paramref name="target"/> pixels wide.</summary>
    public static int ScaleFor(long side, int target = 56) => side < 1 ? 1 : (int)Math.Max(1, (target + side - 1) / side);

    /// <summary>The height of the label band above the grid.</summary>
    public static int BandHeight(float textSize = 11f) => (int)Math.Ceiling(textSize * 1.6f);

    /// <summary>
    /// Lays out [N, C, H, W] images (C = 1 or 3, values in [−1, 1]) in rows of <paramref name="columns"/>, each pixel drawn
    /// <paramref name="scale"/> times, with <paramref name="columnLabels"/> (one per column, may be null) centred above
    /// the columns on a white band.
    /// </summary>
    public static SKBitmap Render(torch.Tensor images, int columns, IReadOnlyList<string>? columnLabels, int scale, int padding = 2, float textSize = 11f)
    {
        using var grid = ImageGrid.ToBitmap(images, columns, padding, scale);
        if (columnLabels is null || columnLabels.Count == 0)
            return grid.Copy();
        if (columnLabels.Count != columns)
            throw new ArgumentException($"Got {columnLabels.Count} column labels for {columns} columns.", nameof(columnLabels));
        int band = BandHeight(textSize);
        var result = new SKBitmap(grid.Width, grid.Height + band, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var canvas = new SKCanvas(result);
        canvas.Clear(SKColors.White);
        using (var image = SKImage.FromBitmap(grid))
            canvas.DrawImage(image, 0, band, new SKSamplingOptions(SKFilterMode.Nearest, SKMipmapMode.None));
        int cell = (int)images.shape[3] * scale + padding;
        for (int c = 0; c < columns; c++)
        {
            float centre = padding + c * cell + (cell - padding) / 2f;
            PlotText.Draw(canvas, columnLabels[c], centre, band - textSize * 0.45f, SKTextAlign.Center, textSize, new SKColor(30, 30, 30));
        }
        canvas.Flush();
        return result;
    }

    /// <summary>Places bitmaps side by side (top-aligned) on white, <paramref name="gap"/> pixels apart.</summary>
    public static SKBitmap SideBySide(IReadOnlyList<SKBitmap> parts, int gap = 12)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0) throw new ArgumentException("Nothing to place.", nameof(parts));
        int width = parts.Sum(p => p.Width) + gap * (parts.Count - 1);
        int height = parts.Max(p => p.Height);
        var result = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var canvas = new SKCanvas(result);
        canvas.Clear(SKColors.White);
        int x = 0;
        foreach (var part in parts)
        {
            using (var image = SKImage.FromBitmap(part))
                canvas.DrawImage(image, x, 0, new SKSamplingOptions(SKFilterMode.Nearest, SKMipmapMode.None));
            x += part.Width + gap;
        }
        canvas.Flush();
        return result;
    }
}
