using Ddpm.Schedules;

namespace Ddpm.Tests.Schedules;

public class NoiseScheduleTests
{
    [Fact]
    public void LinearScheduleMatchesThePaper()
    {
        var s = NoiseSchedule.Linear();
        Assert.Equal(1000, s.Timesteps);
        Assert.Equal(1e-4, s.Betas[0], 15);
        Assert.Equal(0.02, s.Betas[999], 15);
        Assert.Equal(1e-4 + (0.02 - 1e-4) * 500 / 999, s.Betas[500], 15);
        // ᾱ_T computed independently as exp(Σ log(1 − β)).
        double logAbar = 0;
        for (int i = 0; i < 1000; i++) logAbar += Math.Log(1 - (1e-4 + (0.02 - 1e-4) * i / 999));
        Assert.Equal(Math.Exp(logAbar), s.AlphasCumprod[999], 12);
        Assert.InRange(s.AlphasCumprod[999], 4.0e-5, 4.1e-5);
    }

    [Fact]
    public void CosineScheduleFollowsItsAlphaBarUntilClipping()
    {
        const double offset = 0.008;
        var s = NoiseSchedule.Cosine(1000, offset);
        double F(double u) => Math.Pow(Math.Cos((u + offset) / (1 + offset) * Math.PI / 2), 2);
        for (int i = 0; i < 990; i++)
            Assert.Equal(F((i + 1) / 1000.0) / F(0), s.AlphasCumprod[i], 9);
        Assert.All(s.Betas, b => Assert.InRange(b, 0, 0.999));
        Assert.Equal(0.999, s.Betas[999], 12); // the last step is clipped
    }

    [Fact]
    public void SigmoidScheduleDecreasesFromOneToNearZero()
    {
        var s = NoiseSchedule.Sigmoid(1000);
        for (int i = 1; i < 1000; i++) Assert.True(s.AlphasCumprod[i] < s.AlphasCumprod[i - 1]);
        Assert.InRange(s.AlphasCumprod[0], 0.999, 1.0);
        Assert.InRange(s.AlphasCumprod[999], 0, 1e-3);
    }

    [Fact]
    public void DerivedCoefficientsMatchTheirDefinitions()
    {
        var s = NoiseSchedule.Linear(50, 1e-3, 0.2);
        for (int i = 0; i < 50; i++)
        {
            double prev = i == 0 ? 1.0 : s.AlphasCumprod[i - 1];
            Assert.Equal(prev, s.AlphasCumprodPrev[i], 15);
            Assert.Equal(s.Betas[i] * (1 - prev) / (1 - s.AlphasCumprod[i]), s.PosteriorVariance[i], 15);
            Assert.Equal(Math.Sqrt(prev) * s.Betas[i] / (1 - s.AlphasCumprod[i]), s.PosteriorMeanCoefX0[i], 15);
            Assert.Equal(Math.Sqrt(s.Alphas[i]) * (1 - prev) / (1 - s.AlphasCumprod[i]), s.PosteriorMeanCoefXt[i], 15);
        }
        Assert.Equal(0.0, s.PosteriorVariance[0]);
        Assert.Equal(Math.Log(s.PosteriorVariance[1]), s.PosteriorLogVarianceClipped[0], 15);
    }

    [Fact]
    public void RespacingKeepsTheChosenAlphaBars()
    {
        var s = NoiseSchedule.Linear();
        int[] kept = { 0, 99, 250, 500, 999 };
        var r = s.Respace(kept);
        for (int i = 0; i < kept.Length; i++) Assert.Equal(s.AlphasCumprod[kept[i]], r.AlphasCumprod[i], 14);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(-0.1)]
    [InlineData(double.NaN)]
    public void BetasOutsideTheOpenUnitIntervalAreRejected(double beta)
    {
        var e = Assert.Throws<ArgumentException>(() => new NoiseSchedule(new[] { 0.01, beta }));
        Assert.Equal("betas", e.ParamName);
        Assert.Contains("(0, 1)", e.Message);
        var e2 = Assert.Throws<ArgumentException>(() => NoiseSchedule.Linear(10, beta, 0.02));
        Assert.Contains("(0, 1)", e2.Message);
    }

    [Fact]
    public void FewerThanOneTimestepIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => NoiseSchedule.Linear(0));
        Assert.Contains(">= 1", e.Message);
        Assert.Throws<ArgumentException>(() => new NoiseSchedule(Array.Empty<double>()));
        Assert.Throws<ArgumentException>(() => new ScheduleConfig(Timesteps: 0).Build());
    }
}
