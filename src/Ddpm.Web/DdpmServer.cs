using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ddpm.Web;

/// <summary>
/// The web server of <c>ddpm serve</c>: the JSON API (<see cref="ApiEndpoints"/>) and the page at <c>/</c>, on Kestrel.
/// Ctrl+C and SIGTERM stop it after cancelling its jobs.
/// </summary>
public static class DdpmServer
{
    /// <summary>
    /// Builds the application for <paramref name="options"/> (checked first: an <see cref="ArgumentException"/> names the
    /// option). <paramref name="configure"/> may change the builder before it is built (tests swap in a test server or
    /// quieter logging).
    /// </summary>
    public static WebApplication Build(ServerOptions options, Action<WebApplicationBuilder>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(DdpmServer).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        // One line per request comes from our own logger; ASP.NET Core's own lines would double them.
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            var address = options.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(options.Host);
            kestrel.Listen(address, options.Port);
            kestrel.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            kestrel.AddServerHeader = false;
        });
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(sp => new ModelCatalog(Path.GetFullPath(options.ModelsDirectory), sp.GetRequiredService<ILogger<ModelCatalog>>()));
        builder.Services.AddSingleton<ModelCache>();
        builder.Services.AddSingleton<DatasetCache>();
        builder.Services.AddSingleton<ComputeGate>();
        builder.Services.AddSingleton<SampleQueue>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SampleQueue>());
        configure?.Invoke(builder);

        var app = builder.Build();
        var requests = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Ddpm.Web.Requests");
        app.Use(async (context, next) =>
        {
            var watch = Stopwatch.StartNew();
            try
            {
                await next(context);
            }
            finally
            {
                requests.LogInformation("{Method} {Path}{Query} {Status} {Milliseconds:0} ms", context.Request.Method, context.Request.Path, context.Request.QueryString,
                    context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted ? 499 : context.Response.StatusCode, watch.Elapsed.TotalMilliseconds);
            }
        });
        var problems = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Ddpm.Web.Problems");
        app.Use((context, next) => ApiProblems.Handle(context, next, problems));
        // Routes that do not exist (404) or do not take the method (405) answer with a problem document too.
        app.UseStatusCodePages(async status =>
        {
            var context = status.HttpContext;
            int code = context.Response.StatusCode;
            string detail = code switch
            {
                404 => $"no such address: {context.Request.Method} {context.Request.Path}; the page is at / and the API under /api (GET /api/models lists the models).",
                405 => $"{context.Request.Path} does not take {context.Request.Method}; the README's API table lists the methods.",
                _ => ApiProblems.Title(code),
            };
            await ApiProblems.WriteAsync(context, new ApiProblemException(code, null, detail));
        });
        PageAssets.Map(app);
        ApiEndpoints.Map(app);
        app.Services.GetRequiredService<ModelCatalog>().Refresh();
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            app.Services.GetRequiredService<ModelCache>().Dispose();
            app.Services.GetRequiredService<DatasetCache>().Dispose();
        });
        return app;
    }

    /// <summary>The addresses the started server listens on (port 0 resolved to the port it got).</summary>
    public static IReadOnlyList<string> Addresses(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? new List<string>();
    }

    /// <summary>
    /// Runs the server until Ctrl+C or SIGTERM: builds, starts, calls <paramref name="started"/> with the address it
    /// listens on and the number of models it serves, and returns once it has stopped.
    /// </summary>
    public static void Run(ServerOptions options, Action<string, int>? started = null)
    {
        using var app = Build(options);
        app.Start();
        started?.Invoke(Addresses(app).FirstOrDefault() ?? options.Url, app.Services.GetRequiredService<ModelCatalog>().Entries.Count);
        app.WaitForShutdown();
    }
}

/// <summary>The page (index.html, app.css, app.js), served from the assembly's embedded resources.</summary>
public static class PageAssets
{
    private static readonly (string Path, string Resource, string ContentType)[] Files =
    {
        ("/", "page/index.html", "text/html; charset=utf-8"),
        ("/app.css", "page/app.css", "text/css; charset=utf-8"),
        ("/app.js", "page/app.js", "text/javascript; charset=utf-8"),
    };

    /// <summary>The bytes of an embedded page file (tests read it too).</summary>
    public static byte[] Read(string resource)
    {
        using var stream = typeof(PageAssets).Assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"the page file {resource} is not embedded in {typeof(PageAssets).Assembly.GetName().Name}; rebuild Ddpm.Web.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    public static void Map(WebApplication app)
    {
        foreach (var (path, resource, contentType) in Files)
        {
            byte[] bytes = Read(resource);
            app.MapGet(path, (HttpContext context) =>
            {
                context.Response.Headers.CacheControl = "no-cache";
                // The page loads nothing from elsewhere; say so to the browser.
                context.Response.Headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'";
                return Results.Bytes(bytes, contentType);
            });
        }
    }
}
