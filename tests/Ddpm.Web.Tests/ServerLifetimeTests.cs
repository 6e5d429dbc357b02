using System.Net;
using Ddpm.Cli;

namespace Ddpm.Web.Tests;

/// <summary>The server on real Kestrel: clients that hang up, stopping with jobs running, and `ddpm serve`'s options.</summary>
[Collection(ServerCollection.Name)]
public class ServerLifetimeTests(ServerFixture fixture)
{
    [Fact]
    public async Task EventStream_ClientThatGoesAway_CancelsItsJob()
    {
        using var app = fixture.StartKestrel();
        // 1000 DDPM steps of 64 samples: far longer than this test waits.
        string id = await app.Client.StartJob(new { model = ServerFixture.Unconditional, sampler = "ddpm", steps = ServerFixture.Timesteps, n = 64, frameEvery = 1 });
        using (var response = await app.Client.GetAsync($"/api/samples/{id}/events", HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            using var stream = await response.Content.ReadAsStreamAsync();
            using var reader = new StreamReader(stream);
            string? line;
            while ((line = await reader.ReadLineAsync()) is not null && line != "event: frame") { }
            Assert.Equal("event: frame", line);
        } // the client hangs up here
        var status = await app.Client.WaitUntilFinished(id, 20);
        Assert.Equal("cancelled", status.GetProperty("status").GetString());
        Assert.True(status.GetProperty("step").GetInt64() < status.GetProperty("totalSteps").GetInt64());
        Assert.Contains(app.Logs.Lines, l => l.Contains($"job {id}: cancel asked (its event stream's client went away)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task JobPolledWithoutAnEventStream_RunsToDone()
    {
        // Only a client that watched a job and left cancels it; a curl user who polls is not cut off.
        using var app = fixture.StartKestrel();
        string id = await app.Client.StartJob(new { model = ServerFixture.Unconditional, sampler = "ddim", steps = 20, n = 4 });
        var status = await app.Client.WaitUntilFinished(id);
        Assert.Equal("done", status.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Stopping_CancelsTheRunningAndQueuedJobs_ThenStops()
    {
        var app = fixture.StartKestrel();
        SampleJob running, queued;
        try
        {
            string first = await app.Client.StartJob(new { model = ServerFixture.Unconditional, sampler = "ddpm", steps = ServerFixture.Timesteps, n = 64 });
            string second = await app.Client.StartJob(new { model = ServerFixture.Unconditional, sampler = "ddpm", steps = ServerFixture.Timesteps, n = 64 });
            await app.Client.WaitFor(first, s => s.GetProperty("step").GetInt64() > 0);
            var queue = app.Service<SampleQueue>();
            running = queue.Get(first)!;
            queued = queue.Get(second)!;
        }
        finally
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            app.Dispose(); // StopAsync: what SIGTERM and Ctrl+C run
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(15), $"stopping took {watch.Elapsed}");
        }
        Assert.Equal(JobStatus.Cancelled, running.Status);
        Assert.Equal(JobStatus.Cancelled, queued.Status);
        Assert.True(running.Step < running.TotalSteps);
    }

    [Fact]
    public async Task Kestrel_ListensOnLoopback_AndServesThePage()
    {
        using var app = fixture.StartKestrel();
        Assert.StartsWith("http://127.0.0.1:", app.Address);
        using var page = await app.Client.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("<title>ddpm serve", await page.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("--port", "70000", "--port")]
    [InlineData("--host", "example.org", "--host")]
    [InlineData("--models", "/nonexistent/models", "--models")]
    [InlineData("--max-samples", "0", "--max-samples")]
    public void ServeCommand_BadOption_IsOneLineUsageError(string option, string value, string named)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        string[] args = option == "--models" ? new[] { "serve", option, value } : new[] { "serve", "--models", fixture.ModelsDir, option, value };
        int code = Program.Run(args, stdout, stderr);
        Assert.Equal(2, code);
        var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(named, lines[0]);
        Assert.Equal("", stdout.ToString());
    }

    [Fact]
    public void ServeCommand_PortInUse_IsOneLineError()
    {
        using var app = fixture.StartKestrel();
        string port = new Uri(app.Address!).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var stderr = new StringWriter();
        int code = Program.Run(new[] { "serve", "--models", fixture.ModelsDir, "--port", port }, new StringWriter(), stderr);
        Assert.Equal(2, code);
        string error = Assert.Single(stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"error: cannot listen on http://127.0.0.1:{port}", error);
        Assert.Contains("--port", error);
    }
}
