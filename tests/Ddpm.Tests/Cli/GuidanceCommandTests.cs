using Ddpm.Generation;
using System.Text.Json;
using Ddpm.Cli.Commands;
using Ddpm.Guidance;
using Ddpm.Training;

namespace Ddpm.Tests.Cli;

[Collection(CheckpointCollection.Name)]
public sealed class GuidanceCommandTests(CheckpointFixture fixture) : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Classifier(int timesteps)
    {
        string dir = _temp.Combine($"classifier-{timesteps}");
        if (Directory.Exists(dir)) return dir;
        CliAssert.Success(CliRunner.Run("classifier", "train", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--timesteps", timesteps.ToString(),
            "--epochs", "1", "--batch", "8", "--out", dir));
        return dir;
    }

    [Fact]
    public void ClassifierFreeGuidance_AllClassesGivesOneRowPerClass()
    {
        string dir = _temp.Combine("cfg");
        var run = CliRunner.Run("sample", "--checkpoint", fixture.Conditional, "--sampler", "ddim", "--steps", "3", "--class", "all", "--n", "2",
            "--guidance-scale", "2", "--out", dir);
        CliAssert.Success(run);
        Assert.Contains("classifier-free guidance w = 2", run.Stdout);
        Assert.Equal(2 * CheckpointFixture.Classes, Directory.GetFiles(dir, "sample-*.png").Length);
        using var grid = SkiaSharp.SKBitmap.Decode(Path.Combine(dir, SampleFiles.GridFile));
        Assert.True(grid.Height > 4 * grid.Width, $"grid {grid.Width}×{grid.Height}: 10 rows of 2");
    }

    [Fact]
    public void ClassifierGuidance_WorksWithDdpmAndDdimOnAnUnconditionalModel()
    {
        string classifier = Classifier(CheckpointFixture.Timesteps);
        var (network, info) = NoisyClassifier.Load(classifier);
        network.Dispose();
        Assert.InRange(info.NoisyTestAccuracy, 0.0, 1.0);
        Assert.Equal(CheckpointFixture.Timesteps, info.Config.Schedule.Timesteps);
        foreach (var sampler in new[] { "ddpm", "ddim", "dpm++2m" })
        {
            var run = CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--sampler", sampler, "--steps", "4", "--n", "3",
                "--classifier", classifier, "--classifier-scale", "2", "--class", "3", "--out", _temp.Combine("cg-" + sampler));
            CliAssert.Success(run);
            Assert.Contains("classifier guidance s = 2", run.Stdout);
        }

        // eval fid with classifier guidance over several batches: the classifier's weights are part of the resume key.
        string fidNet = _temp.Combine("fid-net");
        TorchSharp.torch.manual_seed(55); // untrained weights: fixed here, whatever ran before
        using (var net = new Ddpm.Evaluation.FeatureNetwork(new Ddpm.Evaluation.FeatureNetConfig(1, CheckpointFixture.ImageSize, 10)))
            net.Save(fidNet, new Ddpm.Evaluation.FeatureNetInfo(net.Config, "mnist", 0.1, 0, 0));
        string json = _temp.Combine("cg-fid.json");
        var fid = CliRunner.Run("eval", "fid", "--checkpoint", fixture.Unconditional, "--data-dir", fixture.DataDir, "--fid-net", fidNet,
            "--sampler", "ddim", "--steps", "2", "--n", "4", "--batch", "2", "--classifier", classifier, "--classifier-scale", "2",
            "--stats-cache", _temp.Combine("cache"), "--out", json);
        CliAssert.Success(fid);
        Assert.Contains("progress is saved after every batch", fid.Stdout);
        using var report = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Contains("classifier guidance s = 2", report.RootElement.GetProperty("guidance").GetString());
        Assert.Empty(Directory.GetFiles(_temp.Combine("cache", "progress")));
    }

    [Fact]
    public void GuidanceOptionsAreCheckedAgainstTheCheckpoint()
    {
        CliAssert.UsageError(CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--guidance-scale", "1", "--out", _temp.Combine("a")),
            "--guidance-scale needs a class-conditional checkpoint", "--classifier");
        CliAssert.UsageError(CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--classifier", Classifier(1000), "--out", _temp.Combine("b")),
            "another noise schedule");
        CliAssert.UsageError(CliRunner.Run("sample", "--checkpoint", fixture.Conditional, "--class", "ten", "--out", _temp.Combine("c")), "'all'");
        CliAssert.UsageError(CliRunner.Run("sample", "--checkpoint", fixture.Conditional, "--classifier-scale", "3", "--out", _temp.Combine("d")), "needs --classifier");
        CliAssert.UsageError(CliRunner.Run("sample", "--checkpoint", fixture.Toy, "--classifier", Classifier(CheckpointFixture.Timesteps), "--out", _temp.Combine("e")), "image model");
        Assert.DoesNotContain(Directory.EnumerateDirectories(_temp.Path), d => Path.GetFileName(d).Length == 1);
    }

    [Fact]
    public void Train_ClassConditionalUsesTheDataSetsLabelsAndClassDropout()
    {
        string run = _temp.Combine("cond-run");
        CliAssert.Success(CliRunner.Run("train", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--preset", "tiny", "--timesteps", "100", "--steps", "2",
            "--batch", "4", "--class-conditional", "--class-dropout", "0.2", "--checkpoint-every", "2", "--out", run));
        var config = Checkpoint.ReadConfig(Checkpoint.Resolve(run));
        Assert.Equal(CheckpointFixture.Classes, config.Model.NumClasses);
        Assert.Equal(0.2, config.Training!.ClassDropout);
        CliAssert.UsageError(CliRunner.Run("train", "--dataset", "toy:moons", "--class-conditional", "--steps", "1", "--out", _temp.Combine("t")), "labelled");
        CliAssert.UsageError(CliRunner.Run("train", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--preset", "tiny", "--class-dropout", "0.2", "--steps", "1", "--out", _temp.Combine("u")),
            "--class-dropout applies with --class-conditional only");
        // --init-from: not with --resume; a path that holds no model is a one-line error and leaves no run behind.
        CliAssert.UsageError(CliRunner.Run("train", "--resume", run, "--init-from", run), "--init-from starts a new run");
        CliAssert.UsageError(CliRunner.Run("train", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--preset", "tiny", "--class-conditional", "--steps", "1", "--batch", "4",
            "--init-from", _temp.Combine("no-such-model"), "--out", _temp.Combine("w")), "neither a checkpoint directory");
        Assert.False(Directory.Exists(Path.Combine(_temp.Combine("w"), "checkpoints")));
    }
}
