using System.CommandLine;
using Ddpm.Cli.Commands;

namespace Ddpm.Cli;

/// <summary>The <c>ddpm</c> command line.</summary>
public static class Program
{
    /// <summary>The name the CLI shows in help and error messages.</summary>
    public const string Name = "ddpm";

    public static int Main(string[] args) { Ddpm.Runtime.TorchRuntime.Initialize(); return Run(args); }

    /// <summary>
    /// Runs the CLI in-process: parses <paramref name="args"/>, runs the command and returns the exit code
    /// (<see cref="ExitCodes"/>). Output goes to <paramref name="stdout"/> (default: the console), errors to
    /// <paramref name="stderr"/> as one <c>error:</c> line each.
    /// </summary>
    public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        var context = new CliContext(stdout, stderr);
        var root = BuildRootCommand(context);

        ParseResult parse;
        try
        {
            parse = root.Parse(args);
        }
        catch (Exception e)
        {
            return CliErrors.ReportException(e, stderr, $"{Name} --help");
        }
        if (parse.Errors.Count > 0)
            return CliErrors.ReportParseErrors(parse, stderr);

        try
        {
            int code = parse.Invoke(new InvocationConfiguration
            {
                Output = stdout,
                Error = stderr,
                EnableDefaultExceptionHandler = false,
            });
            stdout.Flush();
            return code;
        }
        catch (Exception e)
        {
            stdout.Flush();
            return CliErrors.ReportException(e, stderr, CliErrors.HelpCommand(parse.CommandResult));
        }
    }

    /// <summary>The command tree: every command of the CLI is added here.</summary>
    public static RootCommand BuildRootCommand(CliContext context)
    {
        var root = new RootCommand("Denoising diffusion probabilistic models (Ho et al. 2020) on TorchSharp.")
        {
            HelpName = Name,
        };
        root.Add(DemoCommand.Create(context));
        root.Add(TrainCommand.Create(context));
        root.Add(SampleCommand.Create(context));
        root.Add(ForwardCommand.Create(context));
        root.Add(InterpolateCommand.Create(context));
        root.Add(ModelCommand.Create(context));
        root.Add(BenchCommand.Create(context));
        root.Add(EvalCommand.Create(context));
        root.Add(FidNetCommand.Create(context));
        root.Add(ClassifierCommand.Create(context));
        root.Add(ToolsCommands.CreatePlot(context));
        root.Add(ToolsCommands.CreateExport(context));
        root.Add(ServeCommand.Create(context));
        CliErrors.RequireSubcommand(root, Name);
        return root;
    }
}
