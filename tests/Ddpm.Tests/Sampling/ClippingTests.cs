using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Schedules;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

/// <summary>
/// What the samplers do to x̂_0 of images: the clamp to [−1, 1] followed by ε̂ recomputed from the clamped x̂_0
/// (improved-diffusion's rule), and dynamic thresholding (Saharia et al. 2022, §2.3: s = max(1, the ratio-quantile of
/// |x̂_0| per sample), x̂_0 ← clamp(x̂_0, −s, s)/s, with torch.quantile's linear interpolation as diffusers uses it).
/// Every reference is computed here in float64 from plain arrays.
/// </summary>
public class ClippingTests
{
    private static readonly NoiseSchedule Schedule = NoiseSchedule.Linear();
    private static readonly DiffusionConfig Config = new(new ScheduleConfig());

    /// <summary>The q-quantile of <paramref name="values"/> by sorting, linearly interpolated at position q·(n − 1).</summary>
    private static double Quantile(double[] values, double q)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        double position = q * (sorted.Length - 1);
        int lower = (int)Math.Floor(position), upper = Math.Min(lower + 1, sorted.Length - 1);
        return sorted[lower] + (position - lower) * (sorted[upper] - sorted[lower]);
    }

    /// <summary>Dynamic thresholding of one sample's values.</summary>
    private static double[] Threshold(double[] x0, double ratio, double maxValue)
    {
        double s = Math.Clamp(Quantile(x0.Select(Math.Abs).ToArray(), ratio), 1.0, maxValue);
        return x0.Select(v => Math.Clamp(v, -s, s) / s).ToArray();
    }

    private static double[] Row(double[] all, int sample, int size) => all.Skip(sample * size).Take(size).ToArray();

    [Theory]
    [InlineData(0.995, 1.0)]
    [InlineData(0.9, 2.5)]
    [InlineData(0.37, 1.5)]
    public void DynamicThresholdIsTheQuantileOfEachSample(double ratio, double maxValue)
    {
        using var scope = NewDisposeScope();
        // Four samples of 2×5×7 values: three wide ones (|x̂_0| up to ~9, so s > 1) and one inside [−1, 1] (s clamps to 1,
        // the sample passes unchanged). 70 values: the quantile falls between order statistics for every ratio here.
        var scales = tensor(new[] { 3.0, 1.5, 0.3, 2.0 }, dtype: ScalarType.Float64).reshape(4, 1, 1, 1);
        var x0 = randn(new long[] { 4, 2, 5, 7 }, dtype: ScalarType.Float64, generator: new Generator(31)) * scales;
        var actual = Numerics.ToArray(GaussianMath.DynamicThreshold(x0, ratio, maxValue));
        var values = Numerics.ToArray(x0);
        for (int i = 0; i < 4; i++)
        {
            var expected = Threshold(Row(values, i, 70), ratio, maxValue);
            var got = Row(actual, i, 70);
            for (int k = 0; k < 70; k++) Assert.Equal(expected[k], got[k], 12);
        }
        // The small sample is untouched (s = 1 and every value is inside [−1, 1]).
        Assert.Equal(Row(values, 2, 70).Select(v => Math.Round(v, 12)), Row(actual, 2, 70).Select(v => Math.Round(v, 12)));
    }

    /// <summary>A sample and an ε-prediction whose x̂_0 = (x − b ε)/a reaches well beyond [−1, 1].</summary>
    private static (Tensor Sample, Tensor Output) WideInputs(int timestep)
    {
        double a = Math.Sqrt(Schedule.AlphasCumprod[timestep]), b = Math.Sqrt(1 - Schedule.AlphasCumprod[timestep]);
        var x0 = 2.5 * randn(new long[] { 3, 2, 4, 4 }, dtype: ScalarType.Float64, generator: new Generator(32));
        var epsilon = randn(new long[] { 3, 2, 4, 4 }, dtype: ScalarType.Float64, generator: new Generator(33));
        return (a * x0 + b * epsilon, epsilon);
    }

    [Fact]
    public void DdimClampsX0AndRecomputesEpsilonFromIt()
    {
        using var scope = NewDisposeScope();
        using var ddim = new DdimScheduler(Config, eta: 0.0, spacing: TimestepSpacing.Leading);
        ddim.SetTimesteps(10);
        const int t = 500, tPrev = 400; // leading spacing: 900, 800, ..., 0
        var (sample, output) = WideInputs(t);
        var step = ddim.Step(output, t, sample);

        double abar = Schedule.AlphasCumprod[t], abarPrev = Schedule.AlphasCumprod[tPrev];
        double a = Math.Sqrt(abar), b = Math.Sqrt(1 - abar);
        var x = Numerics.ToArray(sample);
        var eps = Numerics.ToArray(output);
        var prev = Numerics.ToArray(step.PrevSample);
        var predicted = Numerics.ToArray(step.PredictedX0);
        int outside = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double x0 = (x[i] - b * eps[i]) / a;
            if (Math.Abs(x0) > 1) outside++;
            double clamped = Math.Clamp(x0, -1, 1), epsilonFromClamped = (x[i] - a * clamped) / b;
            Assert.Equal(clamped, predicted[i], 12);
            Assert.Equal(Math.Sqrt(abarPrev) * clamped + Math.Sqrt(1 - abarPrev) * epsilonFromClamped, prev[i], 12);
        }
        Assert.True(outside > x.Length / 4, $"only {outside} of {x.Length} x̂_0 values were outside [−1, 1]: the test would not see the clamp");
    }

    [Fact]
    public void DdimThresholdsX0PerSampleAndRecomputesEpsilonFromIt()
    {
        using var scope = NewDisposeScope();
        using var ddim = new DdimScheduler(Config, eta: 0.0, spacing: TimestepSpacing.Leading, clipping: new X0Clipping(Thresholding: true, ThresholdingRatio: 0.9, ThresholdingMaxValue: 2.0));
        ddim.SetTimesteps(10);
        const int t = 300, tPrev = 200;
        var (sample, output) = WideInputs(t);
        var step = ddim.Step(output, t, sample);

        double abar = Schedule.AlphasCumprod[t], abarPrev = Schedule.AlphasCumprod[tPrev];
        double a = Math.Sqrt(abar), b = Math.Sqrt(1 - abar);
        var x = Numerics.ToArray(sample);
        var eps = Numerics.ToArray(output);
        var prev = Numerics.ToArray(step.PrevSample);
        const int size = 2 * 4 * 4;
        for (int n = 0; n < 3; n++)
        {
            var xs = Row(x, n, size);
            var x0 = Threshold(xs.Select((v, i) => (v - b * eps[n * size + i]) / a).ToArray(), 0.9, 2.0);
            for (int i = 0; i < size; i++)
                Assert.Equal(Math.Sqrt(abarPrev) * x0[i] + Math.Sqrt(1 - abarPrev) * (xs[i] - a * x0[i]) / b, prev[n * size + i], 12);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DdpmClampsOrThresholdsX0BeforeThePosteriorMean(bool thresholding)
    {
        using var scope = NewDisposeScope();
        var clipping = thresholding ? new X0Clipping(Thresholding: true, ThresholdingRatio: 0.9, ThresholdingMaxValue: 2.0) : new X0Clipping();
        using var ddpm = new DdpmScheduler(Config, TimestepSpacing.Linspace, clipping);
        ddpm.SetTimesteps(10); // round(linspace(0, 999, 10)): 0, 111, 222, 333, 444, 555, ...
        const int t = 555, tPrev = 444;
        var (sample, output) = WideInputs(t);
        var step = ddpm.Step(output, t, sample, new Generator(34));
        var z = Numerics.ToArray(randn(sample.shape, dtype: ScalarType.Float64, generator: new Generator(34)));

        // The respaced step (Ho et al. 2020 Eq. 7 with β' = 1 − ᾱ_t/ᾱ_{t'}) and fixed-small noise √β̃' z.
        double abar = Schedule.AlphasCumprod[t], abarPrev = Schedule.AlphasCumprod[tPrev];
        double beta = 1 - abar / abarPrev, a = Math.Sqrt(abar), b = Math.Sqrt(1 - abar);
        double c1 = Math.Sqrt(abarPrev) * beta / (1 - abar), c2 = Math.Sqrt(1 - beta) * (1 - abarPrev) / (1 - abar);
        double sigma = Math.Sqrt((1 - abarPrev) / (1 - abar) * beta);
        var x = Numerics.ToArray(sample);
        var eps = Numerics.ToArray(output);
        var prev = Numerics.ToArray(step.PrevSample);
        const int size = 2 * 4 * 4;
        for (int n = 0; n < 3; n++)
        {
            var x0 = Enumerable.Range(0, size).Select(i => (x[n * size + i] - b * eps[n * size + i]) / a).ToArray();
            x0 = thresholding ? Threshold(x0, 0.9, 2.0) : x0.Select(v => Math.Clamp(v, -1, 1)).ToArray();
            for (int i = 0; i < size; i++)
                Assert.Equal(c1 * x0[i] + c2 * x[n * size + i] + sigma * z[n * size + i], prev[n * size + i], 10);
        }
    }
}
