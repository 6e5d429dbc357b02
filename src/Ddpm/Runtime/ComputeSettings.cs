namespace Ddpm.Runtime;

/// <summary>The floating-point format a network computes in; its parameters, gradients, optimizer and EMA stay float32.</summary>
public enum Precision
{
    /// <summary>float32 throughout.</summary>
    Fp32,

    /// <summary>
    /// bfloat16 convolutions, matmuls and activations (8 exponent bits like float32, 8 significand bits), with float32
    /// master weights cast on the way in and float32 output. Fast only on CPUs with native bfloat16 instructions
    /// (AVX-512 BF16 or AMX); <see cref="CpuFeatures.HasBFloat16"/> says whether this one has them.
    /// </summary>
    Bf16,
}

/// <summary>What the user asked for on the command line: a precision, or the best the CPU supports.</summary>
public enum PrecisionChoice
{
    // The command line writes these as auto, fp32 and bf16.
    /// <summary>bfloat16 where <see cref="CpuFeatures.HasBFloat16"/>, float32 elsewhere.</summary>
    Auto,
    Fp32,
    Bf16,
}

/// <summary>
/// How a network runs its forward pass, independent of what it computes: the precision and whether its activations are
/// laid out channels-last (NHWC strides), which oneDNN's convolutions take without reordering. Neither changes the
/// weights or their file format; both change the results only by rounding. <paramref name="Device"/> is where the
/// network and its tensors live (<see cref="ComputeDevice"/>: "cpu", "cuda", "cuda:N").
/// </summary>
public sealed record ComputeSettings(Precision Precision = Precision.Fp32, bool ChannelsLast = false, string Device = ComputeDevice.Cpu)
{
    /// <summary>float32, NCHW: the reference path.</summary>
    public static ComputeSettings Reference { get; } = new();

    /// <summary>
    /// Resolves a choice on this CPU: <see cref="PrecisionChoice.Auto"/> picks bfloat16 when the CPU has it;
    /// bfloat16 asked for explicitly on a CPU without it is an <see cref="ArgumentException"/> that says so.
    /// <paramref name="hasBFloat16"/> overrides what the CPU reports (null: ask <see cref="CpuFeatures"/>).
    /// </summary>
    public static ComputeSettings Resolve(PrecisionChoice precision, bool channelsLast, bool? hasBFloat16 = null, string device = ComputeDevice.Cpu)
    {
        string deviceName = ComputeDevice.Validate(device);
        bool hasBf16 = hasBFloat16 ?? CpuFeatures.HasBFloat16;
        if (precision == PrecisionChoice.Bf16 && !hasBf16)
            throw new ArgumentException(
                "bfloat16 needs a CPU with AVX-512 BF16 or AMX-BF16 instructions, and this one has neither: use --precision fp32 (or auto).",
                nameof(precision));
        var resolved = precision switch
        {
            PrecisionChoice.Fp32 => Precision.Fp32,
            PrecisionChoice.Bf16 => Precision.Bf16,
            _ => hasBf16 ? Precision.Bf16 : Precision.Fp32,
        };
        return new ComputeSettings(resolved, channelsLast, deviceName);
    }

    /// <summary>A short description for logs: "bf16, channels-last".</summary>
    public string Describe() => $"{(Precision == Precision.Bf16 ? "bf16" : "fp32")}, {(ChannelsLast ? "channels-last" : "NCHW")}{(Device == ComputeDevice.Cpu ? "" : ", " + Device)}";

    /// <summary>TorchSharp's device for <see cref="Device"/>.</summary>
    public TorchSharp.torch.Device TorchDevice => ComputeDevice.ToTorch(Device);
}
