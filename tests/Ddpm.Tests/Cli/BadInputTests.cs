using System.Text.Json.Nodes;
using Ddpm.Imaging;
using Ddpm.Training;
using SkiaSharp;
using DataFiles = Ddpm.Tests.Data.TempDirectory;

namespace Ddpm.Tests.Cli;

/// <summary>
/// Bad input to sample, forward, interpolate and train: every case exits with 2, prints exactly one stderr line
/// "error: ..." that names the problem and the fix, and leaves no output file or directory behind.
/// </summary>
[Collection(CheckpointCollection.Name)]
public sealed class BadInputTests(CheckpointFixture fixture) : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>Where a command may write; nothing may appear there.</summary>
    private string OutDir => _temp.Combine("out");
    private string OutPng => _temp.Combine("out", "image.png");

    private CliRun Expect(string[] args, params string[] messageParts)
    {
        var run = CliRunner.Run(args);
        Assert.True(run.ExitCode == 2, $"exit {run.ExitCode}; stdout: {run.Stdout}; stderr: {run.Stderr}");
        string line = Assert.Single(run.StderrLines);
        Assert.StartsWith("error: ", line);
        foreach (var part in messageParts)
            Assert.True(line.Contains(part, StringComparison.Ordinal), $"'{part}' missing from: {line}");
        Assert.False(Directory.Exists(OutDir), $"{OutDir} was created");
        Assert.Empty(Directory.GetFiles(_temp.Path, "*.tmp", SearchOption.AllDirectories));
        return run;
    }

    private static string[] A(params string[] args) => args;

    /// <summary>The command, its default options, and <paramref name="extra"/> (OPTION VALUE pairs or flags) replacing or adding to them.</summary>
    private static string[] Command(string command, (string Option, string? Value)[] defaults, string[] extra)
    {
        var options = defaults.ToList();
        for (int i = 0; i < extra.Length; i++)
        {
            string option = extra[i];
            string? value = i + 1 < extra.Length && !extra[i + 1].StartsWith("--", StringComparison.Ordinal) ? extra[++i] : null;
            int at = options.FindIndex(o => o.Option == option);
            if (at >= 0) options[at] = (option, value);
            else options.Add((option, value));
        }
        return new[] { command }.Concat(options.SelectMany(o => o.Value is null ? new[] { o.Option } : new[] { o.Option, o.Value })).ToArray();
    }

    private string[] Sample(string checkpoint, params string[] extra) =>
        Command("sample", new (string, string?)[] { ("--checkpoint", checkpoint), ("--n", "2"), ("--steps", "2"), ("--out", OutDir) }, extra);

    private string[] Forward(string dataset, string? dataDir, params string[] extra) =>
        Command("forward", new (string, string?)[] { ("--dataset", dataset), ("--timesteps", "100"), ("--t", "0,50"), ("--out", OutPng) }
            .Concat(dataDir is null ? Array.Empty<(string, string?)>() : new (string, string?)[] { ("--data-dir", dataDir) }).ToArray(), extra);

    private string[] Interpolate(string checkpoint, string a, string b, params string[] extra) =>
        Command("interpolate", new (string, string?)[] { ("--checkpoint", checkpoint), ("--a", a), ("--b", b), ("--data-dir", fixture.DataDir), ("--t", "5"), ("--steps", "2"), ("--out", OutPng) }, extra);

    private string[] Train(string dataset, string? dataDir, params string[] extra) =>
        Command("train", new (string, string?)[] { ("--dataset", dataset), ("--preset", "tiny"), ("--steps", "1"), ("--batch", "4"), ("--timesteps", "100"), ("--out", OutDir) }
            .Concat(dataDir is null ? Array.Empty<(string, string?)>() : new (string, string?)[] { ("--data-dir", dataDir) }).ToArray(), extra);

    /// <summary>A copy of the fixture's data directory in which <paramref name="damage"/> changes one file.</summary>
    private string DamagedData(string file, Func<byte[], byte[]> damage)
    {
        string dir = _temp.Combine("data-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(fixture.DataDir))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        string path = Path.Combine(dir, file);
        File.WriteAllBytes(path, damage(File.ReadAllBytes(path)));
        return dir;
    }

    private string DamagedCheckpoint(string source, Action<string> damage)
    {
        string dir = CheckpointFixture.Copy(source, _temp.Combine("ckpt-" + Guid.NewGuid().ToString("N")[..6]));
        damage(dir);
        return dir;
    }

    // ------------------------------------------------------------------ data sets

    [Fact]
    public void MissingDatasetDirectory_SaysHowToInstallIt()
    {
        string missing = _temp.Combine("no-such-dir");
        Expect(Forward("fashion-mnist", missing), "not found", missing, "apt-get install dataset-fashion-mnist", "--data-dir");
        Expect(Train("fashion-mnist", missing), "not found", "apt-get install dataset-fashion-mnist", "--data-dir");
    }

    [Fact]
    public void TruncatedGzipIdx_IsReported()
    {
        string data = DamagedData("t10k-images-idx3-ubyte.gz", bytes => bytes[..(bytes.Length / 2)]);
        Expect(Forward("mnist", data), "t10k-images-idx3-ubyte.gz", "re-download");
        string train = DamagedData("train-images-idx3-ubyte.gz", bytes => bytes[..(bytes.Length / 2)]);
        Expect(Train("mnist", train), "train-images-idx3-ubyte.gz", "re-download");
    }

    [Fact]
    public void CorruptGzipIdx_IsReported()
    {
        // Flip the deflate data in the middle: the stream no longer decodes, or fails its CRC check.
        string data = DamagedData("t10k-images-idx3-ubyte.gz", bytes =>
        {
            var copy = bytes.ToArray();
            for (int i = 12; i < copy.Length - 8; i++) copy[i] ^= 0x5A;
            return copy;
        });
        Expect(Forward("mnist", data), "t10k-images-idx3-ubyte.gz", "re-download");
    }

    [Fact]
    public void WrongMagicNumber_IsReported()
    {
        // A label file where the image file should be.
        string data = DamagedData("t10k-images-idx3-ubyte.gz", _ => DataFiles.Gzip(DataFiles.Idx(0x801, new[] { 3 }, new byte[] { 1, 2, 3 })));
        Expect(Forward("mnist", data), "wrong magic number", "0x00000801", "label file");
        string data2 = DamagedData("train-images-idx3-ubyte.gz", _ => DataFiles.Gzip(DataFiles.Idx(0x0D03, new[] { 1, 1, 1 }, new byte[] { 0, 0, 0, 0 })));
        Expect(Train("mnist", data2), "wrong magic number", "0x00000D03");
    }

    [Fact]
    public void UnknownDataset_ListsTheKnownOnes()
    {
        Expect(Forward("imagenet", null), "Unknown dataset 'imagenet'", "fashion-mnist");
        Expect(Train("imagenet", null), "Unknown dataset 'imagenet'", "fashion-mnist");
        Expect(Interpolate(fixture.Unconditional, "imagenet:3", "dataset:0"), "Unknown dataset 'imagenet'");
        Expect(Forward("toy:moons", null), "toy point set", "image data set");
    }

    [Fact]
    public void DatasetIndexOutOfRange_SaysHowManyThereAre()
    {
        Expect(Interpolate(fixture.Unconditional, "dataset:99", "dataset:0"), "--a", "index 99 is out of range", $"{CheckpointFixture.TestImages} images");
        Expect(Forward("mnist", fixture.DataDir, "--index", "12"), "--index 12 is out of range", "0 to 11");
    }

    [Fact]
    public void UnknownPreset_ListsTheKnownOnes()
    {
        Expect(Train("mnist", fixture.DataDir, "--preset", "huge"), "unknown preset 'huge'", "Known presets:", "tiny");
    }

    [Fact]
    public void BadRecipeAndShapeOptions_AreOneLineErrors()
    {
        Expect(Train("mnist", fixture.DataDir, "--loss-weighting", "min-snr", "--min-snr-gamma", "0"), "--min-snr-gamma", "(0,");
        Expect(Train("mnist", fixture.DataDir, "--min-snr-gamma", "3"), "--min-snr-gamma applies with --loss-weighting min-snr");
        Expect(Train("mnist", fixture.DataDir, "--lr-decay", "cosine", "--lr-decay-steps", "5", "--steps", "4"), "longer than the run");
        Expect(Train("mnist", fixture.DataDir, "--lr-decay-steps", "2", "--steps", "4"), "without a decay");
        Expect(Train("mnist", fixture.DataDir, "--ema-profile", "power", "--ema-std", "0.5"), "--ema-std");
        Expect(Train("mnist", fixture.DataDir, "--ema-profile", "power", "--ema", "0.999"), "--ema-std");
        Expect(Train("mnist", fixture.DataDir, "--channel-mult", "1,x"), "--channel-mult", "comma-separated");
        Expect(Train("mnist", fixture.DataDir, "--channel-mult", "1,1,1,1,1"), "network shape", "ImageSize 8 is not divisible by 2^(levels-1) = 16", "fewer ChannelMultipliers");
        Expect(Train("mnist", fixture.DataDir, "--channels", "20"), "network shape", "Groups = 8");
        Expect(Train("mnist", fixture.DataDir, "--attention-resolutions", "3"), "network shape", "AttentionResolutions contains 3");
        Expect(Train("mnist", fixture.DataDir, "--dropout", "1"), "--dropout", "[0, 1)");
        Expect(Train("mnist", fixture.DataDir, "--in-channels", "3"), "has 1×8×8 images", "--in-channels 1");
        Expect(Train("toy:moons", null, "--preset", "toy-mlp", "--channels", "32"), "shape options apply to U-Net presets");
        Expect(Train("mnist", fixture.DataDir, "--precision", "fp16"), "--precision must be one of auto, fp32, bf16");
    }

    [Fact]
    public void DevicesThisBuildCannotUse_AreOneLineErrors()
    {
        // This build links libtorch-cpu: CUDA is refused with the build switch a GPU user needs.
        Expect(Train("mnist", fixture.DataDir, "--device", "cuda"), "--device cuda", "CUDA is not available", "-p:TorchBackend=cuda", "untested");
        Expect(Sample(fixture.Unconditional, "--device", "cuda:0"), "--device cuda:0", "CUDA is not available");
        Expect(Sample(fixture.Unconditional, "--device", "gpu"), "--device must be cpu, cuda or cuda:N", "'gpu'");
    }

    // ------------------------------------------------------------------ images for --a / --b

    [Fact]
    public void UndecodablePng_ForA()
    {
        string garbage = _temp.Combine("garbage.png");
        File.WriteAllText(garbage, "this is not an image at all");
        Expect(Interpolate(fixture.Unconditional, garbage, "dataset:0"), "--a", garbage, "PNG or JPEG");
    }

    [Fact]
    public void TruncatedPng_ForB()
    {
        string good = _temp.Combine("good.png");
        InterpolateCommandTests.WritePng(good, 64, 64, new SKColor(10, 20, 30));
        var bytes = File.ReadAllBytes(good);
        string truncated = _temp.Combine("truncated.png");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length * 2 / 3)]);
        Expect(Interpolate(fixture.Unconditional, "dataset:0", truncated), "--b", truncated, "PNG or JPEG");
    }

    [Fact]
    public void GifNamedPng_IsTheWrongKind()
    {
        string gif = _temp.Combine("really-a-gif.png");
        AnimatedGif.Save(gif, 4, 4, GifPalette.Grey, new[] { new GifFrame(new byte[16], 1) });
        Expect(Interpolate(fixture.Unconditional, gif, "dataset:0"), "--a", "is a GIF image", "PNG or JPEG");
    }

    [Fact]
    public void NeitherFileNorDatasetIndex_ForA()
    {
        Expect(Interpolate(fixture.Unconditional, _temp.Combine("missing.png"), "dataset:0"), "--a", "no such file", "DATASET:INDEX");
    }

    // ------------------------------------------------------------------ checkpoints

    [Fact]
    public void CheckpointWithoutConfig_IsCalledHalfWritten()
    {
        string dir = DamagedCheckpoint(fixture.Unconditional, d => File.Delete(Path.Combine(d, Checkpoint.ConfigFile)));
        Expect(Sample(dir), "has no config.json", "half-written", "use another checkpoint");
        Expect(Interpolate(dir, "dataset:0", "dataset:1"), "has no config.json", "half-written");
        Expect(Sample(_temp.Combine("no-checkpoint-here")), "does not exist", "ddpm train");
    }

    [Fact]
    public void CheckpointWhoseWeightsDoNotFit_IsReported()
    {
        string dir = DamagedCheckpoint(fixture.Unconditional, d =>
        {
            string path = Path.Combine(d, Checkpoint.ConfigFile);
            var json = JsonNode.Parse(File.ReadAllText(path))!;
            json["model"]!["u_net"]!["base_channels"] = 32;
            File.WriteAllText(path, json.ToJsonString());
        });
        Expect(Sample(dir), "does not fit this model");
        Expect(Interpolate(dir, "dataset:0", "dataset:1"), "does not fit this model");
    }

    [Fact]
    public void CheckpointWithTruncatedWeights_IsReported()
    {
        string dir = DamagedCheckpoint(fixture.Unconditional, d =>
        {
            foreach (var file in new[] { Checkpoint.ModelFile, Checkpoint.EmaFile })
            {
                string path = Path.Combine(d, file);
                var bytes = File.ReadAllBytes(path);
                File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
            }
        });
        Expect(Sample(dir, "--raw-weights"), Checkpoint.ModelFile, "is damaged", "use another checkpoint");
        Expect(Sample(dir), Checkpoint.EmaFile, "is damaged");
    }

    [Fact]
    public void CheckpointConfigThatIsNotJson_IsReported()
    {
        string dir = DamagedCheckpoint(fixture.Unconditional, d => File.WriteAllText(Path.Combine(d, Checkpoint.ConfigFile), "{ \"model\": "));
        Expect(Sample(dir), "config.json", "not a valid checkpoint configuration", "use another checkpoint");
    }

    // ------------------------------------------------------------------ option values

    [Fact]
    public void StepsOutOfRange()
    {
        Expect(A("sample", "--checkpoint", fixture.Unconditional, "--steps", "0", "--out", OutDir), "--steps", "got 0");
        Expect(A("sample", "--checkpoint", fixture.Unconditional, "--steps", "101", "--out", OutDir), "--steps must be from 1 to 100", "got 101");
        Expect(A("sample", "--checkpoint", fixture.Unconditional, "--n", "0", "--out", OutDir), "--n", "got 0");
        Expect(A("sample", "--checkpoint", fixture.Unconditional, "--batch", "0", "--out", OutDir), "--batch", "got 0");
        Expect(Interpolate(fixture.Unconditional, "dataset:0", "dataset:1", "--steps", "1"), "--steps", "got 1");
    }

    [Fact]
    public void EtaOutOfRange()
    {
        Expect(A("sample", "--checkpoint", fixture.Unconditional, "--sampler", "ddim", "--eta", "2", "--out", OutDir), "--eta", "[0, 1]", "got 2");
        Expect(A("sample", "--checkpoint", fixture.Unconditional, "--sampler", "ddim", "--eta", "-0.1", "--out", OutDir), "--eta");
    }

    [Fact]
    public void TBeyondT()
    {
        Expect(Forward("mnist", fixture.DataDir, "--t", "0,50,101"), "--t 101", "outside 0..100");
        Expect(Interpolate(fixture.Unconditional, "dataset:0", "dataset:1", "--t", "101"), "--t must be from 1 to 100", "got 101");
        Expect(Interpolate(fixture.Unconditional, "dataset:0", "dataset:1", "--t", "0"), "--t");
        Expect(Forward("mnist", fixture.DataDir, "--t", "0,-5"), "--t");
    }

    [Fact]
    public void ClassOnAnUnconditionalModel()
    {
        Expect(Sample(fixture.Unconditional, "--class", "1"), "--class needs a class-conditional checkpoint", "unconditional", "drop --class");
        Expect(Sample(fixture.Toy, "--class", "0"), "--class needs a class-conditional checkpoint");
    }

    [Fact]
    public void OutputPathProblems()
    {
        Directory.CreateDirectory(_temp.Combine("existing-dir"));
        var run = CliRunner.Run(Forward("mnist", fixture.DataDir, "--out", _temp.Combine("existing-dir")));
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("is a directory", Assert.Single(run.StderrLines));
        Expect(Forward("mnist", fixture.DataDir, "--out", _temp.Combine("out", "image.jpg")), "must name a .png file");
        string file = _temp.Combine("a-file");
        File.WriteAllText(file, "x");
        run = CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--out", file);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("is an existing file", Assert.Single(run.StderrLines));
    }
}
