using System.Text.Json.Nodes;
using Ddpm.Models;
using Ddpm.Training;

namespace Ddpm.Interop;

/// <summary>
/// diffusers' UNet2DModel config.json ⇄ <see cref="UNetConfig"/>. UNet2DModel with Down/AttnDown and Up/AttnUp blocks
/// is the paper's U-Net (google/ddpm-* are written in it); a field whose value our U-Net cannot express is a
/// <see cref="CheckpointException"/> naming the field and the value.
/// </summary>
public static class DiffusersUNetConfig
{
    public const string ClassName = "UNet2DModel";
    /// <summary>The diffusers version whose config format the writer follows (the fixtures' version).</summary>
    public const string DiffusersVersion = "0.30.0";

    /// <summary>
    /// A private key (diffusers drops keys that start with "_") recording that the last class-embedding row is our
    /// "no class" row. A class-conditional UNet2DModel without it has only class rows; we add a zero "no class" row.
    /// </summary>
    public const string NullClassKey = "_ddpm_null_class";

    private const string Down = "DownBlock2D", AttnDown = "AttnDownBlock2D", Up = "UpBlock2D", AttnUp = "AttnUpBlock2D";

    /// <summary>Reads a UNet2DModel config; <paramref name="source"/> names the file in errors.</summary>
    public static UNetConfig Read(JsonObject json, string source)
    {
        var reader = new ConfigReader(json, source);
        string className = reader.String("_class_name", ClassName);
        if (className != ClassName)
            throw reader.Unsupported("_class_name", className, $"only {ClassName} (the DDPM U-Net) is supported");
        reader.Require("act_fn", "silu");
        reader.Require("center_input_sample", false);
        reader.Require("time_embedding_type", "positional");
        reader.Require("resnet_time_scale_shift", "default");
        reader.Require("add_attention", true);
        reader.Require("downsample_type", "conv");
        reader.Require("upsample_type", "conv");
        reader.Require("mid_block_type", "UNetMidBlock2D");
        reader.RequireNull("class_embed_type");
        if (reader.Double("mid_block_scale_factor", 1) != 1)
            throw reader.Unsupported("mid_block_scale_factor", reader.Double("mid_block_scale_factor", 1), "the residual blocks here are not rescaled (use 1)");

        int imageSize = reader.SampleSize();
        int inChannels = reader.Int("in_channels", 3), outChannels = reader.Int("out_channels", 3);
        if (outChannels != inChannels && outChannels != 2 * inChannels)
            throw reader.Unsupported("out_channels", outChannels, $"it must equal in_channels ({inChannels}) or twice it (a learned variance)");
        var blockChannels = reader.IntList("block_out_channels", new[] { 224, 448, 672, 896 });
        if (blockChannels.Length == 0 || blockChannels[0] < 1) throw reader.Unsupported("block_out_channels", reader.Raw("block_out_channels"), "it needs at least one positive entry");
        int ch = blockChannels[0];
        if (blockChannels.Any(c => c % ch != 0))
            throw reader.Unsupported("block_out_channels", reader.Raw("block_out_channels"), $"every level's channels must be a multiple of the first level's ({ch})");
        int levels = blockChannels.Length;

        var down = reader.StringList("down_block_types", new[] { Down, AttnDown, AttnDown, AttnDown });
        var up = reader.StringList("up_block_types", new[] { AttnUp, AttnUp, AttnUp, Up });
        if (down.Length != levels) throw reader.Unsupported("down_block_types", reader.Raw("down_block_types"), $"it must list one block per entry of block_out_channels ({levels})");
        if (up.Length != levels) throw reader.Unsupported("up_block_types", reader.Raw("up_block_types"), $"it must list one block per entry of block_out_channels ({levels})");
        var attentionSizes = new List<int>();
        for (int level = 0; level < levels; level++)
        {
            bool attends = down[level] switch
            {
                Down => false,
                AttnDown => true,
                _ => throw reader.Unsupported("down_block_types", down[level], $"only {Down} and {AttnDown} are supported"),
            };
            string upType = up[levels - 1 - level];
            if (upType is not (Up or AttnUp)) throw reader.Unsupported("up_block_types", upType, $"only {Up} and {AttnUp} are supported");
            if ((upType == AttnUp) != attends)
                throw reader.Unsupported("up_block_types", reader.Raw("up_block_types"), "attention must sit at the same levels on the way up as down_block_types has it on the way down");
            if (attends) attentionSizes.Add(imageSize >> level);
        }

        int groups = reader.Int("norm_num_groups", 32);
        var attentionGroups = reader.NullableInt("attn_norm_num_groups");
        if (attentionGroups is not null && attentionGroups != groups)
            throw reader.Unsupported("attn_norm_num_groups", attentionGroups, $"attention normalises with norm_num_groups ({groups}) here");
        int downsamplePadding = reader.Int("downsample_padding", 1);
        var padding = downsamplePadding switch
        {
            0 => DownsamplePadding.RightBottom,
            1 => DownsamplePadding.Symmetric,
            _ => throw reader.Unsupported("downsample_padding", downsamplePadding, "use 0 (right and bottom, TF \"SAME\") or 1 (symmetric)"),
        };
        int numClasses = 0;
        var classEmbeddings = reader.NullableInt("num_class_embeds");
        if (classEmbeddings is not null)
        {
            if (classEmbeddings < 1) throw reader.Unsupported("num_class_embeds", classEmbeddings, "use null or a positive count");
            var nullClass = reader.NullableInt(NullClassKey);
            if (nullClass is not null && nullClass != classEmbeddings - 1)
                throw reader.Unsupported(NullClassKey, nullClass, $"the no-class row must be the last of num_class_embeds ({classEmbeddings})");
            numClasses = nullClass ?? classEmbeddings.Value;
        }

        var config = new UNetConfig(
            ImageSize: imageSize,
            InChannels: inChannels,
            BaseChannels: ch,
            ChannelMultipliers: blockChannels.Select(c => c / ch).ToArray(),
            ResBlocksPerLevel: reader.Int("layers_per_block", 2),
            AttentionResolutions: attentionSizes.ToArray(),
            Dropout: reader.Double("dropout", 0.0),
            Groups: groups,
            NumClasses: numClasses,
            LearnSigma: outChannels == 2 * inChannels,
            NormEpsilon: reader.Double("norm_eps", 1e-5),
            DownsamplePadding: padding,
            FlipSinToCos: reader.Bool("flip_sin_to_cos", true),
            FrequencyShift: reader.Double("freq_shift", 0),
            AttentionHeadChannels: reader.NullableInt("attention_head_dim", ifMissing: 8) ?? 0);
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException($"{source} describes a U-Net that cannot be built ({InvalidMessage(e)}): the config is inconsistent.", e);
        }
        return config;
    }

    /// <summary>
    /// The UNet2DModel config of <paramref name="config"/>, every field explicit (the key set diffusers
    /// <see cref="DiffusersVersion"/> writes). A U-Net with differently placed attention on its two paths cannot occur here.
    /// </summary>
    public static JsonObject Write(UNetConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var attention = config.AttentionResolutions.ToHashSet();
        var levels = Enumerable.Range(0, config.Levels).ToArray();
        var json = new JsonObject
        {
            ["_class_name"] = ClassName,
            ["_diffusers_version"] = DiffusersVersion,
            ["act_fn"] = "silu",
            ["add_attention"] = true,
            ["attention_head_dim"] = config.AttentionHeadChannels == 0 ? null : config.AttentionHeadChannels,
            ["attn_norm_num_groups"] = null,
            ["block_out_channels"] = IntArray(config.ChannelMultipliers.Select(m => m * config.BaseChannels)),
            ["center_input_sample"] = false,
            ["class_embed_type"] = null,
            ["down_block_types"] = StringArray(levels.Select(l => attention.Contains(config.ImageSize >> l) ? AttnDown : Down)),
            ["downsample_padding"] = config.DownsamplePadding == DownsamplePadding.RightBottom ? 0 : 1,
            ["downsample_type"] = "conv",
            ["dropout"] = config.Dropout,
            ["flip_sin_to_cos"] = config.FlipSinToCos,
            ["freq_shift"] = Number(config.FrequencyShift),
            ["in_channels"] = config.InChannels,
            ["layers_per_block"] = config.ResBlocksPerLevel,
            ["mid_block_scale_factor"] = 1,
            ["norm_eps"] = config.NormEpsilon,
            ["norm_num_groups"] = config.Groups,
            ["num_class_embeds"] = config.NumClasses > 0 ? config.NumClasses + 1 : null,
            ["num_train_timesteps"] = null,
            ["out_channels"] = config.OutChannels,
            ["resnet_time_scale_shift"] = "default",
            ["sample_size"] = config.ImageSize,
            ["time_embedding_type"] = "positional",
            ["up_block_types"] = StringArray(levels.Reverse().Select(l => attention.Contains(config.ImageSize >> l) ? AttnUp : Up)),
            ["upsample_type"] = "conv",
        };
        if (config.NumClasses > 0) json[NullClassKey] = config.NumClasses;
        return json;
    }

    /// <summary>An integral double as a JSON integer (diffusers writes freq_shift as 0 or 1).</summary>
    internal static JsonNode Number(double value) =>
        value == Math.Floor(value) && Math.Abs(value) < int.MaxValue ? JsonValue.Create((int)value) : JsonValue.Create(value);

    private static JsonArray IntArray(IEnumerable<int> values) => new(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
    private static JsonArray StringArray(IEnumerable<string> values) => new(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());

    private static string InvalidMessage(ArgumentException e) =>
        e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal);
}
