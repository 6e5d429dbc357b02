using Ddpm.Diffusion;
using Ddpm.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>A U-Net layer that may use the timestep embedding; it knows its forward FLOPs for the input size it was built for.</summary>
public abstract class TimestepBlock : nn.Module<Tensor, Tensor, Tensor>
{
    protected TimestepBlock(string name) : base(name) { }

    /// <summary>Floating-point operations of one forward pass for one image (convolutions, linear layers, attention matmuls; 2 per multiply-add).</summary>
    public abstract long ForwardFlops { get; }

    internal static long ConvFlops(long inChannels, long outChannels, long kernel, long outSize) =>
        2 * inChannels * outChannels * kernel * kernel * outSize * outSize;

    /// <summary>Zeroes a module's parameters: DDPM initialises the last layer of each residual branch this way, so every block starts as the identity.</summary>
    internal static void ZeroParameters(nn.Module module)
    {
        using var noGrad = no_grad();
        foreach (var p in module.parameters()) p.zero_();
    }
}

/// <summary>
/// GroupNorm → SiLU → 3×3 conv → + Linear(SiLU(emb)) → GroupNorm → SiLU → Dropout → 3×3 conv, plus the input
/// (through a 1×1 conv when the channel count changes).
/// </summary>
public sealed class ResBlock : TimestepBlock
{
    private readonly nn.Module<Tensor, Tensor> norm1, conv1, norm2, conv2;
    private readonly nn.Module<Tensor, Tensor> emb_proj;
    private readonly nn.Module<Tensor, Tensor>? skip;
    private readonly double _dropout;
    private readonly long _flops;

    public ResBlock(long inChannels, long outChannels, long embChannels, long size, double dropout, long groups, double eps = 1e-5) : base(nameof(ResBlock))
    {
        norm1 = Layers.GroupNorm(groups, inChannels, eps);
        conv1 = Layers.Conv2d(inChannels, outChannels, 3, padding: 1);
        emb_proj = Layers.Linear(embChannels, outChannels);
        norm2 = Layers.GroupNorm(groups, outChannels, eps);
        conv2 = Layers.Conv2d(outChannels, outChannels, 3, padding: 1);
        ZeroParameters(conv2);
        if (inChannels != outChannels) skip = Layers.Conv2d(inChannels, outChannels, 1);
        _dropout = dropout;
        _flops = ConvFlops(inChannels, outChannels, 3, size) + 2 * embChannels * outChannels + ConvFlops(outChannels, outChannels, 3, size)
                 + (skip is null ? 0 : ConvFlops(inChannels, outChannels, 1, size));
        RegisterComponents();
    }

    public override long ForwardFlops => _flops;

    public override Tensor forward(Tensor x, Tensor emb)
    {
        using var scope = NewDisposeScope();
        var h = conv1.forward(nn.functional.silu(norm1.forward(x)));
        h = h + emb_proj.forward(nn.functional.silu(emb)).unsqueeze(-1).unsqueeze(-1);
        h = nn.functional.silu(norm2.forward(h));
        if (_dropout > 0) h = nn.functional.dropout(h, _dropout, training);
        h = conv2.forward(h);
        var shortcut = skip is null ? x : skip.forward(x);
        return (shortcut + h).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Self-attention over the pixels: GroupNorm, 1×1 q/k/v, softmax(qᵀk/√d) v per head of d channels, 1×1 out, residual.
/// The paper uses one head (d = C).
/// </summary>
public sealed class AttentionBlock : TimestepBlock
{
    private readonly nn.Module<Tensor, Tensor> norm, qkv, proj_out;
    private readonly long _heads, _flops;

    public AttentionBlock(long channels, long size, long groups, double eps = 1e-5, long heads = 1) : base(nameof(AttentionBlock))
    {
        if (heads < 1 || channels % heads != 0)
            throw new ArgumentException($"{channels} channels cannot be split into {heads} attention heads: choose a divisor of the channel count.", nameof(heads));
        _heads = heads;
        norm = Layers.GroupNorm(groups, channels, eps);
        qkv = Layers.Conv2d(channels, 3 * channels, 1);
        proj_out = Layers.Conv2d(channels, channels, 1);
        ZeroParameters(proj_out);
        long pixels = size * size;
        _flops = ConvFlops(channels, 3 * channels, 1, size) + 2 * 2 * pixels * pixels * channels + ConvFlops(channels, channels, 1, size);
        RegisterComponents();
    }

    public override long ForwardFlops => _flops;

    public override Tensor forward(Tensor x, Tensor emb)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var projected = qkv.forward(norm.forward(x));
        Tensor h2;
        if (_heads == 1)
        {
            var parts = projected.reshape(b, 3, c, h * w).permute(1, 0, 3, 2);                   // [3, B, HW, C]
            // scaled_dot_product_attention scales by 1/√(last dim) = 1/√C, as in the paper's attention block.
            var attended = nn.functional.scaled_dot_product_attention(parts[0], parts[1], parts[2]); // [B, HW, C]
            h2 = attended.permute(0, 2, 1).reshape(b, c, h, w);
        }
        else
        {
            // Channel k·d + j of q, k and v is entry j of head k; the scale is 1/√d.
            var parts = projected.reshape(b, 3, _heads, c / _heads, h * w).permute(1, 0, 2, 4, 3); // [3, B, heads, HW, d]
            var attended = nn.functional.scaled_dot_product_attention(parts[0], parts[1], parts[2]); // [B, heads, HW, d]
            h2 = attended.permute(0, 1, 3, 2).reshape(b, c, h, w);
        }
        return (x + proj_out.forward(h2)).MoveToOuterDisposeScope();
    }
}

/// <summary>A stride-2 3×3 convolution, padded symmetrically or on the right and bottom (<see cref="DownsamplePadding"/>).</summary>
public sealed class Downsample : TimestepBlock
{
    private readonly nn.Module<Tensor, Tensor> conv;
    private readonly DownsamplePadding _padding;
    private readonly long _flops;

    public Downsample(long channels, long inSize, DownsamplePadding padding = DownsamplePadding.Symmetric) : base(nameof(Downsample))
    {
        _padding = padding;
        conv = Layers.Conv2d(channels, channels, 3, stride: 2, padding: padding == DownsamplePadding.Symmetric ? 1 : 0);
        _flops = ConvFlops(channels, channels, 3, OutputSize(inSize, padding));
        RegisterComponents();
    }

    /// <summary>The output's height and width: ⌊(n + 2 − 3)/2⌋ + 1 with symmetric padding, ⌊(n + 1 − 3)/2⌋ + 1 with one-sided.</summary>
    public static long OutputSize(long inSize, DownsamplePadding padding) =>
        padding == DownsamplePadding.Symmetric ? (inSize + 1) / 2 : inSize / 2;

    public override long ForwardFlops => _flops;

    public override Tensor forward(Tensor x, Tensor emb)
    {
        if (_padding == DownsamplePadding.Symmetric) return conv.forward(x);
        using var scope = NewDisposeScope();
        return conv.forward(nn.functional.pad(x, new long[] { 0, 1, 0, 1 })).MoveToOuterDisposeScope();
    }
}

/// <summary>Nearest-neighbour ×2 then a 3×3 convolution (no transposed convolution: it runs the backward-data kernels that oneDNN gets wrong, see Runtime/Layers).</summary>
public sealed class Upsample : TimestepBlock
{
    private readonly nn.Module<Tensor, Tensor> conv;
    private readonly long _flops;

    public Upsample(long channels, long inSize) : base(nameof(Upsample))
    {
        conv = Layers.Conv2d(channels, channels, 3, padding: 1);
        _flops = ConvFlops(channels, channels, 3, 2 * inSize);
        RegisterComponents();
    }

    public override long ForwardFlops => _flops;

    public override Tensor forward(Tensor x, Tensor emb)
    {
        using var scope = NewDisposeScope();
        var up = nn.functional.interpolate(x, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Nearest);
        return conv.forward(up).MoveToOuterDisposeScope();
    }
}

/// <summary>A plain layer (the input convolution) in a timestep sequence.</summary>
public sealed class PlainBlock : TimestepBlock
{
    private readonly nn.Module<Tensor, Tensor> layer;
    private readonly long _flops;

    public PlainBlock(nn.Module<Tensor, Tensor> layer, long flops) : base(nameof(PlainBlock))
    {
        this.layer = layer;
        _flops = flops;
        RegisterComponents();
    }

    public override long ForwardFlops => _flops;
    public override Tensor forward(Tensor x, Tensor emb) => layer.forward(x);
}

/// <summary>Blocks applied in order, each given the embedding.</summary>
public sealed class TimestepSequential : TimestepBlock
{
    private readonly ModuleList<TimestepBlock> layers;

    public TimestepSequential(params TimestepBlock[] blocks) : base(nameof(TimestepSequential))
    {
        layers = new ModuleList<TimestepBlock>(blocks);
        RegisterComponents();
    }

    public override long ForwardFlops => layers.Sum(l => l.ForwardFlops);

    public override Tensor forward(Tensor x, Tensor emb)
    {
        using var scope = NewDisposeScope();
        var h = x;
        foreach (var layer in layers) h = layer.forward(h, emb);
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The DDPM noise predictor ε_θ(x_t, t) (Ho et al. 2020, App. B), with an optional class embedding added to the
/// time embedding and an optional doubled output for a learned variance.
/// </summary>
public sealed class UNet : nn.Module<Tensor, Tensor, Tensor>, IDenoisingNetwork
{
    private readonly Sequential time_embed;
    private readonly Embedding? class_embed;
    private readonly ModuleList<TimestepSequential> input_blocks, output_blocks;
    private readonly TimestepSequential middle_block;
    private readonly nn.Module<Tensor, Tensor> out_norm, out_conv;
    private readonly long _flops;

    /// <summary>The name of the class embedding's module: its weights are "class_embed.weight".</summary>
    public const string ClassEmbeddingName = nameof(class_embed);

    public UNetConfig Config { get; }

    /// <summary>
    /// How the forward pass runs (precision, layout); float32 NCHW unless set. Inputs and outputs are float32 NCHW
    /// either way; with bfloat16 the time embedding is computed in float32 and cast, and the output is cast back.
    /// </summary>
    public ComputeSettings Compute { get; set; } = ComputeSettings.Reference;

    public UNet(UNetConfig config) : base(nameof(UNet))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        long ch = config.BaseChannels, emb = config.TimeEmbeddingChannels, groups = config.Groups;
        time_embed = nn.Sequential(("0", Layers.Linear(ch, emb)), ("1", nn.SiLU()), ("2", Layers.Linear(emb, emb)));
        long flops = 2 * ch * emb + 2 * emb * emb;
        if (config.NumClasses > 0) class_embed = nn.Embedding(config.NumClasses + 1, emb);

        var skipChannels = new Stack<long>();
        var (inputs, channels, size) = DownPath(config, emb, skipChannels);
        input_blocks = new ModuleList<TimestepSequential>(inputs.ToArray());

        middle_block = new TimestepSequential(
            new ResBlock(channels, channels, emb, size, config.Dropout, groups, config.NormEpsilon),
            new AttentionBlock(channels, size, groups, config.NormEpsilon, config.AttentionHeads(channels)),
            new ResBlock(channels, channels, emb, size, config.Dropout, groups, config.NormEpsilon));

        var outputs = UpPath(config, emb, skipChannels, ref channels, ref size);
        output_blocks = new ModuleList<TimestepSequential>(outputs.ToArray());

        out_norm = Layers.GroupNorm(groups, channels, config.NormEpsilon);
        out_conv = Layers.Conv2d(channels, config.OutChannels, 3, padding: 1);
        TimestepBlock.ZeroParameters(out_conv);
        flops += inputs.Sum(b => b.ForwardFlops) + middle_block.ForwardFlops + outputs.Sum(b => b.ForwardFlops)
                 + TimestepBlock.ConvFlops(channels, config.OutChannels, 3, config.ImageSize);
        _flops = flops;
        RegisterComponents();
    }

    /// <summary>The input convolution and the down path, level by level (ResBlocks with attention where configured, then a downsample); pushes each output's channels for the skips.</summary>
    private static (List<TimestepSequential> Blocks, long Channels, long Size) DownPath(UNetConfig config, long emb, Stack<long> skipChannels)
    {
        long ch = config.BaseChannels, groups = config.Groups;
        var inputs = new List<TimestepSequential>
        {
            new(new PlainBlock(Layers.Conv2d(config.InChannels, ch, 3, padding: 1), TimestepBlock.ConvFlops(config.InChannels, ch, 3, config.ImageSize))),
        };
        skipChannels.Push(ch);
        long channels = ch, size = config.ImageSize;
        var attention = config.AttentionResolutions.ToHashSet();
        for (int level = 0; level < config.Levels; level++)
        {
            long outChannels = ch * config.ChannelMultipliers[level];
            for (int i = 0; i < config.ResBlocksPerLevel; i++)
            {
                var blocks = new List<TimestepBlock> { new ResBlock(channels, outChannels, emb, size, config.Dropout, groups, config.NormEpsilon) };
                channels = outChannels;
                if (attention.Contains((int)size)) blocks.Add(new AttentionBlock(channels, size, groups, config.NormEpsilon, config.AttentionHeads(channels)));
                inputs.Add(new TimestepSequential(blocks.ToArray()));
                skipChannels.Push(channels);
            }
            if (level != config.Levels - 1)
            {
                inputs.Add(new TimestepSequential(new Downsample(channels, size, config.DownsamplePadding)));
                size = Downsample.OutputSize(size, config.DownsamplePadding);
                skipChannels.Push(channels);
            }
        }
        return (inputs, channels, size);
    }

    /// <summary>The up path: per level one ResBlock more than down, each taking a skip, attention where configured, an upsample between levels.</summary>
    private static List<TimestepSequential> UpPath(UNetConfig config, long emb, Stack<long> skipChannels, ref long channels, ref long size)
    {
        long ch = config.BaseChannels, groups = config.Groups;
        var attention = config.AttentionResolutions.ToHashSet();
        var outputs = new List<TimestepSequential>();
        for (int level = config.Levels - 1; level >= 0; level--)
        {
            long outChannels = ch * config.ChannelMultipliers[level];
            for (int i = 0; i <= config.ResBlocksPerLevel; i++)
            {
                var blocks = new List<TimestepBlock> { new ResBlock(channels + skipChannels.Pop(), outChannels, emb, size, config.Dropout, groups, config.NormEpsilon) };
                channels = outChannels;
                if (attention.Contains((int)size)) blocks.Add(new AttentionBlock(channels, size, groups, config.NormEpsilon, config.AttentionHeads(channels)));
                if (level != 0 && i == config.ResBlocksPerLevel)
                {
                    blocks.Add(new Upsample(channels, size));
                    size *= 2;
                }
                outputs.Add(new TimestepSequential(blocks.ToArray()));
            }
        }
        return outputs;
    }

    /// <summary>Forward FLOPs for one image, counted analytically (2 per multiply-add).</summary>
    public long ForwardFlops => _flops;

    public long ParameterCount => parameters().Sum(p => p.numel());

    public override Tensor forward(Tensor x, Tensor timesteps) => Forward(x, timesteps, null);

    /// <summary>ε_θ(x_t, t, y); <paramref name="classLabels"/> null (or the index <see cref="UNetConfig.NullClass"/>) means no class.</summary>
    public Tensor Forward(Tensor x, Tensor timesteps, Tensor? classLabels)
    {
        if (x.dim() != 4 || x.shape[1] != Config.InChannels || x.shape[2] != Config.ImageSize || x.shape[3] != Config.ImageSize)
            throw new ArgumentException($"The U-Net expects images of shape [B, {Config.InChannels}, {Config.ImageSize}, {Config.ImageSize}]; got [{string.Join(",", x.shape)}].", nameof(x));
        using var scope = NewDisposeScope();
        var emb = time_embed.forward(TimestepEmbedding.Sinusoidal(timesteps, Config.BaseChannels, x.dtype, Config.FlipSinToCos, Config.FrequencyShift));
        if (class_embed is not null)
        {
            var labels = classLabels ?? full(new long[] { x.shape[0] }, Config.NullClass, dtype: ScalarType.Int64, device: x.device);
            emb = emb + class_embed.forward(labels);
        }
        else if (classLabels is not null)
        {
            throw new ArgumentException("This U-Net has no class embedding (NumClasses = 0); pass no class labels or build it with NumClasses > 0.", nameof(classLabels));
        }
        var h = x;
        if (Compute.Precision == Precision.Bf16)
        {
            h = h.to_type(ScalarType.BFloat16);
            emb = emb.to_type(ScalarType.BFloat16);
        }
        if (Compute.ChannelsLast) h = Layers.ToChannelsLast(h);
        var skips = new List<Tensor>();
        foreach (var block in input_blocks)
        {
            h = block.forward(h, emb);
            skips.Add(h);
        }
        h = middle_block.forward(h, emb);
        foreach (var block in output_blocks)
        {
            var skip = skips[^1];
            skips.RemoveAt(skips.Count - 1);
            h = block.forward(cat(new[] { h, skip }, 1), emb);
        }
        var result = out_conv.forward(nn.functional.silu(out_norm.forward(h)));
        if (result.dtype != x.dtype) result = result.to_type(x.dtype);
        return result.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>This network as a <see cref="Denoiser"/>, optionally for fixed class labels.</summary>
    public Denoiser AsDenoiser(Tensor? classLabels = null) => (sample, timesteps) => Forward(sample, timesteps, classLabels);
}
