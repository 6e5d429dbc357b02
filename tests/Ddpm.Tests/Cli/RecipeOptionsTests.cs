using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Ddpm.Tests.Cli;

/// <summary><c>ddpm train</c>'s recipe, shape and precision options end up in the run (config.json, log.jsonl).</summary>
[Collection(CheckpointCollection.Name)]
public sealed class RecipeOptionsTests(CheckpointFixture fixture)
{
    [Fact]
    public void TrainRecordsTheRecipeAndTheShapeAndDecaysTheLearningRateToZero()
    {
        using var dir = new TempDirectory();
        string run = dir.Combine("run");
        CliAssert.Success(CliRunner.Run("train", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--preset", "tiny", "--steps", "6", "--batch", "4",
            "--timesteps", "100", "--warmup", "2", "--lr", "1e-3", "--log-every", "1", "--out", run,
            "--loss-weighting", "min-snr", "--min-snr-gamma", "3", "--prediction", "v", "--ema-profile", "power", "--ema-std", "0.1",
            "--lr-decay", "cosine", "--lr-decay-steps", "3", "--channels", "32", "--channel-mult", "1,1", "--res-blocks", "1",
            "--attention-resolutions", "none", "--dropout", "0.1", "--precision", "fp32"));
        var checkpoint = Assert.Single(Directory.GetDirectories(Path.Combine(run, "checkpoints")));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, "config.json")))!;
        var unet = config["model"]!["u_net"]!;
        Assert.Equal(32, (int)unet["base_channels"]!);
        Assert.Equal(new[] { 1, 1 }, unet["channel_multipliers"]!.AsArray().Select(n => (int)n!).ToArray());
        Assert.Equal(1, (int)unet["res_blocks_per_level"]!);
        Assert.Empty(unet["attention_resolutions"]!.AsArray());
        Assert.Equal(0.1, (double)unet["dropout"]!);
        Assert.Equal("min_snr", (string)config["diffusion"]!["weighting"]!);
        Assert.Equal(3.0, (double)config["diffusion"]!["min_snr_gamma"]!);
        var training = config["training"]!;
        Assert.Equal("power", (string)training["ema_profile"]!);
        Assert.Equal(0.1, (double)training["ema_std"]!);
        Assert.Equal("cosine", (string)training["lr_decay"]!);
        Assert.Equal("fp32", (string)training["precision"]!);
        // The learning rate of each step: warm-up 5e-4, 1e-3, then cos decay over steps 4-6 (0-based 3-5) to 0.
        var rates = File.ReadAllLines(Path.Combine(run, "log.jsonl")).Select(l => (double)JsonNode.Parse(l)!["learning_rate"]!).ToArray();
        double[] expected = { 5e-4, 1e-3, 1e-3, 1e-3 * 0.5 * (1 + Math.Cos(Math.PI / 3)), 1e-3 * 0.5 * (1 + Math.Cos(2 * Math.PI / 3)), 0 };
        Assert.Equal(expected.Length, rates.Length);
        for (int i = 0; i < rates.Length; i++) Assert.Equal(expected[i], rates[i], 12);
    }

    [Fact]
    public void ModelInfoAppliesTheShapeOptions()
    {
        var narrow = CliRunner.Run("model", "info", "--preset", "fashion-mnist");
        var wide = CliRunner.Run("model", "info", "--preset", "fashion-mnist", "--channels", "64");
        var rgb = CliRunner.Run("model", "info", "--preset", "fashion-mnist", "--in-channels", "3", "--image-size", "32", "--attention-resolutions", "8");
        CliAssert.Success(narrow);
        CliAssert.Success(wide);
        CliAssert.Success(rgb);
        long Value(CliRun r, string key) => long.Parse(r.Stdout.Split('\n').Single(l => l.StartsWith(key + ": ", StringComparison.Ordinal))[(key.Length + 2)..]);
        Assert.Contains("base_channels: 64", wide.Stdout);
        Assert.Contains("image: 3x32x32", rgb.Stdout);
        Assert.Contains("attention_resolutions: 8", rgb.Stdout);
        // Doubling every width quadruples the convolutions' weights and FLOPs (biases, norms and the image-channel convs
        // grow less), so the ratios sit just under 4.
        double parameters = (double)Value(wide, "parameters") / Value(narrow, "parameters");
        double flops = (double)Value(wide, "forward_flops_per_image") / Value(narrow, "forward_flops_per_image");
        Assert.InRange(parameters, 3.9, 4.0);
        Assert.InRange(flops, 3.9, 4.0);
        // 32x32 instead of 28x28: the FLOPs of the convolutions scale with the pixels, (32/28)^2 = 1.31.
        Assert.InRange((double)Value(rgb, "forward_flops_per_image") / Value(narrow, "forward_flops_per_image"), 1.25, 1.40);
    }

    [Fact]
    public void Bf16OnACpuWithoutItIsAUsageError()
    {
        // A child process that is told the CPU lacks bfloat16 (DDPM_NO_BF16=1, read by CpuFeatures).
        using var dir = new TempDirectory();
        string cli = Path.Combine(AppContext.BaseDirectory, "Ddpm.Cli.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment["DDPM_NO_BF16"] = "1";
        foreach (var arg in new[] { cli, "train", "--dataset", "toy:moons", "--steps", "2", "--precision", "bf16", "--out", dir.Combine("run") })
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        string stdout = process.StandardOutput.ReadToEnd(), stderr = process.StandardError.ReadToEnd();
        Assert.True(process.WaitForExit(120_000));
        Assert.Equal(2, process.ExitCode);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: bfloat16 needs a CPU with AVX-512 BF16 or AMX-BF16", line);
        Assert.Contains("--precision fp32", line);
        Assert.False(Directory.Exists(dir.Combine("run")));
    }
}
