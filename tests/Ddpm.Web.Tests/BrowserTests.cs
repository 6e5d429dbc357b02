using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Ddpm.Web.Tests;

/// <summary>
/// A fact that drives Debian's Chromium through Playwright. Playwright cannot download its own browser here, so the
/// tests launch /usr/bin/chromium (CI installs it: .ci/run); without it they are skipped, and say why.
/// </summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public const string Executable = "/usr/bin/chromium";

    public ChromiumFactAttribute()
    {
        if (!File.Exists(Executable)) Skip = $"{Executable} is missing: apt-get install chromium (the browser tests drive Debian's Chromium)";
    }
}

/// <summary>Starts Playwright's driver and Chromium for a test.</summary>
public static class Browser
{
    public static async Task<(IPlaywright Playwright, IBrowser Browser)> Launch()
    {
        var playwright = await Playwright.CreateAsync();
        var args = new List<string>();
        // Chromium's sandbox refuses to run as root (CI runs as root).
        if (Environment.UserName == "root") args.Add("--no-sandbox");
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = ChromiumFactAttribute.Executable, Headless = true, Args = args });
        return (playwright, browser);
    }

    /// <summary>Records every image the x_t picture shows, so that a test can count the live frames afterwards.</summary>
    public const string RecordFrames = @"() => {
        window.__frames = [];
        const xt = document.getElementById('xt');
        new MutationObserver(() => window.__frames.push(xt.src)).observe(xt, { attributes: true, attributeFilter: ['src'] });
    }";

    /// <summary>Holds the CPU so that the job waits until the page's event stream is open, then lets it run.</summary>
    public static async Task ReleaseWhenWatched(TestApp app, ComputeGate gate)
    {
        var queue = app.Service<SampleQueue>();
        await Http.WaitUntil(() => queue.RunningJobId is { } id && queue.Get(id)?.WatcherCount > 0);
        gate.Release();
    }
}

[Collection(ServerCollection.Name)]
public class BrowserTests(ServerFixture fixture)
{
    [ChromiumFact]
    public async Task Page_SamplesWithDdim10_FramesChangeLive_GridAppears_ForwardSliderMoves_ErrorsAreShown()
    {
        using var app = fixture.StartKestrel();
        var (playwright, browser) = await Browser.Launch();
        using (playwright)
        await using (browser)
        {
            var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 800 } });
            var consoleErrors = new List<string>();
            page.Console += (_, message) => { if (message.Type == "error") consoleErrors.Add(message.Text); };
            await page.GotoAsync(app.Address!);

            // The models are listed; pick the unconditional one: class and guidance are then disabled.
            await Expect(page.Locator("#model option")).ToHaveCountAsync(2);
            await page.Locator("#model").SelectOptionAsync(ServerFixture.Unconditional);
            await Expect(page.Locator("#class")).ToBeDisabledAsync();
            await Expect(page.Locator("#guidance")).ToBeDisabledAsync();

            // Sample with DDIM, 10 steps; the job waits for the CPU until the page watches it, so every frame is seen.
            await page.Locator("#sampler").SelectOptionAsync("ddim");
            await page.Locator("#steps").FillAsync("10");
            await page.Locator("#n").FillAsync("4");
            await page.EvaluateAsync(Browser.RecordFrames);
            var gate = app.Service<ComputeGate>();
            await gate.WaitAsync(CancellationToken.None);
            await page.Locator("#sample-button").ClickAsync();
            await Browser.ReleaseWhenWatched(app, gate);
            await Expect(page.Locator("#grid-figure")).ToBeVisibleAsync(new() { Timeout = 30_000 });
            await Expect(page.Locator("#step-counter")).ToHaveTextAsync("10 / 10");
            await Expect(page.Locator("#sample-status")).ToContainTextAsync("done");
            var frames = await page.EvaluateAsync<string[]>("() => window.__frames");
            Assert.True(frames.Distinct().Count() >= 5, $"only {frames.Distinct().Count()} distinct live frames");
            Assert.All(frames, f => Assert.StartsWith("data:image/png;base64,", f));
            Assert.True(await page.EvaluateAsync<bool>("() => document.getElementById('grid').complete && document.getElementById('grid').naturalWidth > 0"));
            string href = (await page.Locator("#grid-download").GetAttributeAsync("href"))!;
            Assert.Matches("^/api/samples/[0-9a-f]{12}/grid.png$", href);
            using (var grid = await app.Client.GetAsync(href))
                Assert.Equal("image/png", grid.Content.Headers.ContentType?.MediaType);

            // The forward-process slider, by keyboard: End goes to t = T; the picture and √ᾱ follow.
            var slider = page.Locator("#forward-t");
            await Expect(page.Locator("#forward-result")).ToHaveAttributeAsync("src", new System.Text.RegularExpressions.Regex("^blob:"));
            string before = (await page.Locator("#forward-result").GetAttributeAsync("src"))!;
            await slider.FocusAsync();
            await page.Keyboard.PressAsync("End");
            await Expect(page.Locator("#forward-t-value")).ToHaveTextAsync($"t = {ServerFixture.Timesteps}");
            await Expect(page.Locator("#forward-result")).Not.ToHaveAttributeAsync("src", before);
            await Expect(page.Locator("#forward-signal")).ToContainTextAsync("0.00");
            await page.Keyboard.PressAsync("Home");
            await Expect(page.Locator("#forward-t-value")).ToHaveTextAsync("t = 0");
            await Expect(page.Locator("#forward-signal")).ToContainTextAsync("1.0000");

            // An API error is shown in the page, naming the field: more steps than the model's T.
            await page.Locator("#steps").FillAsync("5000");
            await page.Locator("#sample-button").ClickAsync();
            await Expect(page.Locator("#sample-error")).ToBeVisibleAsync();
            await Expect(page.Locator("#sample-error")).ToContainTextAsync("400");
            await Expect(page.Locator("#sample-error")).ToContainTextAsync("[steps]");
            // And an error of the forward section: an image the server does not read.
            await page.Locator("#forward-image").FillAsync("/etc/passwd");
            await page.Locator("#forward-image").DispatchEventAsync("change");
            await Expect(page.Locator("#forward-error")).ToContainTextAsync("[image]");
            // The browser reports each refused request in its console; nothing else went wrong there.
            Assert.All(consoleErrors, e => Assert.Contains("status of 400", e));
        }
    }

    [ChromiumFact]
    public async Task Page_Interpolates_LambdaSliderShowsEachImage_AndFitsANarrowWindow()
    {
        using var app = fixture.StartKestrel();
        var (playwright, browser) = await Browser.Launch();
        using (playwright)
        await using (browser)
        {
            var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 420, Height = 800 } });
            await page.GotoAsync(app.Address!);
            await Expect(page.Locator("#model option")).ToHaveCountAsync(2);
            // Nothing is wider than the window.
            Assert.True(await page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"),
                "the page scrolls sideways at 420 px");

            await page.Locator("#interp-t").FillAsync("20");
            await page.Locator("#interp-steps").FillAsync("4");
            await page.Locator("#interpolate-button").ClickAsync();
            await Expect(page.Locator("#lambda-figure")).ToBeVisibleAsync(new() { Timeout = 30_000 });
            await Expect(page.Locator("#lambda")).ToHaveAttributeAsync("max", "5");
            await page.Locator("#lambda").FocusAsync();
            await page.Keyboard.PressAsync("Home");
            await Expect(page.Locator("#lambda-value")).ToHaveTextAsync("image a");
            await page.Keyboard.PressAsync("ArrowRight");
            await Expect(page.Locator("#lambda-value")).ToHaveTextAsync("λ = 0");
            await page.Keyboard.PressAsync("ArrowRight");
            await Expect(page.Locator("#lambda-value")).ToHaveTextAsync("λ = 0.33");
            await page.Keyboard.PressAsync("End");
            await Expect(page.Locator("#lambda-value")).ToHaveTextAsync("image b");
            // The enlarged view shows image b: its top-left pixel is the data set's.
            byte expected = fixture.TestPixels[1, 0, 0];
            int red = await page.EvaluateAsync<int>("() => document.getElementById('lambda-view').getContext('2d').getImageData(2, 2, 1, 1).data[0]");
            Assert.InRange(red, expected - 1, expected + 1);
        }
    }
}
