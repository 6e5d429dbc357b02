using System.Globalization;
using Ddpm.IO;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Imaging;

/// <summary>
/// One panel of a scatter plot: a title, the points (x_i, y_i), and optionally a second set of reference points
/// drawn underneath in another colour (e.g. the training data under model samples).
/// </summary>
public sealed record ScatterPanel
{
    public ScatterPanel(string title, float[] xs, float[] ys, float[]? referenceXs = null, float[]? referenceYs = null)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(xs);
        ArgumentNullException.ThrowIfNull(ys);
        if (xs.Length != ys.Length)
            throw new ArgumentException($"A scatter panel needs as many x as y values; got {xs.Length} and {ys.Length}.", nameof(ys));
        if ((referenceXs is null) != (referenceYs is null))
            throw new ArgumentException("Give both reference x and reference y values, or neither.", nameof(referenceYs));
        if (referenceXs is not null && referenceXs.Length != referenceYs!.Length)
            throw new ArgumentException($"A scatter panel needs as many reference x as y values; got {referenceXs.Length} and {referenceYs.Length}.", nameof(referenceYs));
        Title = title;
        Xs = xs;
        Ys = ys;
        ReferenceXs = referenceXs;
        ReferenceYs = referenceYs;
    }

    public string Title { get; init; }
    public float[] Xs { get; }
    public float[] Ys { get; }
    public float[]? ReferenceXs { get; }
    public float[]? ReferenceYs { get; }
    public bool HasReference => ReferenceXs is not null;
    /// <summary>Legend text for the points (the legend is drawn only when there are reference points).</summary>
    public string PointsLabel { get; init; } = "samples";
    /// <summary>Legend text for the reference points.</summary>
    public string ReferenceLabel { get; init; } = "reference";

    /// <summary>A panel from a [N, 2] tensor of points and an optional [M, 2] tensor of reference points (any dtype, any device).</summary>
    public static ScatterPanel FromTensor(string title, Tensor points, Tensor? reference = null)
    {
        var (xs, ys) = Columns(points, nameof(points));
        if (reference is null) return new ScatterPanel(title, xs, ys);
        var (rx, ry) = Columns(reference, nameof(reference));
        return new ScatterPanel(title, xs, ys, rx, ry);
    }

    /// <summary>The two columns of a [N, 2] tensor as float arrays.</summary>
    public static (float[] Xs, float[] Ys) Columns(Tensor points, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.dim() != 2 || points.shape[1] != 2)
            throw new ArgumentException($"Scatter points must have shape [N, 2]; got [{string.Join(",", points.shape)}].", name ?? nameof(points));
        using var scope = NewDisposeScope();
        var flat = points.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
        int n = flat.Length / 2;
        var xs = new float[n];
        var ys = new float[n];
        for (int i = 0; i < n; i++)
        {
            xs[i] = flat[2 * i];
            ys[i] = flat[2 * i + 1];
        }
        return (xs, ys);
    }
}

/// <summary>How a <see cref="ScatterPlot"/> looks. Every panel shares the same fixed axis range.</summary>
public sealed record ScatterPlotOptions
{
    /// <summary>Width of one panel in pixels; the image is <c>panels × PanelWidth</c> wide.</summary>
    public int PanelWidth { get; init; } = 420;
    /// <summary>Height of the image in pixels.</summary>
    public int PanelHeight { get; init; } = 440;
    /// <summary>Lower end of both axes.</summary>
    public double AxisMin { get; init; } = -1.2;
    /// <summary>Upper end of both axes.</summary>
    public double AxisMax { get; init; } = 1.2;
    /// <summary>Radius of a point in pixels.</summary>
    public float PointRadius { get; init; } = 1.6f;
    public SKColor PointColor { get; init; } = new(31, 119, 180, 120);
    public SKColor ReferenceColor { get; init; } = new(255, 127, 14, 80);
    public SKColor Background { get; init; } = SKColors.White;
    public SKColor Foreground { get; init; } = new(40, 40, 40);
    public SKColor GridColor { get; init; } = new(232, 232, 232);
    public float TitleSize { get; init; } = 16f;
    public float LabelSize { get; init; } = 12f;
    /// <summary>About how many tick labels per axis.</summary>
    public int TargetTicks { get; init; } = 6;

    public void Validate()
    {
        if (PanelWidth < 64 || PanelHeight < 64 || PanelWidth > 8192 || PanelHeight > 8192)
            throw new ArgumentException($"Panel size must be between 64 and 8192 pixels; got {PanelWidth}×{PanelHeight}.", nameof(PanelWidth));
        if (!double.IsFinite(AxisMin) || !double.IsFinite(AxisMax) || !(AxisMax > AxisMin))
            throw new ArgumentException($"The axis range must be finite with AxisMin < AxisMax; got [{AxisMin}, {AxisMax}].", nameof(AxisMin));
        if (!(PointRadius > 0) || !float.IsFinite(PointRadius))
            throw new ArgumentException($"PointRadius must be > 0; got {PointRadius}.", nameof(PointRadius));
        if (TargetTicks < 2)
            throw new ArgumentException($"TargetTicks must be >= 2; got {TargetTicks}.", nameof(TargetTicks));
    }
}

/// <summary>
/// Renders 2-D point sets as side-by-side scatter panels (title, axis box with tick labels, fixed shared axis range,
/// small semi-transparent dots, optional reference points underneath) and saves them as PNG.
/// </summary>
public static class ScatterPlot
{
    /// <summary>The image size for <paramref name="panelCount"/> panels.</summary>
    public static SKSizeI ImageSize(int panelCount, ScatterPlotOptions? options = null)
    {
        var o = options ?? new ScatterPlotOptions();
        return new SKSizeI(panelCount * o.PanelWidth, o.PanelHeight);
    }

    /// <summary>The axis box of panel <paramref name="panelIndex"/> in image pixels.</summary>
    public static SKRect PlotArea(int panelIndex, ScatterPlotOptions? options = null)
    {
        var o = options ?? new ScatterPlotOptions();
        float left = 14 + 3.2f * o.LabelSize, right = 14, top = o.TitleSize + 22, bottom = 12 + 1.8f * o.LabelSize;
        float side = Math.Max(8, Math.Min(o.PanelWidth - left - right, o.PanelHeight - top - bottom));
        float x0 = panelIndex * o.PanelWidth + left + (o.PanelWidth - left - right - side) / 2;
        float y0 = top + (o.PanelHeight - top - bottom - side) / 2;
        return new SKRect(MathF.Round(x0), MathF.Round(y0), MathF.Round(x0 + side), MathF.Round(y0 + side));
    }

    /// <summary>Where the data point (<paramref name="x"/>, <paramref name="y"/>) lands in panel <paramref name="panelIndex"/>.</summary>
    public static SKPoint ToPixel(int panelIndex, double x, double y, ScatterPlotOptions? options = null)
    {
        var o = options ?? new ScatterPlotOptions();
        var area = PlotArea(panelIndex, o);
        double span = o.AxisMax - o.AxisMin;
        return new SKPoint(
            (float)(area.Left + (x - o.AxisMin) / span * area.Width),
            (float)(area.Bottom - (y - o.AxisMin) / span * area.Height));
    }

    /// <summary>Draws the panels into a new bitmap (the caller disposes it).</summary>
    public static SKBitmap Render(IReadOnlyList<ScatterPanel> panels, ScatterPlotOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(panels);
        if (panels.Count == 0) throw new ArgumentException("A scatter plot needs at least one panel.", nameof(panels));
        if (panels.Any(p => p is null)) throw new ArgumentException("Panels must not be null.", nameof(panels));
        var o = options ?? new ScatterPlotOptions();
        o.Validate();
        var size = ImageSize(panels.Count, o);
        var bitmap = new SKBitmap(new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        try
        {
            using var canvas = new SKCanvas(bitmap);
            canvas.Clear(o.Background);
            for (int i = 0; i < panels.Count; i++)
                DrawPanel(canvas, i, panels[i], o);
            canvas.Flush();
            return bitmap;
        }
        catch
        {
            bitmap.Dispose();
            throw;
        }
    }

    /// <summary>The panels as PNG bytes.</summary>
    public static byte[] EncodePng(IReadOnlyList<ScatterPanel> panels, ScatterPlotOptions? options = null)
    {
        using var bitmap = Render(panels, options);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException("SkiaSharp could not encode the scatter plot as PNG.");
        return data.ToArray();
    }

    /// <summary>Renders the panels and writes them to <paramref name="path"/> as PNG (atomically; creates the directory).</summary>
    public static void SavePng(string path, IReadOnlyList<ScatterPanel> panels, ScatterPlotOptions? options = null)
    {
        var png = EncodePng(panels, options);
        AtomicFile.WriteAllBytes(path, png);
    }

    /// <summary>Round tick positions ("nice numbers": 1, 2, 2.5 or 5 times a power of ten) inside [min, max].</summary>
    public static IReadOnlyList<double> NiceTicks(double min, double max, int target = 5)
    {
        if (!(max > min) || !double.IsFinite(min) || !double.IsFinite(max)) return Array.Empty<double>();
        double raw = (max - min) / Math.Max(1, target - 1);
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1.0, 2.0, 2.5, 5.0, 10.0 }.Select(m => m * magnitude).First(s => s >= raw * 0.999);
        var ticks = new List<double>();
        for (double k = Math.Ceiling(min / step - 1e-9); k * step <= max + 1e-9 * step; k++)
        {
            int digits = Math.Clamp(2 - (int)Math.Floor(Math.Log10(step)), 0, 15);
            double v = Math.Round(k * step, digits);   // 0.6, not 0.6000000000000001
            ticks.Add(v == 0 ? 0.0 : v);               // no -0
        }
        return ticks;
    }

    private static void DrawPanel(SKCanvas canvas, int index, ScatterPanel panel, ScatterPlotOptions o)
    {
        var area = PlotArea(index, o);
        float panelLeft = index * o.PanelWidth;
        var ticks = NiceTicks(o.AxisMin, o.AxisMax, o.TargetTicks);

        using (var grid = new SKPaint { Color = o.GridColor, StrokeWidth = 1, IsAntialias = false, Style = SKPaintStyle.Stroke })
        {
            foreach (var t in ticks)
            {
                var p = ToPixel(index, t, t, o);
                canvas.DrawLine(MathF.Round(p.X) + 0.5f, area.Top, MathF.Round(p.X) + 0.5f, area.Bottom, grid);
                canvas.DrawLine(area.Left, MathF.Round(p.Y) + 0.5f, area.Right, MathF.Round(p.Y) + 0.5f, grid);
            }
        }

        canvas.Save();
        canvas.ClipRect(area);
        if (panel.HasReference)
            DrawPoints(canvas, index, panel.ReferenceXs!, panel.ReferenceYs!, o.ReferenceColor, o);
        DrawPoints(canvas, index, panel.Xs, panel.Ys, o.PointColor, o);
        canvas.Restore();

        using (var frame = new SKPaint { Color = o.Foreground, StrokeWidth = 1, IsAntialias = false, Style = SKPaintStyle.Stroke })
        {
            canvas.DrawRect(area.Left + 0.5f, area.Top + 0.5f, area.Width - 1, area.Height - 1, frame);
            float tickLength = 4;
            foreach (var t in ticks)
            {
                var p = ToPixel(index, t, t, o);
                float px = MathF.Round(p.X) + 0.5f, py = MathF.Round(p.Y) + 0.5f;
                canvas.DrawLine(px, area.Bottom, px, area.Bottom + tickLength, frame);
                canvas.DrawLine(area.Left - tickLength, py, area.Left, py, frame);
                string label = FormatTick(t);
                PlotText.Draw(canvas, label, px, area.Bottom + tickLength + 3 + o.LabelSize, SKTextAlign.Center, o.LabelSize, o.Foreground);
                PlotText.Draw(canvas, label, area.Left - tickLength - 3, py + o.LabelSize * 0.35f, SKTextAlign.Right, o.LabelSize, o.Foreground);
            }
        }

        string title = Fit(panel.Title, o.PanelWidth - 12, o.TitleSize);
        PlotText.Draw(canvas, title, panelLeft + o.PanelWidth / 2f, 8 + o.TitleSize, SKTextAlign.Center, o.TitleSize, o.Foreground);

        if (panel.HasReference)
            DrawLegend(canvas, area, panel, o);
    }

    private static void DrawPoints(SKCanvas canvas, int index, float[] xs, float[] ys, SKColor color, ScatterPlotOptions o)
    {
        var points = new List<SKPoint>(xs.Length);
        for (int i = 0; i < xs.Length; i++)
        {
            if (!float.IsFinite(xs[i]) || !float.IsFinite(ys[i])) continue;
            points.Add(ToPixel(index, xs[i], ys[i], o));
        }
        if (points.Count == 0) return;
        using var paint = new SKPaint
        {
            Color = color,
            IsAntialias = true,
            Style = SKPaintStyle.Stroke,
            StrokeCap = SKStrokeCap.Round,
            StrokeWidth = 2 * o.PointRadius,
        };
        canvas.DrawPoints(SKPointMode.Points, points.ToArray(), paint);
    }

    private static void DrawLegend(SKCanvas canvas, SKRect area, ScatterPanel panel, ScatterPlotOptions o)
    {
        float size = o.LabelSize, pad = 6, row = size + 4;
        float width = 2 * pad + 14 + Math.Max(PlotText.Measure(panel.PointsLabel, size), PlotText.Measure(panel.ReferenceLabel, size));
        var box = new SKRect(area.Left + 6, area.Top + 6, area.Left + 6 + width, area.Top + 6 + 2 * pad + 2 * row - 4);
        using (var fill = new SKPaint { Color = o.Background.WithAlpha(220), Style = SKPaintStyle.Fill })
            canvas.DrawRect(box, fill);
        using (var border = new SKPaint { Color = o.GridColor, Style = SKPaintStyle.Stroke, StrokeWidth = 1 })
            canvas.DrawRect(box, border);
        var entries = new[] { (panel.PointsLabel, o.PointColor), (panel.ReferenceLabel, o.ReferenceColor) };
        for (int i = 0; i < entries.Length; i++)
        {
            float cy = box.Top + pad + i * row + size / 2;
            using var dot = new SKPaint { Color = entries[i].Item2.WithAlpha(255), IsAntialias = true, Style = SKPaintStyle.Fill };
            canvas.DrawCircle(box.Left + pad + 4, cy, 3.5f, dot);
            PlotText.Draw(canvas, entries[i].Item1, box.Left + pad + 14, cy + size * 0.35f, SKTextAlign.Left, size, o.Foreground);
        }
    }

    private static string FormatTick(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);

    private static string Fit(string text, float maxWidth, float size)
    {
        if (PlotText.Measure(text, size) <= maxWidth) return text;
        for (int n = text.Length - 1; n > 0; n--)
        {
            string candidate = text[..n].TrimEnd() + "...";
            if (PlotText.Measure(candidate, size) <= maxWidth) return candidate;
        }
        return "";
    }
}
