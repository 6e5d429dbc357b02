using Ddpm.Cli.Commands;
using Ddpm.IO;
using SkiaSharp;

namespace Ddpm.Tests.Cli;

public class DemoToyCommandTests
{
    private const int N = 300;

    [Fact]
    public void DemoToy_WritesPlotAndCsvsWhoseMomentsMatchTheMixture()
    {
        using var temp = new TempDirectory();
        string output = temp.Combine("demo");

        var run = CliRunner.Run("demo", "toy", "--out", output, "--n", N.ToString(), "--ddim-steps", "50", "--seed", "3");

        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}; stderr: {run.Stderr}");
        Assert.Equal("", run.Stderr);
        Assert.Contains("DDPM", run.Stdout);
        Assert.Contains("DDIM", run.Stdout);

        // Exactly the three outputs, no temporary files left behind.
        var files = Directory.GetFiles(output).Select(Path.GetFileName).OrderBy(f => f, StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { ToyDemo.DdimCsvFile, ToyDemo.DdpmCsvFile, ToyDemo.PlotFile }, files);

        using (var bitmap = SKBitmap.Decode(Path.Combine(output, ToyDemo.PlotFile)))
        {
            Assert.NotNull(bitmap);
            var expected = Ddpm.Imaging.ScatterPlot.ImageSize(3);
            Assert.Equal(expected.Width, bitmap.Width);
            Assert.Equal(expected.Height, bitmap.Height);
        }

        // Per-axis moments of the mixture: x = R cos θ_k + s z with θ_k on 8 equally spaced angles.
        var components = ToyDemo.Components();
        foreach (var csv in new[] { ToyDemo.DdpmCsvFile, ToyDemo.DdimCsvFile })
        {
            string path = Path.Combine(output, csv);
            Assert.Equal("x,y", File.ReadLines(path).First());
            var (xs, ys) = PointsCsv.Read(path);
            Assert.Equal(N, xs.Length);
            Assert.All(xs.Concat(ys), v => Assert.True(float.IsFinite(v)));
            var stats = PointStats.Of(xs, ys);
            CheckAxis(csv, "x", stats.MeanX, stats.StdX, components, 0);
            CheckAxis(csv, "y", stats.MeanY, stats.StdY, components, 1);
        }
    }

    /// <summary>
    /// Sample mean and std against the mixture's, within 4 standard errors for n points: SE(mean) = σ/√n and
    /// SE(std) ≈ √Var((x − μ)²) / (2σ√n), with the fourth moment taken from the mixture. Deterministic DDIM with 50
    /// steps shrinks the spread by about 1% (0.560 vs 0.568, measured at n = 20000), well inside the tolerance.
    /// </summary>
    private static void CheckAxis(string file, string axis, double mean, double std, Ddpm.Oracles.MixtureComponent[] components, int dim)
    {
        double m1 = components.Average(c => c.Mean[dim]);
        double m2 = components.Average(c => c.Mean[dim] * c.Mean[dim] + c.Covariance[dim, dim]);
        double variance = m2 - m1 * m1;
        double fourth = components.Average(c =>
        {
            double mu = c.Mean[dim] - m1, s2 = c.Covariance[dim, dim];
            return Math.Pow(mu, 4) + 6 * mu * mu * s2 + 3 * s2 * s2;
        });
        double sigma = Math.Sqrt(variance);
        Assert.Equal(Math.Sqrt(0.8 * 0.8 / 2 + 0.05 * 0.05), sigma, 6);
        double seMean = sigma / Math.Sqrt(N);
        double seStd = Math.Sqrt(fourth - variance * variance) / (2 * sigma * Math.Sqrt(N));
        Assert.True(Math.Abs(mean - m1) < 4 * seMean, $"{file} mean {axis} = {mean:F4}, mixture {m1:F4}, tolerance {4 * seMean:F4}");
        Assert.True(Math.Abs(std - sigma) < 4 * seStd, $"{file} std {axis} = {std:F4}, mixture {sigma:F4}, tolerance {4 * seStd:F4}");
    }

    [Fact]
    public void DemoToy_SameSeedGivesIdenticalFiles_DifferentSeedDoesNot()
    {
        using var temp = new TempDirectory();
        string[] Args(string dir, string seed) => new[] { "demo", "toy", "--out", temp.Combine(dir), "--n", "40", "--ddim-steps", "10", "--seed", seed };

        Assert.Equal(0, CliRunner.Run(Args("a", "7")).ExitCode);
        Assert.Equal(0, CliRunner.Run(Args("b", "7")).ExitCode);
        Assert.Equal(0, CliRunner.Run(Args("c", "8")).ExitCode);

        foreach (var csv in new[] { ToyDemo.DdpmCsvFile, ToyDemo.DdimCsvFile })
        {
            Assert.Equal(File.ReadAllText(temp.Combine("a", csv)), File.ReadAllText(temp.Combine("b", csv)));
            Assert.NotEqual(File.ReadAllText(temp.Combine("a", csv)), File.ReadAllText(temp.Combine("c", csv)));
        }
    }

    [Fact]
    public void DemoToy_ReplacesFilesInAnExistingDirectory()
    {
        using var temp = new TempDirectory();
        string output = temp.Combine("out");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, ToyDemo.DdimCsvFile), "old");

        var run = CliRunner.Run("demo", "toy", "--out", output, "--n", "5", "--ddim-steps", "2");

        Assert.Equal(0, run.ExitCode);
        var lines = File.ReadAllLines(Path.Combine(output, ToyDemo.DdimCsvFile));
        Assert.Equal("x,y", lines[0]);
        Assert.Equal(6, lines.Length);
    }

    [Fact]
    public void Help_ShowsTheCommandAsDdpmAndItsOptions()
    {
        var run = CliRunner.Run("demo", "toy", "--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", run.Stderr);
        Assert.Contains("ddpm demo toy", run.Stdout);
        foreach (var option in new[] { "--out", "--seed", "--n", "--ddim-steps" })
            Assert.Contains(option, run.Stdout);

        var root = CliRunner.Run("--help");
        Assert.Equal(0, root.ExitCode);
        Assert.Contains("ddpm", root.Stdout);
        Assert.Contains("demo", root.Stdout);
    }

    public static TheoryData<string[]> InvalidCommandLines() => new()
    {
        new[] { "demo", "toy", "--n", "0" },
        new[] { "demo", "toy", "--n", "-5" },
        new[] { "demo", "toy", "--n", "abc" },
        new[] { "demo", "toy", "--n", "1.5" },
        new[] { "demo", "toy", "--ddim-steps", "0" },
        new[] { "demo", "toy", "--ddim-steps", "1001" },
        new[] { "demo", "toy", "--seed", "-1" },
        new[] { "demo", "toy", "--seed", "x" },
        new[] { "demo", "toy", "--bogus", "1" },
        new[] { "demo", "toy", "stray" },
        new[] { "demo", "toy", "--n", "5", "--n", "6" },
        new[] { "demo", "nosuch" },
        new[] { "nosuch" },
        new[] { "demo" },
        Array.Empty<string>(),
    };

    [Theory]
    [MemberData(nameof(InvalidCommandLines))]
    public void InvalidCommandLine_OneErrorLine_ExitCode2_NoOutput(string[] args)
    {
        using var temp = new TempDirectory();
        string output = temp.Combine("out");
        bool needsOut = args.Length >= 2 && args[0] == "demo" && args[1] == "toy";
        var full = needsOut ? args.Concat(new[] { "--out", output }).ToArray() : args;

        var run = CliRunner.Run(full);

        Assert.Equal(2, run.ExitCode);
        var line = Assert.Single(run.StderrLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains("--help", line);   // says how to find the valid usage
        Assert.DoesNotContain("   at ", run.Stderr);
        Assert.False(Directory.Exists(output), "an invalid command must not create its output directory");
    }

    [Fact]
    public void MissingOut_IsAUsageError()
    {
        var run = CliRunner.Run("demo", "toy", "--n", "10");

        Assert.Equal(2, run.ExitCode);
        var line = Assert.Single(run.StderrLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains("--out", line);
    }

    [Fact]
    public void OutThatIsAFile_IsAUsageError_AndTheFileIsUntouched()
    {
        using var temp = new TempDirectory();
        string file = temp.Combine("existing.txt");
        File.WriteAllText(file, "keep me");

        var run = CliRunner.Run("demo", "toy", "--out", file, "--n", "10");

        Assert.Equal(2, run.ExitCode);
        var line = Assert.Single(run.StderrLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains("existing file", line);
        Assert.Equal("keep me", File.ReadAllText(file));
        Assert.Equal(new[] { file }, Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void InvalidValues_NameTheOptionAndTheAllowedRange()
    {
        var run = CliRunner.Run("demo", "toy", "--out", "unused", "--ddim-steps", "1001");
        Assert.Contains("--ddim-steps", run.Stderr);
        Assert.Contains("1000", run.Stderr);
        Assert.Contains("1001", run.Stderr);

        var unknown = CliRunner.Run("demo", "nosuch");
        Assert.Contains("'nosuch'", unknown.Stderr);
        Assert.Contains("toy", unknown.Stderr);   // lists the valid subcommands
    }
}
