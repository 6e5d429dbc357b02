using Ddpm.Models;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>
/// One forward pass of a model's network on given tensors, as a user compares a conversion with a Python reference:
/// x [B, C, H, W], t [B] (integers) and, for a class-conditional U-Net, class_labels [B] (optional).
/// </summary>
public static class NetworkRun
{
    public const string InputName = "x", TimestepName = "t", ClassLabelsName = "class_labels", OutputName = "out";

    /// <summary>The network's output for <paramref name="inputs"/> (float32); every problem with the inputs is an <see cref="InvalidRequestException"/> naming the tensor.</summary>
    public static Tensor Run(DiffusionModel model, IReadOnlyDictionary<string, Tensor> inputs)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputs);
        var unet = model.RequireImageModel("'model run'");
        const string field = "inputs";
        if (!inputs.TryGetValue(InputName, out var x) || !inputs.TryGetValue(TimestepName, out var t))
            throw new InvalidRequestException(field, $"the inputs need tensors '{InputName}' [B, C, H, W] and '{TimestepName}' [B]; they hold: {string.Join(", ", inputs.Keys.Order(StringComparer.Ordinal))}.");
        var expected = new long[] { x.shape.FirstOrDefault(), unet.InChannels, unet.ImageSize, unet.ImageSize };
        if (x.dim() != 4 || !x.shape.SequenceEqual(expected))
            throw new InvalidRequestException(field, $"'{InputName}' has shape [{string.Join(", ", x.shape)}] but this model takes [B, {unet.InChannels}, {unet.ImageSize}, {unet.ImageSize}].");
        if (!x.is_floating_point())
            throw new InvalidRequestException(field, $"'{InputName}' is {x.dtype}; it must be a floating-point tensor.");
        long batch = x.shape[0];
        using var scope = NewDisposeScope();
        var timesteps = Integers(t, TimestepName, batch, field);
        if (timesteps.lt(0).any().item<bool>() || timesteps.ge(model.Timesteps).any().item<bool>())
            throw new InvalidRequestException(field, $"'{TimestepName}' must lie in [0, {model.Timesteps - 1}] (the model's T = {model.Timesteps}).");
        Tensor? labels = null;
        if (inputs.TryGetValue(ClassLabelsName, out var given))
        {
            if (unet.NumClasses == 0)
                throw new InvalidRequestException(field, $"'{ClassLabelsName}' is given but this model is unconditional; drop the tensor.");
            labels = Integers(given, ClassLabelsName, batch, field);
            if (labels.lt(0).any().item<bool>() || labels.gt(unet.NumClasses).any().item<bool>())
                throw new InvalidRequestException(field, $"'{ClassLabelsName}' must lie in [0, {unet.NumClasses}] ({unet.NumClasses} = no class).");
        }
        using (no_grad())
            return ((UNet)model.Network).Forward(x.to_type(ScalarType.Float32), timesteps, labels).MoveToOuterDisposeScope();
    }

    /// <summary>A [B] tensor of integers as int64 (floating values must be whole numbers, as diffusers' timesteps can be).</summary>
    private static Tensor Integers(Tensor tensor, string name, long batch, string field)
    {
        if (tensor.dim() != 1 || tensor.shape[0] != batch)
            throw new InvalidRequestException(field, $"'{name}' has shape [{string.Join(", ", tensor.shape)}] but must be [{batch}], one per image of '{InputName}'.");
        if (tensor.is_floating_point() && !tensor.eq(tensor.round()).all().item<bool>())
            throw new InvalidRequestException(field, $"'{name}' holds non-integer values; timesteps and classes are integers.");
        return tensor.to_type(ScalarType.Int64);
    }
}
