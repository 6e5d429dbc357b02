using System.CommandLine;
using System.Globalization;
using Ddpm.Data;
using Ddpm.Generation;
using Ddpm.Imaging;
using Ddpm.Schedules;

namespace Ddpm.Cli.Commands;

/// <summary>The options of <c>ddpm forward</c>. <see cref="TimestepsToShow"/> are the paper's 1-based t (0 = the clean image).</summary>
public sealed record ForwardOptions(
    string Dataset,
    string Output,
    IReadOnlyList<int> TimestepsToShow,
    string? DataDir = null,
    int? Index = null,
    int? Count = null,
    long Seed = 0,
    ScheduleKind Schedule = ScheduleKind.Linear,
    int Timesteps = 1000,
    int? ImageSize = null);

/// <summary>
/// <c>ddpm forward</c>: the forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) on real images, as a grid with
/// one row per image and one column per t. Every cell is an independent draw from a generator seeded with --seed.
/// </summary>
public static class ForwardCommand
{
    public const int DefaultCount = 8;
    public const int MaxCount = 256;
    public static readonly int[] DefaultTimesteps = { 0, 100, 250, 500, 1000 };

    public static Command Create(CliContext context)
    {
        var dataset = CommandInputs.RequiredText("--dataset", "Image data set: fashion-mnist, mnist, cifar10 or folder:PATH (the test split; folder data sets have only one).", "NAME");
        var dataDir = CliOptions.Text("--data-dir", "Directory of the data set's files (fashion-mnist defaults to /usr/share/datasets/fashion-mnist).", "DIR");
        var index = CommandInputs.OptionalInt("--index", "Show this one image (0-based index into the split).", 0, helpName: "I");
        var n = CommandInputs.OptionalInt("--n", $"Show the first N images (default {DefaultCount}).", 1, MaxCount);
        var ts = new Option<int[]>("--t")
        {
            Description = "Comma-separated timesteps, each 0 (the clean image) to T, in the paper's numbering.",
            HelpName = "T1,T2,...",
            DefaultValueFactory = _ => DefaultTimesteps,
            CustomParser = r =>
            {
                string text = string.Join(",", r.Tokens.Select(t => t.Value));
                var values = new List<int>();
                foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
                {
                    if (!int.TryParse(part, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v) || v < 0)
                    {
                        r.AddError($"--t must be a comma-separated list of integers >= 0 (e.g. 0,100,250,500,1000); got '{text}'");
                        return Array.Empty<int>();
                    }
                    values.Add(v);
                }
                if (values.Count > 64)
                {
                    r.AddError($"--t lists {values.Count} timesteps; at most 64 columns are drawn");
                    return Array.Empty<int>();
                }
                return values.ToArray();
            },
        };
        var output = CommandInputs.OutputPng(description: "Output PNG file: rows are images, columns the listed t (its directory is created if missing).");
        var seed = CliOptions.Seed();
        var schedule = CliOptions.Choice("--schedule", "Noise schedule.", ScheduleKind.Linear);
        var timesteps = CliOptions.Int("--timesteps", "Diffusion steps T of the schedule.", 1000, 1, 100_000, helpName: "T");
        var imageSize = CommandInputs.OptionalInt("--image-size", "Image size for folder:PATH data sets (centre crop and resize).", 1, 4096);

        var command = new Command("forward", "Show the forward (noising) process q(x_t | x_0) on real images: one row per image, one column per t.")
        {
            dataset, dataDir, index, n, ts, output, seed, schedule, timesteps, imageSize,
        };
        command.SetAction(parse =>
        {
            if (parse.GetValue(index) is not null && parse.GetValue(n) is not null)
                throw new CliUsageException("--index and --n exclude each other: --index I shows one image, --n N the first N.");
            var options = new ForwardOptions(parse.GetValue(dataset)!, parse.GetValue(output)!, parse.GetValue(ts)!, parse.GetValue(dataDir),
                parse.GetValue(index), parse.GetValue(n), parse.GetValue(seed), parse.GetValue(schedule), parse.GetValue(timesteps), parse.GetValue(imageSize));
            Run(options, context);
            return ExitCodes.Success;
        });
        return command;
    }

    public static void Run(ForwardOptions options, CliContext context)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Index is not null && options.Count is not null)
            throw new CliUsageException("--index and --n exclude each other: --index I shows one image, --n N the first N.");
        if (ToyDatasets.IsToy(options.Dataset))
            throw new CliUsageException($"'{options.Dataset}' is a 2-D toy point set; 'ddpm forward' shows images: use an image data set (fashion-mnist, mnist, cifar10, folder:PATH).");

        bool folder = options.Dataset.Trim().StartsWith(DatasetLoader.FolderPrefix, StringComparison.OrdinalIgnoreCase);
        if (!folder && options.ImageSize is not null)
            throw new CliUsageException("--image-size applies to folder:PATH data sets only; drop it.");
        string split = folder ? "train" : "test";
        var request = new ForwardProcessRequest(options.TimestepsToShow, new ScheduleConfig(options.Schedule, options.Timesteps), options.Seed,
            options.Index, options.Index is null ? options.Count ?? DefaultCount : null);
        ForwardProcessJob.CheckLevels(request.Levels, options.Timesteps);
        using var data = DatasetLoader.Load(options.Dataset, folder ? null : options.DataDir, split, folder ? options.ImageSize ?? 64 : null);
        using var result = ForwardProcessJob.Run(data, request);
        using var bitmap = result.Render();
        ImageGrid.SavePng(bitmap, options.Output);

        context.Out.WriteLine($"{result.Rows} image(s) of {data.Name} ({split} split) under the {CliOptions.Kebab(options.Schedule)} schedule, T = {options.Timesteps}");
        context.Out.WriteLine(ForwardProcessJob.DescribeLevels(result, options.TimestepsToShow));
        context.Out.WriteLine($"wrote {options.Output} ({bitmap.Width}x{bitmap.Height})");
        context.Out.Flush();
    }
}
