using static TorchSharp.torch;

namespace Ddpm.Runtime;

/// <summary>
/// The device a network and its tensors live on, as the command line names it: <c>cpu</c>, <c>cuda</c> or
/// <c>cuda:N</c>. Random numbers are always drawn on the CPU and then moved, so a seed gives the same noise on every
/// device (as diffusers' <c>randn_tensor</c> does).
/// </summary>
public static class ComputeDevice
{
    public const string Cpu = "cpu";

    /// <summary>What a user of this build must do to get CUDA; the CUDA path is untested (no GPU build exists here).</summary>
    public const string CudaBuildHint =
        "this build links libtorch-cpu; build with -p:TorchBackend=cuda (the libtorch-cuda package, from nuget.org) on a machine with an NVIDIA GPU, an untested path, or use --device cpu";

    /// <summary>
    /// The canonical name of <paramref name="spec"/> ("cpu", "cuda", "cuda:1"), checked against what this process can
    /// use; anything else is an <see cref="ArgumentException"/> with a one-line message that names the fix.
    /// <paramref name="cudaDevices"/> overrides the number of CUDA devices TorchSharp reports (null: ask it).
    /// </summary>
    public static string Validate(string spec, int? cudaDevices = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string name = spec.Trim().ToLowerInvariant();
        if (name == Cpu) return name;
        int index = -1;
        if (name != "cuda" && !(name.StartsWith("cuda:", StringComparison.Ordinal)
                                && int.TryParse(name.AsSpan(5), System.Globalization.NumberStyles.None, null, out index)))
            throw new ArgumentException($"--device must be cpu, cuda or cuda:N (N = 0, 1, …); got '{spec}'.", nameof(spec));
        int available = cudaDevices ?? CudaDeviceCount();
        if (available == 0)
            throw new ArgumentException($"--device {name}: CUDA is not available to this process: {CudaBuildHint}.", nameof(spec));
        if (index >= available)
            throw new ArgumentException($"--device {name}: this machine has {available} CUDA device(s), numbered 0 to {available - 1}.", nameof(spec));
        return name;
    }

    /// <summary>TorchSharp's device for a canonical name from <see cref="Validate"/>.</summary>
    public static Device ToTorch(string name) => name == Cpu ? CPU : device(name);

    /// <summary><paramref name="tensor"/> on <paramref name="target"/>: the tensor itself when it is already there.</summary>
    public static Tensor On(this Tensor tensor, Device target) =>
        tensor.device_type == target.type && (target.index < 0 || tensor.device_index == target.index) ? tensor : tensor.to(target);

    private static int CudaDeviceCount()
    {
        try
        {
            return cuda.is_available() ? cuda.device_count() : 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or NotSupportedException or InvalidOperationException)
        {
            return 0;
        }
    }
}
