using Ddpm.Models;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Models;

public class UNetTests
{
    [Fact]
    public void Cifar10PresetHasThePapersParameterCount()
    {
        using var net = new UNet(UNetPresets.Cifar10);
        // Ho et al. 2020, App. B: 35.7 million parameters.
        Assert.InRange(net.ParameterCount, 35.7e6 * 0.998, 35.7e6 * 1.002);
    }

    [Fact]
    public void Ddpm256PresetHasThePapersParameterCount()
    {
        using var net = new UNet(UNetPresets.Ddpm256);
        // Ho et al. 2020, App. B: 114 million parameters for the 256×256 models.
        Assert.InRange(net.ParameterCount, 114e6 * 0.995, 114e6 * 1.005);
    }

    [Theory]
    [InlineData("tiny")]
    [InlineData("fashion-mnist")]
    [InlineData("ddpm-cifar10")]
    public void OutputHasTheInputShape(string preset)
    {
        using var scope = NewDisposeScope();
        var config = UNetPresets.Get(preset);
        using var net = new UNet(config);
        net.eval();
        var x = randn(2, config.InChannels, config.ImageSize, config.ImageSize);
        using var noGrad = no_grad();
        var y = net.forward(x, tensor(new long[] { 0, 999 }));
        Assert.Equal(x.shape, y.shape);
        // With a learned variance the output doubles its channels.
        using var sigmaNet = new UNet(config with { LearnSigma = true });
        Assert.Equal(2 * config.InChannels, sigmaNet.forward(x, tensor(new long[] { 3, 4 })).shape[1]);
    }

    [Fact]
    public void TheDdpm256PresetRunsAtFullSize()
    {
        using var scope = NewDisposeScope();
        using var net = new UNet(UNetPresets.Ddpm256);
        net.eval();
        using var noGrad = no_grad();
        var y = net.forward(randn(1, 3, 256, 256), tensor(new long[] { 500 }));
        Assert.Equal(new long[] { 1, 3, 256, 256 }, y.shape);
    }

    [Fact]
    public void TheClassEmbeddingChangesTheOutputAndTheNullClassWorks()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var net = new UNet(UNetPresets.Tiny with { NumClasses = 3 });
        RandomizeParameters(net, 4);
        net.eval();
        using var noGrad = no_grad();
        var x = randn(2, 1, 8, 8);
        var t = tensor(new long[] { 10, 10 });
        var y0 = net.Forward(x, t, tensor(new long[] { 0, 0 }));
        var y1 = net.Forward(x, t, tensor(new long[] { 1, 1 }));
        var yNull = net.Forward(x, t, tensor(new long[] { 3, 3 }));
        Assert.True(Numerics.MaxAbs(y0 - y1) > 1e-3);
        Assert.True(Numerics.MaxAbs(y0 - yNull) > 1e-3);
        // No labels means the "no class" index.
        Assert.Equal(0.0, Numerics.MaxAbs(net.Forward(x, t, null) - yNull));
        // An unconditional network refuses labels.
        using var plain = new UNet(UNetPresets.Tiny);
        Assert.Throws<ArgumentException>(() => plain.Forward(x, t, tensor(new long[] { 0, 0 })));
    }

    [Theory]
    [InlineData(30, 32, 32, "ImageSize")]   // 30 is not divisible by 2^(2−1)·… for (1, 2, 2): needs a multiple of 4
    [InlineData(28, 24, 32, "Groups")]      // 24 channels are not divisible by 32 groups
    public void BadConfigurationsNameTheValueToChange(int imageSize, int channels, int groups, string parameter)
    {
        var config = new UNetConfig(imageSize, 1, channels, new[] { 1, 2, 2 }, 1, Array.Empty<int>(), Groups: groups);
        var e = Assert.Throws<ArgumentException>(() => new UNet(config));
        Assert.Equal(parameter, e.ParamName);
        Assert.Contains("change", e.Message);
        var e2 = Assert.Throws<ArgumentException>(() => new UNet(UNetPresets.Tiny with { AttentionResolutions = new[] { 5 } }));
        Assert.Contains("AttentionResolutions", e2.Message);
        var e3 = Assert.Throws<ArgumentException>(() => UNetPresets.Get("cifar"));
        Assert.Contains("ddpm-cifar10", e3.Message);
    }

    [Fact]
    public void RejectsImagesOfTheWrongSize()
    {
        using var scope = NewDisposeScope();
        using var net = new UNet(UNetPresets.Tiny);
        var e = Assert.Throws<ArgumentException>(() => net.forward(randn(1, 1, 16, 16), tensor(new long[] { 0 })));
        Assert.Contains("[B, 1, 8, 8]", e.Message);
    }

    [Fact]
    public void EveryParameterGradientMatchesAFloat64Copy()
    {
        // This catches a wrong kernel anywhere in the network (oneDNN's wrong input gradients for output channels not a multiple of 16; see Runtime/Layers): float32 gradients of the whole tiny
        // U-Net within 1e-4 relative error of the same network in float64.
        using var scope = NewDisposeScope();
        manual_seed(5);
        var config = UNetPresets.Tiny with { NumClasses = 2 };
        using var net32 = new UNet(config);
        RandomizeParameters(net32, 6); // DDPM zero-initialises output layers: randomise so every gradient is non-trivial
        using var net64 = new UNet(config);
        net64.to(ScalarType.Float64);
        using (no_grad())
        {
            var src = net32.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in net64.named_parameters()) p.copy_(src[name].to_type(ScalarType.Float64));
        }
        var gen = new Generator(7);
        var x = randn(new long[] { 4, 1, 8, 8 }, dtype: ScalarType.Float64, generator: gen);
        var target = randn(new long[] { 4, 1, 8, 8 }, dtype: ScalarType.Float64, generator: gen);
        var t = tensor(new long[] { 0, 17, 500, 999 });
        var y = tensor(new long[] { 0, 1, 2, 1 });
        (net64.Forward(x, t, y) - target).square().mean().backward();
        (net32.Forward(x.to_type(ScalarType.Float32), t, y) - target.to_type(ScalarType.Float32)).square().mean().backward();
        var g64 = net64.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!);
        int checkedCount = 0;
        foreach (var (name, p) in net32.named_parameters())
        {
            Assert.True(Numerics.MaxAbs(g64[name]) > 0, $"{name} has a zero gradient");
            double err = Numerics.RelativeError(p.grad!, g64[name]);
            Assert.True(err < 1e-4, $"{name}: relative gradient error {err:E2}");
            checkedCount++;
        }
        Assert.Equal(net32.parameters().Count(), checkedCount);
    }

    [Fact]
    public void ForwardFlopsOfTheCifar10ModelAreCountedAnalytically()
    {
        using var net = new UNet(UNetPresets.Cifar10);
        // Independent count of the largest single term: the first level's 3×3 convolutions at 32×32 with 128→128
        // channels: 2·128·128·9·32·32 FLOPs each, 4 of them in the down path (2 blocks × 2 convs).
        long firstLevelConv = 2L * 128 * 128 * 9 * 32 * 32;
        Assert.True(net.ForwardFlops > 4 * firstLevelConv);
        // The DDPM CIFAR-10 network is commonly quoted at about 6 GMACs = 12 GFLOPs per image.
        Assert.InRange(net.ForwardFlops / 1e9, 11.0, 14.0);
    }

    [Fact]
    public void ForwardFlopsOfTheTinyModelMatchAHandCountOfItsLayers()
    {
        // The tiny preset (8×8×1, ch 16, multipliers 1, 2, one residual block per level, attention at 4×4, embedding 64)
        // enumerated layer by layer from the DDPM U-Net's description (Ho et al. 2020, App. B), with the convention that
        // a k×k convolution costs 2·Cin·Cout·k²·H·W, a linear layer 2·in·out, attention's two matmuls 2·2·(HW)²·C, and
        // normalisations and activations nothing.
        static long Conv(long cin, long cout, long k, long size) => 2 * cin * cout * k * k * size * size;
        static long Res(long cin, long cout, long size) => Conv(cin, cout, 3, size) + 2 * 64 * cout + Conv(cout, cout, 3, size) + (cin == cout ? 0 : Conv(cin, cout, 1, size));
        static long Attention(long c, long size) => Conv(c, 3 * c, 1, size) + 4 * (size * size) * (size * size) * c + Conv(c, c, 1, size);
        long expected =
            2 * 16 * 64 + 2 * 64 * 64                              // time embedding MLP
            + Conv(1, 16, 3, 8)                                      // input convolution
            + Res(16, 16, 8) + Conv(16, 16, 3, 4)                    // level 0: block, stride-2 downsample to 4×4
            + Res(16, 32, 4) + Attention(32, 4)                      // level 1
            + Res(32, 32, 4) + Attention(32, 4) + Res(32, 32, 4)     // middle
            + Res(64, 32, 4) + Attention(32, 4)                      // up, level 1: skips of 32 and 16 channels
            + Res(48, 32, 4) + Attention(32, 4) + Conv(32, 32, 3, 8) //   then nearest ×2 and a 3×3 convolution at 8×8
            + Res(48, 16, 8) + Res(32, 16, 8)                        // up, level 0: skips of 16 and 16 channels
            + Conv(16, 1, 3, 8);                                     // output convolution
        using var net = new UNet(UNetPresets.Tiny);
        Assert.Equal(expected, net.ForwardFlops);
        // The parameter count, summed over the tensors themselves.
        Assert.Equal(net.parameters().Sum(p => p.numel()), net.ParameterCount);
    }

    internal static void RandomizeParameters(nn.Module module, int seed)
    {
        using var noGrad = no_grad();
        var gen = new Generator((ulong)seed);
        foreach (var p in module.parameters())
            p.add_(randn(p.shape, dtype: p.dtype, generator: gen) * 0.1);
    }
}
