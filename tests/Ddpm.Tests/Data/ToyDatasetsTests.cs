using Ddpm.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Data;

public class ToyDatasetsTests
{
    private const int N = 8000;

    private static float[] Points(string name, int n = N, ulong seed = 42)
    {
        using var scope = NewDisposeScope();
        var t = ToyDatasets.Sample(name, n, new Generator(seed));
        Assert.Equal(new long[] { n, 2 }, t.shape);
        Assert.Equal(ScalarType.Float32, t.dtype);
        return t.data<float>().ToArray();
    }

    [Theory]
    [InlineData("toy:moons")]
    [InlineData("toy:swissroll")]
    [InlineData("toy:8gaussians")]
    [InlineData("toy:checkerboard")]
    public void ShapeRangeAndDeterminism(string name)
    {
        var a = Points(name);
        Assert.All(a, v => Assert.True(float.IsFinite(v) && Math.Abs(v) < 1.3f, $"{name}: {v} is outside the expected range."));
        // Roughly [−1, 1]: the extreme coordinate is between 0.5 and 1.3.
        float extreme = a.Max(Math.Abs);
        Assert.InRange(extreme, 0.5f, 1.3f);

        Assert.Equal(a, Points(name));                       // same seed, same points
        Assert.NotEqual(a, Points(name, seed: 43));          // another seed, other points
    }

    [Fact]
    public void UnknownNamesListTheKnownOnes()
    {
        var ex = Assert.Throws<ArgumentException>(() => ToyDatasets.Sample("toy:spirals", 10, new Generator(1)));
        foreach (var name in ToyDatasets.Names)
            Assert.Contains(name, ex.Message);
        Assert.True(ToyDatasets.IsToy("toy:spirals"));
        Assert.False(ToyDatasets.IsToy("fashion-mnist"));
    }

    [Fact]
    public void ZeroPointsAndCallerScope()
    {
        using (var scope = NewDisposeScope())
        {
            var none = ToyDatasets.Sample("toy:moons", 0, new Generator(1));
            Assert.Equal(new long[] { 0, 2 }, none.shape);
        }
        Tensor outlived;
        using (NewDisposeScope())
            outlived = ToyDatasets.Sample("toy:moons", 5, new Generator(1)).DetachFromDisposeScope();
        Assert.False(outlived.IsInvalid);
        outlived.Dispose();
    }

    [Fact]
    public void EightGaussiansClusterAroundEightCentresOnACircle()
    {
        var p = Points("toy:8gaussians");
        double radius = 1.0 / ToyDatasets.EightGaussiansDivisor;          // 4 / 1.414 / 4
        double sigma = 0.5 / ToyDatasets.EightGaussiansDivisor / 4.0;     // ≈ 0.088
        var centres = Enumerable.Range(0, 8).Select(k => (X: radius * Math.Cos(k * Math.PI / 4), Y: radius * Math.Sin(k * Math.PI / 4))).ToArray();
        var counts = new int[8];
        double sumSq = 0;
        for (int i = 0; i < N; i++)
        {
            double x = p[2 * i], y = p[2 * i + 1];
            int best = Enumerable.Range(0, 8).MinBy(k => Math.Pow(x - centres[k].X, 2) + Math.Pow(y - centres[k].Y, 2));
            double d2 = Math.Pow(x - centres[best].X, 2) + Math.Pow(y - centres[best].Y, 2);
            Assert.True(Math.Sqrt(d2) < 6 * sigma, $"Point ({x}, {y}) is {Math.Sqrt(d2):F3} from the nearest centre."); // P(r > 6σ) = e^−18 per point
            counts[best]++;
            sumSq += d2;
        }
        // Each centre holds 1/8 of the points (binomial sd ≈ 30 of 1000).
        Assert.All(counts, c => Assert.InRange(c, 850, 1150));
        // E|x − c|² = 2σ² for a 2-D isotropic Gaussian.
        Assert.InRange(sumSq / N / (2 * sigma * sigma), 0.93, 1.07);
    }

    [Fact]
    public void CheckerboardPointsLieInTheBlackSquares()
    {
        var p = Points("toy:checkerboard");
        var counts = new Dictionary<(int, int), int>();
        for (int i = 0; i < N; i++)
        {
            double x = p[2 * i], y = p[2 * i + 1];
            Assert.InRange(x, -1.0, 1.0);
            Assert.InRange(y, -1.0, 1.0);
            int cx = (int)Math.Floor(2 * x), cy = (int)Math.Floor(2 * y);
            Assert.True((cx + cy) % 2 == 0, $"Point ({x}, {y}) lies in the white square ({cx}, {cy}).");
            counts[(cx, cy)] = counts.GetValueOrDefault((cx, cy)) + 1;
        }
        // All 8 black squares of the 4x4 board, each with about 1/8 of the points.
        Assert.Equal(8, counts.Count);
        Assert.All(counts.Values, c => Assert.InRange(c, 850, 1150));
    }

    [Fact]
    public void MoonsLieNearTwoHalfCircles()
    {
        var p = Points("toy:moons");
        int outer = 0;
        const double sigma = 0.1; // in scikit-learn's units
        for (int i = 0; i < N; i++)
        {
            // Back to scikit-learn's coordinates: q = (4p + (1, 0.2)) / 2.
            double qx = (4 * p[2 * i] + 1) / 2, qy = (4 * p[2 * i + 1] + 0.2) / 2;
            double toOuter = Math.Abs(Math.Sqrt(qx * qx + qy * qy) - 1);                           // unit circle, upper half
            double toInner = Math.Abs(Math.Sqrt((qx - 1) * (qx - 1) + (qy - 0.5) * (qy - 0.5)) - 1); // centred (1, 0.5), lower half
            double nearest = Math.Min(qy > -5 * sigma ? toOuter : double.PositiveInfinity, qy < 0.5 + 5 * sigma ? toInner : double.PositiveInfinity);
            Assert.True(nearest < 5 * sigma, $"Point ({qx}, {qy}) is {nearest:F3} from both moons.");
            if (toOuter < toInner) outer++;
        }
        Assert.InRange(outer, N / 2 - 300, N / 2 + 300);
    }

    [Fact]
    public void SwissRollFollowsTheSpiral()
    {
        var p = Points("toy:swissroll", 2000);
        var spiral = Enumerable.Range(0, 3000).Select(k =>
        {
            double t = 1.5 * Math.PI * (1 + 2 * k / 2999.0);
            return (X: t * Math.Cos(t), Y: t * Math.Sin(t));
        }).ToArray();
        double sumSq = 0;
        for (int i = 0; i < 2000; i++)
        {
            // Back to scikit-learn's units (noise σ = 1): q = 20p.
            double qx = 20 * p[2 * i], qy = 20 * p[2 * i + 1];
            double d2 = spiral.Min(s => (qx - s.X) * (qx - s.X) + (qy - s.Y) * (qy - s.Y));
            Assert.True(Math.Sqrt(d2) < 5, $"Point ({qx}, {qy}) is {Math.Sqrt(d2):F2} from the spiral.");
            sumSq += d2;
        }
        // The distance to the curve is at most the noise: mean squared distance below E|noise|² = 2.
        Assert.True(sumSq / 2000 < 2.0, $"Mean squared distance {sumSq / 2000:F2}.");
    }
}
