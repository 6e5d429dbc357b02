using System.Text.Json.Serialization;

namespace Ddpm.Models;

/// <summary>
/// The DDPM U-Net (Ho et al. 2020, App. B): a PixelCNN++-style backbone with GroupNorm, timestep embedding added
/// in every residual block and single-head self-attention at chosen resolutions.
/// </summary>
/// <param name="ImageSize">Height and width of the (square) input.</param>
/// <param name="InChannels">Image channels.</param>
/// <param name="BaseChannels">ch: channels of the first level; the time embedding has 4·ch.</param>
/// <param name="ChannelMultipliers">Channels of level i are ch·mult[i]; every level but the last halves the resolution.</param>
/// <param name="ResBlocksPerLevel">Residual blocks per level on the way down (one more on the way up).</param>
/// <param name="AttentionResolutions">Feature-map sizes (e.g. 16) at which attention follows each residual block.</param>
/// <param name="Dropout">Dropout rate inside residual blocks.</param>
/// <param name="Groups">GroupNorm groups.</param>
/// <param name="NumClasses">Classes for a class embedding (0 = unconditional); index NumClasses means "no class".</param>
/// <param name="LearnSigma">Doubles the output channels for a learned variance.</param>
/// <param name="NormEpsilon">ε of every GroupNorm (PyTorch's 1e-5; the paper's code and diffusers' UNet2DModel use 1e-6).</param>
/// <param name="DownsamplePadding">Where a downsampling convolution pads its input.</param>
/// <param name="FlipSinToCos">Puts the cosine half of the timestep embedding first (diffusers' flip_sin_to_cos).</param>
/// <param name="FrequencyShift">The embedding's frequencies are 10000^{−i/(h − shift)} (diffusers' freq_shift; the paper's code has 1).</param>
/// <param name="AttentionHeadChannels">Channels per attention head (0: one head over all channels, as in the paper).</param>
public sealed record UNetConfig(
    int ImageSize,
    int InChannels,
    int BaseChannels,
    int[] ChannelMultipliers,
    int ResBlocksPerLevel,
    int[] AttentionResolutions,
    double Dropout = 0.0,
    int Groups = 32,
    int NumClasses = 0,
    bool LearnSigma = false,
    double NormEpsilon = 1e-5,
    DownsamplePadding DownsamplePadding = DownsamplePadding.Symmetric,
    bool FlipSinToCos = false,
    double FrequencyShift = 1,
    int AttentionHeadChannels = 0)
{
    [JsonIgnore] public int OutChannels => InChannels * (LearnSigma ? 2 : 1);
    [JsonIgnore] public int Levels => ChannelMultipliers.Length;
    [JsonIgnore] public int TimeEmbeddingChannels => 4 * BaseChannels;
    /// <summary>The class index that stands for "no class" (classifier-free guidance).</summary>
    [JsonIgnore] public int NullClass => NumClasses;

    /// <summary>Throws an ArgumentException that names the value to change.</summary>
    public void Validate()
    {
        if (ImageSize < 1) throw new ArgumentException($"ImageSize must be >= 1; got {ImageSize}.", nameof(ImageSize));
        if (InChannels < 1) throw new ArgumentException($"InChannels must be >= 1; got {InChannels}.", nameof(InChannels));
        if (BaseChannels < 1) throw new ArgumentException($"BaseChannels must be >= 1; got {BaseChannels}.", nameof(BaseChannels));
        if (ChannelMultipliers is null || ChannelMultipliers.Length == 0 || ChannelMultipliers.Any(m => m < 1))
            throw new ArgumentException("ChannelMultipliers must list at least one level, each multiplier >= 1.", nameof(ChannelMultipliers));
        if (ResBlocksPerLevel < 1) throw new ArgumentException($"ResBlocksPerLevel must be >= 1; got {ResBlocksPerLevel}.", nameof(ResBlocksPerLevel));
        if (Groups < 1) throw new ArgumentException($"Groups must be >= 1; got {Groups}.", nameof(Groups));
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentException($"Dropout must be in [0, 1); got {Dropout}.", nameof(Dropout));
        if (!(NormEpsilon > 0) || double.IsInfinity(NormEpsilon)) throw new ArgumentException($"NormEpsilon must be a finite number > 0; got {NormEpsilon}.", nameof(NormEpsilon));
        if (!Enum.IsDefined(DownsamplePadding)) throw new ArgumentException($"DownsamplePadding {DownsamplePadding} is not one of {string.Join(", ", Enum.GetNames<DownsamplePadding>())}.", nameof(DownsamplePadding));
        if (BaseChannels / 2 > 1 && !(BaseChannels / 2 - FrequencyShift > 0))
            throw new ArgumentException($"FrequencyShift must be below half the embedding width ({BaseChannels / 2}); got {FrequencyShift}.", nameof(FrequencyShift));
        if (AttentionHeadChannels < 0) throw new ArgumentException($"AttentionHeadChannels must be >= 0 (0: one head); got {AttentionHeadChannels}.", nameof(AttentionHeadChannels));
        if (NumClasses < 0) throw new ArgumentException($"NumClasses must be >= 0 (0: unconditional); got {NumClasses}.", nameof(NumClasses));
        int factor = 1 << (Levels - 1);
        if (ImageSize % factor != 0)
            throw new ArgumentException($"ImageSize {ImageSize} is not divisible by 2^(levels-1) = {factor} for {Levels} levels: change ImageSize to a multiple of {factor} or use fewer ChannelMultipliers.", nameof(ImageSize));
        foreach (int channels in ChannelMultipliers.Select(m => m * BaseChannels).Prepend(BaseChannels).Distinct())
            if (channels % Groups != 0)
                throw new ArgumentException($"{channels} channels are not divisible by Groups = {Groups}: change BaseChannels (now {BaseChannels}) or Groups so that every level's channel count is a multiple of Groups.", nameof(Groups));
        var resolutions = Enumerable.Range(0, Levels).Select(i => ImageSize >> i).ToHashSet();
        foreach (int r in AttentionResolutions ?? Array.Empty<int>())
            if (!resolutions.Contains(r))
                throw new ArgumentException($"AttentionResolutions contains {r}, which is not a feature-map size of this network ({string.Join(", ", resolutions.OrderDescending())}).", nameof(AttentionResolutions));
        if (AttentionHeadChannels > 0)
        {
            var attended = Enumerable.Range(0, Levels).Where(i => (AttentionResolutions ?? Array.Empty<int>()).Contains(ImageSize >> i))
                .Select(i => BaseChannels * ChannelMultipliers[i]).Append(BaseChannels * ChannelMultipliers[^1]);
            foreach (int channels in attended)
                if (channels % AttentionHeadChannels != 0)
                    throw new ArgumentException($"{channels} attention channels are not divisible by AttentionHeadChannels = {AttentionHeadChannels}: choose a divisor of every attended level's channels, or 0 for one head.", nameof(AttentionHeadChannels));
        }
    }

    /// <summary>Attention heads at a level of <paramref name="channels"/> channels.</summary>
    public int AttentionHeads(long channels) => AttentionHeadChannels == 0 ? 1 : (int)(channels / AttentionHeadChannels);
}

/// <summary>Where a stride-2 downsampling convolution pads its input.</summary>
public enum DownsamplePadding
{
    /// <summary>One pixel on every side (PyTorch's padding = 1; diffusers' downsample_padding 1).</summary>
    Symmetric,
    /// <summary>One pixel on the right and bottom only, then no padding: TensorFlow's "SAME" for even sizes, as the paper's code (diffusers' downsample_padding 0).</summary>
    RightBottom,
}

/// <summary>Named configurations.</summary>
public static class UNetPresets
{
    /// <summary>
    /// The paper's CIFAR-10 model: 35.7 million parameters, with the paper's GroupNorm ε (1e-6) and TF "SAME"
    /// downsampling, so that it is google/ddpm-cifar10-32's configuration exactly (dropout only acts in training).
    /// </summary>
    public static UNetConfig Cifar10 => new(32, 3, 128, new[] { 1, 2, 2, 2 }, 2, new[] { 16 }, Dropout: 0.1,
        NormEpsilon: 1e-6, DownsamplePadding: DownsamplePadding.RightBottom);

    /// <summary>The paper's CelebA-HQ / LSUN 256×256 model: 114 million parameters, configured as google/ddpm-*-256.</summary>
    public static UNetConfig Ddpm256 => new(256, 3, 128, new[] { 1, 1, 2, 2, 4, 4 }, 2, new[] { 16 }, Dropout: 0.0,
        NormEpsilon: 1e-6, DownsamplePadding: DownsamplePadding.RightBottom);

    /// <summary>
    /// Fashion-MNIST on 2 CPU cores: 28×28×1, ch 32, multipliers (1, 2, 2) → 28, 14, 7, two residual blocks per
    /// level, attention at 7×7 only: 1.62 M parameters, 0.55 GFLOP per forward. ch 64 costs 4× the FLOPs
    /// (38.7 vs 98 images/s in training at batch 128, measured side by side), too slow to see enough data in a few CPU-hours. No dropout: a few epochs
    /// on CPU leave nothing to overfit. See docs/performance.md for the measurements behind this choice.
    /// </summary>
    public static UNetConfig FashionMnist => new(28, 1, 32, new[] { 1, 2, 2 }, 2, new[] { 7 }, Dropout: 0.0);

    /// <summary>
    /// Small RGB images (users' photo folders, CIFAR-10) on a CPU: 32×32×3, the fashion-mnist preset's widths (ch 32,
    /// multipliers 1, 2, 2 → 32, 16, 8), attention at 8×8: about 1.3 times its FLOPs per image.
    /// </summary>
    public static UNetConfig Rgb32 => new(32, 3, 32, new[] { 1, 2, 2 }, 2, new[] { 8 }, Dropout: 0.0);

    /// <summary>A 177k-parameter network on 8×8 images for fast tests.</summary>
    public static UNetConfig Tiny => new(8, 1, 16, new[] { 1, 2 }, 1, new[] { 4 }, Dropout: 0.0, Groups: 8);

    public static IReadOnlyDictionary<string, UNetConfig> All { get; } = new Dictionary<string, UNetConfig>
    {
        ["ddpm-cifar10"] = Cifar10,
        ["ddpm-256"] = Ddpm256,
        ["fashion-mnist"] = FashionMnist,
        ["rgb32"] = Rgb32,
        ["tiny"] = Tiny,
    };

    /// <summary>The preset called <paramref name="name"/>, or an ArgumentException listing the known names.</summary>
    public static UNetConfig Get(string name) =>
        All.TryGetValue(name, out var config)
            ? config
            : throw new ArgumentException($"Unknown preset '{name}'. Known presets: {string.Join(", ", All.Keys)}.", nameof(name));
}
