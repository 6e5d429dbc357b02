using Ddpm.Generation;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Ddpm.Data;
using Ddpm.Guidance;
using Ddpm.Schedules;
using Ddpm.Training;
using Spectre.Console;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm classifier train</c>: the noise-aware classifier p_φ(y | x_t, t) of classifier guidance.</summary>
public static class ClassifierCommand
{
    public static Command Create(CliContext context)
    {
        var dataset = CliOptions.Text("--dataset", "Labelled image data set: fashion-mnist, mnist or cifar10.", "NAME");
        dataset.Required = true;
        var dataDir = CliOptions.Text("--data-dir", "Directory of the data set files (default: the data set's standard location).", "DIR");
        var output = CliOptions.OutputDirectory(description: "The classifier directory to write (config.json + model.safetensors).");
        var schedule = CliOptions.Choice("--schedule", "Noise schedule; must be the diffusion model's.", ScheduleKind.Linear);
        var timesteps = CliOptions.Int("--timesteps", "Diffusion steps T; must be the diffusion model's.", 1000, 2, 100_000);
        var epochs = CliOptions.Int("--epochs", "Passes over the train split.", 6, 1, 1000);
        var batch = CliOptions.Int("--batch", "Images per step.", 128, 1, 65_536, helpName: "B");
        var lr = CliOptions.Double("--lr", "Adam learning rate (cosine decay to 0).", 2e-3, 0, 1, minExclusive: true, helpName: "LR");
        var seed = CliOptions.Seed();
        var train = new Command("train", "Train a noise-aware classifier p(y | x_t, t) on noised images at random t, for classifier guidance.")
        {
            dataset, dataDir, output, schedule, timesteps, epochs, batch, lr, seed,
        };
        train.SetAction(parse =>
        {
            string name = parse.GetValue(dataset)!;
            if (ToyDatasets.IsToy(name) || name.StartsWith(DatasetLoader.FolderPrefix, StringComparison.OrdinalIgnoreCase))
                throw new CliUsageException($"--dataset '{name}' has no labels; the classifier needs fashion-mnist, mnist or cifar10.");
            string outDir = parse.GetValue(output)!;
            var options = new ClassifierTrainingOptions(parse.GetValue(epochs), parse.GetValue(batch), parse.GetValue(lr), RandomFlip: true, parse.GetValue(seed));
            using var trainSet = DatasetLoader.Load(name, parse.GetValue(dataDir), "train");
            using var testSet = DatasetLoader.Load(name, parse.GetValue(dataDir), "test");
            var config = new NoisyClassifierConfig(new ScheduleConfig(parse.GetValue(schedule), parse.GetValue(timesteps)), trainSet.Channels, trainSet.ImageSize, trainSet.NumClasses);
            using var classifier = new NoisyClassifier(config);
            context.Out.WriteLine($"training a noise-aware classifier on {trainSet.Name} ({trainSet.Count:N0} images, {trainSet.NumClasses} classes), {options.Epochs} epochs of batch {options.BatchSize}");
            var watch = Stopwatch.StartNew();
            long totalSteps = options.Epochs * ((trainSet.Count + options.BatchSize - 1) / options.BatchSize);
            (double Noisy, double Clean) accuracy = default;
            CommandInputs.WithProgress(context, "classifier", totalSteps, task =>
            {
                accuracy = classifier.Train(trainSet, testSet, options, new InlineProgress<ClassifierTrainingProgress>(p =>
                {
                    task.Value = p.Step;
                    task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"classifier epoch {p.Epoch}/{options.Epochs} loss {p.Loss:0.000}"));
                }));
            });
            classifier.Save(outDir, new NoisyClassifierInfo(config, trainSet.Name, accuracy.Noisy, accuracy.Clean, options.Epochs, options.Seed));
            context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"test accuracy {accuracy.Noisy:P2} at random t, {accuracy.Clean:P2} on clean images; trained in {watch.Elapsed.TotalMinutes:0.0} min"));
            context.Out.WriteLine($"wrote {outDir}");
            return ExitCodes.Success;
        });
        var command = new Command("classifier", "The noise-aware classifier for classifier guidance (ddpm sample --classifier DIR).") { train };
        CliErrors.RequireSubcommand(command, $"{Program.Name} classifier");
        return command;
    }
}
