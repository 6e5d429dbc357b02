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
    public void RejectsMismatchedOrEmptySeries()
    {
        Assert.Throws<ArgumentException>(() => LinePlot.Render(Array.Empty<LineSeries>()));
        Assert.Throws<ArgumentException>(() => LinePlot.Render(new[] { new LineSeries("a", new[] { 1.0 }, new[] { 1.0, 2.0 }, SKColors.Red) }));
        Assert.Throws<ArgumentException>(() => LinePlot.Render(new[] { new LineSeries("a", new[] { 1.0 }, new[] { -1.0 }, SKColors.Red) }, new LinePlotOptions { LogY = true }));
    }
}
