using System.Diagnostics;
using Ddpm.Cli.Commands;

namespace Ddpm.Tests.Cli;

public class TrainCommandTests
{
    [Fact]
    public void TheProgressClockDoesNotWrapAtADay()
    {
        Assert.Equal("25:30:07", Ddpm.Cli.Output.TrainingProgressText.Clock(TimeSpan.FromSeconds(25 * 3600 + 30 * 60 + 7)));
        Assert.Equal("0:00:59", Ddpm.Cli.Output.TrainingProgressText.Clock(TimeSpan.FromSeconds(59)));
    }

    [Fact]
    public void SigtermStopsABackgroundRunWithACheckpointOfTheCurrentStep()
    {
        // A child process, as a user's `ddpm train ... &`: SIGTERM must save the current step and exit with 130.
        using var dir = new TempDirectory();
        using var process = StartChild("train", "--dataset", "toy:moons", "--steps", "10000000", "--batch", "64", "--warmup", "10",
            "--checkpoint-every", "1000000", "--log-every", "1", "--out", dir.Combine("run"));
        try
        {
            var stderr = process.StandardError.ReadToEndAsync();
            // Every wait is bounded: a run that hangs or prints nothing fails the test instead of stalling the suite.
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
            int logLines = 0;
            while (logLines < 20)
            {
                var read = process.StandardOutput.ReadLineAsync();
                var left = deadline - DateTime.UtcNow;
                Assert.True(left > TimeSpan.Zero && read.Wait(left), $"only {logLines} log lines within 3 minutes");
                if (read.Result is not string line) break;
                if (line.StartsWith("step ", StringComparison.Ordinal)) logLines++;
            }
            Assert.Equal(20, logLines);
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                kill.WaitForExit();
            var rest = process.StandardOutput.ReadToEndAsync();
            Assert.True(process.WaitForExit(60_000), "the run did not stop within 60 s of SIGTERM");
            Assert.True(rest.Wait(10_000) && stderr.Wait(10_000), "the run's output did not close after it exited");
            Assert.Equal(130, process.ExitCode);
            // Nothing on stderr but libtorch's known start-up warning (NNPACK on a CPU it does not support).
            Assert.Empty(stderr.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.Contains("Could not initialize NNPACK", StringComparison.Ordinal)));
            Assert.Contains("interrupted at step", rest.Result);
            var checkpoint = Assert.Single(Directory.GetDirectories(dir.Combine("run", "checkpoints")));
            long step = long.Parse(Path.GetFileName(checkpoint)["step-".Length..], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(step >= 20, $"checkpoint {Path.GetFileName(checkpoint)}");
        }
        finally
        {
            // A failed assertion must not leave a 10-million-step run behind.
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public void ResumeContinuesARunExactly_AndPlotLossDrawsItsLog()
    {
        // 30 steps, then --resume to 50, against 50 steps straight: the log holds steps 1..50 once each, the last
        // checkpoint's EMA weights are the straight run's bit for bit, and plot loss draws the resumed log.
        using var dir = new TempDirectory();
        string[] common = { "train", "--dataset", "toy:moons", "--batch", "32", "--warmup", "5", "--checkpoint-every", "10", "--log-every", "1", "--seed", "3" };
        CliAssert.Success(CliRunner.Run(common.Concat(new[] { "--steps", "50", "--out", dir.Combine("straight") }).ToArray()));
        CliAssert.Success(CliRunner.Run(common.Concat(new[] { "--steps", "30", "--out", dir.Combine("split") }).ToArray()));
        var resumed = CliRunner.Run("train", "--resume", dir.Combine("split"), "--steps", "50");
        CliAssert.Success(resumed);

        var steps = File.ReadAllLines(dir.Combine("split", "log.jsonl"))
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64()).ToArray();
        Assert.Equal(Enumerable.Range(1, 50).Select(i => (long)i), steps);
        string Last(string run) => Ddpm.Training.Checkpoint.List(dir.Combine(run))[^1];
        Assert.Equal("step-0000050", Path.GetFileName(Last("split")));
        Assert.Equal(File.ReadAllBytes(Path.Combine(Last("straight"), Ddpm.Training.Checkpoint.EmaFile)),
            File.ReadAllBytes(Path.Combine(Last("split"), Ddpm.Training.Checkpoint.EmaFile)));

        string png = dir.Combine("loss.png");
        CliAssert.Success(CliRunner.Run("plot", "loss", "--log", dir.Combine("split"), "--out", png, "--smooth", "5"));
        using var bitmap = SkiaSharp.SKBitmap.Decode(png);
        Assert.NotNull(bitmap);
        // Both series are drawn: the moving average in its opaque red, the raw loss in translucent blue over white.
        int red = 0, blue = 0;
        for (int y = 0; y < bitmap.Height; y++)
            for (int x = 0; x < bitmap.Width; x++)
            {
                var c = bitmap.GetPixel(x, y);
                if (c.Red > 180 && c.Green < 90 && c.Blue < 90) red++;
                if (c.Blue > c.Red + 40 && c.Blue > 150) blue++;
            }
        Assert.True(red > 100 && blue > 100, $"{red} red and {blue} blue pixels");
    }

    /// <summary>Starts the command line as a child process with <paramref name="args"/>.</summary>
    private static Process StartChild(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Ddpm.Cli.dll"));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        return Process.Start(start)!;
    }

    [Fact]
    public void RunsKilledAtRandomPointsAndResumedLeaveNoTemporaryFilesAndLogEachStepOnce()
    {
        // Four SIGKILLs after a random number (5–24) of logged steps, each followed by --resume, then a resume that
        // finishes: with a checkpoint every 3 steps each kill lands between checkpoints, often inside one, and the steps
        // after the last checkpoint have been logged once already. Before two of the resumes the debris of a kill inside
        // a checkpoint write is planted too (a temporary and a replaced step directory, a log line cut in half), so the
        // clean-up is tested whatever the timing of the kills.
        using var dir = new TempDirectory();
        string run = dir.Combine("run"), checkpoints = dir.Combine("run", "checkpoints");
        var random = new Random(2026);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(4);
        for (int cycle = 0; cycle < 5; cycle++)
        {
            if (cycle is 2 or 3)
            {
                Directory.CreateDirectory(Path.Combine(checkpoints, $".step-0000099.tmp-{cycle}"));
                File.WriteAllText(Path.Combine(checkpoints, $".step-0000099.tmp-{cycle}", "model.safetensors"), "partial");
                Directory.CreateDirectory(Path.Combine(checkpoints, $".step-0000003.old-{cycle}"));
                File.AppendAllText(Path.Combine(run, "log.jsonl"), "{\"step\":99,\"total_st");
            }
            using var process = cycle == 0
                ? StartChild("train", "--dataset", "toy:moons", "--steps", "150", "--batch", "64", "--warmup", "5", "--checkpoint-every", "3", "--log-every", "1", "--seed", "4", "--out", run)
                : StartChild("train", "--resume", run, "--steps", "150");
            try
            {
                var stderr = process.StandardError.ReadToEndAsync();
                if (cycle < 4)
                {
                    int killAfter = random.Next(5, 25), logLines = 0;
                    while (logLines < killAfter)
                    {
                        var read = process.StandardOutput.ReadLineAsync();
                        var left = deadline - DateTime.UtcNow;
                        Assert.True(left > TimeSpan.Zero && read.Wait(left), $"cycle {cycle}: only {logLines} log lines before the deadline");
                        if (read.Result is not string line) break;
                        if (line.StartsWith("step ", StringComparison.Ordinal)) logLines++;
                    }
                    Assert.Equal(killAfter, logLines);
                    process.Kill(); // SIGKILL: no handler runs
                    Assert.True(process.WaitForExit(30_000), $"cycle {cycle}: the killed run did not exit");
                }
                else
                {
                    var rest = process.StandardOutput.ReadToEndAsync();
                    var left = deadline - DateTime.UtcNow;
                    Assert.True(left > TimeSpan.Zero && process.WaitForExit(left), "the last resume did not finish before the deadline");
                    Assert.True(rest.Wait(10_000) && stderr.Wait(10_000));
                    Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}: {stderr.Result}");
                }
            }
            finally
            {
                if (!process.HasExited) process.Kill(entireProcessTree: true);
            }
        }

        Assert.Empty(Directory.GetDirectories(checkpoints, ".*"));
        Assert.Empty(Directory.GetFiles(run, "*.tmp", SearchOption.AllDirectories));
        var steps = File.ReadAllLines(Path.Combine(run, "log.jsonl"))
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64()).ToArray();
        Assert.Equal(Enumerable.Range(1, 150).Select(i => (long)i), steps);
        CliAssert.Success(CliRunner.Run("plot", "loss", "--log", run, "--out", dir.Combine("loss.png")));
    }
}
