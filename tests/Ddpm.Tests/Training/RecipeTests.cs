using Ddpm.Diffusion;
using Ddpm.Schedules;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

/// <summary>The training recipe's options against closed forms: min-SNR-γ weighting, the power EMA, learning-rate decay.</summary>
public sealed class RecipeTests
{
    /// <summary>
    /// Min-SNR-γ is one loss, min(SNR_t, γ)·‖x_0 − x̂_0‖² (mean over pixels), however the network is parameterised. A model
    /// whose x̂_0 misses x_0 by a fixed δ is written as an ε-, an x_0- and a v-predictor; all three weighted losses must equal
    /// that closed form, computed in float64 from the schedule, at every timestep.
    /// </summary>
    [Theory]
    [InlineData(ScheduleKind.Linear, 5.0)]
    [InlineData(ScheduleKind.Cosine, 5.0)]
    [InlineData(ScheduleKind.Cosine, 1.0)]
    public void MinSnrLossIsTheSameForEveryParameterisation(ScheduleKind kind, double gamma)
    {
        using var scope = NewDisposeScope();
        var schedule = new ScheduleConfig(kind, Timesteps: 1000);
        var built = schedule.Build();
        var gen = new Generator(5);
        long[] steps = { 0, 1, 10, 100, 400, 700, 999 };
        int b = steps.Length;
        var x0 = (rand(new long[] { b, 1, 4, 4 }, generator: gen, dtype: ScalarType.Float64) * 2 - 1);
        var noise = randn(x0.shape, generator: gen, dtype: ScalarType.Float64);
        var delta = randn(x0.shape, generator: gen, dtype: ScalarType.Float64) * 0.1;
        var t = tensor(steps);
        var expected = steps.Select((s, i) =>
        {
            double abar = built.AlphasCumprod[s], snr = abar / (1 - abar);
            return Math.Min(snr, gamma) * delta[i].square().mean().item<double>();
        }).ToArray();

        foreach (var prediction in Enum.GetValues<PredictionType>())
        {
            var config = new DiffusionConfig(schedule, prediction, Weighting: LossWeighting.MinSnr, MinSnrGamma: gamma);
            using var diffusion = new GaussianDiffusion(config);
            // The network's output for x̂_0 = x_0 + δ in this parameterisation.
            Denoiser model = (xt, tt) =>
            {
                var x0Hat = x0 + delta;
                var epsHat = diffusion.PredictEpsilonFromX0(xt, tt, x0Hat);
                return prediction switch
                {
                    PredictionType.Epsilon => epsHat,
                    PredictionType.X0 => x0Hat,
                    _ => diffusion.VTarget(x0Hat, tt, epsHat),
                };
            };
            var loss = diffusion.TrainingLosses(model, x0, t, noise).Loss;
            for (int i = 0; i < b; i++)
            {
                double actual = loss[i].item<double>();
                Assert.True(Math.Abs(actual - expected[i]) <= 1e-9 + 1e-6 * expected[i],
                    $"{prediction}, t = {steps[i]}: weighted loss {actual:E6}, min(SNR, γ)·‖δ‖² = {expected[i]:E6}");
            }
        }
    }

    [Fact]
    public void UniformWeightingIsLSimpleAndTheReportedMseStaysUnweighted()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(6);
        var x0 = rand(new long[] { 8, 1, 4, 4 }, generator: gen) * 2 - 1;
        var noise = randn(x0.shape, generator: gen);
        var t = randint(0, 1000, new long[] { 8 }, generator: gen);
        Denoiser zero = (xt, tt) => zeros_like(xt);
        using var uniform = new GaussianDiffusion(new DiffusionConfig());
        using var minSnr = new GaussianDiffusion(new DiffusionConfig(new ScheduleConfig(), Weighting: LossWeighting.MinSnr));
        var u = uniform.TrainingLosses(zero, x0, t, noise);
        var m = minSnr.TrainingLosses(zero, x0, t, noise);
        // ε-prediction with a zero output: L_simple is the mean of ε².
        Assert.True(u.Loss.allclose(noise.square().mean(new long[] { 1, 2, 3 }), 1e-6, 1e-7));
        Assert.True(m.Mse!.allclose(u.Mse!), "the reported MSE must not carry the weight");
        var weights = t.data<long>().Select(s => minSnr.MseWeights[s]).ToArray();
        for (int i = 0; i < 8; i++)
            Assert.Equal(u.Loss[i].item<float>() * weights[i], m.Loss[i].item<float>(), 5);
        Assert.All(uniform.MseWeights, w => Assert.Equal(1.0, w));
        // For ε-prediction the weight is min(SNR, γ)/SNR: 1 where SNR ≤ γ (noisy t), γ/SNR below 1 at the clean end.
        Assert.Equal(1.0, minSnr.MseWeights[999]);
        Assert.True(minSnr.MseWeights[0] < 1e-3);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.PositiveInfinity)]
    public void MinSnrGammaMustBePositive(double gamma)
    {
        var e = Assert.Throws<ArgumentException>(() => new DiffusionConfig(new ScheduleConfig(), Weighting: LossWeighting.MinSnr, MinSnrGamma: gamma).Validate());
        Assert.Contains("γ", e.Message);
    }

    [Theory]
    [InlineData(0.05)]
    [InlineData(0.10)]
    [InlineData(0.2)]
    public void PowerEmaExponentInvertsTheRelativeWidth(double std)
    {
        double gamma = PowerEma.ExponentFromStd(std);
        Assert.True(gamma > 0);
        Assert.Equal(std, PowerEma.RelativeStd(gamma), 12);
        // The cubic of the definition has γ as its root.
        double s2 = 1 / (std * std);
        Assert.Equal(0.0, gamma * gamma * gamma + 7 * gamma * gamma + (16 - s2) * gamma + (12 - s2), 6);
    }

    [Fact]
    public void PowerEmaOfARampIsItsPowerWeightedMean()
    {
        // Parameter p_k = k for k = 1..K. With β_k = (1 − 1/k)^(γ+1) the product of the later decays telescopes: step k gets
        // the weight (k^(γ+1) − (k − 1)^(γ+1)) / K^(γ+1) ≈ (γ + 1) k^γ / K^(γ+1), so the average tends to K (γ + 1)/(γ + 2).
        // Checked against the exact sum, in float64, and against the limit.
        using var scope = NewDisposeScope();
        var p = zeros(new long[] { 1 }, dtype: ScalarType.Float64);
        var ema = new ExponentialMovingAverage(new[] { ("p", p) }, decay: 0.9999, warmup: false, EmaProfile.Power, relativeStd: 0.1);
        const int K = 3000;
        double weighted = 0, total = 0, g = ema.Exponent;
        for (int k = 1; k <= K; k++)
        {
            using (no_grad()) p.fill_((double)k);
            ema.Update();
            double w = Math.Pow(k, g + 1) - Math.Pow(k - 1, g + 1);
            weighted += k * w;
            total += w;
        }
        double average = ema.StateTensors()["p"].item<double>();
        Assert.Equal(K, Math.Pow(total, 1 / (g + 1)), 6);   // the weights sum to 1
        Assert.Equal(weighted / total, average, 6);
        Assert.Equal((g + 1) / (g + 2), average / K, 2);
        ema.Dispose();
    }

    [Fact]
    public void PowerEmaFirstUpdateCopiesTheWeights()
    {
        Assert.Equal(0.0, PowerEma.Decay(1, 6.94));
        Assert.Equal(Math.Pow(0.5, 7.94), PowerEma.Decay(2, 6.94), 15);
    }

    [Fact]
    public void LearningRateWarmsUpThenDecaysToZero()
    {
        var cosine = new TrainingConfig(Steps: 100, LearningRate: 1e-3, WarmupSteps: 10, LrDecay: LearningRateDecay.Cosine, LrDecaySteps: 40);
        Assert.Equal(1e-4, cosine.LearningRateAt(0), 12);          // warm-up: (0 + 1)/10
        Assert.Equal(1e-3, cosine.LearningRateAt(59), 12);         // last step before the decay
        Assert.Equal(1e-3 * 0.5 * (1 + Math.Cos(Math.PI / 40)), cosine.LearningRateAt(60), 12);
        Assert.Equal(1e-3 * 0.5, cosine.LearningRateAt(79), 12);   // halfway: progress 20/40
        Assert.Equal(0.0, cosine.LearningRateAt(99), 12);           // the last step
        var linear = cosine with { LrDecay = LearningRateDecay.Linear, LrDecaySteps = 0 };   // 0: all 90 steps after warm-up
        Assert.Equal(1e-3 * (1 - 1.0 / 90), linear.LearningRateAt(10), 12);
        Assert.Equal(1e-3 * 0.5, linear.LearningRateAt(54), 12);
        Assert.Equal(0.0, linear.LearningRateAt(99), 12);
        var none = cosine with { LrDecay = LearningRateDecay.None, LrDecaySteps = 0 };
        Assert.Equal(1e-3, none.LearningRateAt(99), 12);
    }

    [Fact]
    public void BadRecipeOptionsAreRefused()
    {
        var longer = Assert.Throws<ArgumentException>(() => new TrainingConfig(Steps: 100, LrDecay: LearningRateDecay.Cosine, LrDecaySteps: 101).Validate());
        Assert.Contains("longer than the run", longer.Message);
        Assert.Throws<ArgumentException>(() => new TrainingConfig(Steps: 100, LrDecaySteps: 10).Validate());
        Assert.Throws<ArgumentException>(() => new TrainingConfig(EmaProfile: EmaProfile.Power, EmaStd: 0.3).Validate());
        Assert.Throws<ArgumentException>(() => new TrainingConfig(EmaProfile: EmaProfile.Power, EmaStd: 0).Validate());
    }
}
