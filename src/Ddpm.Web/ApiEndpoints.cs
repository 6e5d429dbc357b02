using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Ddpm.Generation;
using Ddpm.Imaging;
using Ddpm.IO;
using Ddpm.Sampling;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;

namespace Ddpm.Web;

/// <summary>The body of <c>POST /api/samples</c>; null means the default.</summary>
public sealed record SampleBody(string? Model, string? Sampler = null, int? Steps = null, int? N = null, long? Seed = null, double? Eta = null, int? Class = null,
    double? GuidanceScale = null, int? FrameEvery = null);

/// <summary>
/// The body of <c>POST /api/forward</c>: an image, the paper's levels t (0: clean), a seed, and whether the picture
/// has the column labels above it (default; false: the bare images, as the page's slider shows them).
/// </summary>
public sealed record ForwardBody(string? Model, string? Image, int[]? T = null, long? Seed = null, bool? Labels = null);

/// <summary>The body of <c>POST /api/interpolate</c>.</summary>
public sealed record InterpolateBody(string? Model, string? A, string? B, int? T = null, int? Steps = null, string? Method = null, int? DdimSteps = null, long? Seed = null);

/// <summary>How the API writes and reads JSON: camelCase, enums in kebab case, unknown fields refused (a typo is an error, not a default).</summary>
public static class ApiJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        // Answers are JSON for programs and this page, never pasted into HTML: keep ' and non-ASCII readable.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Running → running.</summary>
    public static string Name<T>(T value) where T : struct, Enum => EnumNames.Kebab(value);

    /// <summary>Reads the JSON body as <typeparamref name="T"/>: at most <paramref name="maxBytes"/> bytes (413 beyond), JSON only (415), errors naming the field.</summary>
    public static async Task<T> ReadAsync<T>(HttpContext context, int maxBytes) where T : class
    {
        var request = context.Request;
        if (!request.HasJsonContentType())
            throw new ApiProblemException(415, null, "send the body as JSON with the header Content-Type: application/json.");
        if (request.ContentLength > maxBytes)
            throw new ApiProblemException(413, null, $"the body has {request.ContentLength} bytes, more than the {maxBytes} this server takes; upload a smaller image.");
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
        {
            if (buffer.Length + read > maxBytes)
                throw new ApiProblemException(413, null, $"the body is larger than the {maxBytes} bytes this server takes; upload a smaller image.");
            buffer.Write(chunk, 0, read);
        }
        if (buffer.Length == 0)
            throw new ApiProblemException(400, null, "the request has no body; send a JSON object (see GET /api/models for the model names).");
        T? value;
        try
        {
            value = JsonSerializer.Deserialize<T>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), Options);
        }
        catch (JsonException e)
        {
            throw ApiProblems.From(e);
        }
        return value ?? throw new ApiProblemException(400, null, "the body is null; send a JSON object.");
    }
}

/// <summary>The JSON API of <c>ddpm serve</c> (README, "ddpm serve", lists it with curl examples).</summary>
public static class ApiEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/api/models", (ModelCatalog catalog) => Results.Json(catalog.Refresh().Values.Select(e => e.Info), ApiJson.Options));
        app.MapPost("/api/samples", SubmitSample);
        app.MapGet("/api/samples/{id}", (string id, SampleQueue queue) => Results.Json(Describe(Find(queue, id), queue), ApiJson.Options));
        app.MapGet("/api/samples/{id}/events", StreamEvents);
        app.MapGet("/api/samples/{id}/grid.png", (string id, SampleQueue queue) =>
        {
            var job = Find(queue, id);
            if (job.GridPng is null)
                throw new ApiProblemException(409, "id", job.Status == JobStatus.Failed || job.Status == JobStatus.Cancelled
                    ? $"job {id} is {ApiJson.Name(job.Status)}: it has no grid; submit it again."
                    : $"job {id} is {ApiJson.Name(job.Status)}; the grid exists once its status is done (GET /api/samples/{id}, or its events).");
            return Results.File(job.GridPng, "image/png", $"ddpm-{id}.png");
        });
        app.MapDelete("/api/samples/{id}", (string id, SampleQueue queue) =>
        {
            var job = Find(queue, id);
            if (!job.IsFinished) queue.Cancel(job, "DELETE by the client");
            // A running job stops before its next step: 202 until then.
            return Results.Json(Describe(job, queue), ApiJson.Options, statusCode: job.IsFinished ? 200 : 202);
        });
        app.MapPost("/api/forward", Forward);
        app.MapPost("/api/interpolate", Interpolate);
    }

    private static SampleJob Find(SampleQueue queue, string id) =>
        queue.Get(id) ?? throw new ApiProblemException(404, "id", $"no sampling job '{(id.Length > 40 ? id[..40] + "…" : id)}' (finished jobs are kept for a while only); POST /api/samples starts one.");

    private static object Describe(SampleJob job, SampleQueue queue) => new
    {
        id = job.Id,
        status = ApiJson.Name(job.Status),
        step = job.Step,
        totalSteps = job.TotalSteps,
        position = queue.PositionOf(job),
        model = job.Model.Info.Name,
        sampler = job.Sampler,
        n = job.Request.Count,
        seed = job.Request.Seed,
        imagesPerSecond = Math.Round(job.ImagesPerSecond, 3),
        elapsedSeconds = Math.Round(job.ElapsedSeconds, 3),
        eventsUrl = $"/api/samples/{job.Id}/events",
        gridUrl = job.Status == JobStatus.Done ? $"/api/samples/{job.Id}/grid.png" : null,
        error = job.Error is null ? null : new { status = job.Error.Status, detail = job.Error.Message, field = job.Error.Field },
    };

    private static async Task<IResult> SubmitSample(HttpContext context, ServerOptions options, ModelCatalog catalog, ModelCache models, SampleQueue queue)
    {
        var body = await ApiJson.ReadAsync<SampleBody>(context, options.MaxBodyBytes);
        var entry = catalog.Find(body.Model);
        string samplerName = body.Sampler ?? "ddim";
        var kind = Enum.GetValues<SamplerKind>().Where(k => string.Equals(EnumNames.Kebab(k), samplerName, StringComparison.OrdinalIgnoreCase)).Select(k => (SamplerKind?)k).FirstOrDefault()
            ?? throw new ApiProblemException(400, "sampler", $"sampler '{samplerName}' is not one of {string.Join(", ", Enum.GetValues<SamplerKind>().Select(k => EnumNames.Kebab(k)))}.");
        int n = body.N ?? 16;
        if (n < 1 || n > options.MaxSamples)
            throw new ApiProblemException(400, "n", $"n must be from 1 to {options.MaxSamples} (this server's limit per job); got {n}.");
        if (body.Seed is < 0) throw new ApiProblemException(400, "seed", $"seed must be an integer >= 0; got {body.Seed}.");
        if (body.GuidanceScale is double w && !(w >= 0 && w <= 100))
            throw new ApiProblemException(400, "guidanceScale", $"guidanceScale must be a number in [0, 100]; got {w}.");
        var choice = new SamplerChoice(kind, body.Steps, body.Eta);
        var settings = choice.Resolve(entry.Config.Diffusion, clip: true, entry.Config.Sampling);
        if (settings.Steps > options.MaxSteps)
            throw new ApiProblemException(400, "steps", $"steps must be at most {options.MaxSteps} on this server; got {settings.Steps}{(body.Steps is null ? $" (the default of {samplerName} for T = {entry.Info.Timesteps})" : "")}.");
        int every = body.FrameEvery ?? Math.Max(1, (int)Math.Ceiling(settings.Steps / 50.0));
        if (every < 1) throw new ApiProblemException(400, "frameEvery", $"frameEvery must be an integer >= 1; got {every}.");
        var conditioning = new ConditioningRequest(body.Class, GuidanceScale: body.GuidanceScale);
        var model = models.Get(entry);
        // The class and guidance are checked against the model now, so that a bad request is a 400 rather than a failed job.
        using (Conditioning.Create(model, conditioning)) { }
        var request = new SamplingRequest(choice, n, Batch: n, Seed: body.Seed ?? 0, Conditioning: conditioning);
        var job = new SampleJob(NewId(), entry, request, EnumNames.Kebab(kind), every);
        int position = queue.Submit(job);
        var location = $"/api/samples/{job.Id}";
        return Results.Json(new { id = job.Id, status = ApiJson.Name(job.Status), position, statusUrl = location, eventsUrl = location + "/events" },
            ApiJson.Options, statusCode: StatusCodes.Status202Accepted);
    }

    private static async Task StreamEvents(string id, HttpContext context, SampleQueue queue, IHostApplicationLifetime lifetime)
    {
        var job = Find(queue, id);
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        var reader = job.Watch(queue.PositionOf(job));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        bool clientLeft = false;
        try
        {
            await response.WriteAsync(": ddpm sampling job " + job.Id + "\n\n", stop.Token);
            await response.Body.FlushAsync(stop.Token);
            await foreach (var e in reader.ReadAllAsync(stop.Token))
            {
                await response.WriteAsync(e.Wire, stop.Token);
                await response.Body.FlushAsync(stop.Token);
            }
            await response.WriteAsync(job.DoneEvent().Wire, stop.Token);
            await response.Body.FlushAsync(stop.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            clientLeft = context.RequestAborted.IsCancellationRequested || e is IOException;
        }
        finally
        {
            int left = job.Unwatch(reader);
            // The issue's rule: a client that goes away cancels its job (unless another client still watches it).
            if (clientLeft && left == 0 && !job.IsFinished) queue.Cancel(job, "its event stream's client went away");
        }
    }

    private static async Task<IResult> Forward(HttpContext context, ServerOptions options, ModelCatalog catalog, DatasetCache datasets)
    {
        var body = await ApiJson.ReadAsync<ForwardBody>(context, options.MaxBodyBytes);
        var entry = catalog.Find(body.Model);
        var source = ImageSource.Parse("image", body.Image, entry, options);
        var levels = body.T ?? new[] { 0, entry.Info.Timesteps / 4, entry.Info.Timesteps / 2, entry.Info.Timesteps };
        if (body.Seed is < 0) throw new ApiProblemException(400, "seed", $"seed must be an integer >= 0; got {body.Seed}.");
        var request = new ForwardProcessRequest(levels, entry.Config.Diffusion.Schedule, body.Seed ?? 0, Index: source.Index);
        ForwardProcessResult result;
        if (source.Upload is not null)
        {
            using var upload = source.UploadAsDataset(entry.Info.Channels, entry.Info.ImageSize);
            result = RunForward(upload, request);
        }
        else
        {
            result = RunForward(datasets.Get(source.Dataset!), request);
        }
        using (result)
        {
            context.Response.Headers["X-Sqrt-Alpha-Bar"] = string.Join(",", result.SqrtAlphaBar.Select(v => v.ToString("0.0000", CultureInfo.InvariantCulture)));
            if (body.Labels == false) return Results.File(SampleQueue.Png(result.Grid, result.Columns), "image/png");
            using var bitmap = result.Render();
            return Results.File(ImageGrid.EncodePng(bitmap), "image/png");
        }
    }

    /// <summary>Runs the library's job; its "index" field is part of this API's "image" field, so an index error names "image".</summary>
    private static ForwardProcessResult RunForward(Ddpm.Data.ImageDataset data, ForwardProcessRequest request)
    {
        try
        {
            return ForwardProcessJob.Run(data, request);
        }
        catch (InvalidRequestException e) when (e.Field == "index")
        {
            throw new ApiProblemException(400, "image", $"image: {e.Message.Replace("--index ", "index ", StringComparison.Ordinal)}");
        }
    }

    private static async Task<IResult> Interpolate(HttpContext context, ServerOptions options, ModelCatalog catalog, ModelCache models, ComputeGate gate)
    {
        var body = await ApiJson.ReadAsync<InterpolateBody>(context, options.MaxBodyBytes);
        var entry = catalog.Find(body.Model);
        var a = ImageSource.Parse("a", body.A, entry, options);
        var b = ImageSource.Parse("b", body.B, entry, options);
        int steps = body.Steps ?? 8;
        if (steps < 2 || steps > options.MaxInterpolants)
            throw new ApiProblemException(400, "steps", $"steps must be from 2 to {options.MaxInterpolants} (interpolants on this server); got {steps}.");
        var method = body.Method?.ToLowerInvariant() switch
        {
            null or "noise" => InterpolationMethod.Noise,
            "ddim" => InterpolationMethod.Ddim,
            _ => throw new ApiProblemException(400, "method", $"method must be noise or ddim; got '{body.Method}'."),
        };
        if (body.DdimSteps is int ddimSteps && (ddimSteps < 1 || ddimSteps > options.MaxSteps))
            throw new ApiProblemException(400, "ddimSteps", $"ddimSteps must be from 1 to {options.MaxSteps}; got {ddimSteps}.");
        if (body.Seed is < 0) throw new ApiProblemException(400, "seed", $"seed must be an integer >= 0; got {body.Seed}.");
        var temporary = new List<string>();
        try
        {
            string Name(ImageSource source)
            {
                if (source.Upload is null) return $"{source.Dataset}:{source.Index}";
                string file = source.WriteTemporary();
                temporary.Add(file);
                return file;
            }
            var request = new InterpolationRequest(Name(a), Name(b), body.T, steps, method, body.Seed ?? 0, options.DataDir, body.DdimSteps ?? 50);
            var model = models.Get(entry);
            await gate.WaitAsync(context.RequestAborted);
            InterpolationResult result;
            try
            {
                result = await Task.Run(() => InterpolationJob.Run(model, request), context.RequestAborted);
            }
            finally
            {
                gate.Release();
            }
            using (result)
            {
                context.Response.Headers["X-Labels"] = string.Join(",", result.Labels);
                return Results.File(SampleQueue.Png(result.Strip, columns: (int)result.Strip.shape[0]), "image/png");
            }
        }
        finally
        {
            foreach (var file in temporary) File.Delete(file);
        }
    }

    /// <summary>12 hex digits from a cryptographic generator: job ids cannot be guessed from each other.</summary>
    private static string NewId() => Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();
}
