using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

#nullable enable

namespace Ddpm.Runtime;

/// <summary>
/// The one factory every model in the project uses for convolutions, group norms and linear layers. The first two work
/// around defects of TorchSharp 0.107.0 / libtorch 2.10 on this platform (the README's platform notes), so a model must
/// never call <c>torch.nn.Conv2d</c> or <c>torch.nn.GroupNorm</c> directly. All three run in the dtype of their input
/// with float32 parameters (cast on the way in, so autograd returns float32 gradients): a network computes in bfloat16
/// by casting its input, as PyTorch's autocast does, while the optimizer and the EMA see only float32.
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
    /// TorchSharp 0.107.0's own GroupNorm allocates them with <c>empty</c> and never initialises them (see the README's
    /// platform notes), so models use this one; it also runs in the dtype of its input (<see cref="SafeGroupNorm"/>).
    /// </summary>
    public static Module<Tensor, Tensor> GroupNorm(long groups, long channels, double eps = 1e-5)
        => new SafeGroupNorm(groups, channels, eps);

    /// <summary>
    /// <c>torch.nn.Linear(inFeatures, outFeatures, bias)</c> with PyTorch's state-dict keys and initialisation that runs in
    /// the dtype of its input, so a network computing in bfloat16 keeps float32 parameters (<see cref="CastingLinear"/>).
    /// </summary>
    public static Module<Tensor, Tensor> Linear(long inFeatures, long outFeatures, bool bias = true)
        => new CastingLinear(inFeatures, outFeatures, bias);

    /// <summary>
    /// The same values in the channels-last layout (NHWC strides behind an NCHW shape), which oneDNN's convolutions
    /// take without reordering. There is no <c>memory_format</c> argument in TorchSharp 0.107.0, so the layout is made by
    /// a permuted copy; pointwise ops, group norms, concatenation along channels and nearest upsampling keep it.
    /// </summary>
    public static Tensor ToChannelsLast(Tensor images)
    {
        if (images.dim() != 4)
            throw new ArgumentException($"channels-last needs a 4-D [B, C, H, W] tensor; got {images.dim()} dimensions.", nameof(images));
        using var scope = NewDisposeScope();
        return images.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2).MoveToOuterDisposeScope();
    }

    /// <summary>True when a 4-D tensor is laid out channels-last (channel stride 1; the spatial strides a multiple of C).</summary>
    public static bool IsChannelsLast(Tensor images)
    {
        if (images.dim() != 4) return false;
        var strides = images.stride();
        long c = images.shape[1], w = images.shape[3];
        return strides[1] == 1 && strides[3] == c && strides[2] == c * w;
    }

    /// <summary><paramref name="parameter"/> in <paramref name="dtype"/>: itself when it already is, else a cast that autograd differentiates (the gradient reaches the float32 parameter).</summary>
    internal static Tensor InDtype(Tensor parameter, ScalarType dtype) =>
        parameter.dtype == dtype ? parameter : parameter.to_type(dtype);
}

/// <summary>
/// A 2D convolution (square kernel, zero padding, no dilation, one group) that holds its own parameters
/// <c>weight</c> [out, in, k, k] and <c>bias</c> [out], exactly as PyTorch's <c>nn.Conv2d</c> names and initialises them.
/// </summary>
/// <remarks>
/// Why not <c>torch.nn.Conv2d</c>: libtorch 2.10's bundled oneDNN, on AVX-512 CPUs, computes wrong (or NaN) input
/// gradients in the stride-1 3x3 backward-data kernel when the number of output channels is not a multiple of 16 (the
/// README's platform notes; tests/Ddpm.Tests/Runtime/LayersTests.cs measures it, in float32 and in bfloat16). A U-Net's last convolution (out = image channels) is such a layer, and its garbage input gradient
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
        using var scope = NewDisposeScope();
        // The parameters are cast to the input's dtype (bfloat16 compute keeps float32 master weights): autocast's rule.
        var w = Layers.InDtype(weight, input.dtype);
        var b = bias is null ? null : Layers.InDtype(bias, input.dtype);
        if (!PadsOutputChannels)
            return functional.conv2d(input, w, b, _strides, _paddings).MoveToOuterDisposeScope();

        // See the class remarks: never run oneDNN with an output channel count that is not a multiple of 16.
        long extra = _paddedOutChannels - OutChannels;
        var zeroFilters = zeros(new[] { extra, InChannels, KernelSize, KernelSize }, dtype: w.dtype, device: w.device);
        var paddedWeight = cat(new Tensor[] { w, zeroFilters }, 0);
        Tensor? paddedBias = null;
        if (b is not null)
        {
            var zeroBias = zeros(new[] { extra }, dtype: b.dtype, device: b.device);
            paddedBias = cat(new Tensor[] { b, zeroBias }, 0);
        }
        var full = functional.conv2d(input, paddedWeight, paddedBias, _strides, _paddings);
        // contiguous(): a narrowed NCHW view is not contiguous, and callers may view()/reshape it.
        return full.narrow(1, 0, OutChannels).contiguous().MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"SafeConv2d({InChannels}, {OutChannels}, kernel_size={KernelSize}, stride={Stride}, padding={Padding}, bias={HasBias})";
}

/// <summary>
/// <c>torch.nn.GroupNorm</c> with its affine parameters initialised (weight 1, bias 0) and cast to the input's dtype.
/// libtorch's CPU kernel accumulates the group statistics of a bfloat16 input in float32.
/// </summary>
public sealed class SafeGroupNorm : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // Naming: lower-case to match PyTorch's state-dict keys.
    private Parameter weight;
    private Parameter bias;
#pragma warning restore IDE1006

    /// <summary>Creates the layer; prefer <see cref="Layers.GroupNorm"/>.</summary>
    public SafeGroupNorm(long groups, long channels, double eps = 1e-5) : base(nameof(SafeGroupNorm))
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
        Groups = groups;
        Channels = channels;
        Eps = eps;
        this.weight = new Parameter(ones(channels));
        this.weight.DetachFromDisposeScope();
        this.bias = new Parameter(zeros(channels));
        this.bias.DetachFromDisposeScope();
        RegisterComponents();
    }

    /// <summary>Number of groups the channels are split into.</summary>
    public long Groups { get; }

    /// <summary>Channels normalised.</summary>
    public long Channels { get; }

    /// <summary>The ε added to the variance.</summary>
    public double Eps { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return functional.group_norm(input, Groups, Layers.InDtype(weight, input.dtype), Layers.InDtype(bias, input.dtype), Eps)
            .MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => $"SafeGroupNorm({Groups}, {Channels}, eps={Eps})";
}

/// <summary>
/// <c>torch.nn.Linear</c> (state-dict keys "weight" [out, in] and "bias" [out], PyTorch's initialisation) whose parameters are
/// cast to the input's dtype.
/// </summary>
public sealed class CastingLinear : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // Naming: lower-case to match PyTorch's state-dict keys.
    private Parameter weight;
    private Parameter? bias;
#pragma warning restore IDE1006

    /// <summary>Creates the layer; prefer <see cref="Layers.Linear"/>.</summary>
    public CastingLinear(long inFeatures, long outFeatures, bool bias = true) : base(nameof(CastingLinear))
    {
        if (inFeatures < 1)
            throw new ArgumentException($"inFeatures must be >= 1; got {inFeatures}.", nameof(inFeatures));
        if (outFeatures < 1)
            throw new ArgumentException($"outFeatures must be >= 1; got {outFeatures}.", nameof(outFeatures));
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        this.weight = new Parameter(empty(outFeatures, inFeatures));
        this.weight.DetachFromDisposeScope();
        if (bias)
        {
            this.bias = new Parameter(empty(outFeatures));
            this.bias.DetachFromDisposeScope();
        }
        // PyTorch's Linear.reset_parameters: kaiming_uniform(a = sqrt 5) for the weight, U(±1/sqrt(in)) for the bias,
        // drawn from the global generator in that order (as TorchSharp's nn.Linear does).
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            init.kaiming_uniform_(this.weight, a: Math.Sqrt(5));
            if (this.bias is not null)
            {
                double bound = 1.0 / Math.Sqrt(inFeatures);
                init.uniform_(this.bias, -bound, bound);
            }
        }
        RegisterComponents();
    }

    /// <summary>Input features.</summary>
    public long InFeatures { get; }

    /// <summary>Output features.</summary>
    public long OutFeatures { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var b = bias is null ? null : Layers.InDtype(bias, input.dtype);
        return functional.linear(input, Layers.InDtype(weight, input.dtype), b).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => $"CastingLinear({InFeatures}, {OutFeatures}, bias={bias is not null})";
}
