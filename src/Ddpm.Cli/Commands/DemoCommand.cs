using System.CommandLine;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm demo ...</c>: demonstrations that need no trained model.</summary>
public static class DemoCommand
{
    public static Command Create(CliContext context)
    {
        var demo = new Command("demo", "Demonstrations that need no trained model or data set.");
        demo.Add(CreateToy(context));
        CliErrors.RequireSubcommand(demo, $"{Program.Name} demo");
        return demo;
    }

    private static Command CreateToy(CliContext context)
    {
        var output = CliOptions.OutputDirectory(description: "Directory for toy-samples.png, samples-ddpm.csv and samples-ddim.csv (created if missing).");
        var seed = CliOptions.Seed();
        var n = CliOptions.Int("--n", "Number of data points and of samples per sampler.", ToyDemo.DefaultCount, 1, ToyDemo.MaxCount, helpName: "N");
        var ddimSteps = CliOptions.Int("--ddim-steps", "Number of DDIM steps (eta 0).", ToyDemo.DefaultDdimSteps, 1, ToyDemo.TrainTimesteps,
            rangeNote: $"at most the {ToyDemo.TrainTimesteps} training timesteps", helpName: "K");

        var toy = new Command("toy",
            "Sample a 2-D mixture of 8 Gaussians with DDPM (1000 steps) and DDIM, using the exact (oracle) denoiser of the " +
            "mixture instead of a trained network; writes a scatter plot and the samples as CSV.")
        {
            output, seed, n, ddimSteps,
        };
        toy.SetAction(parse =>
        {
            var options = new ToyDemoOptions(parse.GetValue(output)!, parse.GetValue(seed), parse.GetValue(n), parse.GetValue(ddimSteps));
            ToyDemo.Run(options, context);
            return ExitCodes.Success;
        });
        return toy;
    }
}
