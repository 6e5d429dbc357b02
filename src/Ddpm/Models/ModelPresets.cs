namespace Ddpm.Models;

/// <summary>Every network preset by name: the U-Net presets of <see cref="UNetPresets"/> and the toy MLP for 2-D data.</summary>
public static class ModelPresets
{
    public const string ToyMlp = "toy-mlp";

    /// <summary>The known names, U-Nets first.</summary>
    public static IEnumerable<string> Names => UNetPresets.All.Keys.Append(ToyMlp);

    /// <summary>The model of preset <paramref name="name"/>, or null when there is no such preset.</summary>
    public static ModelConfig? TryGet(string name) =>
        name == ToyMlp ? new ModelConfig(ToyMlp: new ToyMlpConfig())
        : UNetPresets.All.TryGetValue(name, out var unet) ? new ModelConfig(unet)
        : null;
}
