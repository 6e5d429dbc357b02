using Ddpm.Diffusion;
using Ddpm.Guidance;
using Ddpm.Oracles;
using Ddpm.Sampling;
using Ddpm.Schedules;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Guidance;

/// <summary>
/// Guidance with exact quantities: data on two labelled points, so the conditional and unconditional denoisers and the
/// classifier p(y | x_t) are all known in closed form. Bayes' rule then says what guided sampling must produce:
/// ∇log p(x_t | y) = ∇log p(x_t) + ∇log p(y | x_t), so classifier guidance with s = 1 on the unconditional model is the
/// conditional model, and every sample must land on the requested point.
/// </summary>
public class GuidanceTests
{
    private static readonly double[][] PointsByClass = { new[] { -0.6, 0.4 }, new[] { 0.5, -0.5 } };
    private static readonly DiffusionConfig Config = new(new ScheduleConfig());
    private const int NullClass = 2;

    private static GaussianMixtureOracle Unconditional() => GaussianMixtureOracle.Points(PointsByClass, new[] { 0.5, 0.5 });
    private static GaussianMixtureOracle ClassOnly(int k) => GaussianMixtureOracle.Points(new[] { PointsByClass[k] }, new[] { 1.0 });

    /// <summary>log p(y | x_t) for the two points: softmax over k of −‖x_t − √ᾱ p_k‖² / (2(1 − ᾱ)) (equal priors).</summary>
    private static ClassifierLogProbability ExactClassifier(NoiseSchedule schedule)
    {
        var abar = tensor(schedule.AlphasCumprod, dtype: ScalarType.Float64);
        var points = tensor(PointsByClass.SelectMany(p => p).ToArray(), new long[] { 2, 2 }, ScalarType.Float64);
        return (x, t, labels) =>
        {
            var a = abar.index_select(0, t).to_type(x.dtype).unsqueeze(1);                    // [B, 1]
            var diff = x.unsqueeze(1) - a.sqrt().unsqueeze(2) * points.to_type(x.dtype).unsqueeze(0); // [B, 2, d]
            var logits = -diff.square().sum(new long[] { 2 }) / (2 * (1 - a));                // [B, 2]
            return nn.functional.log_softmax(logits, 1).gather(1, labels.unsqueeze(1)).squeeze(1);
        };
    }

    /// <summary>A conditional oracle: per example, class 0, class 1 or (label 2) the unconditional mixture.</summary>
    private static ConditionalDenoiser ConditionalOracle(NoiseSchedule schedule, GaussianMixtureOracle[] byClass, GaussianMixtureOracle unconditional, Action? onCall = null) =>
        (x, t, labels) =>
        {
            onCall?.Invoke();
            var outputs = byClass.Select(o => o.Denoiser(schedule)(x, t)).Append(unconditional.Denoiser(schedule)(x, t)).ToArray();
            var result = outputs[^1];
            for (int k = 0; k < byClass.Length; k++) result = where((labels == k).unsqueeze(1), outputs[k], result);
            return result;
        };

    private static double FractionNear(Tensor samples, double[] point, double radius)
    {
        var p = tensor(point, dtype: samples.dtype);
        return ((samples - p).square().sum(new long[] { 1 }).sqrt() < radius).to_type(ScalarType.Float64).mean().item<double>();
    }

    [Fact]
    public void GuidanceScaleZeroIsTheConditionalModel_AndTheCombinationIsOneBatchedCall()
    {
        using var scope = NewDisposeScope();
        var schedule = Config.Schedule.Build();
        using var c0 = ClassOnly(0);
        using var c1 = ClassOnly(1);
        using var all = Unconditional();
        int calls = 0;
        var network = ConditionalOracle(schedule, new[] { c0, c1 }, all, () => calls++);
        var x = randn(new long[] { 16, 2 }, dtype: ScalarType.Float64, generator: new Generator(1));
        var t = full(new long[] { 16 }, 400L, dtype: ScalarType.Int64);
        var labels = tensor(Enumerable.Range(0, 16).Select(i => (long)(i % 2)).ToArray());
        var conditional = network(x, t, labels);
        Assert.Equal(0.0, Numerics.MaxAbs(ClassifierFreeGuidance.Create(network, labels, 0.0, NullClass, 2)(x, t) - conditional));
        calls = 0;
        var guided = ClassifierFreeGuidance.Create(network, labels, 2.5, NullClass, 2)(x, t);
        Assert.Equal(1, calls);
        var unconditional = network(x, t, full_like(labels, NullClass));
        Assert.True(Numerics.MaxAbs(guided - (3.5 * conditional - 2.5 * unconditional)) < 1e-12);
        // A learned-variance half is taken from the conditional output, not extrapolated.
        ConditionalDenoiser withVariance = (xx, tt, yy) => cat(new[] { network(xx, tt, yy), (yy == NullClass).unsqueeze(1).to_type(xx.dtype).expand(-1, 2) }, 1);
        var out4 = ClassifierFreeGuidance.Create(withVariance, labels, 2.5, NullClass, 2)(x, t);
        Assert.Equal(0.0, Numerics.MaxAbs(out4.narrow(1, 2, 2)));
        Assert.Throws<ArgumentException>(() => ClassifierFreeGuidance.Create(network, labels, -1, NullClass, 2));
    }

    [Fact]
    public void ClassifierFreeGuidanceSendsSamplesToTheRequestedClass()
    {
        using var scope = NewDisposeScope();
        var schedule = Config.Schedule.Build();
        using var c0 = ClassOnly(0);
        using var c1 = ClassOnly(1);
        using var all = Unconditional();
        var network = ConditionalOracle(schedule, new[] { c0, c1 }, all);
        using var ddim = new DdimScheduler(Config, clipping: X0Clipping.None);
        ddim.SetTimesteps(50);
        for (int k = 0; k < 2; k++)
        {
            var labels = full(new long[] { 400 }, (long)k, dtype: ScalarType.Int64);
            var samples = DiffusionSampler.Sample(ddim, ClassifierFreeGuidance.Create(network, labels, 3.0, NullClass, 2), new long[] { 400, 2 }, new Generator(3), ScalarType.Float64);
            Assert.Equal(1.0, FractionNear(samples, PointsByClass[k], 0.05));
        }
    }

    [Theory]
    [InlineData(SamplerKind.Ddim, 50)]
    [InlineData(SamplerKind.DpmSolver2M, 20)]
    [InlineData(SamplerKind.Ddpm, 1000)]
    public void ClassifierGuidanceWithScaleOneTurnsTheUnconditionalModelIntoTheConditionalOne(SamplerKind kind, int steps)
    {
        using var scope = NewDisposeScope();
        var schedule = Config.Schedule.Build();
        using var all = Unconditional();
        var classifier = ExactClassifier(schedule);
        using var diffusion = new GaussianDiffusion(Config);
        const int n = 400;
        for (int k = 0; k < 2; k++)
        {
            var labels = full(new long[] { n }, (long)k, dtype: ScalarType.Int64);
            using var scheduler = SamplerFactory.Create(Config, new SamplerSettings(kind, steps, Clip: false));
            var guided = ClassifierGuidance.ForSampler(kind, all.Denoiser(schedule), diffusion, classifier, labels, 1.0);
            var samples = DiffusionSampler.Sample(scheduler, guided.Denoiser, new long[] { n, 2 }, new Generator(7), ScalarType.Float64, meanShift: guided.MeanShift);
            double near = FractionNear(samples, PointsByClass[k], 0.05);
            Assert.True(near > 0.99, $"{kind}: {near:P1} of the class-{k} samples are at its point");
        }
        // Unguided, the same sampler splits between the points.
        using (var plain = SamplerFactory.Create(Config, new SamplerSettings(kind, steps, Clip: false)))
        {
            var samples = DiffusionSampler.Sample(plain, all.Denoiser(schedule), new long[] { n, 2 }, new Generator(7), ScalarType.Float64);
            Assert.InRange(FractionNear(samples, PointsByClass[0], 0.05), 0.35, 0.65);
        }
    }

    [Fact]
    public void TheClassifierGradientMatchesFiniteDifferences()
    {
        using var scope = NewDisposeScope();
        manual_seed(141); // the untrained weights come from the global generator, which other tests reseed
        using var classifier = new NoisyClassifier(new NoisyClassifierConfig(Config.Schedule, Channels: 1, ImageSize: 8, NumClasses: 3, Width: 8));
        classifier.to(ScalarType.Float64);
        var x = randn(new long[] { 2, 1, 8, 8 }, dtype: ScalarType.Float64, generator: new Generator(11));
        var t = tensor(new long[] { 10, 700 });
        var labels = tensor(new long[] { 2, 0 });
        ClassifierLogProbability logp = classifier.LogProbability;
        var gradient = ClassifierGuidance.Gradient(logp, x, t, labels);
        const double h = 1e-5;
        foreach (var (b, i, j) in new[] { (0, 0, 0), (0, 3, 5), (1, 7, 7), (1, 2, 6) })
        {
            var plus = x.clone(); plus[b, 0, i, j] += h;
            var minus = x.clone(); minus[b, 0, i, j] -= h;
            double numeric = (logp(plus, t, labels)[b].item<double>() - logp(minus, t, labels)[b].item<double>()) / (2 * h);
            double analytic = gradient[b, 0, i, j].item<double>();
            Assert.True(Math.Abs(numeric - analytic) <= 1e-6 * Math.Max(1, Math.Abs(numeric)), $"({b},{i},{j}): {analytic} vs {numeric}");
        }
        // Examples do not leak into each other's gradients.
        var single = ClassifierGuidance.Gradient(logp, x.narrow(0, 1, 1), t.narrow(0, 1, 1), labels.narrow(0, 1, 1));
        Assert.True(Numerics.MaxAbs(single - gradient.narrow(0, 1, 1)) < 1e-12);
    }
}
