using Ddpm.Models;
using Ddpm.Tests.Support;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>The pieces of a training step, each against a hand computation in float64.</summary>
public class TrainingInternalsTests
{
    [Theory]
    [InlineData(1e-8)]
    [InlineData(0.5)] // a large ε shows where it sits: added to √v̂ after the bias correction
    public void AdamTakesTheBiasCorrectedSteps(double epsilon)
    {
        // Loss Σ c_i p_i + ½ Σ p_i², so g = c + p changes between the two steps.
        using var scope = NewDisposeScope();
        double[] p0 = { 1.0, -2.0, 0.5 }, c = { 0.3, 4.0, -1.0 };
        const double lr = 0.1, beta1 = 0.9, beta2 = 0.99;
        var parameter = tensor(p0, dtype: ScalarType.Float64).requires_grad_(true);
        using var adam = new AdamOptimizer(new[] { ("p", parameter) }, lr, beta1, beta2, epsilon);
        var cTensor = tensor(c, dtype: ScalarType.Float64);
        for (int k = 0; k < 2; k++)
        {
            adam.ZeroGrad();
            ((cTensor * parameter).sum() + 0.5 * parameter.square().sum()).backward();
            adam.Step();
        }

        var p = (double[])p0.Clone();
        var m = new double[3];
        var v = new double[3];
        for (int k = 1; k <= 2; k++)
            for (int i = 0; i < 3; i++)
            {
                double g = c[i] + p[i];
                m[i] = beta1 * m[i] + (1 - beta1) * g;
                v[i] = beta2 * v[i] + (1 - beta2) * g * g;
                double mHat = m[i] / (1 - Math.Pow(beta1, k)), vHat = v[i] / (1 - Math.Pow(beta2, k));
                p[i] -= lr * mHat / (Math.Sqrt(vHat) + epsilon);
            }
        var actual = Numerics.ToArray(parameter.detach());
        for (int i = 0; i < 3; i++) Assert.Equal(p[i], actual[i], 12);
        Assert.Equal(2, adam.StepCount);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void EmaFollowsItsWarmUpDecay(bool warmup)
    {
        // decay 0.5 with warm-up: min(0.5, (1 + k)/(10 + k)) is 0.1, 0.18, ... until k = 8, then 0.5.
        using var scope = NewDisposeScope();
        var parameter = tensor(new[] { 2.0 }, dtype: ScalarType.Float64);
        using var ema = new ExponentialMovingAverage(new[] { ("w", parameter) }, 0.5, warmup);
        double shadow = 2.0;
        for (int k = 0; k < 12; k++)
        {
            double value = Math.Sin(k) * 3;
            parameter.copy_(tensor(new[] { value }, dtype: ScalarType.Float64));
            double d = warmup ? Math.Min(0.5, (1.0 + k) / (10.0 + k)) : 0.5;
            Assert.Equal(d, ema.CurrentDecay, 15);
            ema.Update();
            shadow = d * shadow + (1 - d) * value;
            Assert.Equal(shadow, ema.StateTensors()["w"].item<double>(), 12);
        }
    }

    [Fact]
    public void GradientClippingScalesTheGlobalNormToTheLimit()
    {
        // The trainer's clip: the global norm over every parameter's gradient, scaled by max/(norm + 1e-6) when above.
        using var scope = NewDisposeScope();
        var a = new TorchSharp.Modules.Parameter(tensor(new[] { 1.0, 2.0 }, dtype: ScalarType.Float64));
        var b = new TorchSharp.Modules.Parameter(tensor(new[] { -1.0 }, dtype: ScalarType.Float64));
        ((3 * a).sum() + (4 * b).sum()).backward(); // grads (3, 3) and (4): global norm √34
        double norm = nn.utils.clip_grad_norm_(new[] { a, b }, 1.0);
        Assert.Equal(Math.Sqrt(34), norm, 12);
        double scale = 1.0 / (Math.Sqrt(34) + 1e-6);
        Assert.Equal(3 * scale, a.grad!.data<double>()[0], 12);
        Assert.Equal(4 * scale, b.grad!.data<double>()[0], 12);
        // Below the limit nothing changes.
        a.grad.zero_(); b.grad.zero_();
        ((0.1 * a).sum()).backward();
        Assert.Equal(Math.Sqrt(0.02), nn.utils.clip_grad_norm_(new[] { a, b }, 1.0), 12);
        Assert.Equal(0.1, a.grad.data<double>()[1], 15);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(7)]
    public void TimestepEmbeddingIsTheSinusoidOfThePaper(int dim)
    {
        // emb[i] = sin(t·10000^(−i/(h−1))), emb[h + i] = cos(...), h = ⌊dim/2⌋; an odd dim ends in a zero column.
        using var scope = NewDisposeScope();
        long[] t = { 0, 1, 17, 999 };
        var actual = Numerics.ToArray(TimestepEmbedding.Sinusoidal(tensor(t), dim, ScalarType.Float64));
        int h = dim / 2;
        for (int row = 0; row < t.Length; row++)
        {
            for (int i = 0; i < h; i++)
            {
                double angle = t[row] * Math.Pow(10000.0, -(double)i / (h - 1));
                Assert.Equal(Math.Sin(angle), actual[row * dim + i], 12);
                Assert.Equal(Math.Cos(angle), actual[row * dim + h + i], 12);
            }
            if (dim % 2 == 1) Assert.Equal(0.0, actual[row * dim + dim - 1]);
        }
    }

    [Fact]
    public void LossAwareSamplerDrawsInProportionToTheRmsLossAndWeightsBy1OverTp()
    {
        const int T = 5;
        var sampler = new TimestepSampler(T, TimestepSampling.LossAware);
        // Until every t has 10 losses the distribution is uniform.
        for (int k = 0; k < TimestepSampler.HistoryPerTimestep - 1; k++)
            sampler.Update(Enumerable.Range(0, T).Select(t => (long)t).ToArray(), Enumerable.Range(0, T).Select(t => 1f + t).ToArray());
        Assert.All(sampler.Probabilities(), p => Assert.Equal(1.0 / T, p, 15));
        // Fill the last slots: t keeps ten losses 1 + t; then t = 4 gets 12 more, alternately 10 and 2, which slide out
        // the old ones: its history is the last ten, five of each, root mean square √52 (its mean, 6, would differ).
        sampler.Update(Enumerable.Range(0, T).Select(t => (long)t).ToArray(), Enumerable.Range(0, T).Select(t => 1f + t).ToArray());
        for (int k = 0; k < 12; k++) sampler.Update(new long[] { 4 }, new[] { k % 2 == 0 ? 10f : 2f });
        double[] rms = { 1, 2, 3, 4, Math.Sqrt(52) };
        var expected = rms.Select(r => r / rms.Sum() * (1 - 0.001) + 0.001 / T).ToArray();
        var p = sampler.Probabilities();
        for (int t = 0; t < T; t++) Assert.Equal(expected[t], p[t], 12);

        // Draws follow p (binomial 5 s.e. at n = 20,000) and each carries the weight 1/(T p_t), so E_p[w L] = mean L.
        using var scope = NewDisposeScope();
        var (timesteps, weights) = sampler.Sample(20_000, new Generator(3));
        var ts = timesteps.data<long>().ToArray();
        var ws = weights.data<float>().ToArray();
        for (int t = 0; t < T; t++)
        {
            double frequency = ts.Count(x => x == t) / 20_000.0, se = Math.Sqrt(expected[t] * (1 - expected[t]) / 20_000);
            Assert.InRange(frequency, expected[t] - 5 * se, expected[t] + 5 * se);
        }
        for (int i = 0; i < ts.Length; i++) Assert.Equal(1.0 / (T * expected[ts[i]]), ws[i], 4);
    }
}
