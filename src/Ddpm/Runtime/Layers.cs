using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

#nullable enable

namespace Ddpm.Runtime;

/// <summary>
/// The one factory every model in the project uses for convolutions and group norms. Both work around defects of
/// TorchSharp 0.107.0 / libtorch 2.10 on this platform (see docs: shared/PLATFORM.md §3 and §4), so a model must never
/// call <c>torch.nn.Conv2d</c> or <c>torch.nn.GroupNorm</c> directly.
/// </summary>
public static class Layers
{
    /// <summary>
    /// A 2D convolution with PyTorch's <c>nn.Conv2d</c> parameters, state-dict keys ("weight", "bias") and default
    /// initialisation, that never hands oneDNN a convolution whose output channel count is not a multiple of 16.
    /// </summary>
    public static Module<Tensor, Tensor> Conv2d(long inChannels, long outChannels, long kernelSize, long stride = 1,
        long padding = 0, bool bias = true)
        => new SafeConv2d(inChannels, outChannels, kernelSize, stride, padding, bias);

    /// <summary>
    /// <c>torch.nn.GroupNorm(groups, channels, eps)</c> with its affine weight set to 1 and bias to 0, as in PyTorch.
    /// TorchSharp 0.107.0 allocates them with <c>empty</c> and never initialises them (PLATFORM.md §4).
    /// </summary>
    public static Module<Tensor, Tensor> GroupNorm(long groups, long channels, double eps = 1e-5)
    {
        if (groups < 1)
            throw new ArgumentException($"groups must be at least 1; got {groups}.", nameof(groups));
        if (channels < 1)
            throw new ArgumentException($"channels must be at least 1; got {channels}.", nameof(channels));
        if (channels % groups != 0)
            throw new ArgumentException(
                $"channels ({channels}) must be divisible by groups ({groups}): change groups to a divisor of {channels}, " +
                $"or channels to a multiple of {groups}.", nameof(channels));
        if (!(eps > 0) || double.IsInfinity(eps))
            throw new ArgumentException($"eps must be a finite number > 0; got {eps}.", nameof(eps));

        var norm = nn.GroupNorm(groups, channels, eps);
        using (no_grad())
        {
            // In-place ops return the same tensor object: nothing here may be disposed (it is the live parameter).
            norm.weight!.fill_(1.0);
            norm.bias!.zero_();
        }
        return norm;
    }
}

/// <summary>
/// A 2D convolution (square kernel, zero padding, no dilation, one group) that holds its own parameters
/// <c>weight</c> [out, in, k, k] and <c>bias</c> [out], exactly as PyTorch's <c>nn.Conv2d</c> names and initialises them.
/// </summary>
/// <remarks>
/// Why not <c>torch.nn.Conv2d</c>: libtorch 2.10's bundled oneDNN, on this AVX-512 CPU, computes wrong (or NaN) input
/// gradients in the stride-1 3x3 backward-data kernel when the number of output channels is not a multiple of 16
/// (PLATFORM.md §3). A U-Net's last convolution (out = image channels) is such a layer, and its garbage input gradient
/// poisons every gradient upstream. So when <see cref="OutChannels"/> is not a multiple of 16, the forward pass appends
/// zero filters (and zero biases) up to the next multiple of 16, convolves, and narrows the result back. The padding is a
/// <c>cat</c> with constant zeros, so the real weight and bias still receive their gradients; the extra output channels
/// are discarded, so their (zero) upstream gradient changes nothing. Forward results and weight gradients are the same as
/// the unpadded convolution's; the extra cost is small (at most 15 extra filters).
/// </remarks>
public sealed class SafeConv2d : Module<Tensor, Tensor>
{
    /// <summary>oneDNN's kernels are only correct for output channel counts that are multiples of this.</summary>
    public const long ChannelAlignment = 16;

    // Field names are the state-dict keys (RegisterComponents uses field names), and Module.to(...) replaces the
    // Parameter objects through these fields, so they must stay non-readonly fields named exactly weight and bias.
#pragma warning disable IDE1006 // Naming: lower-case to match PyTorch's state-dict keys.
    private Parameter weight;
    private Parameter? bias;
#pragma warning restore IDE1006

    private readonly long[] _strides;
    private readonly long[] _paddings;
    private readonly long _paddedOutChannels;

    /// <summary>Creates the layer; prefer <see cref="Layers.Conv2d"/>.</summary>
    public SafeConv2d(long inChannels, long outChannels, long kernelSize, long stride = 1, long padding = 0, bool bias = true)
        : base(nameof(SafeConv2d))
    {
        if (inChannels < 1)
            throw new ArgumentException($"inChannels must be >= 1; got {inChannels}.", nameof(inChannels));
        if (outChannels < 1)
            throw new ArgumentException($"outChannels must be >= 1; got {outChannels}.", nameof(outChannels));
        if (kernelSize < 1)
            throw new ArgumentException($"kernelSize must be >= 1; got {kernelSize}.", nameof(kernelSize));
        if (stride < 1)
            throw new ArgumentException($"stride must be >= 1; got {stride}.", nameof(stride));
        if (padding < 0)
            throw new ArgumentException($"padding must be >= 0; got {padding}.", nameof(padding));

        InChannels = inChannels;
        OutChannels = outChannels;
        KernelSize = kernelSize;
        Stride = stride;
        Padding = padding;
        HasBias = bias;
        _strides = new[] { stride, stride };
        _paddings = new[] { padding, padding };
        _paddedOutChannels = (outChannels + ChannelAlignment - 1) / ChannelAlignment * ChannelAlignment;

        // Parameters belong to the module, never to whatever DisposeScope the caller may have open.
        this.weight = new Parameter(empty(outChannels, inChannels, kernelSize, kernelSize));
        this.weight.DetachFromDisposeScope();
        if (bias)
        {
            this.bias = new Parameter(empty(outChannels));
            this.bias.DetachFromDisposeScope();
        }
        ResetParameters();
        RegisterComponents();
    }

    /// <summary>Input channels.</summary>
    public long InChannels { get; }

    /// <summary>Output channels (the real ones; the zero-padded filters never leave <see cref="forward"/>).</summary>
    public long OutChannels { get; }

    /// <summary>Side of the square kernel.</summary>
    public long KernelSize { get; }

    /// <summary>Stride in both spatial dimensions.</summary>
    public long Stride { get; }

    /// <summary>Zero padding on every side.</summary>
    public long Padding { get; }

    /// <summary>Whether the layer has a bias.</summary>
    public bool HasBias { get; }

    /// <summary>True when <see cref="forward"/> pads the output channels (OutChannels not a multiple of 16).</summary>
    public bool PadsOutputChannels => _paddedOutChannels != OutChannels;

    /// <summary>The live weight parameter, [out, in, k, k]. Do not dispose it.</summary>
    public Parameter Weight => weight;

    /// <summary>The live bias parameter, [out], or null. Do not dispose it.</summary>
    public Parameter? Bias => bias;

    /// <summary>
    /// PyTorch's <c>Conv2d.reset_parameters</c>: weight ~ kaiming_uniform(a = sqrt 5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    /// and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in · k · k. Draws from the global CPU generator.
    /// </summary>
    public void ResetParameters()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        init.kaiming_uniform_(weight, a: Math.Sqrt(5));
        if (bias is not null)
        {
            double bound = 1.0 / Math.Sqrt(InChannels * KernelSize * KernelSize);
            init.uniform_(bias, -bound, bound);
        }
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        if (!PadsOutputChannels)
            return functional.conv2d(input, weight, bias, _strides, _paddings);

        // See the class remarks (PLATFORM.md §3): never run oneDNN with an output channel count that is not a multiple of 16.
        using var scope = NewDisposeScope();
        long extra = _paddedOutChannels - OutChannels;
        var zeroFilters = zeros(new[] { extra, InChannels, KernelSize, KernelSize }, dtype: weight.dtype, device: weight.device);
        var paddedWeight = cat(new Tensor[] { weight, zeroFilters }, 0);
        Tensor? paddedBias = null;
        if (bias is not null)
        {
            var zeroBias = zeros(new[] { extra }, dtype: bias.dtype, device: bias.device);
            paddedBias = cat(new Tensor[] { bias, zeroBias }, 0);
        }
        var full = functional.conv2d(input, paddedWeight, paddedBias, _strides, _paddings);
        // contiguous(): a narrowed NCHW view is not contiguous, and callers may view()/reshape it.
        return full.narrow(1, 0, OutChannels).contiguous().MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"SafeConv2d({InChannels}, {OutChannels}, kernel_size={KernelSize}, stride={Stride}, padding={Padding}, bias={HasBias})";
}
