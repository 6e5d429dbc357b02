using Ddpm.Imaging;
using SkiaSharp;

namespace Ddpm.Tests.Imaging;

public class LinePlotTests
{
    [Fact]
    public void DrawsEachSeriesInItsColourAtTheRightPlace()
    {
        var red = new SKColor(214, 39, 40);
        var xs = Enumerable.Range(1, 100).Select(i => (double)i).ToArray();
        using var bitmap = LinePlot.Render(new[] { new LineSeries("", xs, xs.Select(x => 1.0 / x).ToArray(), red, 3f) },
            new LinePlotOptions { Width = 400, Height = 300, LogX = true, LogY = true });
        Assert.Equal(400, bitmap.Width);
        // y = 1/x is a straight falling line on log-log axes: red pixels near the top-left and bottom-right corners
        // of the plot area, none near the other two corners.
        bool RedNear(int x, int y)
        {
            for (int dx = -6; dx <= 6; dx++)
                for (int dy = -6; dy <= 6; dy++)
                {
                    var c = bitmap.GetPixel(Math.Clamp(x + dx, 0, 399), Math.Clamp(y + dy, 0, 299));
                    if (c.Red > 180 && c.Green < 110 && c.Blue < 110) return true;
                }
            return false;
        }
        float left = 78, right = 400 - 20, top = 40, bottom = 300 - 56;
        float yTop = top + 0.05f / 1.1f * (bottom - top), yBottom = bottom - 0.05f / 1.1f * (bottom - top);
        Assert.True(RedNear((int)left + 3, (int)yTop));
        Assert.True(RedNear((int)right - 3, (int)yBottom));
        Assert.False(RedNear((int)left + 3, (int)yBottom));
        Assert.False(RedNear((int)right - 3, (int)yTop));
    }

    [Fact]
    public void LegendWithALongLabelStaysInsideTheFrame()
    {
        // A label as long as the sampler names of `ddpm plot fid` ran past the right edge when the legend had a fixed
        // width; now every column right of the frame (x > 400 - 20) is background, and the label's ink is inside.
        var xs = new[] { 1.0, 2.0, 3.0 };
        using var bitmap = LinePlot.Render(new[] { new LineSeries("DPM-Solver++ 2M (log-snr), a long label", xs, xs, SKColors.Blue) },
            new LinePlotOptions { Width = 400, Height = 300 });
        bool Ink(int x, int y) { var c = bitmap.GetPixel(x, y); return c.Red < 200 && c.Green < 200 && c.Blue < 200; }
        int frameRight = 400 - 20;
        for (int x = frameRight + 2; x < 400; x++)
            for (int y = 40; y < 80; y++)
                Assert.False(Ink(x, y), $"ink at ({x}, {y}), right of the frame");
        Assert.Contains(Enumerable.Range(frameRight - 60, 55), x => Enumerable.Range(44, 16).Any(y => Ink(x, y)));
    }

    [Fact]
    public void RejectsMismatchedOrEmptySeries()
    {
        Assert.Throws<ArgumentException>(() => LinePlot.Render(Array.Empty<LineSeries>()));
        Assert.Throws<ArgumentException>(() => LinePlot.Render(new[] { new LineSeries("a", new[] { 1.0 }, new[] { 1.0, 2.0 }, SKColors.Red) }));
        Assert.Throws<ArgumentException>(() => LinePlot.Render(new[] { new LineSeries("a", new[] { 1.0 }, new[] { -1.0 }, SKColors.Red) }, new LinePlotOptions { LogY = true }));
    }
}
