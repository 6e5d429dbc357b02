using Microsoft.Extensions.Logging;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Ddpm.Web.Tests;

/// <summary>
/// Runs only when DDPM_SCREENSHOTS names a folder (and Chromium is there): the page over the repository's shipped
/// models and Fashion-MNIST, photographed at 1280×800 while sampling, when done, and in a narrow window. It makes the
/// README's pictures: <c>DDPM_SCREENSHOTS=docs/images dotnet test tests/Ddpm.Web.Tests --filter Screenshots</c>.
/// </summary>
public sealed class ScreenshotFactAttribute : FactAttribute
{
    public const string Variable = "DDPM_SCREENSHOTS";

    public ScreenshotFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(Variable))) Skip = $"set {Variable}=FOLDER to photograph the page (docs/images holds the README's)";
        else if (!File.Exists(ChromiumFactAttribute.Executable)) Skip = $"{ChromiumFactAttribute.Executable} is missing: apt-get install chromium";
    }
}

public class Screenshots
{
    [ScreenshotFact]
    public async Task Screenshots_OfThePage_WithTheShippedModels()
    {
        // A relative folder is taken from the checkout's root (tests run in their output folder).
        string folder = Path.GetFullPath(Environment.GetEnvironmentVariable(ScreenshotFactAttribute.Variable)!, Support.RepositoryRoot);
        Directory.CreateDirectory(folder);
        string models = Path.Combine(Support.RepositoryRoot, "models");
        var app = DdpmServer.Build(new ServerOptions(models, "127.0.0.1", 0), builder => builder.Logging.ClearProviders());
        await app.StartAsync();
        try
        {
            string address = DdpmServer.Addresses(app).Single();
            var (playwright, browser) = await Browser.Launch();
            using (playwright)
            await using (browser)
            {
                var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 800 } });
                await page.GotoAsync(address);
                await page.Locator("#model").SelectOptionAsync("fashion-mnist-cond");
                await page.Locator("#sampler").SelectOptionAsync("ddim");
                await page.Locator("#steps").FillAsync("50");
                await page.Locator("#n").FillAsync("16");
                await page.Locator("#seed").FillAsync("7");
                await page.Locator("#guidance").FillAsync("3");
                await page.Locator("#forward-t").FillAsync("200");
                await page.Locator("#interp-method").SelectOptionAsync("ddim");
                await page.Locator("#interp-t").FillAsync("400");
                await page.Locator("#interpolate-button").ClickAsync();
                await Expect(page.Locator("#lambda-figure")).ToBeVisibleAsync(new() { Timeout = 300_000 });
                await page.Locator("#sample-button").ClickAsync();
                // Part-way: noise half turned into garments.
                await page.WaitForFunctionAsync("() => { const s = document.getElementById('step-counter').textContent; return parseInt(s) >= 20; }", null, new() { Timeout = 300_000 });
                await page.EvaluateAsync("() => window.scrollTo(0, 0)");
                await page.ScreenshotAsync(new() { Path = Path.Combine(folder, "serve-sampling.png") });
                await Expect(page.Locator("#grid-figure")).ToBeVisibleAsync(new() { Timeout = 300_000 });
                await page.EvaluateAsync("() => window.scrollTo(0, 0)");
                await page.ScreenshotAsync(new() { Path = Path.Combine(folder, "serve-done.png"), FullPage = true });
                await page.SetViewportSizeAsync(420, 800);
                await page.EvaluateAsync("() => window.scrollTo(0, 0)");
                await page.ScreenshotAsync(new() { Path = Path.Combine(folder, "serve-narrow.png") });
                Assert.True(File.Exists(Path.Combine(folder, "serve-done.png")));
            }
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}

/// <summary>Where the checkout is: the first directory above the test assembly that holds Ddpm.slnx.</summary>
public static class Support
{
    public static string RepositoryRoot { get; } = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Ddpm.slnx")))
                return dir.FullName;
        throw new InvalidOperationException($"No Ddpm.slnx above {AppContext.BaseDirectory}: run the tests from a checkout.");
    }
}
