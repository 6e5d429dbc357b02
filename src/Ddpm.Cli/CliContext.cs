using Spectre.Console;

namespace Ddpm.Cli;

/// <summary>Where a command writes: plain writers for output and errors, and a Spectre.Console console on the output for progress bars and tables.</summary>
public sealed class CliContext
{
    public CliContext(TextWriter stdout, TextWriter stderr)
    {
        Out = stdout;
        Err = stderr;
        Console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stdout),
            Ansi = AnsiSupport.Detect,
            ColorSystem = ColorSystemSupport.Detect,
            Interactive = InteractionSupport.Detect,
        });
    }

    public TextWriter Out { get; }
    public TextWriter Err { get; }
    public IAnsiConsole Console { get; }
}
