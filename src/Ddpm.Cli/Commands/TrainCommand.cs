using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Ddpm.Cli.Output;
using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Generation;
using Ddpm.Models;
using Ddpm.Schedules;
using Ddpm.Training;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Cli.Commands;

/// <summary><c>ddpm train</c>: trains a model on a data set, or resumes a run.</summary>
public static class TrainCommand
{
    public static Command Create(CliContext context)
    {
        var dataset = CliOptions.Text("--dataset", "Data set: fashion-mnist, mnist, cifar10, folder:PATH, toy:moons, toy:swissroll, toy:8gaussians, toy:checkerboard.", "NAME");
        var dataDir = CliOptions.Text("--data-dir", "Directory of the data set's files (fashion-mnist defaults to /usr/share/datasets/fashion-mnist).", "DIR");
        var preset = CliOptions.Text("--preset", $"Model preset: {string.Join(", ", ModelPresets.Names)} (default: fashion-mnist, or {ModelPresets.ToyMlp} for toy data).", "NAME");
        var steps = CliOptions.Long("--steps", "Total training steps.", 10_000, 1, helpName: "N");
        var output = CliOptions.OutputDirectory(description: "Run directory: checkpoints/, samples/ and log.jsonl go here.");
        output.Required = false;
        var resume = CliOptions.Text("--resume", "Continue a run: a run directory (its newest checkpoint) or a checkpoint directory. --steps sets the new total.", "PATH");
        var batch = CliOptions.Int("--batch", "Batch size.", 128, 1, 65536, helpName: "B");
        var lr = CliOptions.Double("--lr", "Adam learning rate.", 2e-4, 0, 1, minExclusive: true);
        var warmup = CliOptions.Int("--warmup", "Linear learning-rate warm-up steps.", 5000, 0);
        var clip = CliOptions.Double("--grad-clip", "Global gradient-norm clipping.", 1.0, 0, double.PositiveInfinity, minExclusive: true);
        var ema = CliOptions.Double("--ema", "EMA decay of the weights.", 0.9999, 0, 1, maxExclusive: true);
        var emaWarmup = new Option<bool>("--ema-warmup") { Description = "EMA decay min(d, (1+k)/(10+k)) after k updates." };
        var loss = CliOptions.Choice("--loss", "Training objective.", LossType.Simple);
        var prediction = CliOptions.Choice("--prediction", "What the network predicts.", PredictionType.Epsilon);
        var variance = CliOptions.Choice("--variance", "Reverse-process variance (learned ones need --loss hybrid or kl).", VarianceType.FixedSmall);
        var schedule = CliOptions.Choice("--schedule", "Noise schedule.", ScheduleKind.Linear);
        var timesteps = CliOptions.Int("--timesteps", "Diffusion steps T.", 1000, 1, 100_000);
        var sampling = CliOptions.Choice("--timestep-sampling", "How training timesteps are drawn.", TimestepSampling.Uniform);
        var flip = new Option<bool>("--flip") { Description = "Random horizontal flips." };
        var seed = CliOptions.Seed();
        var logEvery = CliOptions.Int("--log-every", "Steps between log lines.", 10, 1);
        var sampleEvery = CliOptions.Int("--sample-every", "Steps between EMA sample grids (0: never).", 0, 0);
        var checkpointEvery = CliOptions.Int("--checkpoint-every", "Steps between checkpoints.", 1000, 1);
        var keep = CliOptions.Int("--keep", "Checkpoints to keep.", 3, 1);
        var conditional = new Option<bool>("--class-conditional") { Description = "Train a class-conditional U-Net on the data set's labels (for classifier-free guidance)." };
        var classDropout = CliOptions.Double("--class-dropout", "With --class-conditional: probability of replacing the label by the null class (Ho & Salimans 2022 use 0.1-0.2).", 0.1, 0, 1, maxExclusive: true, helpName: "P");

        var initFrom = CliOptions.Text("--init-from", "Fine-tune: start from the EMA weights of a trained model or checkpoint of the same network (a --class-conditional run may start from an unconditional model; its no-class embedding row starts at zero, the class rows random).", "PATH");

        var weighting = CliOptions.Choice("--loss-weighting", "Weighting of the MSE over t: uniform (L_simple) or min-snr (Hang et al. 2023: min(SNR, γ)·‖x0 − x̂0‖², for any --prediction).", LossWeighting.Uniform);
        var gamma = CliOptions.Double("--min-snr-gamma", "γ of --loss-weighting min-snr.", 5.0, 0, 1e6, minExclusive: true, helpName: "G");
        var emaProfile = CliOptions.Choice("--ema-profile", "EMA decay over the run: constant (--ema, --ema-warmup) or power (EDM2: weights step i by i^γ, width --ema-std of the run so far).", EmaProfile.Constant);
        var emaStd = CliOptions.Double("--ema-std", "Relative width σ_rel of the power EMA (EDM2 uses 0.05-0.10).", 0.05, 0, PowerEma.MaxStd, minExclusive: true, maxExclusive: true, helpName: "S");
        var lrDecay = CliOptions.Choice("--lr-decay", "Learning-rate decay to zero at the end of the run.", LearningRateDecay.None);
        var lrDecaySteps = CliOptions.Long("--lr-decay-steps", "Length of the decay: the last N steps (0: every step after the warm-up).", 0, 0, helpName: "N");
        var shape = new NetworkShapeOptions();
        var precision = CliOptions.Precision();
        var device = CliOptions.Device();
        var channelsLast = new Option<bool>("--channels-last") { Description = "Lay a U-Net's activations out channels-last (NHWC) for oneDNN (measured in docs/performance.md; off by default)." };

        var command = new Command("train", "Train a diffusion model (the paper's recipe by default: Adam 2e-4, 5000 warm-up steps, clipping at 1, EMA 0.9999).")
        {
            dataset, dataDir, preset, steps, output, resume, batch, lr, warmup, clip, ema, emaWarmup, loss, prediction, variance,
            schedule, timesteps, sampling, flip, seed, logEvery, sampleEvery, checkpointEvery, keep, conditional, classDropout, initFrom,
            precision, channelsLast, device, weighting, gamma, emaProfile, emaStd, lrDecay, lrDecaySteps,
        };
        foreach (var option in shape.All) command.Add(option);
        command.SetAction(parse =>
        {
            string? resumePath = parse.GetValue(resume);
            string? outDir = parse.GetValue(output);
            string deviceName = CliOptions.ValidDevice(parse.GetValue(device));
            Trainer trainer;
            TrainingData data;
            if (resumePath is not null)
            {
                if (parse.GetValue(initFrom) is not null)
                    throw new CliUsageException("--init-from starts a new run; --resume continues one with its own weights: pass one of them.");
                if (parse.GetResult(precision) is { Implicit: false } || parse.GetValue(channelsLast))
                    throw new CliUsageException("--precision and --channels-last are fixed when a run starts (a resumed run computes exactly as before): drop them with --resume.");
                if (shape.AnyGiven(parse))
                    throw new CliUsageException("the network shape is the run's: drop --image-size, --channels and the other shape options with --resume.");
                string checkpointDir = Checkpoint.Resolve(resumePath);
                var saved = Checkpoint.ReadConfig(checkpointDir);
                string name = parse.GetValue(dataset) ?? saved.Dataset ?? throw new CliUsageException("the checkpoint does not name its data set: pass --dataset.");
                data = TrainingInput.LoadData(name, parse.GetValue(dataDir), saved.Model, saved.Training?.Seed ?? 0);
                long? total = parse.GetResult(steps) is { Implicit: false } ? parse.GetValue(steps) : null;
                trainer = Trainer.Resume(checkpointDir, data, total, outDir, deviceName);
            }
            else
            {
                if (outDir is null) throw new CliUsageException("--out DIR is required (or --resume PATH to continue a run).");
                string name = parse.GetValue(dataset) ?? throw new CliUsageException("--dataset is required, e.g. --dataset fashion-mnist.");
                var model = TrainingInput.Preset(parse.GetValue(preset) ?? TrainingInput.DefaultPreset(name));
                if (shape.AnyGiven(parse))
                {
                    if (!model.IsImageModel) throw new CliUsageException($"the network shape options apply to U-Net presets, not to {ModelPresets.ToyMlp}.");
                    model = model with { UNet = shape.Apply(model.UNet!, parse) };
                }
                if (parse.GetResult(gamma) is { Implicit: false } && parse.GetValue(weighting) != LossWeighting.MinSnr)
                    throw new CliUsageException("--min-snr-gamma applies with --loss-weighting min-snr only.");
                if (parse.GetResult(emaStd) is { Implicit: false } && parse.GetValue(emaProfile) != EmaProfile.Power)
                    throw new CliUsageException("--ema-std applies with --ema-profile power only.");
                if (parse.GetValue(emaProfile) == EmaProfile.Power && (parse.GetResult(ema) is { Implicit: false } || parse.GetValue(emaWarmup)))
                    throw new CliUsageException("--ema and --ema-warmup set the constant EMA; the power EMA's width is --ema-std.");
                var diffusion = new DiffusionConfig(
                    new ScheduleConfig(parse.GetValue(schedule), parse.GetValue(timesteps)),
                    parse.GetValue(prediction), parse.GetValue(variance), parse.GetValue(loss),
                    Weighting: parse.GetValue(weighting), MinSnrGamma: parse.GetValue(gamma));
                var training = new TrainingConfig(parse.GetValue(steps), parse.GetValue(batch), parse.GetValue(lr), parse.GetValue(warmup),
                    parse.GetValue(clip), parse.GetValue(ema), parse.GetValue(emaWarmup), parse.GetValue(sampling), parse.GetValue(flip),
                    parse.GetValue(conditional) ? parse.GetValue(classDropout) : 0.0, parse.GetValue(seed), parse.GetValue(logEvery), parse.GetValue(sampleEvery), parse.GetValue(checkpointEvery), parse.GetValue(keep),
                    parse.GetValue(initFrom));
                var compute = CliOptions.Compute(parse.GetValue(precision), parse.GetValue(channelsLast));
                training = training with
                {
                    Precision = compute.Precision, ChannelsLast = compute.ChannelsLast,
                    EmaProfile = parse.GetValue(emaProfile), EmaStd = parse.GetValue(emaStd),
                    LrDecay = parse.GetValue(lrDecay), LrDecaySteps = parse.GetValue(lrDecaySteps),
                };
                try
                {
                    training.Validate();
                    diffusion.Validate();
                }
                catch (ArgumentException e)
                {
                    throw new CliUsageException(e.Message.Split(" (Parameter")[0]);
                }
                if (Checkpoint.List(outDir).Length > 0)
                    throw new CliUsageException($"'{outDir}' already holds a training run: continue it with --resume {outDir}, or choose another --out.");
                data = TrainingInput.LoadData(name, parse.GetValue(dataDir), model, training.Seed);
                if (parse.GetValue(conditional))
                {
                    if (data.Labels is null || data.NumClasses < 2)
                        throw new CliUsageException($"--class-conditional needs a labelled data set; '{name}' has no labels.");
                    model = model with { UNet = model.UNet! with { NumClasses = data.NumClasses } };
                }
                else if (parse.GetResult(classDropout) is { Implicit: false })
                {
                    throw new CliUsageException("--class-dropout applies with --class-conditional only.");
                }
                trainer = Trainer.Create(model, diffusion, training, data, outDir, deviceName);
            }
            using (trainer)
                return Run(trainer, context);
        });
        return command;
    }

    private static int Run(Trainer trainer, CliContext context)
    {
        var t = trainer.Config.Training!;
        var network = (IDenoisingNetwork)trainer.Network;
        context.Console.MarkupLine($"training [bold]{Markup.Escape(trainer.Config.Dataset ?? "?")}[/] for {t.Steps:N0} steps (from step {trainer.Step:N0}), batch {t.BatchSize}, " +
                                   $"{trainer.Network.parameters().Sum(p => p.numel()):N0} parameters, {network.ForwardFlops / 1e9:F2} GFLOP per forward, " +
                                   $"{(trainer.Config.Model.IsImageModel ? t.Compute.Describe() : "fp32")}; run directory {Markup.Escape(trainer.RunDirectory)}");
        using var cancellation = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancellation.Cancel(); };
        Console.CancelKeyPress += onCancel;
        // `kill PID` (SIGTERM) stops like Ctrl+C, with a checkpoint: a run started in the background with `&` cannot be
        // stopped with SIGINT, because a non-interactive shell starts background jobs with SIGINT ignored.
        using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal => { signal.Cancel = true; cancellation.Cancel(); });
        try
        {
            if (context.Console.Profile.Capabilities.Interactive)
            {
                context.Console.Progress()
                    .AutoClear(false)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("training", maxValue: t.Steps);
                        task.Value = trainer.Step;
                        trainer.Run(new TrainingProgressBar(task), cancellation.Token);
                    });
            }
            else
            {
                // Not a terminal (a log file, CI): one plain line per log interval instead of a live bar.
                trainer.Run(new TrainingProgressLines(context.Out), cancellation.Token);
            }
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        var last = Checkpoint.List(trainer.RunDirectory).LastOrDefault();
        context.Console.MarkupLine($"{(cancellation.IsCancellationRequested ? "interrupted" : "finished")} at step {trainer.Step:N0}; checkpoint [bold]{Markup.Escape(last ?? "-")}[/]");
        return cancellation.IsCancellationRequested ? ExitCodes.Cancelled : ExitCodes.Success;
    }
}
