using System.Text.Json.Serialization;
using Ddpm.Diffusion;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>A denoising network: a module that can be evaluated as a <see cref="Denoiser"/>, optionally for class labels.</summary>
public interface IDenoisingNetwork
{
    Denoiser AsDenoiser(Tensor? classLabels = null);
    long ForwardFlops { get; }
}

/// <summary>Which network a checkpoint holds: exactly one of <see cref="UNet"/> and <see cref="ToyMlp"/> is set.</summary>
public sealed record ModelConfig(UNetConfig? UNet = null, ToyMlpConfig? ToyMlp = null)
{
    [JsonIgnore] public bool IsImageModel => UNet is not null;
    [JsonIgnore] public int NumClasses => UNet?.NumClasses ?? 0;

    /// <summary>The shape of one sample: [C, H, W] for images, [d] for toy data.</summary>
    [JsonIgnore]
    public long[] SampleShape => UNet is not null
        ? new long[] { UNet.InChannels, UNet.ImageSize, UNet.ImageSize }
        : new long[] { ToyMlp!.DataDimension };

    public void Validate()
    {
        if ((UNet is null) == (ToyMlp is null))
            throw new ArgumentException("A model configuration needs exactly one of UNet and ToyMlp.", nameof(UNet));
        UNet?.Validate();
    }

    /// <summary>Builds the network (outside any DisposeScope: parameters must outlive it).</summary>
    public nn.Module Create()
    {
        Validate();
        return UNet is not null ? new UNet(UNet) : new ToyMlp(ToyMlp!);
    }

    /// <summary>A copy whose output layer matches the diffusion's variance (doubled channels when it is learned).</summary>
    public ModelConfig WithLearnedVariance(bool learnVariance) => UNet is not null
        ? this with { UNet = UNet with { LearnSigma = learnVariance } }
        : this with { ToyMlp = ToyMlp! with { LearnVariance = learnVariance } };
}
