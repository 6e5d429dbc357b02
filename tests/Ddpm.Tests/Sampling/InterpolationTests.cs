using Ddpm.Diffusion;
using Ddpm.Oracles;
using Ddpm.Sampling;
using Ddpm.Schedules;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Sampling;

public class InterpolationTests
{
    private static float[] Values(Tensor t) => t.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray();

    [Fact]
    public void Slerp_EndpointsAreExact()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(1);
        var a = randn(new long[] { 3, 1, 4, 4 }, generator: gen);
        var b = randn(new long[] { 3, 1, 4, 4 }, generator: gen);
        Assert.Equal(Values(a), Values(Interpolation.Slerp(a, b, 0.0)));
        Assert.Equal(Values(b), Values(Interpolation.Slerp(a, b, 1.0)));
        // SlerpPath's first and last rows too.
        var path = Interpolation.SlerpPath(a.narrow(0, 0, 1), b.narrow(0, 0, 1), Interpolation.Weights(5));
        Assert.Equal(new long[] { 5, 1, 4, 4 }, path.shape);
        Assert.Equal(Values(a.narrow(0, 0, 1)), Values(path.narrow(0, 0, 1)));
        Assert.Equal(Values(b.narrow(0, 0, 1)), Values(path.narrow(0, 4, 1)));
    }

    [Fact]
    public void Slerp_OfOrthogonalEqualNormVectors_KeepsTheNorm_AndFollowsTheArc()
    {
        using var scope = NewDisposeScope();
        // Exactly orthogonal, equal norms: slerp(λ) = cos(λπ/2) a + sin(λπ/2) b, norm constant.
        var a = tensor(new float[] { 3, 0, 0, 0 }).reshape(1, 4);
        var b = tensor(new float[] { 0, 3, 0, 0 }).reshape(1, 4);
        foreach (double lambda in new[] { 0.1, 0.25, 0.5, 0.9 })
        {
            var v = Values(Interpolation.Slerp(a, b, lambda));
            Assert.InRange(v[0] - 3 * Math.Cos(lambda * Math.PI / 2), -1e-5, 1e-5);
            Assert.InRange(v[1] - 3 * Math.Sin(lambda * Math.PI / 2), -1e-5, 1e-5);
            Assert.InRange(Math.Sqrt(v.Sum(x => (double)x * x)) - 3.0, -1e-5, 1e-5);
        }
    }

    [Fact]
    public void Slerp_OfIndependentGaussians_StaysOnTheirShell_WhereLerpShrinks()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(2);
        const int d = 4096;
        var a = randn(new long[] { 4, d }, generator: gen);
        var b = randn(new long[] { 4, d }, generator: gen);
        var mid = Interpolation.Slerp(a, b, 0.5);
        var lerp = 0.5 * a + 0.5 * b;
        var normsA = Values(a.norm(1));
        var normsB = Values(b.norm(1));
        var normsMid = Values(mid.norm(1));
        var normsLerp = Values(lerp.norm(1));
        for (int i = 0; i < 4; i++)
        {
            double shell = Math.Sqrt(d);
            // Independent Gaussians in 4096 dimensions: norms √d (1 ± ~1.1%), nearly orthogonal (|cos| ~ 1/√d).
            Assert.InRange(normsMid[i] / shell, 0.96, 1.04);
            Assert.InRange(normsMid[i], Math.Min(normsA[i], normsB[i]) * 0.99, Math.Max(normsA[i], normsB[i]) * 1.01);
            Assert.InRange(normsLerp[i] / shell, 1 / Math.Sqrt(2) - 0.04, 1 / Math.Sqrt(2) + 0.04);
        }
    }

    [Fact]
    public void Slerp_OfParallelVectors_FallsBackToLinear()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3 }).reshape(1, 3);
        var b = 2 * a;
        Assert.Equal(new float[] { 1.5f, 3f, 4.5f }, Values(Interpolation.Slerp(a, b, 0.5)));
    }

    [Fact]
    public void Encode_AtLambdaZeroAndOne_ReproducesEachImagesLatent()
    {
        using var scope = NewDisposeScope();
        using var diffusion = new GaussianDiffusion(new DiffusionConfig(new ScheduleConfig(Timesteps: 100)));
        var gen = new Generator(3);
        var x0a = rand(new long[] { 1, 1, 8, 8 }, generator: gen) * 2 - 1;
        var x0b = rand(new long[] { 1, 1, 8, 8 }, generator: gen) * 2 - 1;
        var eps = randn(new long[] { 1, 1, 8, 8 }, generator: gen);
        var la = Interpolation.Encode(diffusion, x0a, 49, eps);
        var lb = Interpolation.Encode(diffusion, x0b, 49, eps);
        var path = Interpolation.SlerpPath(la, lb, new[] { 0.0, 0.5, 1.0 });
        Assert.Equal(Values(la), Values(path.narrow(0, 0, 1)));
        Assert.Equal(Values(lb), Values(path.narrow(0, 2, 1)));
        // The latent is q(x_t | x_0) at index 49: √ᾱ x_0 + √(1 − ᾱ) ε.
        double abar = diffusion.Schedule.AlphasCumprod[49];
        var expected = Values(Math.Sqrt(abar) * x0a + Math.Sqrt(1 - abar) * eps);
        var actual = Values(la);
        for (int i = 0; i < expected.Length; i++) Assert.InRange(actual[i] - expected[i], -1e-5, 1e-5);
    }

    [Fact]
    public void ReverseFrom_WithSharedNoise_DecodesEqualLatentsEqually_AndIsSeeded()
    {
        using var scope = NewDisposeScope();
        using var diffusion = new GaussianDiffusion(new DiffusionConfig(new ScheduleConfig(Timesteps: 50)));
        Denoiser model = (x, t) => 0.1 * x;   // any fixed function
        var latent = randn(new long[] { 1, 1, 4, 4 }, generator: new Generator(4)).expand(3, -1, -1, -1).contiguous();
        var shared = Interpolation.ReverseFrom(diffusion, model, latent, 30, new Generator(5), sharedNoise: true);
        var rows = Enumerable.Range(0, 3).Select(i => Values(shared.narrow(0, i, 1))).ToArray();
        Assert.Equal(rows[0], rows[1]);
        Assert.Equal(rows[0], rows[2]);
        var independent = Interpolation.ReverseFrom(diffusion, model, latent, 30, new Generator(5), sharedNoise: false);
        Assert.NotEqual(Values(independent.narrow(0, 0, 1)), Values(independent.narrow(0, 1, 1)));
        var again = Interpolation.ReverseFrom(diffusion, model, latent, 30, new Generator(5), sharedNoise: true);
        Assert.Equal(Values(shared), Values(again));
        Assert.All(Values(shared), v => Assert.InRange(v, -3f, 3f));
    }

    [Fact]
    public void DdimInvertThenDecode_WithAFixedEpsilon_ReturnsTheInput()
    {
        using var scope = NewDisposeScope();
        using var diffusion = new GaussianDiffusion(new DiffusionConfig(new ScheduleConfig(Timesteps: 100)));
        var gen = new Generator(6);
        var fixedEps = randn(new long[] { 2, 1, 4, 4 }, generator: gen);
        Denoiser model = (x, t) => fixedEps;   // ε does not depend on x: the DDIM map and its inverse are exact
        var x0 = rand(new long[] { 2, 1, 4, 4 }, generator: gen) * 1.6 - 0.8;
        var steps = Interpolation.DdimTimesteps(79, 8);
        Assert.Equal(0, steps[0]);
        Assert.Equal(79, steps[^1]);
        var latent = Interpolation.DdimInvert(diffusion, model, x0, steps);
        // With a constant ε the inversion lands exactly on √ᾱ_t x0 + √(1 − ᾱ_t) ε.
        double abar = diffusion.Schedule.AlphasCumprod[79];
        var expected = Values(Math.Sqrt(abar) * x0 + Math.Sqrt(1 - abar) * fixedEps);
        var got = Values(latent);
        for (int i = 0; i < got.Length; i++) Assert.InRange(got[i] - expected[i], -1e-4, 1e-4);
        var back = Values(Interpolation.DdimDecode(diffusion, model, latent, steps, clip: false));
        var original = Values(x0);
        for (int i = 0; i < back.Length; i++) Assert.InRange(back[i] - original[i], -1e-4, 1e-4);
    }

    // Gaussian data with a diagonal covariance: each coordinate is a one-dimensional problem with closed forms.
    private static readonly double[] OracleMean = { 0.3, -0.2 };
    private static readonly double[] OracleVariance = { 0.5, 0.2 };

    private static GaussianMixtureOracle DiagonalOracle() =>
        GaussianMixtureOracle.Gaussian(OracleMean, new[,] { { OracleVariance[0], 0.0 }, { 0.0, OracleVariance[1] } });

    [Fact]
    public void ReverseFrom_DecodesALatentToTheExactPosteriorOfItsData()
    {
        // From one fixed x_t at index t = 299, DDPM's steps s = 299 … 0 with the optimal denoiser are an affine chain
        // per coordinate: x' = A x + B + σ z with A, B from the posterior mean (Eq. 7) and σ² = β̃. Their exact output
        // moments, pushed through that chain in float64 here, must match 4,000 decodings within 5 s.e.; and they lie
        // within 0.01 of the true posterior N(E[x_0 | x_t], Var[x_0 | x_t]) that the chain approximates.
        using var scope = NewDisposeScope();
        var config = new DiffusionConfig(new ScheduleConfig());
        using var diffusion = new GaussianDiffusion(config);
        using var oracle = DiagonalOracle();
        var schedule = diffusion.Schedule;
        const int from = 299;
        double[] xt = { 0.9, -1.1 };
        var latent = tensor(xt, dtype: ScalarType.Float64).unsqueeze(0).expand(4000, 2).contiguous();
        var decoded = Interpolation.ReverseFrom(diffusion, oracle.Denoiser(schedule), latent, from, new Generator(41), clipDenoised: false);

        var (mean, cov) = Numerics.Moments(decoded);
        for (int j = 0; j < 2; j++)
        {
            double lambda = OracleVariance[j], m = OracleMean[j], chainMean = xt[j], chainVariance = 0;
            for (int s = from; s >= 0; s--)
            {
                double abar = schedule.AlphasCumprod[s], abarPrev = s > 0 ? schedule.AlphasCumprod[s - 1] : 1.0;
                double a = Math.Sqrt(abar), b2 = 1 - abar, beta = 1 - abar / abarPrev;
                double k = a * lambda / (a * a * lambda + b2);
                double c1 = Math.Sqrt(abarPrev) * beta / (1 - abar), c2 = Math.Sqrt(1 - beta) * (1 - abarPrev) / (1 - abar);
                chainMean = (c1 * k + c2) * chainMean + c1 * (1 - k * a) * m;
                chainVariance = (c1 * k + c2) * (c1 * k + c2) * chainVariance + (s > 0 ? (1 - abarPrev) / (1 - abar) * beta : 0);
            }
            double at = Math.Sqrt(schedule.AlphasCumprod[from]), bt2 = 1 - schedule.AlphasCumprod[from];
            double posteriorMean = m + at * lambda / (at * at * lambda + bt2) * (xt[j] - at * m);
            double posteriorVariance = lambda * bt2 / (at * at * lambda + bt2);
            Assert.InRange(chainMean, posteriorMean - 0.01, posteriorMean + 0.01);
            Assert.InRange(chainVariance, posteriorVariance - 0.01, posteriorVariance + 0.01);
            double seMean = Math.Sqrt(chainVariance / 4000), seVariance = chainVariance * Math.Sqrt(2.0 / 4000);
            Assert.InRange(mean[j], chainMean - 5 * seMean, chainMean + 5 * seMean);
            Assert.InRange(cov[j, j], chainVariance - 5 * seVariance, chainVariance + 5 * seVariance);
        }
    }

    [Fact]
    public void DdimInvert_SendsDataToTheMarginalOfItsLevel_AndDecodeBringsItBack()
    {
        // For Gaussian data the deterministic DDIM map from x_0 to level t (an ODE solve) transports N(μ, Σ) to the
        // marginal q(x_t) = N(a μ, a²Σ + b² I). With 100 steps the inverted latents' moments match it within 5 s.e. plus
        // 2 % of the variance (the discretisation; measured 0.4 %), and decoding over the same steps returns the data.
        using var scope = NewDisposeScope();
        var config = new DiffusionConfig(new ScheduleConfig());
        using var diffusion = new GaussianDiffusion(config);
        using var oracle = DiagonalOracle();
        var denoiser = oracle.Denoiser(diffusion.Schedule);
        const int level = 599;
        var x0 = oracle.Sample(4000, new Generator(42), ScalarType.Float64);
        var steps = Interpolation.DdimTimesteps(level, 100);
        var latent = Interpolation.DdimInvert(diffusion, denoiser, x0, steps);
        var (mean, cov) = Numerics.Moments(latent);
        double a = Math.Sqrt(diffusion.Schedule.AlphasCumprod[level]), b2 = 1 - diffusion.Schedule.AlphasCumprod[level];
        for (int j = 0; j < 2; j++)
        {
            double variance = a * a * OracleVariance[j] + b2;
            double seMean = Math.Sqrt(variance / 4000), seVariance = variance * Math.Sqrt(2.0 / 4000);
            Assert.InRange(mean[j], a * OracleMean[j] - 5 * seMean, a * OracleMean[j] + 5 * seMean);
            Assert.InRange(cov[j, j], variance * 0.98 - 5 * seVariance, variance * 1.02 + 5 * seVariance);
        }
        Assert.InRange(cov[0, 1], -5 * Math.Sqrt(cov[0, 0] * cov[1, 1] / 4000), 5 * Math.Sqrt(cov[0, 0] * cov[1, 1] / 4000));
        var back = Interpolation.DdimDecode(diffusion, denoiser, latent, steps, clip: false);
        double rms = (back - x0).square().mean().sqrt().item<double>();
        Assert.True(rms < 0.02, $"rms reconstruction error {rms:E2} over 100 steps");
    }

    [Fact]
    public void DdimTimesteps_AndWeights()
    {
        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, Interpolation.DdimTimesteps(4, 50));
        Assert.Equal(new[] { 7 }, Interpolation.DdimTimesteps(7, 1));
        Assert.Equal(new[] { 0, 50, 99 }, Interpolation.DdimTimesteps(99, 3));
        Assert.Equal(new[] { 0.0, 0.25, 0.5, 0.75, 1.0 }, Interpolation.Weights(5));
        Assert.Throws<ArgumentException>(() => Interpolation.Weights(0));
    }
}
