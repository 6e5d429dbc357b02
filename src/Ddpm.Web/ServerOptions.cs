using System.Net;

namespace Ddpm.Web;

/// <summary>
/// How <c>ddpm serve</c> runs: the models under <paramref name="ModelsDirectory"/> (each directory directly under it),
/// the address it listens on (loopback unless told otherwise; port 0 picks a free one), the data sets' directory for
/// DATASET:INDEX images (null: each data set's default), and the limits that keep one client from taking the machine:
/// samples and steps per job, waiting jobs, bytes and pixels per uploaded image.
/// </summary>
public sealed record ServerOptions(
    string ModelsDirectory = "models",
    string Host = "127.0.0.1",
    int Port = 5000,
    string? DataDir = null,
    int MaxSamples = 64,
    int MaxSteps = 1000,
    int MaxQueuedJobs = 4,
    int MaxUploadBytes = 2 * 1024 * 1024,
    int MaxUploadPixels = 2048 * 2048,
    int MaxInterpolants = 16,
    int KeptJobs = 32)
{
    /// <summary>Bodies larger than this are refused before they are read: two uploads (an interpolation's a and b) as base64 data URLs, plus the JSON around them.</summary>
    public int MaxBodyBytes => 2 * (MaxUploadBytes / 3 * 4 + 4) + 64 * 1024;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the option to change.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(ModelsDirectory))
            throw new ArgumentException("--models needs a directory, e.g. --models models.", nameof(ModelsDirectory));
        if (!Directory.Exists(ModelsDirectory))
            throw new ArgumentException($"--models '{ModelsDirectory}' is not a directory: pass the folder that holds the model directories (default: models).", nameof(ModelsDirectory));
        if (Host != "localhost" && !IPAddress.TryParse(Host, out _))
            throw new ArgumentException($"--host must be an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost; got '{Host}'.", nameof(Host));
        if (Port is < 0 or > 65535) throw new ArgumentException($"--port must be from 0 (any free port) to 65535; got {Port}.", nameof(Port));
        if (MaxSamples < 1) throw new ArgumentException($"MaxSamples must be >= 1; got {MaxSamples}.", nameof(MaxSamples));
        if (MaxSteps < 1) throw new ArgumentException($"MaxSteps must be >= 1; got {MaxSteps}.", nameof(MaxSteps));
        if (MaxQueuedJobs < 0) throw new ArgumentException($"MaxQueuedJobs must be >= 0; got {MaxQueuedJobs}.", nameof(MaxQueuedJobs));
        if (MaxUploadBytes < 1024) throw new ArgumentException($"MaxUploadBytes must be >= 1024; got {MaxUploadBytes}.", nameof(MaxUploadBytes));
        if (MaxUploadPixels < 1) throw new ArgumentException($"MaxUploadPixels must be >= 1; got {MaxUploadPixels}.", nameof(MaxUploadPixels));
        if (MaxInterpolants is < 2 or > Generation.InterpolationJob.MaxSteps)
            throw new ArgumentException($"MaxInterpolants must be from 2 to {Generation.InterpolationJob.MaxSteps}; got {MaxInterpolants}.", nameof(MaxInterpolants));
        if (KeptJobs < MaxQueuedJobs + 1) throw new ArgumentException($"KeptJobs must be at least MaxQueuedJobs + 1 ({MaxQueuedJobs + 1}); got {KeptJobs}.", nameof(KeptJobs));
    }

    /// <summary>The address the server is reached at, e.g. http://127.0.0.1:5000 (IPv6 in brackets).</summary>
    public string Url => $"http://{(IPAddress.TryParse(Host, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{Host}]" : Host)}:{Port}";
}
