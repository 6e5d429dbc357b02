using System.Text.Json;
using Ddpm.Evaluation;

namespace Ddpm.Tests.Cli;

[Collection(CheckpointCollection.Name)]
public sealed class EvalCommandTests(CheckpointFixture fixture) : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>An untrained 8×8 feature network: enough to exercise the command end to end.</summary>
    private string FeatureNet(int imageSize = CheckpointFixture.ImageSize)
    {
        string dir = _temp.Combine($"fid-net-{imageSize}");
        if (Directory.Exists(dir)) return dir;
        TorchSharp.torch.manual_seed(18); // untrained weights from the global generator: fixed here, whatever ran before
        using var network = new FeatureNetwork(new FeatureNetConfig(1, imageSize, 10));
        network.Save(dir, new FeatureNetInfo(network.Config, "mnist", 0.1, 0, 0));
        return dir;
    }

    private static JsonElement ReadJson(string path) => JsonDocument.Parse(File.ReadAllText(path)).RootElement;

    [Fact]
    public void Nll_FullBoundAndStratifiedEstimate_ReportPiecesThatAddUp()
    {
        string full = _temp.Combine("full.json"), strat = _temp.Combine("strat.json");
        var run = CliRunner.Run("eval", "nll", "--checkpoint", fixture.Unconditional, "--data-dir", fixture.DataDir, "--n", "4", "--batch", "3", "--out", full);
        CliAssert.Success(run);
        Assert.Contains("bits/dim", run.Stdout);
        Assert.Contains($"all {CheckpointFixture.Timesteps} terms", run.Stdout);
        var a = ReadJson(full);
        double total = a.GetProperty("bits_per_dim").GetDouble();
        Assert.Equal(total, a.GetProperty("prior").GetDouble() + a.GetProperty("kl").GetDouble() + a.GetProperty("decoder").GetDouble(), 9);
        Assert.True(total > 0 && double.IsFinite(total));
        Assert.True(a.GetProperty("standard_error").GetDouble() > 0);
        Assert.Equal(CheckpointFixture.Timesteps, a.GetProperty("network_evaluations_per_image").GetInt32());

        CliAssert.Success(CliRunner.Run("eval", "nll", "--checkpoint", fixture.Unconditional, "--data-dir", fixture.DataDir, "--n", "4", "--strata", "7", "--out", strat));
        var b = ReadJson(strat);
        Assert.Equal(8, b.GetProperty("network_evaluations_per_image").GetInt32());
        // Same images, same prior; the estimate is unbiased (tested with an oracle in LikelihoodTests), so here only sanity.
        Assert.Equal(a.GetProperty("prior").GetDouble(), b.GetProperty("prior").GetDouble(), 12);
        Assert.True(Math.Abs(b.GetProperty("bits_per_dim").GetDouble() - total) < 0.5 * total);
    }

    [Fact]
    public void Nll_BadOptionsGiveOneLineErrors()
    {
        CliAssert.UsageError(CliRunner.Run("eval", "nll", "--checkpoint", fixture.Unconditional, "--data-dir", fixture.DataDir, "--strata", "100"),
            "--strata must be from 1 to T - 1 = 99");
        CliAssert.UsageError(CliRunner.Run("eval", "nll", "--checkpoint", fixture.Unconditional, "--data-dir", fixture.DataDir, "--n", "13"),
            "--n 13 is more than the 12 images");
        CliAssert.UsageError(CliRunner.Run("eval", "nll", "--checkpoint", fixture.Toy), "toy model");
        CliAssert.UsageError(CliRunner.Run("eval", "nll", "--checkpoint", fixture.Unconditional, "--variance", "learned"), "--variance must be fixed-small or fixed-large");
    }

    [Fact]
    public void Fid_RealImages_AreCachedAndGiveTheSameValue()
    {
        string cache = _temp.Combine("cache");
        string[] args = { "eval", "fid", "--real", "train", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--fid-net", FeatureNet(), "--n", "20", "--batch", "7", "--stats-cache", cache, "--out", _temp.Combine("real.json") };
        var first = CliRunner.Run(args);
        CliAssert.Success(first);
        Assert.Contains("cached in", first.Stdout);
        Assert.Contains("not Inception", first.Stdout);
        Assert.Single(Directory.GetFiles(cache));
        var second = CliRunner.Run(args);
        CliAssert.Success(second);
        Assert.Contains("from the cache", second.Stdout);
        var report = ReadJson(_temp.Combine("real.json"));
        double fid = report.GetProperty("fid").GetDouble();
        Assert.True(fid > 0 && double.IsFinite(fid));
        Assert.Equal(first.Stdout.Split('\n').First(l => l.StartsWith("FID")).Split(':')[0], second.Stdout.Split('\n').First(l => l.StartsWith("FID")).Split(':')[0]);
        Assert.Equal(1.0, report.GetProperty("class_fractions").EnumerateArray().Sum(e => e.GetDouble()), 9);
    }

    [Fact]
    public void Fid_Samples_RunEndToEnd()
    {
        var run = CliRunner.Run("eval", "fid", "--checkpoint", fixture.Unconditional, "--data-dir", fixture.DataDir, "--fid-net", FeatureNet(),
            "--sampler", "ddim", "--steps", "4", "--n", "6", "--batch", "4", "--stats-cache", _temp.Combine("cache"));
        CliAssert.Success(run);
        Assert.Contains("DDIM (eta 0), 4 steps", run.Stdout);
        var ddpm = CliRunner.Run("eval", "fid", "--checkpoint", fixture.Unconditional, "--data-dir", fixture.DataDir, "--fid-net", FeatureNet(),
            "--sampler", "ddpm", "--steps", "3", "--variance", "fixed-large", "--n", "4", "--stats-cache", _temp.Combine("cache"));
        CliAssert.Success(ddpm);
        Assert.Contains("DDPM (fixed-large)", ddpm.Stdout);
    }

    [Fact]
    public void Fid_SavesProgressWhileRunning_DeletesItAtTheEnd_AndIgnoresAnUnreadableOne()
    {
        string cache = _temp.Combine("cache"), json = _temp.Combine("fid.json");
        string[] args = { "eval", "fid", "--checkpoint", fixture.Unconditional, "--data-dir", fixture.DataDir, "--fid-net", FeatureNet(),
            "--sampler", "ddim", "--steps", "2", "--n", "6", "--batch", "2", "--stats-cache", cache, "--out", json };
        var first = CliRunner.Run(args);
        CliAssert.Success(first);
        string line = first.Stdout.Split('\n').Single(l => l.StartsWith("progress is saved after every batch in "));
        string path = line["progress is saved after every batch in ".Length..line.IndexOf(": if this run stops", StringComparison.Ordinal)];
        Assert.StartsWith(Path.Combine(cache, "progress"), path);
        Assert.False(File.Exists(path));
        double fid = ReadJson(json).GetProperty("fid").GetDouble();
        Assert.Equal(JsonValueKind.Null, ReadJson(json).GetProperty("resumed_after_samples").ValueKind);

        // A progress file that cannot be read (say, from a disk that filled up) is ignored: the run starts afresh.
        File.WriteAllText(path, "garbage");
        var second = CliRunner.Run(args);
        CliAssert.Success(second);
        Assert.DoesNotContain("resumed", second.Stdout);
        Assert.Equal(fid, ReadJson(json).GetProperty("fid").GetDouble());
        Assert.False(File.Exists(path));

        // A different seed is a different run: another progress file.
        var other = CliRunner.Run(args.Concat(new[] { "--seed", "5" }).ToArray());
        CliAssert.Success(other);
        Assert.DoesNotContain(path, other.Stdout);
    }

    [Fact]
    public void Fid_GuidedSamplesReportAgreementWithTheRequestedClass()
    {
        string json = _temp.Combine("guided.json");
        var run = CliRunner.Run("eval", "fid", "--checkpoint", fixture.Conditional, "--data-dir", fixture.DataDir, "--fid-net", FeatureNet(),
            "--sampler", "ddim", "--steps", "3", "--n", "10", "--guidance-scale", "1.5", "--stats-cache", _temp.Combine("cache"), "--out", json);
        CliAssert.Success(run);
        Assert.Contains("agrees with the requested class", run.Stdout);
        var report = ReadJson(json);
        Assert.InRange(report.GetProperty("requested_class_accuracy").GetDouble(), 0.0, 1.0);
        Assert.Contains("classifier-free guidance w = 1.5", report.GetProperty("guidance").GetString());
        // An unconditional model has no requested classes.
        CliAssert.Success(CliRunner.Run("eval", "fid", "--checkpoint", fixture.Unconditional, "--data-dir", fixture.DataDir, "--fid-net", FeatureNet(),
            "--steps", "2", "--n", "4", "--stats-cache", _temp.Combine("cache"), "--out", json));
        Assert.Equal(JsonValueKind.Null, ReadJson(json).GetProperty("requested_class_accuracy").ValueKind);
    }

    [Fact]
    public void PlotFid_DrawsOneLinePerSamplerAndPrintsTheTable()
    {
        string dir = _temp.Combine("reports");
        Directory.CreateDirectory(dir);
        int i = 0;
        foreach (var (sampler, calls, fid) in new[] { ("DDIM (eta 0)", 10, 40.0), ("DDIM (eta 0)", 50, 12.0), ("DPM-Solver++ 2M (log-snr)", 10, 15.0), ("DPM-Solver++ 2M (log-snr)", 20, 11.0) })
        {
            var report = new Ddpm.Generation.FidResult("ckpt", sampler, calls, calls, 0.0, null, 1000, "fashion-mnist:test", 10000, "net", 0.9, fid,
                new double[10], null, null, 12.5, Ddpm.Generation.FidEvaluation.Note);
            File.WriteAllText(Path.Combine(dir, $"r{i++}.json"), Ddpm.IO.Json.Serialize(report));
        }
        // A guided report is left out of the samplers' curve and table.
        File.WriteAllText(Path.Combine(dir, "guided.json"), Ddpm.IO.Json.Serialize(new Ddpm.Generation.FidResult("ckpt", "DDIM (eta 0), classifier-free guidance w = 3", 10, 10,
            0.0, null, 1000, "fashion-mnist:test", 10000, "net", 0.9, 7.0, new double[10], 0.97, "classifier-free guidance w = 3", 20.0, Ddpm.Generation.FidEvaluation.Note)));
        string png = _temp.Combine("fid.png");
        var run = CliRunner.Run("plot", "fid", "--reports", dir, "--out", png);
        CliAssert.Success(run);
        Assert.Contains("| DPM-Solver++ 2M (log-snr) | 20 | 20 | 1,000 | 11.00 |", run.Stdout);
        Assert.Contains("left out 1 report(s) of guided sampling", run.Stdout);
        Assert.DoesNotContain("guidance w = 3 |", run.Stdout);
        using var bitmap = SkiaSharp.SKBitmap.Decode(png);
        Assert.True(bitmap.Width > 100);
        CliAssert.UsageError(CliRunner.Run("plot", "fid", "--reports", _temp.Combine("missing"), "--out", png), "does not exist");
    }

    [Fact]
    public void Fid_BadInputGivesOneLineErrors()
    {
        CliAssert.UsageError(CliRunner.Run("eval", "fid", "--fid-net", FeatureNet()), "either --checkpoint DIR", "--real train|test");
        CliAssert.UsageError(CliRunner.Run("eval", "fid", "--checkpoint", fixture.Unconditional, "--fid-net", _temp.Combine("nope")), "does not exist", "ddpm fid-net train");
        CliAssert.UsageError(CliRunner.Run("eval", "fid", "--checkpoint", fixture.Unconditional, "--data-dir", fixture.DataDir, "--fid-net", FeatureNet(28)),
            "takes 1×28×28", "trained on the model's data set");
        CliAssert.UsageError(CliRunner.Run("eval", "fid", "--checkpoint", fixture.Unconditional, "--fid-net", FeatureNet(), "--sampler", "ddpm", "--eta", "0.5"), "--eta applies to --sampler ddim");
        string broken = _temp.Combine("broken-net");
        Directory.CreateDirectory(broken);
        File.WriteAllText(Path.Combine(broken, FeatureNetwork.ConfigFile), "{");
        File.WriteAllText(Path.Combine(broken, FeatureNetwork.WeightsFile), "");
        CliAssert.UsageError(CliRunner.Run("eval", "fid", "--checkpoint", fixture.Unconditional, "--fid-net", broken), "not a valid feature network configuration");
    }

    [Fact]
    public void FidNetTrain_WritesALoadableNetworkAndReportsItsAccuracy()
    {
        string dir = _temp.Combine("trained-net");
        var run = CliRunner.Run("fid-net", "train", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--epochs", "2", "--batch", "8", "--out", dir);
        CliAssert.Success(run);
        Assert.Contains("test accuracy", run.Stdout);
        var (network, info) = FeatureNetwork.Load(dir);
        using (network)
        {
            Assert.Equal(CheckpointFixture.ImageSize, info.Config.ImageSize);
            Assert.Equal(2, info.Epochs);
            // The recorded accuracy is what the network scores on the test split, counted here independently.
            using var test = Ddpm.Data.DatasetLoader.Load("mnist", fixture.DataDir, "test");
            Assert.Equal(Ddpm.Tests.Support.IndependentAccuracy.Of(network.forward, test), info.TestAccuracy, 9);
        }
        CliAssert.UsageError(CliRunner.Run("fid-net", "train", "--dataset", "toy:moons", "--out", _temp.Combine("x")), "has no labels");
        Assert.False(Directory.Exists(_temp.Combine("x")));
    }
}
