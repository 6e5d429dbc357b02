using Ddpm.Cli;

namespace Ddpm.Tests.Cli;

/// <summary>The result of running the CLI in-process.</summary>
public sealed record CliRun(int ExitCode, string Stdout, string Stderr)
{
    public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
}

/// <summary>Runs <c>ddpm</c> through <see cref="Program.Run"/> with captured output (no child process).</summary>
public static class CliRunner
{
    public static CliRun Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return new CliRun(code, stdout.ToString(), stderr.ToString());
    }
}

/// <summary>The CLI's two contracts: success with nothing on stderr, or exit code 2 with one <c>error:</c> line.</summary>
public static class CliAssert
{
    public static void Success(CliRun run)
    {
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}; stderr: {run.Stderr}");
        Assert.Equal("", run.Stderr);
    }

    public static void UsageError(CliRun run, params string[] fragments)
    {
        Assert.Equal(2, run.ExitCode);
        var line = Assert.Single(run.StderrLines);
        Assert.StartsWith("error: ", line);
        foreach (var f in fragments) Assert.Contains(f, line);
    }
}
