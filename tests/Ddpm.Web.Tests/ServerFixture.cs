using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Models;
using Ddpm.Schedules;
using Ddpm.Training;
using Ddpm.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ddpm.Web.Tests;

/// <summary>
/// What every web test serves, made once: a models directory with a tiny unconditional U-Net (as a run directory, whose
/// newest checkpoint is served), a tiny class-conditional one (a flat checkpoint directory), and two directories that
/// are not diffusion models (another network's config, an empty folder); plus an 8×8 MNIST-style data set (IDX, gzip)
/// whose test split has <see cref="TestImages"/> images. The checkpoints name their data set "mnist", so dataset:INDEX
/// reads that split. T = 1000 so that a 1000-step DDPM job runs long enough to be watched and cancelled.
/// </summary>
public sealed class ServerFixture : IDisposable
{
    public const int Timesteps = 1000;
    public const int ImageSize = 8;
    public const int TestImages = 12;
    public const int Classes = 10;
    public const string Unconditional = "tiny";
    public const string Conditional = "tiny-cond";

    private readonly Ddpm.Tests.Data.TempDirectory _root = new();

    public string Root => _root.Path;
    public string ModelsDir { get; }
    public string DataDir { get; }

    /// <summary>The test split's pixels, [TestImages, 8, 8].</summary>
    public byte[,,] TestPixels { get; }

    public ServerFixture()
    {
        ModelsDir = Directory.CreateDirectory(Path.Combine(Root, "models")).FullName;
        DataDir = Directory.CreateDirectory(Path.Combine(Root, "data")).FullName;
        var random = new Random(1234);
        byte[,,] Images(int n)
        {
            var images = new byte[n, ImageSize, ImageSize];
            for (int i = 0; i < n; i++)
                for (int y = 0; y < ImageSize; y++)
                    for (int x = 0; x < ImageSize; x++)
                        images[i, y, x] = (byte)((x + y + i) % 3 == 0 ? 255 : random.Next(0, 60));
            return images;
        }
        byte[] Labels(int n) => Enumerable.Range(0, n).Select(i => (byte)(i % Classes)).ToArray();
        TestPixels = Images(TestImages);
        // The IDX writer of the library tests, compiled in here too (Ddpm.Web.Tests.csproj links it).
        Ddpm.Tests.Data.TempDirectory.WriteMnistSplit(DataDir, "train", Images(16), Labels(16), gzip: true);
        Ddpm.Tests.Data.TempDirectory.WriteMnistSplit(DataDir, "t10k", TestPixels, Labels(TestImages), gzip: true);

        using var dataset = DatasetLoader.Load("mnist", DataDir, "train");
        var diffusion = new DiffusionConfig(new ScheduleConfig(Timesteps: Timesteps));
        var training = new TrainingConfig(Steps: 1, BatchSize: 8, WarmupSteps: 0, Seed: 1, LogEvery: 1, CheckpointEvery: 1, KeepCheckpoints: 1);
        var data = new TrainingData(dataset.Images, dataset.Labels, "mnist", Classes);
        Train(new ModelConfig(UNetPresets.Tiny), diffusion, training, data, Path.Combine(ModelsDir, Unconditional));
        string conditionalRun = Path.Combine(Root, "runs", Conditional);
        Train(new ModelConfig(UNetPresets.Tiny with { NumClasses = Classes }), diffusion, training, data, conditionalRun);
        string flat = Directory.CreateDirectory(Path.Combine(ModelsDir, Conditional)).FullName;
        foreach (var file in Directory.GetFiles(Checkpoint.List(conditionalRun).Single()))
            File.Copy(file, Path.Combine(flat, Path.GetFileName(file)));

        // Not diffusion models: a feature network's config (as models/fid-fashion-mnist has) and an empty folder.
        string other = Directory.CreateDirectory(Path.Combine(ModelsDir, "feature-net")).FullName;
        File.WriteAllText(Path.Combine(other, "config.json"), "{\"config\": {\"channels\": 1, \"image_size\": 8}, \"dataset\": \"mnist\"}");
        Directory.CreateDirectory(Path.Combine(ModelsDir, "empty"));
    }

    private static void Train(ModelConfig model, DiffusionConfig diffusion, TrainingConfig training, TrainingData data, string run)
    {
        using var trainer = Trainer.Create(model, diffusion, training, data, run);
        trainer.Run();
    }

    /// <summary>Server options for this fixture's models and data, with <paramref name="change"/> applied.</summary>
    public ServerOptions Options(Func<ServerOptions, ServerOptions>? change = null)
    {
        var options = new ServerOptions(ModelsDir, "127.0.0.1", 0, DataDir);
        return change is null ? options : change(options);
    }

    /// <summary>An app on the in-memory test server (Microsoft.AspNetCore.TestHost), started, with quiet logs.</summary>
    public TestApp StartInMemory(Func<ServerOptions, ServerOptions>? change = null)
    {
        var app = DdpmServer.Build(Options(change), builder =>
        {
            builder.WebHost.UseTestServer();
            Quiet(builder);
        });
        app.StartAsync().GetAwaiter().GetResult();
        return new TestApp(app, app.GetTestClient(), null);
    }

    /// <summary>An app on real Kestrel at a free loopback port (for browsers, and for clients that hang up).</summary>
    public TestApp StartKestrel(Func<ServerOptions, ServerOptions>? change = null)
    {
        var app = DdpmServer.Build(Options(change), Quiet);
        app.StartAsync().GetAwaiter().GetResult();
        string address = DdpmServer.Addresses(app).Single();
        var client = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(60) };
        return new TestApp(app, client, address);
    }

    /// <summary>Logs of warnings and worse only, kept in memory for the test to read.</summary>
    private static void Quiet(WebApplicationBuilder builder)
    {
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<MemoryLogs>();
        builder.Services.AddSingleton<ILoggerProvider>(sp => sp.GetRequiredService<MemoryLogs>());
    }

    public void Dispose() => _root.Dispose();
}

[CollectionDefinition(Name)]
public sealed class ServerCollection : ICollectionFixture<ServerFixture>
{
    public const string Name = "web server";
}

/// <summary>A started app and a client for it; disposing stops the app (cancelling its jobs) and frees its models.</summary>
public sealed class TestApp(WebApplication app, HttpClient client, string? address) : IDisposable
{
    public WebApplication App { get; } = app;
    public HttpClient Client { get; } = client;
    /// <summary>The real address (Kestrel only), e.g. http://127.0.0.1:41234.</summary>
    public string? Address { get; } = address;
    public T Service<T>() where T : notnull => App.Services.GetRequiredService<T>();
    public MemoryLogs Logs => Service<MemoryLogs>();

    public void Dispose()
    {
        Client.Dispose();
        App.StopAsync().GetAwaiter().GetResult();
        ((IDisposable)App).Dispose();
    }
}

/// <summary>A logger provider that keeps every line (Information and up) in memory.</summary>
public sealed class MemoryLogs : ILoggerProvider
{
    private readonly List<string> _lines = new();

    public IReadOnlyList<string> Lines
    {
        get { lock (_lines) return _lines.ToList(); }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(MemoryLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information && !category.StartsWith("Microsoft", StringComparison.Ordinal);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            lock (owner._lines) owner._lines.Add($"{logLevel}: {category}: {formatter(state, exception)}{(exception is null ? "" : " | " + exception.GetType().Name)}");
        }
    }
}
