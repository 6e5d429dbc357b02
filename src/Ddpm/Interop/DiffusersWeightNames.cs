using Ddpm.Models;
using Ddpm.Training;
using static TorchSharp.torch;

namespace Ddpm.Interop;

/// <summary>
/// Our U-Net's state-dict names ⇄ UNet2DModel's. The two networks have the same layers in the same order; the names
/// differ, and attention keeps q, k and v in one 1×1 convolution here (weight [3C, C, 1, 1]) where diffusers has three
/// Linear layers (to_q, to_k, to_v: [C, C]; before mid-2023 query, key, value, with proj_attn for to_out.0).
/// </summary>
public static class DiffusersWeightNames
{
    private enum Kind { Module, ResNet, Attention }

    private static readonly (string Ours, string Theirs)[] ResNetParts =
    {
        ("norm1", "norm1"), ("conv1", "conv1"), ("emb_proj", "time_emb_proj"), ("norm2", "norm2"), ("conv2", "conv2"), ("skip", "conv_shortcut"),
    };

    /// <summary>Attention names written before mid-2023 and today's.</summary>
    private static readonly (string Legacy, string Current)[] LegacyAttention =
    {
        ("query", "to_q"), ("key", "to_k"), ("value", "to_v"), ("proj_attn", "to_out.0"),
    };

    /// <summary>Every module of a U-Net of <paramref name="config"/>: our prefix, diffusers' prefix, and what it is.</summary>
    private static IEnumerable<(string Ours, string Theirs, Kind Kind)> Modules(UNetConfig config)
    {
        yield return ("time_embed.0", "time_embedding.linear_1", Kind.Module);
        yield return ("time_embed.2", "time_embedding.linear_2", Kind.Module);
        if (config.NumClasses > 0) yield return (UNet.ClassEmbeddingName, "class_embedding", Kind.Module);
        yield return ("input_blocks.0.layers.0.layer", "conv_in", Kind.Module);
        var attention = config.AttentionResolutions.ToHashSet();
        int block = 1;
        for (int level = 0; level < config.Levels; level++)
        {
            bool attends = attention.Contains(config.ImageSize >> level);
            for (int i = 0; i < config.ResBlocksPerLevel; i++, block++)
            {
                yield return ($"input_blocks.{block}.layers.0", $"down_blocks.{level}.resnets.{i}", Kind.ResNet);
                if (attends) yield return ($"input_blocks.{block}.layers.1", $"down_blocks.{level}.attentions.{i}", Kind.Attention);
            }
            if (level != config.Levels - 1)
                yield return ($"input_blocks.{block++}.layers.0.conv", $"down_blocks.{level}.downsamplers.0.conv", Kind.Module);
        }
        yield return ("middle_block.layers.0", "mid_block.resnets.0", Kind.ResNet);
        yield return ("middle_block.layers.1", "mid_block.attentions.0", Kind.Attention);
        yield return ("middle_block.layers.2", "mid_block.resnets.1", Kind.ResNet);
        block = 0;
        for (int level = config.Levels - 1; level >= 0; level--)
        {
            int upBlock = config.Levels - 1 - level;
            bool attends = attention.Contains(config.ImageSize >> level);
            for (int i = 0; i <= config.ResBlocksPerLevel; i++, block++)
            {
                yield return ($"output_blocks.{block}.layers.0", $"up_blocks.{upBlock}.resnets.{i}", Kind.ResNet);
                if (attends) yield return ($"output_blocks.{block}.layers.1", $"up_blocks.{upBlock}.attentions.{i}", Kind.Attention);
                if (level != 0 && i == config.ResBlocksPerLevel)
                    yield return ($"output_blocks.{block}.layers.{(attends ? 2 : 1)}.conv", $"up_blocks.{upBlock}.upsamplers.0.conv", Kind.Module);
            }
        }
        yield return ("out_norm", "conv_norm_out", Kind.Module);
        yield return ("out_conv", "conv_out", Kind.Module);
    }

    /// <summary>
    /// Our U-Net's tensors (<paramref name="ours"/>, by our names) under UNet2DModel's names, attention under today's
    /// names (to_q, to_k, to_v, to_out.0 as 2-D Linear weights). Call it in a DisposeScope.
    /// </summary>
    public static Dictionary<string, Tensor> ToDiffusers(UNetConfig config, IReadOnlyDictionary<string, Tensor> ours)
    {
        var theirs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (o, t, kind) in Modules(config))
        {
            switch (kind)
            {
                case Kind.Module:
                    CopyParameters(ours, o, theirs, t);
                    break;
                case Kind.ResNet:
                    foreach (var (op, tp) in ResNetParts)
                        if (ours.ContainsKey($"{o}.{op}.weight")) CopyParameters(ours, $"{o}.{op}", theirs, $"{t}.{tp}");
                    break;
                case Kind.Attention:
                    CopyParameters(ours, $"{o}.norm", theirs, $"{t}.group_norm");
                    var weights = Take(ours, $"{o}.qkv.weight").chunk(3, 0);
                    var biases = Take(ours, $"{o}.qkv.bias").chunk(3, 0);
                    string[] names = { "to_q", "to_k", "to_v" };
                    for (int i = 0; i < 3; i++)
                    {
                        theirs[$"{t}.{names[i]}.weight"] = weights[i].flatten(1).clone();
                        theirs[$"{t}.{names[i]}.bias"] = biases[i].clone();
                    }
                    theirs[$"{t}.to_out.0.weight"] = Take(ours, $"{o}.proj_out.weight").flatten(1).clone();
                    theirs[$"{t}.to_out.0.bias"] = Take(ours, $"{o}.proj_out.bias").clone();
                    break;
            }
        }
        return theirs;
    }

    /// <summary>
    /// UNet2DModel's tensors by our names, for a U-Net of <paramref name="config"/>; both attention namings are read.
    /// A missing tensor, one the config does not describe, or a wrong shape (checked against <paramref name="shapes"/>,
    /// our tensors' shapes) is a <see cref="CheckpointException"/> that names the diffusers tensor. The tensors (in each
    /// source tensor's dtype) may be views of <paramref name="theirs"/>: call it in a DisposeScope and copy them out.
    /// </summary>
    public static Dictionary<string, Tensor> FromDiffusers(UNetConfig config, IReadOnlyDictionary<string, Tensor> theirs,
        IReadOnlyDictionary<string, long[]> shapes, string source)
    {
        var named = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in theirs) named[CurrentName(name)] = tensor;
        var used = new HashSet<string>(StringComparer.Ordinal);
        var ours = new Dictionary<string, Tensor>(StringComparer.Ordinal);

        // The tensor under diffusers' name, checked against the shape ours needs (-1: any size); a Linear's 2-D weight
        // stands for a 1×1 convolution's [C, C, 1, 1].
        Tensor Read(string name, long[] expected)
        {
            if (!named.TryGetValue(name, out var tensor))
                throw new CheckpointException($"{source} has no tensor '{name}', which its config.json implies: the weights do not fit the config.");
            used.Add(name);
            bool fits = tensor.dim() == expected.Length && tensor.shape.Zip(expected).All(p => p.Second < 0 || p.First == p.Second)
                        || expected.Length == 4 && expected[2] == 1 && expected[3] == 1 && tensor.shape.SequenceEqual(expected[..2]);
            if (!fits)
                throw new CheckpointException($"{source}: '{name}' has shape [{string.Join(", ", tensor.shape)}] but the config.json implies [{string.Join(", ", expected.Select(e => e < 0 ? "*" : e.ToString()))}]: the weights do not fit the config.");
            return expected.Contains(-1) ? tensor : tensor.reshape(expected);
        }
        void Module(string oursPrefix, string theirsPrefix)
        {
            foreach (string p in new[] { "weight", "bias" })
                if (shapes.TryGetValue($"{oursPrefix}.{p}", out var shape)) ours[$"{oursPrefix}.{p}"] = Read($"{theirsPrefix}.{p}", shape);
        }

        foreach (var (o, t, kind) in Modules(config))
        {
            switch (kind)
            {
                case Kind.Module when o == UNet.ClassEmbeddingName:
                    // UNet2DModel's embedding has num_class_embeds rows; ours one more, the "no class" row of classifier-free
                    // guidance. A file we wrote has it; another file's rows are all classes, and the "no class" row starts at zero.
                    var shape = shapes[$"{o}.weight"];
                    var rows = Read($"{t}.weight", new[] { -1L, shape[1] });
                    if (rows.shape[0] == shape[0] - 1) rows = cat(new[] { rows, zeros(1, shape[1], dtype: rows.dtype) }, 0);
                    else if (rows.shape[0] != shape[0])
                        throw new CheckpointException($"{source}: '{t}.weight' has {rows.shape[0]} rows but the config.json implies {shape[0] - 1} classes: the weights do not fit the config.");
                    ours[$"{o}.weight"] = rows;
                    break;
                case Kind.Module:
                    Module(o, t);
                    break;
                case Kind.ResNet:
                    foreach (var (op, tp) in ResNetParts) Module($"{o}.{op}", $"{t}.{tp}");
                    break;
                case Kind.Attention:
                    Module($"{o}.norm", $"{t}.group_norm");
                    long c = shapes[$"{o}.qkv.weight"][1];
                    string[] parts = { "to_q", "to_k", "to_v" };
                    ours[$"{o}.qkv.weight"] = cat(parts.Select(n => Read($"{t}.{n}.weight", new[] { c, c, 1L, 1L })).ToArray(), 0);
                    ours[$"{o}.qkv.bias"] = cat(parts.Select(n => Read($"{t}.{n}.bias", new[] { c })).ToArray(), 0);
                    ours[$"{o}.proj_out.weight"] = Read($"{t}.to_out.0.weight", shapes[$"{o}.proj_out.weight"]);
                    ours[$"{o}.proj_out.bias"] = Read($"{t}.to_out.0.bias", shapes[$"{o}.proj_out.bias"]);
                    break;
            }
        }
        var extra = named.Keys.Where(k => !used.Contains(k)).Order(StringComparer.Ordinal).Take(3).ToArray();
        if (extra.Length > 0)
            throw new CheckpointException($"{source} holds tensors its config.json does not describe ({string.Join(", ", extra)}): the weights do not fit the config.");
        return ours;
    }

    /// <summary>Today's name of an attention tensor written under the pre-2023 names; other names unchanged.</summary>
    private static string CurrentName(string name)
    {
        if (!name.Contains(".attentions.", StringComparison.Ordinal)) return name;
        foreach (var (legacy, current) in LegacyAttention)
            foreach (string p in new[] { "weight", "bias" })
                if (name.EndsWith($".{legacy}.{p}", StringComparison.Ordinal))
                    return $"{name[..^$"{legacy}.{p}".Length]}{current}.{p}";
        return name;
    }

    private static void CopyParameters(IReadOnlyDictionary<string, Tensor> ours, string oursPrefix, Dictionary<string, Tensor> theirs, string theirsPrefix)
    {
        foreach (string p in new[] { "weight", "bias" })
            if (ours.TryGetValue($"{oursPrefix}.{p}", out var tensor)) theirs[$"{theirsPrefix}.{p}"] = tensor.clone();
    }

    private static Tensor Take(IReadOnlyDictionary<string, Tensor> ours, string name) =>
        ours.TryGetValue(name, out var tensor) ? tensor : throw new ArgumentException($"The U-Net has no tensor '{name}'.", nameof(ours));
}
