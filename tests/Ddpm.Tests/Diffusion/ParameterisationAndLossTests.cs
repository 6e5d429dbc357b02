using Ddpm.Diffusion;
using Ddpm.Models;
using Ddpm.Schedules;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Diffusion;

public class ParameterisationAndLossTests
{
    private static DiffusionConfig Config(PredictionType p = PredictionType.Epsilon, VarianceType v = VarianceType.FixedSmall, LossType l = LossType.Simple) =>
        new(new ScheduleConfig(), p, v, l);

    [Fact]
    public void ConversionsBetweenEpsilonX0AndVAreExactInverses()
    {
        using var scope = NewDisposeScope();
        using var d = new GaussianDiffusion(Config());
        var gen = new Generator(7);
        var x0 = rand(new long[] { 64, 3, 4, 4 }, dtype: ScalarType.Float64, generator: gen) * 2 - 1;
        var eps = randn(x0.shape, dtype: ScalarType.Float64, generator: gen);
        var t = randint(0, 1000, new long[] { 64 }, generator: gen);
        var xt = d.QSample(x0, t, eps);
        Assert.True(Numerics.RelativeError(d.PredictX0FromEpsilon(xt, t, eps), x0) < 1e-9);
        Assert.True(Numerics.RelativeError(d.PredictEpsilonFromX0(xt, t, x0), eps) < 1e-9);
        var v = d.VTarget(x0, t, eps);
        Assert.True(Numerics.RelativeError(d.PredictX0FromV(xt, t, v), x0) < 1e-9);
        Assert.True(Numerics.RelativeError(d.PredictEpsilonFromV(xt, t, v), eps) < 1e-9);
    }

    [Theory]
    [InlineData(PredictionType.Epsilon)]
    [InlineData(PredictionType.X0)]
    [InlineData(PredictionType.V)]
    public void TheTrueTargetGivesThePosteriorMeanAndZeroSimpleLoss(PredictionType prediction)
    {
        using var scope = NewDisposeScope();
        using var d = new GaussianDiffusion(Config(prediction));
        var gen = new Generator(8);
        var x0 = rand(new long[] { 32, 2 }, dtype: ScalarType.Float64, generator: gen) * 2 - 1;
        var eps = randn(x0.shape, dtype: ScalarType.Float64, generator: gen);
        var t = randint(1, 1000, new long[] { 32 }, generator: gen);
        var xt = d.QSample(x0, t, eps);
        var target = d.Target(x0, t, eps);
        var p = d.PMeanVariance(target, xt, t, clipDenoised: false);
        Assert.True(Numerics.RelativeError(p.Mean, d.QPosteriorMeanVariance(x0, xt, t).Mean) < 1e-9);
        Assert.True(Numerics.RelativeError(p.PredictedX0, x0) < 1e-9);

        Denoiser perfect = (sample, timesteps) => d.Target(x0, timesteps, eps);
        var losses = d.TrainingLosses(perfect, x0, t, eps);
        Assert.True(Numerics.MaxAbs(losses.Loss) < 1e-20);
        // A zero output costs the mean squared target.
        Denoiser zero = (sample, timesteps) => zeros_like(sample);
        var zeroLoss = d.TrainingLosses(zero, x0, t, eps).Loss;
        Assert.True(Numerics.RelativeError(zeroLoss, target.square().mean(new long[] { 1 })) < 1e-12);
    }

    [Fact]
    public void ReverseVariancesFollowTheirDefinitions()
    {
        using var scope = NewDisposeScope();
        var s = new ScheduleConfig().Build();
        var t = tensor(new long[] { 0, 1, 10, 999 });
        var xt = zeros(4, 1, dtype: ScalarType.Float64);
        double[] Log(VarianceType type, Tensor output)
        {
            using var d = new GaussianDiffusion(Config(v: type, l: type is VarianceType.Learned or VarianceType.LearnedRange ? LossType.Hybrid : LossType.Simple));
            return Numerics.ToArray(d.PMeanVariance(output, xt, t, false).LogVariance);
        }
        int[] idx = { 0, 1, 10, 999 };
        var small = Log(VarianceType.FixedSmall, zeros(4, 1, dtype: ScalarType.Float64));
        var large = Log(VarianceType.FixedLarge, zeros(4, 1, dtype: ScalarType.Float64));
        for (int i = 0; i < 4; i++)
        {
            int k = idx[i];
            Assert.Equal(Math.Log(k == 0 ? s.PosteriorVariance[1] : s.PosteriorVariance[k]), small[i], 12);
            Assert.Equal(Math.Log(k == 0 ? s.PosteriorVariance[1] : s.Betas[k]), large[i], 12);
        }
        // Learned-range: v = 1 gives log β_t, v = −1 gives the clipped log β̃_t, v = 0 their midpoint (Eq. 15).
        var upper = Log(VarianceType.LearnedRange, cat(new[] { zeros(4, 1, dtype: ScalarType.Float64), ones(4, 1, dtype: ScalarType.Float64) }, 1));
        var lower = Log(VarianceType.LearnedRange, cat(new[] { zeros(4, 1, dtype: ScalarType.Float64), -ones(4, 1, dtype: ScalarType.Float64) }, 1));
        var middle = Log(VarianceType.LearnedRange, zeros(4, 2, dtype: ScalarType.Float64));
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(Math.Log(s.Betas[idx[i]]), upper[i], 12);
            Assert.Equal(s.PosteriorLogVarianceClipped[idx[i]], lower[i], 12);
            Assert.Equal(0.5 * (upper[i] + lower[i]), middle[i], 12);
        }
        var learned = Log(VarianceType.Learned, cat(new[] { zeros(4, 1, dtype: ScalarType.Float64), full(4, 1, -3.5, dtype: ScalarType.Float64) }, 1));
        Assert.All(learned, l => Assert.Equal(-3.5, l, 12));
    }

    [Fact]
    public void HybridLossStopsTheMeanGradientInTheBoundAndWeightsItByLambdaT()
    {
        using var scope = NewDisposeScope();
        using var d = new GaussianDiffusion(Config(v: VarianceType.LearnedRange, l: LossType.Hybrid));
        var gen = new Generator(9);
        var x0 = rand(new long[] { 16, 2 }, dtype: ScalarType.Float64, generator: gen) * 2 - 1;
        var eps = randn(x0.shape, dtype: ScalarType.Float64, generator: gen);
        var t = randint(0, 1000, new long[] { 16 }, generator: gen);
        var meanOut = randn(new long[] { 16, 2 }, dtype: ScalarType.Float64, generator: gen).requires_grad_();
        var varOut = (rand(new long[] { 16, 2 }, dtype: ScalarType.Float64, generator: gen) * 2 - 1).requires_grad_();
        Denoiser model = (sample, timesteps) => cat(new[] { meanOut, varOut }, 1);
        var terms = d.TrainingLosses(model, x0, t, eps);
        Assert.NotNull(terms.Mse);
        Assert.NotNull(terms.Vb);
        Assert.True(Numerics.RelativeError(terms.Loss, terms.Mse! + 0.001 * 1000 * terms.Vb!) < 1e-12);
        // The gradient reaching the mean output is the gradient of the MSE alone.
        terms.Loss.sum().backward();
        var expectedMeanGrad = 2.0 * (meanOut.detach() - eps) / 2.0;
        Assert.True(Numerics.RelativeError(meanOut.grad!, expectedMeanGrad) < 1e-12);
        Assert.True(Numerics.MaxAbs(varOut.grad!) > 0);
    }

    [Fact]
    public void InconsistentLossAndVarianceChoicesAreRejected()
    {
        var e1 = Assert.Throws<ArgumentException>(() => new GaussianDiffusion(Config(v: VarianceType.Learned, l: LossType.Simple)));
        Assert.Contains("Hybrid", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => new GaussianDiffusion(Config(v: VarianceType.FixedLarge, l: LossType.Hybrid)));
        Assert.Contains("Learned", e2.Message);
    }

    [Fact]
    public void MismatchedShapesAreRejected()
    {
        using var scope = NewDisposeScope();
        using var d = new GaussianDiffusion(Config());
        var x0 = zeros(4, 2);
        var e1 = Assert.Throws<ArgumentException>(() => d.QSample(x0, zeros(4, dtype: ScalarType.Int64), zeros(4, 3)));
        Assert.Equal("noise", e1.ParamName);
        var e2 = Assert.Throws<ArgumentException>(() => d.QSample(x0, zeros(3, dtype: ScalarType.Int64), zeros(4, 2)));
        Assert.Contains("[B]", e2.Message);
        var e3 = Assert.Throws<ArgumentException>(() => d.QSample(x0, full(4, 1000L, dtype: ScalarType.Int64), zeros(4, 2)));
        Assert.Contains("[0, 999]", e3.Message);
        var e4 = Assert.Throws<ArgumentException>(() => d.PMeanVariance(zeros(4, 3), x0, zeros(4, dtype: ScalarType.Int64)));
        Assert.Contains("shape", e4.Message);
    }

    [Theory]
    [InlineData(PredictionType.Epsilon, VarianceType.FixedLarge, LossType.Simple)]
    [InlineData(PredictionType.V, VarianceType.LearnedRange, LossType.Hybrid)]
    [InlineData(PredictionType.X0, VarianceType.Learned, LossType.Kl)]
    [InlineData(PredictionType.Epsilon, VarianceType.FixedSmall, LossType.Kl)]
    public void Float32LossGradientsMatchAFloat64Copy(PredictionType prediction, VarianceType variance, LossType loss)
    {
        // The whole loss, network included, in float32 against the same network in float64: every parameter
        // gradient within 1e-4 relative error.
        using var scope = NewDisposeScope();
        manual_seed(11);
        var config = new DiffusionConfig(new ScheduleConfig(), prediction, variance, loss);
        using var d = new GaussianDiffusion(config);
        var net32 = new ToyMlp(new ToyMlpConfig(Hidden: 32, Layers: 2, LearnVariance: config.LearnsVariance));
        var net64 = new ToyMlp(new ToyMlpConfig(Hidden: 32, Layers: 2, LearnVariance: config.LearnsVariance));
        net64.to(ScalarType.Float64);
        using (no_grad())
        {
            var src = net32.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in net64.named_parameters()) p.copy_(src[name].to_type(ScalarType.Float64));
        }
        var gen = new Generator(12);
        var x0 = (rand(new long[] { 64, 2 }, dtype: ScalarType.Float64, generator: gen) * 2 - 1);
        x0 = (x0 * 127.5).round() / 127.5; // on the 8-bit grid, as the decoder term expects
        var eps = randn(x0.shape, dtype: ScalarType.Float64, generator: gen);
        var t = cat(new[] { zeros(4, dtype: ScalarType.Int64), randint(0, 1000, new long[] { 60 }, generator: gen) });

        d.TrainingLosses(net64.AsDenoiser(), x0, t, eps).Loss.mean().backward();
        d.TrainingLosses(net32.AsDenoiser(), x0.to_type(ScalarType.Float32), t, eps.to_type(ScalarType.Float32)).Loss.mean().backward();
        var g64 = net64.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!);
        foreach (var (name, p) in net32.named_parameters())
        {
            double err = Numerics.RelativeError(p.grad!, g64[name]);
            Assert.True(err < 1e-4, $"{name}: relative gradient error {err:E2}");
        }
    }
}

public class LossScopeTests
{
    [Theory]
    [InlineData(LossType.Simple, VarianceType.FixedSmall)]
    [InlineData(LossType.Kl, VarianceType.FixedSmall)]
    [InlineData(LossType.Hybrid, VarianceType.LearnedRange)]
    public void LossTermsDieWithTheCallersScope(LossType loss, VarianceType variance)
    {
        // Loss and Mse (or Vb) can be one tensor; it must be moved out of TrainingLosses' scope exactly once, so the
        // caller's per-step scope frees it and the live-tensor count does not grow step by step.
        using var d = new GaussianDiffusion(new DiffusionConfig(new ScheduleConfig(Timesteps: 10), Variance: variance, Loss: loss));
        var x0 = zeros(4, 2).DetachFromDisposeScope();
        var noise = ones(4, 2).DetachFromDisposeScope();
        var t = tensor(new long[] { 0, 3, 5, 9 }).DetachFromDisposeScope();
        Denoiser model = (sample, timesteps) => variance == VarianceType.LearnedRange ? zeros(sample.shape[0], 4) : zeros_like(sample);
        LossTerms terms;
        using (var scope = NewDisposeScope())
        {
            terms = d.TrainingLosses(model, x0, t, noise);
            Assert.False(terms.Loss.IsInvalid);
        }
        // Every returned term died with the caller's scope (a second move would have pushed one past it).
        Assert.True(terms.Loss.IsInvalid, "Loss outlived the caller's scope");
        Assert.True(terms.Mse?.IsInvalid ?? true, "Mse outlived the caller's scope");
        Assert.True(terms.Vb?.IsInvalid ?? true, "Vb outlived the caller's scope");
    }
}
