using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Schedules;
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
