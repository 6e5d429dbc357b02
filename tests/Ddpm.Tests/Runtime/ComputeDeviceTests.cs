using Ddpm.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Runtime;

public class ComputeDeviceTests
{
    [Theory]
    [InlineData("cpu", 0, "cpu")]
    [InlineData(" CPU ", 0, "cpu")]
    [InlineData("cuda", 1, "cuda")]
    [InlineData("CUDA:1", 2, "cuda:1")]
    public void NamesTheProcessCanUseAreCanonical(string spec, int cudaDevices, string expected) =>
        Assert.Equal(expected, ComputeDevice.Validate(spec, cudaDevices));

    [Theory]
    [InlineData("cuda", 0, "CUDA is not available")]
    [InlineData("cuda:2", 2, "numbered 0 to 1")]
    [InlineData("gpu", 1, "--device must be cpu, cuda or cuda:N")]
    [InlineData("cuda:-1", 1, "--device must be cpu, cuda or cuda:N")]
    [InlineData("cuda:x", 1, "--device must be cpu, cuda or cuda:N")]
    [InlineData("mps", 1, "--device must be cpu, cuda or cuda:N")]
    public void OtherNamesAreOneLineErrors(string spec, int cudaDevices, string fragment)
    {
        var e = Assert.Throws<ArgumentException>(() => ComputeDevice.Validate(spec, cudaDevices));
        Assert.Contains(fragment, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ThisBuildHasNoCuda()
    {
        // The CPU build: asking TorchSharp is what Validate does without an override.
        var e = Assert.Throws<ArgumentException>(() => ComputeDevice.Validate("cuda"));
        Assert.Contains("-p:TorchBackend=cuda", e.Message);
    }

    [Fact]
    public void ATensorAlreadyOnTheDeviceIsNotCopied()
    {
        using var x = ones(3);
        Assert.Same(x, x.On(CPU));
        Assert.Same(x, x.On(ComputeDevice.ToTorch("cpu")));
    }
}
