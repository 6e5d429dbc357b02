using System.Globalization;
using Ddpm.IO;
using SkiaSharp;

namespace Ddpm.Imaging;

/// <summary>One line of a <see cref="LinePlot"/>.</summary>
public sealed record LineSeries(string Label, double[] Xs, double[] Ys, SKColor Color, float Width = 1.5f, bool Markers = false);

/// <summary>Layout and axes of a line plot.</summary>
public sealed record LinePlotOptions
{
    public int Width { get; init; } = 760;
    public int Height { get; init; } = 460;
    public string Title { get; init; } = "";
    public string XLabel { get; init; } = "";
    public string YLabel { get; init; } = "";
    public bool LogX { get; init; }
    public bool LogY { get; init; }
}

/// <summary>Line charts as PNG (loss curves, FID against network calls), with linear or log-10 axes.</summary>
public static class LinePlot
{
    private static readonly SKColor Foreground = new(40, 40, 40), Grid = new(232, 232, 232);
    private const float Left = 78, Right = 20, Top = 40, Bottom = 56, LabelSize = 12, TitleSize = 16;

    public static SKBitmap Render(IReadOnlyList<LineSeries> series, LinePlotOptions? options = null)
    {
        var o = options ?? new LinePlotOptions();
        if (series.Count == 0) throw new ArgumentException("A line plot needs at least one series.", nameof(series));
        foreach (var s in series)
            if (s.Xs.Length != s.Ys.Length) throw new ArgumentException($"Series '{s.Label}' has {s.Xs.Length} x values but {s.Ys.Length} y values.", nameof(series));
        double Tx(double v) => o.LogX ? Math.Log10(v) : v;
        double Ty(double v) => o.LogY ? Math.Log10(v) : v;
        var points = series.SelectMany(s => s.Xs.Zip(s.Ys)).Where(p => double.IsFinite(Tx(p.First)) && double.IsFinite(Ty(p.Second))).ToArray();
        if (points.Length == 0) throw new ArgumentException("The series have no finite points to draw (log axes need positive values).", nameof(series));
        double xMin = points.Min(p => Tx(p.First)), xMax = points.Max(p => Tx(p.First));
        double yMin = points.Min(p => Ty(p.Second)), yMax = points.Max(p => Ty(p.Second));
        if (xMax <= xMin) { xMin -= 0.5; xMax += 0.5; }
        if (yMax <= yMin) { yMin -= 0.5; yMax += 0.5; }
        double yPad = 0.05 * (yMax - yMin);
        yMin -= yPad; yMax += yPad;

        var bitmap = new SKBitmap(new SKImageInfo(o.Width, o.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        var area = new SKRect(Left, Top, o.Width - Right, o.Height - Bottom);
        SKPoint ToPixel(double x, double y) => new(
            (float)(area.Left + (Tx(x) - xMin) / (xMax - xMin) * area.Width),
            (float)(area.Bottom - (Ty(y) - yMin) / (yMax - yMin) * area.Height));

        using var gridPaint = new SKPaint { Color = Grid, StrokeWidth = 1, Style = SKPaintStyle.Stroke };
        using var framePaint = new SKPaint { Color = Foreground, StrokeWidth = 1, Style = SKPaintStyle.Stroke };
        foreach (var (value, pixel) in Ticks(xMin, xMax, o.LogX).Select(t => (t, ToPixel(t, o.LogY ? Math.Pow(10, yMin) : yMin).X)))
        {
            canvas.DrawLine(pixel, area.Top, pixel, area.Bottom, gridPaint);
            PlotText.Draw(canvas, Format(value), pixel, area.Bottom + 6 + LabelSize, SKTextAlign.Center, LabelSize, Foreground);
        }
        foreach (var (value, pixel) in Ticks(yMin, yMax, o.LogY).Select(t => (t, ToPixel(o.LogX ? Math.Pow(10, xMin) : xMin, t).Y)))
        {
            canvas.DrawLine(area.Left, pixel, area.Right, pixel, gridPaint);
            PlotText.Draw(canvas, Format(value), area.Left - 6, pixel + LabelSize * 0.35f, SKTextAlign.Right, LabelSize, Foreground);
        }
        canvas.DrawRect(area, framePaint);

        DrawSeries(canvas, area, series, ToPixel, v => double.IsFinite(Tx(v)), v => double.IsFinite(Ty(v)));

        PlotText.Draw(canvas, o.Title, o.Width / 2f, Top - 14, SKTextAlign.Center, TitleSize, Foreground);
        PlotText.Draw(canvas, o.XLabel, area.MidX, o.Height - 12, SKTextAlign.Center, LabelSize, Foreground);
        canvas.Save();
        canvas.RotateDegrees(-90, 16, area.MidY);
        PlotText.Draw(canvas, o.YLabel, 16, area.MidY + LabelSize * 0.35f, SKTextAlign.Center, LabelSize, Foreground);
        canvas.Restore();

        DrawLegend(canvas, area, series);
        canvas.Flush();
        return bitmap;
    }

    /// <summary>Each series as a polyline (broken where a point cannot be drawn on the axes), clipped to the plot area.</summary>
    private static void DrawSeries(SKCanvas canvas, SKRect area, IReadOnlyList<LineSeries> series, Func<double, double, SKPoint> toPixel,
        Func<double, bool> drawableX, Func<double, bool> drawableY)
    {
        canvas.Save();
        canvas.ClipRect(area);
        foreach (var s in series)
        {
            using var paint = new SKPaint { Color = s.Color, StrokeWidth = s.Width, Style = SKPaintStyle.Stroke, IsAntialias = true };
            using var builder = new SKPathBuilder();
            bool started = false;
            for (int i = 0; i < s.Xs.Length; i++)
            {
                if (!drawableX(s.Xs[i]) || !drawableY(s.Ys[i])) { started = false; continue; }
                var p = toPixel(s.Xs[i], s.Ys[i]);
                if (started) builder.LineTo(p); else builder.MoveTo(p);
                started = true;
                if (s.Markers) canvas.DrawCircle(p, 3, paint);
            }
            using var path = builder.Detach();
            canvas.DrawPath(path, paint);
        }
        canvas.Restore();
    }

    /// <summary>The legend, as wide as its longest label so that no label runs past the frame, on white so that grid lines do not cross it.</summary>
    private static void DrawLegend(SKCanvas canvas, SKRect area, IReadOnlyList<LineSeries> series)
    {
        var labelled = series.Where(s => s.Label.Length > 0).ToArray();
        if (labelled.Length == 0) return;
        float textX = area.Right - 8 - labelled.Max(s => PlotText.Measure(s.Label, LabelSize));
        float legendY = area.Top + 16;
        using var background = new SKPaint { Color = SKColors.White, Style = SKPaintStyle.Fill };
        canvas.DrawRect(new SKRect(textX - 36, area.Top + 4, area.Right - 2, area.Top + 8 + labelled.Length * (LabelSize + 6)), background);
        foreach (var s in labelled)
        {
            using var paint = new SKPaint { Color = s.Color, StrokeWidth = 3, Style = SKPaintStyle.Stroke };
            canvas.DrawLine(textX - 30, legendY - 4, textX - 6, legendY - 4, paint);
            PlotText.Draw(canvas, s.Label, textX, legendY, SKTextAlign.Left, LabelSize, Foreground);
            legendY += LabelSize + 6;
        }
    }

    public static void SavePng(string path, IReadOnlyList<LineSeries> series, LinePlotOptions? options = null)
    {
        using var bitmap = Render(series, options);
        ImageGrid.SavePng(bitmap, path);
    }

    /// <summary>Tick values (data units) for a transformed range [min, max]: nice numbers, or powers of ten (with 2 and 5) on log axes.</summary>
    private static IEnumerable<double> Ticks(double min, double max, bool log)
    {
        if (!log) return ScatterPlot.NiceTicks(min, max, 6);
        // Less than a decade: round numbers in data units, placed on the log axis.
        if (max - min < 1) return ScatterPlot.NiceTicks(Math.Pow(10, min), Math.Pow(10, max), 6).Where(v => v > 0);
        var ticks = new List<double>();
        for (int e = (int)Math.Floor(min); e <= (int)Math.Ceiling(max); e++)
            foreach (double m in max - min > 3 ? new[] { 1.0 } : new[] { 1.0, 2.0, 5.0 })
            {
                double v = m * Math.Pow(10, e);
                if (Math.Log10(v) >= min - 1e-9 && Math.Log10(v) <= max + 1e-9) ticks.Add(v);
            }
        return ticks;
    }

    private static string Format(double v) =>
        Math.Abs(v) >= 1e4 || (Math.Abs(v) < 1e-2 && v != 0) ? v.ToString("0.##E0", CultureInfo.InvariantCulture) : v.ToString("0.###", CultureInfo.InvariantCulture);
}
