using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Ddpm.Generation;
using Ddpm.Imaging;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Web;

/// <summary>Where a sampling job is.</summary>
public enum JobStatus
{
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

/// <summary>One server-sent event: its name (status, frame, done) and its JSON data.</summary>
public sealed record ServerEvent(string Name, string Data)
{
    /// <summary>The event as it goes on the wire.</summary>
    public string Wire => $"event: {Name}\ndata: {Data}\n\n";
}

/// <summary>
/// A sampling job of the web API: a checked <see cref="SamplingRequest"/> for a listed model, its status and progress,
/// the latest x_t / x̂₀ frame, the final grid as PNG bytes, and the event streams of the clients watching it. Holds no
/// tensors: once finished it costs its PNG bytes only.
/// </summary>
public sealed class SampleJob
{
    private readonly object _lock = new();
    private readonly List<Channel<ServerEvent>> _watchers = new();
    private readonly CancellationTokenSource _cancellation = new();
    private readonly Stopwatch _watch = new();

    public SampleJob(string id, ModelEntry model, SamplingRequest request, string sampler, int frameEvery)
    {
        Id = id;
        Model = model;
        Request = request;
        Sampler = sampler;
        FrameEvery = frameEvery;
    }

    public string Id { get; }
    public ModelEntry Model { get; }
    public SamplingRequest Request { get; }
    /// <summary>The sampler as the client named it (ddim, dpm++2m, …).</summary>
    public string Sampler { get; }
    /// <summary>A frame goes to the watchers every this many steps (and after the last).</summary>
    public int FrameEvery { get; }

    public JobStatus Status { get; private set; } = JobStatus.Queued;
    public long Step { get; private set; }
    public long TotalSteps { get; private set; }
    public byte[]? GridPng { get; private set; }
    public ApiProblemException? Error { get; private set; }
    public bool IsFinished => Status is JobStatus.Done or JobStatus.Failed or JobStatus.Cancelled;
    public CancellationToken CancellationToken => _cancellation.Token;
    public double ElapsedSeconds => _watch.Elapsed.TotalSeconds;

    /// <summary>Samples finished per second at the pace so far (a partly denoised batch counts by its fraction of the steps).</summary>
    public double ImagesPerSecond
    {
        get
        {
            double seconds = _watch.Elapsed.TotalSeconds;
            return TotalSteps == 0 || seconds <= 0 ? 0 : Request.Count * ((double)Step / TotalSteps) / seconds;
        }
    }

    /// <summary>Seconds until the job is done at its pace so far, or null before its first step.</summary>
    public double? RemainingSeconds => Step == 0 || TotalSteps == 0 ? null : _watch.Elapsed.TotalSeconds / Step * (TotalSteps - Step);

    private ServerEvent? _latestFrame;

    /// <summary>
    /// A new watcher's stream: the current status and latest frame first, then every event until the job finishes
    /// (the stream then completes). A slow watcher loses old frames, never the end.
    /// </summary>
    public ChannelReader<ServerEvent> Watch(int? position)
    {
        var channel = Channel.CreateBounded<ServerEvent>(new BoundedChannelOptions(16) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        lock (_lock)
        {
            channel.Writer.TryWrite(StatusEvent(position));
            if (_latestFrame is not null) channel.Writer.TryWrite(_latestFrame);
            if (IsFinished) channel.Writer.TryComplete();
            else _watchers.Add(channel);
        }
        return channel.Reader;
    }

    /// <summary>How many event streams watch the job now.</summary>
    public int WatcherCount
    {
        get { lock (_lock) return _watchers.Count; }
    }

    /// <summary>Stops sending to <paramref name="reader"/>'s stream; returns how many watchers are left.</summary>
    public int Unwatch(ChannelReader<ServerEvent> reader)
    {
        lock (_lock)
        {
            _watchers.RemoveAll(c => c.Reader == reader);
            return _watchers.Count;
        }
    }

    /// <summary>The event that ends a stream: the final status, the grid's address or the error.</summary>
    public ServerEvent DoneEvent() => new("done", JsonSerializer.Serialize(new
    {
        status = ApiJson.Name(Status),
        gridUrl = Status == JobStatus.Done ? $"/api/samples/{Id}/grid.png" : null,
        error = Error is null ? null : new { status = Error.Status, detail = Error.Message, field = Error.Field },
    }, ApiJson.Options));

    public ServerEvent StatusEvent(int? position) => new("status", JsonSerializer.Serialize(new
    {
        status = ApiJson.Name(Status),
        step = Step,
        totalSteps = TotalSteps,
        position,
    }, ApiJson.Options));

    internal void Start()
    {
        lock (_lock)
        {
            Status = JobStatus.Running;
            _watch.Start();
            Publish(StatusEvent(0));
        }
    }

    internal void Progress(long done, long total)
    {
        Step = done;
        TotalSteps = total;
    }

    internal void Frame(ServerEvent frame)
    {
        lock (_lock)
        {
            _latestFrame = frame;
            Publish(frame);
        }
    }

    /// <summary>Asks the job to stop: a queued job stops now, a running one before its next step.</summary>
    internal void RequestCancel()
    {
        lock (_lock)
        {
            if (!IsFinished) _cancellation.Cancel();
        }
    }

    internal void Finish(JobStatus status, byte[]? grid = null, ApiProblemException? error = null)
    {
        lock (_lock)
        {
            if (IsFinished) return;
            _watch.Stop();
            Status = status;
            GridPng = grid;
            Error = error;
            // The last frame stays for a late watcher only while the job runs; afterwards the grid tells the story.
            _latestFrame = null;
            Publish(StatusEvent(null));
            foreach (var watcher in _watchers) watcher.Writer.TryComplete();
            _watchers.Clear();
        }
    }

    private void Publish(ServerEvent e)
    {
        foreach (var watcher in _watchers) watcher.Writer.TryWrite(e);
    }
}

/// <summary>
/// The sampling jobs: a bounded queue in front of one worker thread that runs one job at a time through
/// <see cref="SamplingPipeline"/> (under the <see cref="ComputeGate"/>), and the finished jobs kept for their grids
/// (the oldest dropped beyond <see cref="ServerOptions.KeptJobs"/>). Stopping the server cancels every job first.
/// </summary>
public sealed class SampleQueue : IHostedService, IDisposable
{
    private readonly ServerOptions _options;
    private readonly ModelCache _models;
    private readonly ComputeGate _gate;
    private readonly ILogger<SampleQueue> _logger;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly object _lock = new();
    private readonly Dictionary<string, SampleJob> _jobs = new(StringComparer.Ordinal);
    private readonly List<SampleJob> _finished = new();
    private readonly LinkedList<SampleJob> _waiting = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private SampleJob? _running;
    private Thread? _worker;
    private CancellationTokenRegistration _onStopping;

    public SampleQueue(ServerOptions options, ModelCache models, ComputeGate gate, ILogger<SampleQueue> logger, IHostApplicationLifetime lifetime)
    {
        _options = options;
        _models = models;
        _gate = gate;
        _logger = logger;
        _lifetime = lifetime;
    }

    /// <summary>Queues <paramref name="job"/>, or refuses it with 429 and a Retry-After when the queue is full.</summary>
    public int Submit(SampleJob job)
    {
        lock (_lock)
        {
            if (_stopping.IsCancellationRequested)
                throw new ApiProblemException(503, null, "the server is stopping; start it again and resubmit.");
            if (_waiting.Count >= _options.MaxQueuedJobs && (_running is not null || _waiting.Count > 0))
                throw new ApiProblemException(429, null,
                    $"{_waiting.Count} job(s) are waiting behind the running one (at most {_options.MaxQueuedJobs}); retry after the Retry-After seconds.", RetryAfterSeconds());
            _jobs[job.Id] = job;
            _waiting.AddLast(job);
            int position = PositionOf(job) ?? 0;
            _signal.Release();
            return position;
        }
    }

    public SampleJob? Get(string id)
    {
        lock (_lock) return _jobs.GetValueOrDefault(id);
    }

    /// <summary>How many jobs run before <paramref name="job"/> starts: 0 while it runs, null once finished.</summary>
    public int? PositionOf(SampleJob job)
    {
        lock (_lock)
        {
            if (job.IsFinished) return null;
            if (ReferenceEquals(_running, job)) return 0;
            int index = 0;
            foreach (var waiting in _waiting)
            {
                if (ReferenceEquals(waiting, job)) return index + (_running is null ? 0 : 1);
                index++;
            }
            return 0; // taken off the queue, about to start
        }
    }

    /// <summary>Cancels <paramref name="job"/>: a queued job at once, a running one before its next step.</summary>
    public void Cancel(SampleJob job, string reason)
    {
        bool wasQueued;
        lock (_lock)
        {
            wasQueued = _waiting.Remove(job);
            if (wasQueued) Retire(job);
        }
        _logger.LogInformation("job {Id}: cancel asked ({Reason})", job.Id, reason);
        job.RequestCancel();
        if (wasQueued) job.Finish(JobStatus.Cancelled);
    }

    /// <summary>The job the worker has taken (running, or waiting for the CPU), or null.</summary>
    public string? RunningJobId
    {
        get { lock (_lock) return _running?.Id; }
    }

    /// <summary>The jobs not yet finished (queued and running).</summary>
    public int ActiveCount
    {
        get { lock (_lock) return _waiting.Count + (_running is null ? 0 : 1); }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _onStopping = _lifetime.ApplicationStopping.Register(CancelAll);
        _worker = new Thread(Work) { IsBackground = true, Name = "ddpm sampling" };
        _worker.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        CancelAll();
        // The running job stops before its next step; wait for it so that its tensors are freed before the process exits.
        _worker?.Join(TimeSpan.FromSeconds(30));
        return Task.CompletedTask;
    }

    private void CancelAll()
    {
        List<SampleJob> active;
        lock (_lock)
        {
            // Stopping runs this twice (when the application stops, then when this service does): once is enough.
            if (_stopping.IsCancellationRequested) return;
            _stopping.Cancel();
            active = _waiting.ToList();
            if (_running is not null) active.Add(_running);
        }
        foreach (var job in active) Cancel(job, "the server is stopping");
    }

    private void Work()
    {
        while (true)
        {
            try
            {
                _signal.Wait(_stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            SampleJob? job;
            lock (_lock)
            {
                job = _waiting.First?.Value;
                if (job is null) continue;
                _waiting.RemoveFirst();
                _running = job;
            }
            try
            {
                _gate.Wait(job.CancellationToken);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                job.Finish(JobStatus.Cancelled);
                lock (_lock) { _running = null; Retire(job); }
                continue;
            }
            try
            {
                Run(job);
            }
            finally
            {
                _gate.Release();
                lock (_lock) { _running = null; Retire(job); }
            }
        }
    }

    private void Run(SampleJob job)
    {
        job.Start();
        var watch = Stopwatch.StartNew();
        try
        {
            var model = _models.Get(job.Model);
            int shown = Math.Min(job.Request.Count, 16);
            var progress = new InlineProgress<JobProgress>(p => job.Progress(p.Done, p.Total));
            void OnStep(SampleStep step)
            {
                int done = step.View.Step + 1;
                bool last = done >= job.TotalSteps;
                if (done % job.FrameEvery != 0 && !last) return;
                using var scope = NewDisposeScope();
                string frame = JsonSerializer.Serialize(new
                {
                    step = done,
                    totalSteps = job.TotalSteps,
                    timestep = step.View.Timestep + 1, // the paper's 1-based t of the model input at this step
                    imagesPerSecond = Math.Round(job.ImagesPerSecond, 3),
                    elapsedSeconds = Math.Round(job.ElapsedSeconds, 3),
                    xt = PngDataUrl(step.View.Sample.narrow(0, 0, shown)),
                    x0 = PngDataUrl(step.View.PredictedX0.narrow(0, 0, shown)),
                }, ApiJson.Options);
                job.Frame(new ServerEvent("frame", frame));
            }
            using var result = SamplingPipeline.Run(model, job.Request, progress, OnStep, job.CancellationToken);
            byte[] grid = Png(result.Samples, columns: null);
            job.Finish(JobStatus.Done, grid);
            _logger.LogInformation("job {Id} done: {Count} samples of {Model}, {Description}, {Steps} steps in {Seconds:0.0} s",
                job.Id, result.Samples.shape[0], job.Model.Info.Name, result.Description, result.Settings.Steps, watch.Elapsed.TotalSeconds);
        }
        catch (OperationCanceledException)
        {
            job.Finish(JobStatus.Cancelled);
        }
        catch (Exception e)
        {
            var problem = ApiProblems.From(e);
            if (problem.Status >= 500) _logger.LogError(e, "job {Id} failed", job.Id);
            else _logger.LogWarning("job {Id} failed: {Message}", job.Id, problem.Message);
            job.Finish(JobStatus.Failed, error: problem);
        }
    }

    /// <summary>Keeps a finished job for its grid; drops the oldest finished ones beyond the limit. Call under the lock.</summary>
    private void Retire(SampleJob job)
    {
        if (_finished.Contains(job)) return;
        _finished.Add(job);
        while (_finished.Count > _options.KeptJobs)
        {
            _jobs.Remove(_finished[0].Id);
            _finished.RemoveAt(0);
        }
    }

    /// <summary>Seconds until a queue slot is likely free: the running job's remaining time at its pace, 1 to 600.</summary>
    private int RetryAfterSeconds()
    {
        double? remaining = _running?.RemainingSeconds;
        return (int)Math.Clamp(Math.Ceiling(remaining ?? 5), 1, 600);
    }

    /// <summary>[N, C, H, W] images in [−1, 1] as PNG bytes, laid out as a grid.</summary>
    internal static byte[] Png(Tensor images, int? columns, int padding = 2)
    {
        using var bitmap = ImageGrid.ToBitmap(images, columns, padding);
        return ImageGrid.EncodePng(bitmap);
    }

    private static string PngDataUrl(Tensor images) => "data:image/png;base64," + Convert.ToBase64String(Png(images, columns: null, padding: 1));

    /// <summary>Ends the worker (it may still be waiting for work when the server failed to start). The semaphore and token source hold no handles: they are left to the collector, so that the worker never waits on a disposed one.</summary>
    public void Dispose()
    {
        _onStopping.Dispose();
        lock (_lock)
        {
            if (!_stopping.IsCancellationRequested) _stopping.Cancel();
        }
    }
}
