using Ddpm.Cli;

namespace Ddpm.Tests.Cli;

public class CliErrorsTests
{
    private static (int Code, string[] Lines) Report(Exception e)
    {
        var stderr = new StringWriter();
        int code = CliErrors.ReportException(e, stderr, "ddpm demo toy --help");
        return (code, stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void ArgumentExceptionFromTheLibrary_IsAUsageError_OnOneLineWithoutTheParameterSuffix()
    {
        var (code, lines) = Report(new ArgumentException("eta must be in [0, 1];\ngot 2.", "eta"));

        Assert.Equal(ExitCodes.Usage, code);
        var line = Assert.Single(lines);
        Assert.Equal("error: eta must be in [0, 1]; got 2. Run 'ddpm demo toy --help' for usage.", line);
    }

    [Fact]
    public void UsageException_ExitsWith2()
    {
        var (code, lines) = Report(new CliUsageException("--out 'x' is an existing file; give a directory path."));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Equal("error: --out 'x' is an existing file; give a directory path.", Assert.Single(lines));
    }

    [Fact]
    public void IoAndUnexpectedErrors_ExitWith1_WithoutStackTrace()
    {
        var (ioCode, ioLines) = Report(new IOException("Disk full."));
        Assert.Equal(ExitCodes.Failure, ioCode);
        Assert.StartsWith("error: Disk full.", Assert.Single(ioLines));

        Exception thrown;
        try
        {
            throw new InvalidOperationException("boom");
        }
        catch (Exception e)
        {
            thrown = e;
        }
        var (code, lines) = Report(thrown);
        Assert.Equal(ExitCodes.Failure, code);
        var line = Assert.Single(lines);
        Assert.StartsWith("error: unexpected InvalidOperationException: boom", line);
    }
}
