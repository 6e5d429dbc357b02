using System.Net;
using System.Text.Json;
using Ddpm.Generation;
using Ddpm.Imaging;
using Ddpm.Runtime;
using Ddpm.Sampling;
using SkiaSharp;

namespace Ddpm.Web.Tests;

/// <summary>The JSON API on the in-memory test server: each endpoint's answer, checked against what the library makes.</summary>
[Collection(ServerCollection.Name)]
public class ApiTests(ServerFixture fixture)
{
    [Fact]
    public async Task Models_ListsTheDiffusionCheckpoints_AndSkipsTheOtherDirectories()
    {
        using var app = fixture.StartInMemory();
        using var response = await app.Client.GetAsync("/api/models");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var models = (await response.Json()).EnumerateArray().ToList();
        Assert.Equal(new[] { ServerFixture.Unconditional, ServerFixture.Conditional }.Order(), models.Select(m => m.GetProperty("name").GetString()).Order());
        var tiny = models.Single(m => m.GetProperty("name").GetString() == ServerFixture.Unconditional);
        Assert.Equal(ServerFixture.ImageSize, tiny.GetProperty("imageSize").GetInt32());
        Assert.Equal(1, tiny.GetProperty("channels").GetInt32());
        Assert.Equal(0, tiny.GetProperty("classes").GetInt32());
        Assert.False(tiny.GetProperty("conditional").GetBoolean());
        Assert.Equal(ServerFixture.Timesteps, tiny.GetProperty("timesteps").GetInt32());
        Assert.Equal("epsilon", tiny.GetProperty("prediction").GetString());
        Assert.Equal("linear", tiny.GetProperty("schedule").GetString());
        var cond = models.Single(m => m.GetProperty("name").GetString() == ServerFixture.Conditional);
        Assert.True(cond.GetProperty("conditional").GetBoolean());
        Assert.Equal(ServerFixture.Classes, cond.GetProperty("classes").GetInt32());
        // The data set is mnist, whose classes are the digits.
        Assert.Equal(Enumerable.Range(0, 10).Select(i => i.ToString()), cond.GetProperty("classNames").EnumerateArray().Select(n => n.GetString()));
        // Nothing about where the models live reaches a client.
        Assert.DoesNotContain(fixture.Root, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Sample_Ddim10_IsDone_AndItsGridIsWhatTheLibraryDraws()
    {
        using var app = fixture.StartInMemory();
        string id = await app.Client.StartJob(new { model = ServerFixture.Conditional, sampler = "ddim", steps = 10, n = 6, seed = 3, @class = 4, guidanceScale = 2.0 });
        var status = await app.Client.WaitUntilFinished(id);
        Assert.Equal("done", status.GetProperty("status").GetString());
        Assert.Equal(10, status.GetProperty("step").GetInt64());
        Assert.Equal(10, status.GetProperty("totalSteps").GetInt64());
        Assert.Equal(JsonValueKind.Null, status.GetProperty("position").ValueKind);
        Assert.Equal($"/api/samples/{id}/grid.png", status.GetProperty("gridUrl").GetString());

        using var grid = await app.Client.GetAsync($"/api/samples/{id}/grid.png");
        Assert.Equal(HttpStatusCode.OK, grid.StatusCode);
        Assert.Equal("image/png", grid.ContentType()?.MediaType);
        using var served = Http.Png(await grid.Content.ReadAsByteArrayAsync());

        // The same request through the library directly: the same pixels.
        using var model = DiffusionModel.Load(Path.Combine(fixture.ModelsDir, ServerFixture.Conditional), compute: ComputeSettings.Resolve(PrecisionChoice.Auto, false));
        var request = new SamplingRequest(new SamplerChoice(SamplerKind.Ddim, 10), 6, 6, 3, new ConditioningRequest(4, GuidanceScale: 2.0));
        using var result = SamplingPipeline.Run(model, request);
        using var expected = ImageGrid.ToBitmap(result.Samples);
        Assert.Equal((expected.Width, expected.Height), (served.Width, served.Height));
        Assert.Equal(3 * (ServerFixture.ImageSize + 2) + 2, served.Width); // ⌈√6⌉ = 3 columns
        // Same arithmetic on two threads; allow one level of 8-bit rounding.
        for (int y = 0; y < served.Height; y++)
            for (int x = 0; x < served.Width; x++)
                Assert.InRange(served.GetPixel(x, y).Red - expected.GetPixel(x, y).Red, -1, 1);
    }

    /// <summary>
    /// Starts a job while holding the CPU gate and opens its event stream before releasing it, so that the stream sees
    /// every frame from the first step on.
    /// </summary>
    private static async Task<(string Id, Task<List<(string Name, JsonElement Data)>> Events)> StartWatched(TestApp app, object body)
    {
        var gate = app.Service<ComputeGate>();
        await gate.WaitAsync(CancellationToken.None);
        try
        {
            string id = await app.Client.StartJob(body);
            return (id, Http.ReadEvents(await app.Client.GetStreamAsync($"/api/samples/{id}/events")));
        }
        finally
        {
            gate.Release();
        }
    }

    [Fact]
    public async Task Events_SendAFrameEveryKSteps_WithPngsOfXtAndX0_ThenDone()
    {
        using var app = fixture.StartInMemory();
        var (id, reading) = await StartWatched(app, new { model = ServerFixture.Unconditional, sampler = "ddim", steps = 10, n = 4, seed = 1, frameEvery = 3 });
        var events = await reading;
        Assert.Equal("done", events[^1].Name);
        Assert.Equal("done", events[^1].Data.GetProperty("status").GetString());
        Assert.Equal($"/api/samples/{id}/grid.png", events[^1].Data.GetProperty("gridUrl").GetString());
        var frames = events.Where(e => e.Name == "frame").Select(e => e.Data).ToList();
        // Every 3 steps, and the last.
        Assert.Equal(new[] { 3, 6, 9, 10 }, frames.Select(f => f.GetProperty("step").GetInt32()));
        Assert.Equal("queued", events[0].Data.GetProperty("status").GetString());
        var last = frames[^1];
        Assert.Equal(10, last.GetProperty("totalSteps").GetInt32());
        Assert.True(last.GetProperty("imagesPerSecond").GetDouble() > 0);
        foreach (var key in new[] { "xt", "x0" })
        {
            string url = last.GetProperty(key).GetString()!;
            Assert.StartsWith("data:image/png;base64,", url);
            using var picture = Http.Png(Convert.FromBase64String(url["data:image/png;base64,".Length..]));
            Assert.Equal(2 * (ServerFixture.ImageSize + 1) + 1, picture.Width); // 4 samples: 2 × 2, 1 pixel apart
        }
    }

    [Fact]
    public async Task Events_OfAWatchedJob_ShowXtChangingFromNoiseToTheSample()
    {
        using var app = fixture.StartInMemory();
        var (_, reading) = await StartWatched(app, new { model = ServerFixture.Unconditional, sampler = "ddim", steps = 8, n = 4, seed = 2 });
        var events = await reading;
        var frames = events.Where(e => e.Name == "frame").Select(e => e.Data).ToList();
        Assert.Equal(Enumerable.Range(1, 8), frames.Select(f => f.GetProperty("step").GetInt32()));
        // x_t moves at every step (an untrained network saturates some pixels, so neighbouring PNGs may coincide).
        var pictures = frames.Select(f => f.GetProperty("xt").GetString()).ToList();
        Assert.True(pictures.Distinct().Count() >= 5, $"only {pictures.Distinct().Count()} distinct x_t frames of 8");
        Assert.NotEqual(pictures[0], pictures[^1]);
        Assert.Contains(events, e => e.Name == "status" && e.Data.GetProperty("status").GetString() == "running");
    }

    [Fact]
    public async Task Delete_CancelsQueuedAndRunningJobs()
    {
        using var app = fixture.StartInMemory();
        var gate = app.Service<ComputeGate>();
        await gate.WaitAsync(CancellationToken.None);
        string first, second;
        try
        {
            first = await app.Client.StartJob(new { model = ServerFixture.Unconditional, steps = 5, n = 2 });
            await Http.WaitUntil(() => app.Service<SampleQueue>().RunningJobId == first);
            second = await app.Client.StartJob(new { model = ServerFixture.Unconditional, steps = 5, n = 2 });
            var queued = await (await app.Client.GetAsync($"/api/samples/{second}")).Json();
            Assert.Equal("queued", queued.GetProperty("status").GetString());
            Assert.Equal(1, queued.GetProperty("position").GetInt32());

            using var deleted = await app.Client.DeleteAsync($"/api/samples/{second}");
            Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
            Assert.Equal("cancelled", (await deleted.Json()).GetProperty("status").GetString());
            // The job that waited for the CPU is cancelled too.
            using var deletedFirst = await app.Client.DeleteAsync($"/api/samples/{first}");
            Assert.True(deletedFirst.StatusCode is HttpStatusCode.OK or HttpStatusCode.Accepted);
            Assert.Equal("cancelled", (await app.Client.WaitUntilFinished(first)).GetProperty("status").GetString());
        }
        finally
        {
            gate.Release();
        }
        await Http.AssertProblem(await app.Client.GetAsync($"/api/samples/{second}/grid.png"), 409, "id");

        // A running job stops before its next step: 1000 DDPM steps of 64 samples take far longer than the wait here.
        string running = await app.Client.StartJob(new { model = ServerFixture.Unconditional, sampler = "ddpm", steps = ServerFixture.Timesteps, n = 64 });
        await app.Client.WaitFor(running, s => s.GetProperty("step").GetInt64() > 0);
        using (var response = await app.Client.DeleteAsync($"/api/samples/{running}"))
            Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Accepted);
        var stopped = await app.Client.WaitUntilFinished(running, 20);
        Assert.Equal("cancelled", stopped.GetProperty("status").GetString());
        Assert.True(stopped.GetProperty("step").GetInt64() < stopped.GetProperty("totalSteps").GetInt64());
        await Http.WaitUntil(() => app.Service<SampleQueue>().ActiveCount == 0);
    }

    [Fact]
    public async Task Queue_WhenFull_Answers429WithRetryAfter()
    {
        using var app = fixture.StartInMemory(o => o with { MaxQueuedJobs = 2 });
        var gate = app.Service<ComputeGate>();
        await gate.WaitAsync(CancellationToken.None);
        try
        {
            var body = new { model = ServerFixture.Unconditional, steps = 5, n = 2 };
            string first = await app.Client.StartJob(body);
            await Http.WaitUntil(() => app.Service<SampleQueue>().RunningJobId == first);
            await app.Client.StartJob(body);
            await app.Client.StartJob(body);
            using var refused = await app.Client.PostJson("/api/samples", body);
            await Http.AssertProblem(refused, 429, null);
            Assert.NotNull(refused.Headers.RetryAfter?.Delta);
            Assert.InRange(refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 600);
        }
        finally
        {
            gate.Release();
        }
    }

    [Fact]
    public async Task Burst_Of30ConcurrentPosts_GetsOnly202Or429_TheServerKeepsAnswering_MemoryComesBack()
    {
        using var app = fixture.StartInMemory();
        var body = new { model = ServerFixture.Unconditional, steps = 10, n = 8 };
        // Warm up (model loaded, first job run), then measure.
        await app.Client.WaitUntilFinished(await app.Client.StartJob(body));
        long before = ManagedMemory();

        var gate = app.Service<ComputeGate>();
        await gate.WaitAsync(CancellationToken.None);
        HttpResponseMessage[] answers;
        try
        {
            answers = await Task.WhenAll(Enumerable.Range(0, 30).Select(_ => Task.Run(() => app.Client.PostJson("/api/samples", body))));
            // While every slot is taken the server still answers other requests.
            using var models = await app.Client.GetAsync("/api/models");
            Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        }
        finally
        {
            gate.Release();
        }
        var codes = answers.Select(a => (int)a.StatusCode).ToList();
        Assert.All(codes, c => Assert.True(c is 202 or 429, $"status {c}"));
        int accepted = codes.Count(c => c == 202);
        Assert.InRange(accepted, 4, 5); // the queue's 4 places, plus the job the worker took while the burst came in
        foreach (var answer in answers.Where(a => a.StatusCode == HttpStatusCode.TooManyRequests))
            Assert.NotNull(answer.Headers.RetryAfter);
        foreach (var answer in answers.Where(a => a.StatusCode == HttpStatusCode.Accepted))
            Assert.Equal("done", (await app.Client.WaitUntilFinished((await answer.Json()).GetProperty("id").GetString()!)).GetProperty("status").GetString());
        foreach (var answer in answers) answer.Dispose();

        await Http.WaitUntil(() => app.Service<SampleQueue>().ActiveCount == 0);
        long after = ManagedMemory();
        Assert.True(after - before < 16 * 1024 * 1024, $"managed memory grew by {(after - before) / 1024} KiB over the burst");
    }

    private static long ManagedMemory()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    [Fact]
    public async Task Forward_NoisesADataSetImage_AtTheModelsSchedule()
    {
        using var app = fixture.StartInMemory();
        using var response = await app.Client.PostJson("/api/forward", new { model = ServerFixture.Unconditional, image = "dataset:3", t = new[] { 0, 500, 1000 }, seed = 7 });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("image/png", response.ContentType()?.MediaType);
        // √ᾱ_t of the linear schedule (β from 1e-4 to 0.02 over T = 1000), computed here from its definition.
        double alphaBar = 1;
        for (int i = 0; i < 500; i++) alphaBar *= 1 - (1e-4 + (0.02 - 1e-4) * i / 999.0);
        var signal = response.Headers.GetValues("X-Sqrt-Alpha-Bar").Single().Split(',').Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(3, signal.Length);
        Assert.Equal(1.0, signal[0]);
        Assert.Equal(Math.Sqrt(alphaBar), signal[1], 3);
        Assert.True(signal[2] < 0.01);

        using var bitmap = Http.Png(await response.Content.ReadAsByteArrayAsync());
        int scale = LabelledGrid.ScaleFor(ServerFixture.ImageSize), band = LabelledGrid.BandHeight(), cell = ServerFixture.ImageSize * scale + 2;
        Assert.Equal(3 * cell + 2, bitmap.Width);
        int differing = 0;
        for (int y = 0; y < ServerFixture.ImageSize; y++)
            for (int x = 0; x < ServerFixture.ImageSize; x++)
            {
                byte clean = fixture.TestPixels[3, y, x];
                Assert.Equal(new SKColor(clean, clean, clean), bitmap.GetPixel(2 + x * scale, band + 2 + y * scale));
                if (bitmap.GetPixel(2 + 2 * cell + x * scale, band + 2 + y * scale) != bitmap.GetPixel(2 + x * scale, band + 2 + y * scale)) differing++;
            }
        Assert.True(differing > 50, $"only {differing} of 64 pixels changed at t = T");
    }

    [Fact]
    public async Task Forward_WithoutLabels_IsTheBareImages()
    {
        using var app = fixture.StartInMemory();
        using var response = await app.Client.PostJson("/api/forward", new { model = ServerFixture.Unconditional, image = "mnist:5", t = new[] { 0, 300 }, labels = false });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var bitmap = Http.Png(await response.Content.ReadAsByteArrayAsync());
        int cell = ServerFixture.ImageSize + 2;
        Assert.Equal((2 * cell + 2, cell + 2), (bitmap.Width, bitmap.Height));
        byte clean = fixture.TestPixels[5, 4, 6];
        Assert.Equal(new SKColor(clean, clean, clean), bitmap.GetPixel(2 + 6, 2 + 4));
    }

    [Fact]
    public async Task Forward_OfAnUploadedPng_UsesItsPixels()
    {
        using var app = fixture.StartInMemory();
        string upload = Http.PngDataUrl(20, 16, new SKColor(200, 200, 200));
        using var response = await app.Client.PostJson("/api/forward", new { model = ServerFixture.Unconditional, image = upload, t = new[] { 0 } });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var bitmap = Http.Png(await response.Content.ReadAsByteArrayAsync());
        int scale = LabelledGrid.ScaleFor(ServerFixture.ImageSize), band = LabelledGrid.BandHeight();
        var pixel = bitmap.GetPixel(2 + 3 * scale, band + 2 + 3 * scale);
        Assert.InRange(pixel.Red, 199, 201);
    }

    [Fact]
    public async Task Interpolate_ReturnsAStrip_AThenTheInterpolantsThenB()
    {
        using var app = fixture.StartInMemory();
        foreach (var method in new[] { "noise", "ddim" })
        {
            using var response = await app.Client.PostJson("/api/interpolate",
                new { model = ServerFixture.Unconditional, a = "dataset:0", b = "mnist:1", t = 20, steps = 4, method, ddimSteps = 5, seed = 2 });
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            Assert.Equal("a,0,0.33,0.67,1,b", response.Headers.GetValues("X-Labels").Single());
            using var strip = Http.Png(await response.Content.ReadAsByteArrayAsync());
            int cell = ServerFixture.ImageSize + 2;
            Assert.Equal((6 * cell + 2, cell + 2), (strip.Width, strip.Height));
            for (int y = 0; y < ServerFixture.ImageSize; y++)
                for (int x = 0; x < ServerFixture.ImageSize; x++)
                {
                    byte a = fixture.TestPixels[0, y, x], b = fixture.TestPixels[1, y, x];
                    Assert.Equal(new SKColor(a, a, a), strip.GetPixel(2 + x, 2 + y));
                    Assert.Equal(new SKColor(b, b, b), strip.GetPixel(2 + 5 * cell + x, 2 + y));
                }
        }
    }

    public static TheoryData<string, string, int, string?> BadSampleBodies => new()
    {
        { "{}", "empty", 400, "model" },
        { "{\"model\": \"../tiny\"}", "traversal", 400, "model" },
        { "{\"model\": \"../../../etc\"}", "traversal to root", 400, "model" },
        { "{\"model\": \"/tmp\"}", "absolute path", 400, "model" },
        { "{\"model\": \"feature-net\"}", "not a diffusion model", 400, "model" },
        { "{\"model\": \"tiny\", \"sampler\": \"magic\"}", "sampler", 400, "sampler" },
        { "{\"model\": \"tiny\", \"n\": 0}", "n too small", 400, "n" },
        { "{\"model\": \"tiny\", \"n\": 1000}", "n over the limit", 400, "n" },
        { "{\"model\": \"tiny\", \"steps\": 0}", "steps too small", 400, "steps" },
        { "{\"model\": \"tiny\", \"steps\": 5000}", "steps over T", 400, "steps" },
        { "{\"model\": \"tiny\", \"steps\": \"ten\"}", "steps not a number", 400, "steps" },
        { "{\"model\": \"tiny\", \"sampler\": \"ddpm\", \"eta\": 0.5}", "eta off ddim", 400, "eta" },
        { "{\"model\": \"tiny\", \"eta\": 2}", "eta out of range", 400, "eta" },
        { "{\"model\": \"tiny\", \"class\": 3}", "class on an unconditional model", 400, "class" },
        { "{\"model\": \"tiny-cond\", \"class\": 10}", "class out of range", 400, "class" },
        { "{\"model\": \"tiny\", \"guidanceScale\": 2}", "guidance on an unconditional model", 400, "guidanceScale" },
        { "{\"model\": \"tiny-cond\", \"guidanceScale\": -1}", "negative guidance", 400, "guidanceScale" },
        { "{\"model\": \"tiny\", \"seed\": -1}", "negative seed", 400, "seed" },
        { "{\"model\": \"tiny\", \"frameEvery\": 0}", "frameEvery", 400, "frameEvery" },
        { "{\"model\": \"tiny\", \"colour\": \"red\"}", "unknown field", 400, "colour" },
        { "not json", "not JSON", 400, null },
        { "[1, 2]", "an array", 400, null },
    };

    [Theory]
    [MemberData(nameof(BadSampleBodies))]
    public async Task Samples_BadBody_IsAProblemNamingTheField(string body, string what, int status, string? field)
    {
        using var app = fixture.StartInMemory();
        using var response = await app.Client.PostRaw("/api/samples", body);
        await Http.AssertProblem(response, status, field);
        Assert.True(what.Length > 0);
        Assert.Equal(0, app.Service<SampleQueue>().ActiveCount);
    }

    public static TheoryData<string, object, int, string?> BadImageBodies => new()
    {
        { "/api/forward", new { model = "tiny", image = "/etc/passwd", t = new[] { 0 } }, 400, "image" },
        { "/api/forward", new { model = "tiny", image = "../../etc/passwd:1", t = new[] { 0 } }, 400, "image" },
        { "/api/forward", new { model = "tiny", image = "folder:/tmp:1", t = new[] { 0 } }, 400, "image" },
        { "/api/forward", new { model = "tiny", image = "imagenet:1", t = new[] { 0 } }, 400, "image" },
        { "/api/forward", new { model = "tiny", image = "dataset:99", t = new[] { 0 } }, 400, "image" },
        { "/api/forward", new { model = "tiny", image = "data:image/png;base64,%%%", t = new[] { 0 } }, 400, "image" },
        { "/api/forward", new { model = "tiny", image = "data:image/png;base64,aGVsbG8=", t = new[] { 0 } }, 400, "image" },
        { "/api/forward", new { model = "tiny", image = "dataset:0", t = new[] { 5000 } }, 400, "t" },
        { "/api/forward", new { model = "tiny", image = "dataset:0", t = Array.Empty<int>() }, 400, "t" },
        { "/api/forward", new { model = "..", image = "dataset:0" }, 400, "model" },
        { "/api/interpolate", new { model = "tiny", a = "dataset:0", b = "dataset:1", steps = 1 }, 400, "steps" },
        { "/api/interpolate", new { model = "tiny", a = "dataset:0", b = "dataset:1", steps = 17 }, 400, "steps" },
        { "/api/interpolate", new { model = "tiny", a = "dataset:0", b = "dataset:1", method = "zigzag" }, 400, "method" },
        { "/api/interpolate", new { model = "tiny", a = "/etc/hosts", b = "dataset:1" }, 400, "a" },
        { "/api/interpolate", new { model = "tiny", a = "dataset:0", b = "dataset:1", t = 5000 }, 400, "t" },
        { "/api/interpolate", new { model = "tiny", a = "dataset:0" }, 400, "b" },
    };

    [Theory]
    [MemberData(nameof(BadImageBodies))]
    public async Task ForwardAndInterpolate_BadBody_IsAProblemNamingTheField(string path, object body, int status, string? field)
    {
        using var app = fixture.StartInMemory();
        using var response = await app.Client.PostJson(path, body);
        await Http.AssertProblem(response, status, field);
    }

    [Fact]
    public async Task Uploads_AreBoundedInBytesAndPixels()
    {
        using var app = fixture.StartInMemory(o => o with { MaxUploadBytes = 4096, MaxUploadPixels = 1000 });
        // 40 × 40 = 1600 pixels: small in bytes (one colour compresses well), too many pixels.
        using (var response = await app.Client.PostJson("/api/forward", new { model = "tiny", image = Http.PngDataUrl(40, 40, SKColors.Gray), t = new[] { 0 } }))
            await Http.AssertProblem(response, 413, "image");
        // More bytes than allowed, whatever they hold.
        string big = "data:image/png;base64," + Convert.ToBase64String(new byte[6000]);
        using (var response = await app.Client.PostJson("/api/forward", new { model = "tiny", image = big, t = new[] { 0 } }))
            await Http.AssertProblem(response, 413, "image");
        // A body far beyond the limit is refused before it is read.
        using (var response = await app.Client.PostRaw("/api/forward", "{\"model\": \"tiny\", \"image\": \"" + new string('A', 200_000) + "\"}"))
            await Http.AssertProblem(response, 413, null);
        // Within both limits it works.
        using (var response = await app.Client.PostJson("/api/forward", new { model = "tiny", image = Http.PngDataUrl(30, 30, SKColors.Gray), t = new[] { 0 } }))
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task UnknownIdsRoutesAndMethods_AreProblems()
    {
        using var app = fixture.StartInMemory();
        await Http.AssertProblem(await app.Client.GetAsync("/api/samples/0123456789ab"), 404, "id");
        await Http.AssertProblem(await app.Client.GetAsync("/api/samples/0123456789ab/grid.png"), 404, "id");
        await Http.AssertProblem(await app.Client.GetAsync("/api/samples/0123456789ab/events"), 404, "id");
        await Http.AssertProblem(await app.Client.DeleteAsync("/api/samples/0123456789ab"), 404, "id");
        await Http.AssertProblem(await app.Client.GetAsync("/api/samples/..%2F..%2Fetc%2Fpasswd"), 404, "id");
        await Http.AssertProblem(await app.Client.GetAsync("/api/nothing-here"), 404, null);
        await Http.AssertProblem(await app.Client.GetAsync("/../../etc/passwd"), 404, null);
        await Http.AssertProblem(await app.Client.PutAsync("/api/models", new StringContent("")), 405, null);
        await Http.AssertProblem(await app.Client.PostRaw("/api/samples", "model=tiny", "application/x-www-form-urlencoded"), 415, null);
        await Http.AssertProblem(await app.Client.PostRaw("/api/samples", ""), 400, null);
    }

    [Fact]
    public async Task Page_IsServedFromTheAssembly_EveryControlHasALabel()
    {
        using var app = fixture.StartInMemory();
        using var page = await app.Client.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.ContentType()?.MediaType);
        string html = await page.Content.ReadAsStringAsync();
        foreach (var asset in new[] { "/app.js", "/app.css" })
        {
            using var response = await app.Client.GetAsync(asset);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Contains(asset, html);
        }
        // No CDN: nothing is loaded from another origin.
        Assert.DoesNotMatch(@"(src|href)=""(https?:)?//", html);
        var labelled = System.Text.RegularExpressions.Regex.Matches(html, @"<label for=""([^""]+)""").Select(m => m.Groups[1].Value).ToHashSet();
        var controls = System.Text.RegularExpressions.Regex.Matches(html, @"<(input|select)\s[^>]*id=""([^""]+)""").Select(m => m.Groups[2].Value).ToList();
        Assert.True(controls.Count >= 12, $"found {controls.Count} controls");
        Assert.All(controls, id => Assert.Contains(id, labelled));
    }

    [Fact]
    public async Task Requests_AreLoggedOneLineEach()
    {
        using var app = fixture.StartInMemory();
        (await app.Client.GetAsync("/api/models")).Dispose();
        (await app.Client.GetAsync("/api/samples/0123456789ab")).Dispose();
        // The line is written when the request ends, which may be just after the client has its answer.
        List<string> Lines() => app.Logs.Lines.Where(l => l.Contains("Ddpm.Web.Requests", StringComparison.Ordinal)).ToList();
        await Http.WaitUntil(() => Lines().Count >= 2);
        await Task.Delay(100);
        var lines = Lines();
        Assert.Equal(2, lines.Count);
        Assert.Contains("GET /api/models 200", lines[0]);
        Assert.Contains("GET /api/samples/0123456789ab 404", lines[1]);
    }
}
