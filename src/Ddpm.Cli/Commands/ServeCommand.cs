using System.CommandLine;
using Ddpm.Web;

namespace Ddpm.Cli.Commands;

/// <summary>
/// <c>ddpm serve</c>: the web page and JSON API of <see cref="DdpmServer"/> over the models in a directory, until Ctrl+C
/// or SIGTERM.
/// </summary>
public static class ServeCommand
{
    public static Command Create(CliContext context)
    {
        var defaults = new ServerOptions();
        var models = CliOptions.Text("--models", "Directory whose subdirectories are the models to serve (checkpoints of ours or diffusers models), each by its folder name.", "DIR", defaults.ModelsDirectory);
        var host = CliOptions.Text("--host", "Address to listen on: 127.0.0.1 (this machine only), ::1, 0.0.0.0 (every interface: anyone who can reach the machine can use it) or localhost.", "ADDRESS", defaults.Host);
        var port = CliOptions.Int("--port", "Port to listen on (0: any free port; the address is printed).", defaults.Port, 0, 65535, helpName: "PORT");
        var dataDir = CliOptions.Text("--data-dir", "Directory of the data set files for DATASET:INDEX images (default: each data set's own; fashion-mnist: /usr/share/datasets/fashion-mnist).", "DIR");
        var maxSamples = CliOptions.Int("--max-samples", "Most samples one job may ask for.", defaults.MaxSamples, 1, 1024, helpName: "N");
        var maxSteps = CliOptions.Int("--max-steps", "Most sampling steps one job may ask for (also bounded by each model's T).", defaults.MaxSteps, 1, 100_000, helpName: "S");
        var queue = CliOptions.Int("--queue", "Jobs that may wait behind the running one; beyond that a request gets 429 with Retry-After.", defaults.MaxQueuedJobs, 0, 1000, helpName: "Q");

        var command = new Command("serve", "Serve a web page (and a JSON API) to watch diffusion work: live sampling, the forward process, interpolation.")
        {
            models, host, port, dataDir, maxSamples, maxSteps, queue,
        };
        command.SetAction(parse =>
        {
            var options = defaults with
            {
                ModelsDirectory = parse.GetValue(models) ?? defaults.ModelsDirectory,
                Host = parse.GetValue(host) ?? defaults.Host,
                Port = parse.GetValue(port),
                DataDir = parse.GetValue(dataDir),
                MaxSamples = parse.GetValue(maxSamples),
                MaxSteps = parse.GetValue(maxSteps),
                MaxQueuedJobs = parse.GetValue(queue),
                KeptJobs = Math.Max(defaults.KeptJobs, parse.GetValue(queue) + 1),
            };
            Run(options, context);
            return ExitCodes.Success;
        });
        return command;
    }

    public static void Run(ServerOptions options, CliContext context)
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CliUsageException(e.Message.Split(" (Parameter")[0]);
        }
        try
        {
            DdpmServer.Run(options, (url, count) =>
            {
                context.Out.WriteLine($"serving {count} model(s) from {options.ModelsDirectory} at {url} (Ctrl+C stops)");
                context.Out.Flush();
            });
        }
        catch (IOException e) when (e.Message.Contains("address", StringComparison.OrdinalIgnoreCase) || e.InnerException is System.Net.Sockets.SocketException)
        {
            throw new CliUsageException($"cannot listen on {options.Url}: {e.Message.TrimEnd('.')}; pick another --port (or stop what uses it).");
        }
        context.Out.WriteLine("stopped");
        context.Out.Flush();
    }
}
