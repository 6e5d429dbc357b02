using Ddpm.Diffusion;
using Ddpm.Schedules;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

public class ForwardAndPosteriorTests
{
    private static GaussianDiffusion PaperDiffusion() => new(new DiffusionConfig(new ScheduleConfig()));

    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(300)]
    [InlineData(1000)]
    public void IteratingSingleStepsMatchesTheClosedFormMarginal(int steps)
    {
        // x_t from t single steps q(x_s|x_{s−1}) must be N(√ᾱ_t x0, (1 − ᾱ_t) I) (Eq. 4). Monte Carlo with N = 20000
        // draws per coordinate; mean tolerance 5 standard errors, variance tolerance 5 standard errors of s².
        using var scope = NewDisposeScope();
        using var diffusion = PaperDiffusion();
        var gen = new Generator(1234);
        const int n = 20000;
        var x0Row = tensor(new[] { -0.9, -0.2, 0.4, 1.0 }, dtype: ScalarType.Float64);
        var x = x0Row.unsqueeze(0).expand(n, 4).clone();
        for (int s = 0; s < steps; s++)
        {
            using var inner = NewDisposeScope();
            var t = full(new long[] { n }, s, dtype: ScalarType.Int64);
            var next = diffusion.QStep(x, t, randn(x.shape, dtype: ScalarType.Float64, generator: gen));
            x.copy_(next);
        }
        double abar = diffusion.Schedule.AlphasCumprod[steps - 1];
        var mean = Numerics.ToArray(x.mean(new long[] { 0 }));
        var variance = Numerics.ToArray(x.var(0));
        var x0 = Numerics.ToArray(x0Row);
        double v = 1 - abar;
        for (int j = 0; j < 4; j++)
        {
            Assert.InRange(mean[j], Math.Sqrt(abar) * x0[j] - 5 * Math.Sqrt(v / n), Math.Sqrt(abar) * x0[j] + 5 * Math.Sqrt(v / n));
            Assert.InRange(variance[j], v - 5 * v * Math.Sqrt(2.0 / n), v + 5 * v * Math.Sqrt(2.0 / n));
        }

        // The closed form used for training draws from the same distribution.
        var tAll = full(new long[] { n }, steps - 1, dtype: ScalarType.Int64);
        var direct = diffusion.QSample(x0Row.unsqueeze(0).expand(n, 4), tAll, randn(n, 4, dtype: ScalarType.Float64, generator: gen));
        var q = diffusion.QMeanVariance(x0Row.unsqueeze(0), tAll.narrow(0, 0, 1));
        var directMean = Numerics.ToArray(direct.mean(new long[] { 0 }));
        var qMean = Numerics.ToArray(q.Mean);
        for (int j = 0; j < 4; j++)
            Assert.InRange(directMean[j], qMean[j] - 5 * Math.Sqrt(v / n), qMean[j] + 5 * Math.Sqrt(v / n));
        Assert.Equal(v, Numerics.ToArray(q.Variance)[0], 12);
    }

    [Theory]
    [InlineData(1, 0.3, -0.5)]
    [InlineData(9, -0.8, 0.2)]
    [InlineData(499, 0.5, 1.7)]
    [InlineData(999, 1.0, -2.0)]
    public void PosteriorMatchesBayesRuleByNumericalIntegration(int t, double x0, double xt)
    {
        // q(x_{t−1}|x_t, x_0) ∝ q(x_t|x_{t−1}) q(x_{t−1}|x_0), normalised on a grid; its mean and variance
        // must equal μ̃_t and β̃_t of Eq. 7.
        using var scope = NewDisposeScope();
        using var diffusion = PaperDiffusion();
        var s = diffusion.Schedule;
        double alpha = s.Alphas[t], beta = s.Betas[t], abarPrev = s.AlphasCumprodPrev[t];
        double LogJoint(double y) =>
            -0.5 * Math.Pow(xt - Math.Sqrt(alpha) * y, 2) / beta - 0.5 * Math.Pow(y - Math.Sqrt(abarPrev) * x0, 2) / (1 - abarPrev);
        // Centre the grid on the mode (found by a coarse scan) so the integrand is well resolved.
        double centre = Math.Sqrt(abarPrev) * x0, best = double.NegativeInfinity;
        for (double y = -6; y <= 6; y += 1e-4) { double l = LogJoint(y); if (l > best) { best = l; centre = y; } }
        double width = 12 * Math.Sqrt(beta);
        double Z = Numerics.Simpson(y => Math.Exp(LogJoint(y) - best), centre - width, centre + width);
        double m = Numerics.Simpson(y => y * Math.Exp(LogJoint(y) - best), centre - width, centre + width) / Z;
        double v = Numerics.Simpson(y => (y - m) * (y - m) * Math.Exp(LogJoint(y) - best), centre - width, centre + width) / Z;

        var tt = tensor(new long[] { t });
        var posterior = diffusion.QPosteriorMeanVariance(tensor(new[] { x0 }).reshape(1, 1), tensor(new[] { xt }).reshape(1, 1), tt);
        Assert.Equal(m, Numerics.ToArray(posterior.Mean)[0], 8);
        Assert.Equal(v, Numerics.ToArray(posterior.Variance)[0], 1e-8 * Math.Max(1, v));
        Assert.Equal(v, Math.Exp(Numerics.ToArray(posterior.LogVariance)[0]), 1e-8);
    }

    [Fact]
    public void PosteriorAtTheFirstStepIsThePointX0()
    {
        using var scope = NewDisposeScope();
        using var diffusion = PaperDiffusion();
        var p = diffusion.QPosteriorMeanVariance(tensor(new[] { 0.25 }).reshape(1, 1), tensor(new[] { 0.7 }).reshape(1, 1), tensor(new long[] { 0 }));
        Assert.Equal(0.25, Numerics.ToArray(p.Mean)[0], 12);
        Assert.Equal(0.0, Numerics.ToArray(p.Variance)[0]);
    }

    [Theory]
    [InlineData(0.0, 0.0, 0.0, 0.0)]
    [InlineData(0.3, -1.0, -0.2, 0.5)]
    [InlineData(-1.0, 1.2, 0.7, -2.0)]
    [InlineData(2.0, -3.0, -1.0, -3.5)]
    public void GaussianKlMatchesNumericalIntegration(double m1, double logV1, double m2, double logV2)
    {
        using var scope = NewDisposeScope();
        double s1 = Math.Exp(0.5 * logV1), s2 = Math.Exp(0.5 * logV2);
        double LogP(double x) => -0.5 * Math.Log(2 * Math.PI) - Math.Log(s1) - 0.5 * Math.Pow((x - m1) / s1, 2);
        double LogQ(double x) => -0.5 * Math.Log(2 * Math.PI) - Math.Log(s2) - 0.5 * Math.Pow((x - m2) / s2, 2);
        double expected = Numerics.Simpson(x => Math.Exp(LogP(x)) * (LogP(x) - LogQ(x)), m1 - 14 * s1, m1 + 14 * s1, 40000);
        var kl = GaussianMath.NormalKl(tensor(m1), tensor(logV1), tensor(m2), tensor(logV2)).item<double>();
        Assert.Equal(expected, kl, 1e-8 * Math.Max(1, expected));
    }

    [Theory]
    [InlineData(0.0, -2.0)]
    [InlineData(0.37, -4.0)]
    [InlineData(-0.95, -1.0)]
    [InlineData(0.999, -6.0)]
    public void DiscretizedDecoderIsADistributionOverThe256Levels(double mean, double logScale)
    {
        using var scope = NewDisposeScope();
        var levels = linspace(-1.0, 1.0, 256, dtype: ScalarType.Float64);
        var logp = GaussianMath.DiscretizedGaussianLogLikelihood(levels, full(256, mean, dtype: ScalarType.Float64), full(256, logScale, dtype: ScalarType.Float64));
        var p = Numerics.ToArray(logp.exp());
        Assert.Equal(1.0, p.Sum(), 1e-9);
        // An interior bin equals the Gaussian mass of [x − 1/255, x + 1/255], integrated numerically.
        double sigma = Math.Exp(logScale);
        int k = 130;
        double x = -1 + 2.0 * k / 255;
        double mass = Numerics.Simpson(y => Math.Exp(-0.5 * Math.Pow((y - mean) / sigma, 2)) / (sigma * Math.Sqrt(2 * Math.PI)), x - 1.0 / 255, x + 1.0 / 255, 2000);
        Assert.Equal(mass, p[k], 1e-9 + 1e-7 * mass);
        // The edge bins extend to ±∞.
        Assert.Equal(Numerics.NormalCdf((-1 + 1.0 / 255 - mean) / sigma), p[0], 1e-9);
        Assert.Equal(1 - Numerics.NormalCdf((1 - 1.0 / 255 - mean) / sigma), p[255], 1e-9);
    }
}
