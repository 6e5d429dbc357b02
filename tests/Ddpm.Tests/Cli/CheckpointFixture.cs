using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Models;
using Ddpm.Schedules;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;
using DataFiles = Ddpm.Tests.Data.TempDirectory;

namespace Ddpm.Tests.Cli;

/// <summary>
/// Tiny checkpoints (T = 100) trained for two steps, made once for every CLI test that needs a model: an unconditional
/// 8×8 U-Net, a class-conditional one and a toy MLP, plus an 8×8 MNIST-style data set (IDX, gzip) under
/// <see cref="DataDir"/> whose test split has <see cref="TestImages"/> images. The checkpoints name their data set
/// "mnist", so <c>dataset:INDEX</c> resolves against <see cref="DataDir"/>.
/// </summary>
public sealed class CheckpointFixture : IDisposable
{
    public const int Timesteps = 100;
    public const int ImageSize = 8;
    public const int TestImages = 12;
    public const int Classes = 10;

    private readonly TempDirectory _root = new();

    public string Root => _root.Path;
    public string DataDir { get; }
    public string Unconditional { get; }
    public string Conditional { get; }
    public string Toy { get; }

    /// <summary>The test split's pixels, [TestImages, 8, 8].</summary>
    public byte[,,] TestPixels { get; }

    public CheckpointFixture()
    {
        DataDir = Path.Combine(Root, "data");
        Directory.CreateDirectory(DataDir);
        var random = new Random(1234);
        byte[,,] Images(int n)
        {
            var images = new byte[n, ImageSize, ImageSize];
            for (int i = 0; i < n; i++)
                for (int y = 0; y < ImageSize; y++)
                    for (int x = 0; x < ImageSize; x++)
                        images[i, y, x] = (byte)((x + y + i) % 3 == 0 ? 255 : random.Next(0, 60));
            return images;
        }
        byte[] Labels(int n) => Enumerable.Range(0, n).Select(i => (byte)(i % Classes)).ToArray();
        var train = Images(32);
        TestPixels = Images(TestImages);
        DataFiles.WriteMnistSplit(DataDir, "train", train, Labels(32), gzip: true);
        DataFiles.WriteMnistSplit(DataDir, "t10k", TestPixels, Labels(TestImages), gzip: true);

        using var dataset = DatasetLoader.Load("mnist", DataDir, "train");
        var diffusion = new DiffusionConfig(new ScheduleConfig(Timesteps: Timesteps));
        var training = new TrainingConfig(Steps: 2, BatchSize: 8, WarmupSteps: 0, Seed: 1, LogEvery: 1, CheckpointEvery: 2, KeepCheckpoints: 1);
        var data = new TrainingData(dataset.Images, dataset.Labels, "mnist", Classes);

        Unconditional = Train(new ModelConfig(UNetPresets.Tiny), diffusion, training, data, "unconditional");
        Conditional = Train(new ModelConfig(UNetPresets.Tiny with { NumClasses = Classes }), diffusion, training, data, "conditional");
        using var points = ToyDatasets.Sample("toy:moons", 64, new Generator(7));
        Toy = Train(new ModelConfig(ToyMlp: new ToyMlpConfig(Hidden: 32, Layers: 2)), diffusion, training, new TrainingData(points, null, "toy:moons"), "toy");
    }

    private string Train(ModelConfig model, DiffusionConfig diffusion, TrainingConfig training, TrainingData data, string name)
    {
        string run = Path.Combine(Root, "runs", name);
        using (var trainer = Trainer.Create(model, diffusion, training, data, run))
            trainer.Run();
        return Checkpoint.List(run).Single();
    }

    /// <summary>A copy of checkpoint <paramref name="source"/> under <paramref name="destination"/>, to be damaged by a test.</summary>
    public static string Copy(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.GetFiles(source))
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        return destination;
    }

    public void Dispose() => _root.Dispose();
}

[CollectionDefinition(Name)]
public sealed class CheckpointCollection : ICollectionFixture<CheckpointFixture>
{
    public const string Name = "CLI checkpoints";
}
