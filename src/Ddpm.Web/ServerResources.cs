using Ddpm.Data;
using Ddpm.Generation;
using Ddpm.Runtime;

namespace Ddpm.Web;

/// <summary>
/// The loaded networks, one per listed model, kept until the server stops: loading takes longer than a small job.
/// Loading is serialised; a loaded model's network is run only by whoever holds the <see cref="ComputeGate"/>.
/// </summary>
public sealed class ModelCache : IDisposable
{
    private readonly Dictionary<string, DiffusionModel> _models = new(StringComparer.Ordinal);
    private readonly object _lock = new();
    private readonly ComputeSettings _compute = ComputeSettings.Resolve(PrecisionChoice.Auto, channelsLast: false);
    private bool _disposed;

    /// <summary>The model of <paramref name="entry"/> with its EMA weights, loaded on first use.</summary>
    public DiffusionModel Get(ModelEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_models.TryGetValue(entry.Info.Name, out var model)) return model;
            model = DiffusionModel.Load(entry.Directory, rawWeights: false, _compute);
            _models[entry.Info.Name] = model;
            return model;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            foreach (var model in _models.Values) model.Dispose();
            _models.Clear();
        }
    }
}

/// <summary>Test splits of the named data sets, read once (the forward-process slider asks for one image at a time).</summary>
public sealed class DatasetCache(ServerOptions options) : IDisposable
{
    /// <summary>The data set names a client may ask for; folder:PATH is not among them (a client never names a path).</summary>
    public static readonly IReadOnlyList<string> Names = new[] { "fashion-mnist", "mnist", "cifar10" };

    private readonly Dictionary<string, ImageDataset> _sets = new(StringComparer.OrdinalIgnoreCase);
    private readonly object _lock = new();

    public ImageDataset Get(string name)
    {
        lock (_lock)
        {
            if (_sets.TryGetValue(name, out var set)) return set;
            set = DatasetLoader.Load(name, options.DataDir, "test");
            _sets[name] = set;
            return set;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var set in _sets.Values) set.Dispose();
            _sets.Clear();
        }
    }
}

/// <summary>
/// The CPU budget: one network-running job at a time (a sampling job or an interpolation). The machine's cores are all
/// used by one job's convolutions; two at once would each run at half speed and hold twice the memory.
/// </summary>
public sealed class ComputeGate : IDisposable
{
    private readonly SemaphoreSlim _semaphore = new(1, 1);

    public Task WaitAsync(CancellationToken cancellationToken) => _semaphore.WaitAsync(cancellationToken);
    public void Wait(CancellationToken cancellationToken) => _semaphore.Wait(cancellationToken);
    public void Release() => _semaphore.Release();
    public bool IsBusy => _semaphore.CurrentCount == 0;
    public void Dispose() => _semaphore.Dispose();
}
