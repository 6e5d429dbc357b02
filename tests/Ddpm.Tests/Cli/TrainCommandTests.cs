using System.Diagnostics;
using Ddpm.Cli.Commands;

namespace Ddpm.Tests.Cli;

public class TrainCommandTests
{
    [Fact]
    public void TheProgressClockDoesNotWrapAtADay()
    {
        Assert.Equal("25:30:07", TrainCommand.Clock(TimeSpan.FromSeconds(25 * 3600 + 30 * 60 + 7)));
        Assert.Equal("0:00:59", TrainCommand.Clock(TimeSpan.FromSeconds(59)));
    }

    [Fact]
    public void SigtermStopsABackgroundRunWithACheckpointOfTheCurrentStep()
    {
        // A child process, as a user's `ddpm train ... &`: SIGTERM must save the current step and exit with 130.
        using var dir = new TempDirectory();
        string cli = Path.Combine(AppContext.BaseDirectory, "Ddpm.Cli.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { cli, "train", "--dataset", "toy:moons", "--steps", "10000000", "--batch", "64", "--warmup", "10",
                     "--checkpoint-every", "1000000", "--log-every", "1", "--out", dir.Combine("run") })
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        try
        {
            var stderr = process.StandardError.ReadToEndAsync();
            string? line;
            int logLines = 0;
            while ((line = process.StandardOutput.ReadLine()) is not null && logLines < 20)
                if (line.StartsWith("step ", StringComparison.Ordinal)) logLines++;
            Assert.Equal(20, logLines);
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                kill.WaitForExit();
            string rest = process.StandardOutput.ReadToEnd();
            Assert.True(process.WaitForExit(60_000), "the run did not stop within 60 s of SIGTERM");
            Assert.Equal(130, process.ExitCode);
            Assert.Equal("", stderr.Result);
            Assert.Contains("interrupted at step", rest);
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
}
