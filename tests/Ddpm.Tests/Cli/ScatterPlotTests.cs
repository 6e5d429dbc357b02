using Ddpm.Imaging;
using SkiaSharp;
using TorchSharp;

namespace Ddpm.Tests.Cli;

public class ScatterPlotTests
{
    private static readonly ScatterPlotOptions Options = new() { PanelWidth = 240, PanelHeight = 260, PointRadius = 3f };

    private static bool IsBackground(SKColor c) => c.Red > 245 && c.Green > 245 && c.Blue > 245;

    [Fact]
    public void Png_HasTheRequestedSize_AndPointsWhereTheDataIs()
    {
        var samples = new ScatterPanel("samples", new[] { 0f, 0.5f }, new[] { 0f, -0.5f });
        var withReference = new ScatterPanel("with reference", new[] { -0.75f }, new[] { 0.75f }, new[] { 0.75f }, new[] { -0.25f });

        byte[] png = ScatterPlot.EncodePng(new[] { samples, withReference }, Options);
        using var bitmap = SKBitmap.Decode(png);

        Assert.NotNull(bitmap);
        Assert.Equal(2 * 240, bitmap.Width);
        Assert.Equal(260, bitmap.Height);

        SKColor At(int panel, double x, double y)
        {
            var p = ScatterPlot.ToPixel(panel, x, y, Options);
            return bitmap.GetPixel((int)MathF.Round(p.X), (int)MathF.Round(p.Y));
        }

        // Sample points are drawn in the (blue) point colour...
        foreach (var (panel, x, y) in new[] { (0, 0.0, 0.0), (0, 0.5, -0.5), (1, -0.75, 0.75) })
        {
            var c = At(panel, x, y);
            Assert.False(IsBackground(c), $"no point drawn at ({x}, {y}) in panel {panel}: {c}");
            Assert.True(c.Blue > c.Red, $"point at ({x}, {y}) should be blue-ish: {c}");
        }
        // ...reference points in the other (orange) colour...
        var reference = At(1, 0.75, -0.25);
        Assert.False(IsBackground(reference));
        Assert.True(reference.Red > reference.Blue, $"reference point should be orange-ish: {reference}");
        // ...and empty places stay background (away from points, grid lines, legend).
        Assert.True(IsBackground(At(0, 0.3, 0.85)));
        Assert.True(IsBackground(At(0, -0.7, -0.3)));
        Assert.True(IsBackground(At(1, 0.3, 0.3)));
        // The samples panel has no points at the reference location of the other panel.
        Assert.True(IsBackground(At(0, 0.75, -0.25)));
    }

    [Fact]
    public void PointsOutsideTheAxisRangeOrNotFinite_AreSkipped()
    {
        var panel = new ScatterPanel("outside", new[] { 5f, float.NaN, -3f }, new[] { 0f, 0f, float.PositiveInfinity });
        using var bitmap = ScatterPlot.Render(new[] { panel }, Options);
        var area = ScatterPlot.PlotArea(0, Options);
        // Outside the axis box on the right there is nothing but background.
        for (int x = (int)area.Right + 2; x < bitmap.Width; x++)
            Assert.True(IsBackground(bitmap.GetPixel(x, (int)area.MidY)));
    }

    [Fact]
    public void TitleAndTickLabels_DrawVisibleText()
    {
        // SkiaSharp's Linux NoDependencies build has an empty default typeface; PlotText must still draw text.
        using var bitmap = new SKBitmap(200, 40);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            PlotText.Draw(canvas, "DDPM 1000 steps -0.5", 4, 28, SKTextAlign.Left, 14, SKColors.Black);
        }
        int dark = 0;
        for (int y = 0; y < bitmap.Height; y++)
            for (int x = 0; x < bitmap.Width; x++)
                if (bitmap.GetPixel(x, y).Red < 128) dark++;
        Assert.True(dark > 50, $"only {dark} dark pixels: text was not drawn");
        Assert.True(PlotText.Measure("abc", 14) > 10);
    }

    [Fact]
    public void SavePng_WritesADecodablePngAndNoTemporaryFile()
    {
        using var temp = new TempDirectory();
        string path = temp.Combine("sub", "plot.png");

        ScatterPlot.SavePng(path, new[] { new ScatterPanel("one", new[] { 0.1f }, new[] { 0.2f }) }, Options);

        Assert.Equal(new[] { path }, Directory.GetFileSystemEntries(temp.Combine("sub")));
        using var bitmap = SKBitmap.Decode(path);
        Assert.Equal(240, bitmap.Width);
        Assert.Equal(260, bitmap.Height);
    }

    [Fact]
    public void FromTensor_SplitsColumns_AndRejectsOtherShapes()
    {
        using var points = torch.tensor(new float[] { 1, 2, 3, 4, 5, 6 }).reshape(3, 2);
        using var reference = torch.tensor(new double[] { -1, -2 }).reshape(1, 2);

        var panel = ScatterPanel.FromTensor("t", points, reference);

        Assert.Equal(new float[] { 1, 3, 5 }, panel.Xs);
        Assert.Equal(new float[] { 2, 4, 6 }, panel.Ys);
        Assert.Equal(new float[] { -1 }, panel.ReferenceXs);
        Assert.Equal(new float[] { -2 }, panel.ReferenceYs);

        using var wrong = torch.zeros(3, 3);
        Assert.Throws<ArgumentException>(() => ScatterPanel.FromTensor("bad", wrong));
        Assert.Throws<ArgumentException>(() => new ScatterPanel("bad", new float[2], new float[3]));
        Assert.Throws<ArgumentException>(() => ScatterPlot.Render(Array.Empty<ScatterPanel>()));
    }

    [Fact]
    public void NiceTicks_AreRoundNumbersInsideTheRange()
    {
        Assert.Equal(new[] { -1.0, -0.5, 0.0, 0.5, 1.0 }, ScatterPlot.NiceTicks(-1.2, 1.2, 6));
        Assert.Equal(new[] { 0.0, 0.2, 0.4, 0.6, 0.8, 1.0 }, ScatterPlot.NiceTicks(0, 1, 6));
        Assert.Empty(ScatterPlot.NiceTicks(1, 1));
    }
}
