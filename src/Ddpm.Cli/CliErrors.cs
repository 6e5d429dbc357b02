using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;

namespace Ddpm.Cli;

/// <summary>The exit codes of every <c>ddpm</c> command.</summary>
public static class ExitCodes
{
    /// <summary>The command did what it was asked.</summary>
    public const int Success = 0;
    /// <summary>The command failed while running (I/O error, unexpected exception).</summary>
    public const int Failure = 1;
    /// <summary>The command line was wrong: unknown command, invalid option value, or an argument the library rejected.</summary>
    public const int Usage = 2;
    /// <summary>Interrupted (Ctrl+C).</summary>
    public const int Cancelled = 130;
}

/// <summary>
/// A mistake on the command line found after parsing (e.g. a combination of options, or an --out path that is a
/// file). The message says what is wrong and how to fix it; it is printed as one <c>error:</c> line, exit code 2.
/// </summary>
public sealed class CliUsageException(string message) : Exception(message);

/// <summary>
/// The error contract of the whole CLI: every failure prints exactly one line <c>error: &lt;what is wrong and how
/// to fix it&gt;</c> to stderr and no stack trace (unless DDPM_DEBUG=1). Command-line mistakes, including an
/// <see cref="ArgumentException"/> from the library, exit with <see cref="ExitCodes.Usage"/>; other failures with
/// <see cref="ExitCodes.Failure"/>. Commands validate everything before they write anything, and write files only
/// through <see cref="Ddpm.IO.AtomicFile"/>, so a failed command leaves no partial output.
/// </summary>
public static class CliErrors
{
    /// <summary>Writes <c>error: message</c> as a single line.</summary>
    public static void WriteError(TextWriter stderr, string message)
    {
        stderr.WriteLine("error: " + OneLine(message));
        stderr.Flush();
    }

    /// <summary>Reports the first parse error of <paramref name="parse"/>, with a pointer to the command's help.</summary>
    public static int ReportParseErrors(ParseResult parse, TextWriter stderr)
    {
        string help = HelpCommand(parse.CommandResult);
        if (parse.UnmatchedTokens.Count > 0)
        {
            // An unknown subcommand, option or stray argument: say what the command accepts.
            var command = parse.CommandResult.Command;
            string path = help[..^" --help".Length];
            string token = parse.UnmatchedTokens[0];
            string kind = token.StartsWith('-') ? "option" : "command or argument";
            string accepted = command.Subcommands.Count > 0
                ? $" Commands of '{path}': {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}."
                : "";
            WriteError(stderr, $"unknown {kind} '{token}' for '{path}'.{accepted} Run '{help}' for usage.");
            return ExitCodes.Usage;
        }
        string message = OneLine(parse.Errors[0].Message).TrimEnd('.');
        WriteError(stderr, $"{message}. Run '{help}' for usage.");
        return ExitCodes.Usage;
    }

    /// <summary>Maps an exception thrown by a command to its one-line report and exit code.</summary>
    public static int ReportException(Exception exception, TextWriter stderr, string helpHint)
    {
        int code;
        string message;
        switch (exception)
        {
            case CliUsageException or Ddpm.Generation.InvalidRequestException:
                code = ExitCodes.Usage;
                message = exception.Message;
                break;
            case ArgumentException argument:
                code = ExitCodes.Usage;
                message = $"{StripParameterSuffix(argument)} Run '{helpHint}' for usage.";
                break;
            case Ddpm.Data.DatasetException or Ddpm.Training.CheckpointException or Ddpm.IO.CorruptFileException:
                // Bad input files: the message already names the file, the problem and the fix.
                code = ExitCodes.Usage;
                message = exception.Message;
                break;
            case Ddpm.Training.TrainingDivergedException:
                code = ExitCodes.Failure;
                message = exception.Message;
                break;
            case OperationCanceledException:
                code = ExitCodes.Cancelled;
                message = "cancelled; no output was written for the unfinished step.";
                break;
            case IOException or UnauthorizedAccessException:
                code = ExitCodes.Failure;
                message = $"{exception.Message} Check the output path and its permissions.";
                break;
            default:
                code = ExitCodes.Failure;
                message = $"unexpected {exception.GetType().Name}: {exception.Message} (set DDPM_DEBUG=1 to see the stack trace).";
                break;
        }
        WriteError(stderr, message);
        if (Environment.GetEnvironmentVariable("DDPM_DEBUG") is "1" or "true")
            stderr.WriteLine(exception.ToString());
        return code;
    }

    /// <summary>
    /// Makes <paramref name="command"/> (a group such as <c>ddpm demo</c>) reject being run without a subcommand with
    /// a usage error that lists its subcommands.
    /// </summary>
    public static void RequireSubcommand(Command command, string path)
    {
        command.SetAction((Func<ParseResult, int>)(_ => throw new CliUsageException(
            $"'{path}' needs a command: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}. Run '{path} --help' for usage.")));
    }

    /// <summary>"ddpm demo toy --help" for the command that <paramref name="result"/> stands for.</summary>
    public static string HelpCommand(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is not null; r = r.Parent)
            if (r is CommandResult c)
                names.Add(c.Command is RootCommand ? Program.Name : c.Command.Name);
        names.Reverse();
        return string.Join(' ', names) + " --help";
    }

    private static string StripParameterSuffix(ArgumentException e)
    {
        // ArgumentException.Message appends " (Parameter 'name')": drop it, the text already names the option.
        string message = e.Message;
        if (e.ParamName is { } name)
        {
            string suffix = $" (Parameter '{name}')";
            if (message.EndsWith(suffix, StringComparison.Ordinal)) message = message[..^suffix.Length];
        }
        message = message.Trim();
        return message.EndsWith('.') ? message : message + ".";
    }

    private static string OneLine(string text) => Regex.Replace(text, @"\s*[\r\n]+\s*", " ").Trim();
}
