using Ddpm.Diffusion;
using Ddpm.IO;
using Ddpm.Models;
using Ddpm.Schedules;
using Ddpm.Tests.Support;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Training;

public sealed class TrainerTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ddpm-trainer-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    internal static TrainingData TinyData(int n = 64)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(99);
        var images = (rand(new long[] { n, 1, 8, 8 }, generator: gen) * 2 - 1).DetachFromDisposeScope();
        var labels = randint(0, 3, new long[] { n }, generator: gen).DetachFromDisposeScope();
        return new TrainingData(images, labels, "random-8x8", 3);
    }

    private static (ModelConfig, DiffusionConfig, TrainingConfig) TinySetup(long steps, TimestepSampling sampling = TimestepSampling.LossAware, int timesteps = 100) =>
        (new ModelConfig(UNetPresets.Tiny with { Dropout = 0.1, NumClasses = 3 }),
         new DiffusionConfig(new ScheduleConfig(Timesteps: timesteps), Variance: VarianceType.LearnedRange, Loss: LossType.Hybrid),
         new TrainingConfig(Steps: steps, BatchSize: 8, WarmupSteps: 3, EmaWarmup: true, TimestepSampling: sampling, RandomFlip: true,
             ClassDropout: 0.1, Seed: 5, LogEvery: 1, CheckpointEvery: 4, KeepCheckpoints: 2));

    private static Dictionary<string, double[]> Snapshot(Trainer trainer) =>
        trainer.Network.named_parameters().ToDictionary(p => p.name, p => Numerics.ToArray(p.parameter))
            .Concat(trainer.EmaWeights.ToDictionary(p => "ema." + p.Key, p => Numerics.ToArray(p.Value)))
            .ToDictionary(p => p.Key, p => p.Value);

    [Fact]
    public void ResumingGivesBitIdenticalWeights()
    {
        // 12 steps straight vs 8 steps, a fresh process-like restart from the step-8 checkpoint, and 4 more:
        // dropout, flips, class dropout, loss-aware timesteps, warm-up, EMA warm-up and Adam moments all in play.
        // (8 is a checkpoint step and 12 crosses an epoch boundary: 64 samples / batch 8 = 8 steps per epoch.)
        var data = TinyData();
        var (model, diffusion, training) = TinySetup(12, TimestepSampling.Uniform);
        Dictionary<string, double[]> straight;
        using (var trainer = Trainer.Create(model, diffusion, training, data, Path.Combine(_root, "straight")))
        {
            trainer.Run();
            straight = Snapshot(trainer);
        }
        string split = Path.Combine(_root, "split");
        using (var first = Trainer.Create(model, diffusion, training with { Steps = 8 }, data, split))
            first.Run();
        manual_seed(777); // disturb the global generator: resume must restore it
        Dictionary<string, double[]> resumed;
        using (var second = Trainer.Resume(split, data, totalSteps: 12))
        {
            Assert.Equal(8, second.Step);
            second.Run();
            resumed = Snapshot(second);
        }
        Assert.Equal(straight.Keys.Order(), resumed.Keys.Order());
        foreach (var (name, values) in straight)
            Assert.True(values.SequenceEqual(resumed[name]), $"{name} differs after resume");
    }

    [Fact]
    public void LossAwareSamplingResumesExactlyToo()
    {
        // Loss-aware sampling switches on once every timestep has 10 losses: with T = 10 and batch 8 the 80 losses of
        // the first 10 steps cannot fill it, the 160 of 20 steps can (checked below), so the resume at step 20 carries a
        // live loss history into 8 more steps, drawn from it.
        var data = TinyData();
        var (model, diffusion, training) = TinySetup(28, timesteps: 10);
        Dictionary<string, double[]> straight;
        using (var trainer = Trainer.Create(model, diffusion, training, data, Path.Combine(_root, "a")))
        {
            trainer.Run();
            straight = Snapshot(trainer);
        }
        using (var first = Trainer.Create(model, diffusion, training with { Steps = 20 }, data, Path.Combine(_root, "b")))
            first.Run();
        string checkpoint = Path.Combine(_root, "b", "checkpoints", "step-0000020");
        var state = System.Text.Json.JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(checkpoint, Checkpoint.StateFile)), Json.Options)!;
        Assert.All(state.SamplerCounts!, c => Assert.Equal(TimestepSampler.HistoryPerTimestep, c));
        using var second = Trainer.Resume(checkpoint, data, totalSteps: 28);
        second.Run();
        var resumed = Snapshot(second);
        foreach (var (name, values) in straight)
            Assert.True(values.SequenceEqual(resumed[name]), $"{name} differs after resume");
    }

    [Fact]
    public void CheckpointsAreCompleteAndOnlyTheNewestAreKept()
    {
        var data = TinyData();
        var (model, diffusion, training) = TinySetup(12);
        string run = Path.Combine(_root, "keep");
        using (var trainer = Trainer.Create(model, diffusion, training, data, run))
            trainer.Run();
        var all = Checkpoint.List(run);
        Assert.Equal(new[] { "step-0000008", "step-0000012" }, all.Select(Path.GetFileName));
        foreach (var file in new[] { Checkpoint.ConfigFile, Checkpoint.ModelFile, Checkpoint.EmaFile, Checkpoint.OptimizerFile, Checkpoint.StateFile })
            Assert.True(File.Exists(Path.Combine(all[^1], file)), file);
        Assert.Empty(Directory.GetDirectories(Path.Combine(run, "checkpoints"), ".*"));
        // The log has one line per step with the named terms.
        var lines = File.ReadAllLines(Path.Combine(run, "log.jsonl"));
        Assert.Equal(12, lines.Length);
        Assert.Contains("\"grad_norm\"", lines[0]);
        Assert.Contains("\"vb\"", lines[0]);
        // The EMA weights load into a fresh network.
        var (network, config) = Checkpoint.LoadNetwork(all[^1]);
        using (network)
        {
            Assert.Equal(3, config.Model.NumClasses);
            Assert.True(config.Model.UNet!.LearnSigma);
        }
    }

    [Fact]
    public void ANonFiniteLossStopsWithTheLastGoodCheckpointIntact()
    {
        var data = TinyData();
        var (model, diffusion, training) = TinySetup(12);
        string run = Path.Combine(_root, "nan");
        using (var trainer = Trainer.Create(model, diffusion, training with { Steps = 4 }, data, run))
            trainer.Run();
        using (no_grad()) data.Samples[3].fill_(double.NaN);
        using var resumed = Trainer.Resume(run, data, totalSteps: 12);
        var e = Assert.Throws<TrainingDivergedException>(() => resumed.Run());
        Assert.Contains("step-0000004", e.Message);
        Assert.True(File.Exists(Path.Combine(run, "checkpoints", "step-0000004", Checkpoint.StateFile)));
        Assert.Single(Checkpoint.List(run));
    }

    [Fact]
    public void TheToyModelLearnsTheEightGaussians()
    {
        // A short run on 2-D data, its loss measured against the exact denoiser's.
        using var scope = NewDisposeScope();
        var gen = new Generator(1);
        var centres = Enumerable.Range(0, 8).Select(k => new[] { 0.8 * Math.Cos(k * Math.PI / 4), 0.8 * Math.Sin(k * Math.PI / 4) }).ToArray();
        var idx = randint(0, 8, new long[] { 4096 }, generator: gen);
        var points = (tensor(centres.SelectMany(c => c).ToArray(), dtype: ScalarType.Float32).reshape(8, 2).index_select(0, idx)
                      + 0.05 * randn(new long[] { 4096, 2 }, generator: gen)).DetachFromDisposeScope();
        var data = new TrainingData(points, null, "8gaussians");
        var config = new TrainingConfig(Steps: 600, BatchSize: 256, LearningRate: 2e-3, WarmupSteps: 50, EmaDecay: 0.99, Seed: 2, LogEvery: 50, CheckpointEvery: 600);
        var losses = new List<double>();
        using var trainer = Trainer.Create(new ModelConfig(ToyMlp: new ToyMlpConfig()), new DiffusionConfig(new ScheduleConfig()), config, data, Path.Combine(_root, "toy"));
        trainer.Run(new Progress<TrainingProgress>(p => losses.Add(p.Loss)));
        var lines = File.ReadAllLines(Path.Combine(_root, "toy", "log.jsonl"));
        var logged = lines.Select(l => System.Text.Json.JsonSerializer.Deserialize<TrainingProgress>(l, Json.Compact)!.Loss).ToArray();

        // The floor: no network beats the exact denoiser. For this mixture the oracle gives ε* = E[ε | x_t], and the
        // irreducible loss L* = E_t E‖ε − ε*‖²/2 is estimated by Monte Carlo (200,000 draws, s.e. below 0.3 %).
        using var oracle = new Ddpm.Oracles.GaussianMixtureOracle(centres.Select(c => new Ddpm.Oracles.MixtureComponent(1.0, c, new[,] { { 0.0025, 0.0 }, { 0.0, 0.0025 } })).ToArray());
        var schedule = new ScheduleConfig().Build();
        var optimal = oracle.Denoiser(schedule);
        var mc = new Generator(3);
        var x0 = oracle.Sample(200_000, mc, ScalarType.Float64);
        var t = randint(0, 1000, new long[] { 200_000 }, generator: mc);
        var eps = randn(new long[] { 200_000, 2 }, dtype: ScalarType.Float64, generator: mc);
        var abar = tensor(schedule.AlphasCumprod, dtype: ScalarType.Float64).index_select(0, t).unsqueeze(1);
        var xt = abar.sqrt() * x0 + (1 - abar).sqrt() * eps;
        double floor = (eps - optimal(xt, t)).square().mean().item<double>();
        var (network, _) = Checkpoint.LoadNetwork(Checkpoint.List(Path.Combine(_root, "toy"))[^1]);
        double trained;
        using (network)
        using (no_grad())
            trained = (eps - ((IDenoisingNetwork)network).AsDenoiser()(xt.to_type(ScalarType.Float32), t).to_type(ScalarType.Float64)).square().mean().item<double>();
        // A network that outputs 0 scores E‖ε‖²/2 = 1. 600 steps of the toy MLP must close 90 % of the gap from there to
        // the floor (measured: 0.192 against a floor of 0.142, 94 %), and cannot go below the floor on the same draws.
        string values = $"EMA network {trained:F4}, floor {floor:F4}; logged batch losses {string.Join(", ", logged.Select(v => v.ToString("F3")))}";
        Assert.True(trained - floor < 0.1 * (1 - floor), values);
        Assert.True(trained > floor - 0.005, values);
        Assert.InRange(floor, 0.1, 0.2);
    }
}

public sealed class ExportTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ddpm-export-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public void ExportWritesFloat16EmaWeightsThatLoadAsAModel()
    {
        using var scope = NewDisposeScope();
        var images = (rand(new long[] { 32, 1, 8, 8 }, generator: new Generator(3)) * 2 - 1).DetachFromDisposeScope();
        var data = new TrainingData(images, null, "random-8x8");
        string run = Path.Combine(_root, "run");
        Dictionary<string, Tensor> ema;
        using (var trainer = Trainer.Create(new ModelConfig(UNetPresets.Tiny), new DiffusionConfig(new ScheduleConfig(Timesteps: 50)),
                   new TrainingConfig(Steps: 3, BatchSize: 8, WarmupSteps: 0, EmaDecay: 0.5, CheckpointEvery: 3), data, run))
        {
            trainer.Run();
            ema = trainer.EmaWeights.ToDictionary(p => p.Key, p => p.Value.clone());
        }
        string model = Path.Combine(_root, "model");
        var stderr = new StringWriter();
        int code = Ddpm.Cli.Program.Run(new[] { "export", "--checkpoint", run, "--out", model, "--float16" }, new StringWriter(), stderr);
        Assert.True(code == 0, stderr.ToString());
        Assert.Equal(new[] { Checkpoint.ConfigFile, Checkpoint.EmaFile }, Directory.GetFiles(model).Select(Path.GetFileName).Order());
        var stored = SafeTensors.Load(Path.Combine(model, Checkpoint.EmaFile));
        Assert.All(stored.Values, t => Assert.Equal(ScalarType.Float16, t.dtype));
        var (network, config) = Checkpoint.LoadNetwork(model);
        using (network)
        {
            Assert.Equal(UNetPresets.Tiny.BaseChannels, config.Model.UNet!.BaseChannels);
            foreach (var (name, p) in network.named_parameters())
            {
                // float16 keeps 11 significant bits: relative error below 2^-11 per element (plus tiny absolute slack).
                var err = (p - ema[name]).abs() - (ema[name].abs() * (1.0 / 2048) + 1e-7);
                Assert.True(Numerics.MaxAbs(err.clamp_min(0)) == 0, $"{name} differs from the EMA weights beyond float16 rounding");
            }
        }
        // A missing checkpoint is a one-line usage error.
        var err2 = new StringWriter();
        Assert.Equal(2, Ddpm.Cli.Program.Run(new[] { "export", "--checkpoint", Path.Combine(_root, "nope"), "--out", Path.Combine(_root, "x") }, new StringWriter(), err2));
        Assert.StartsWith("error:", err2.ToString());
        Assert.False(Directory.Exists(Path.Combine(_root, "x")));
    }

    [Fact]
    public void WarmStartedConditionalModelPredictsExactlyLikeItsUnconditionalSourceWithoutALabelAndThenLearnsItsClassEmbedding()
    {
        var data = TrainerTests.TinyData();
        var diffusion = new DiffusionConfig(new ScheduleConfig(Timesteps: 100));
        var training = new TrainingConfig(Steps: 3, BatchSize: 8, WarmupSteps: 0, EmaDecay: 0.5, Seed: 1, CheckpointEvery: 3);
        string source = Path.Combine(_root, "unconditional");
        // A large learning rate moves the zero-initialised output convolution enough in 3 steps for outputs to differ.
        using (var trainer = Trainer.Create(new ModelConfig(UNetPresets.Tiny), diffusion, training with { LearningRate = 1e-2 }, data with { Labels = null, NumClasses = 0 }, source))
            trainer.Run();

        var conditional = new ModelConfig(UNetPresets.Tiny with { NumClasses = 3 });
        using var scope = NewDisposeScope();
        var x = randn(new long[] { 4, 1, 8, 8 }, generator: new Generator(8));
        var t = tensor(new long[] { 0, 30, 60, 99 });
        var (sourceNetwork, _) = Checkpoint.LoadNetwork(Checkpoint.Resolve(source));
        using var expected = ((UNet)sourceNetwork).Forward(x, t, null).detach();
        sourceNetwork.Dispose();
        Tensor classEmbedding;
        using (var tuned = Trainer.Create(conditional, diffusion, training with { Steps = 2, ClassDropout = 0.1, InitFrom = source }, data, Path.Combine(_root, "tuned")))
        {
            var network = (UNet)tuned.Network;
            network.eval();
            // The null class (3) gives the source's prediction exactly; the class rows start random, as in a fresh model.
            using (var unconditional = network.Forward(x, t, full(new long[] { 4 }, 3L, dtype: ScalarType.Int64)))
                Assert.Equal(0.0, Numerics.MaxAbs(unconditional - expected));
            foreach (var label in new long[] { 0, 1, 2 })
            {
                using var output = network.Forward(x, t, full(new long[] { 4 }, label, dtype: ScalarType.Int64));
                Assert.True(Numerics.MaxAbs(output - expected) > 0.01 * Numerics.MaxAbs(expected), $"class {label} predicts like the unconditional source");
            }
            classEmbedding = network.named_parameters().Single(p => p.name == "class_embed.weight").parameter.detach().clone();
            Assert.True(Numerics.MaxAbs(classEmbedding[0]) > 0.5, "the class rows lost their N(0, 1) initialisation");
            foreach (var (name, p) in network.named_parameters())
                Assert.Equal(0.0, Numerics.MaxAbs(tuned.EmaWeights[name] - p)); // the EMA starts at the loaded weights
            network.train();
            tuned.Run();
            Assert.True(Numerics.MaxAbs(network.named_parameters().Single(p => p.name == "class_embed.weight").parameter - classEmbedding) > 0,
                "the class embedding did not move in two steps");
        }

        // Another network or another schedule is a CheckpointException that says which.
        var wider = Assert.Throws<CheckpointException>(() => Trainer.Create(new ModelConfig(UNetPresets.Tiny with { BaseChannels = 24, Groups = 8 }), diffusion,
            training with { InitFrom = source }, data, Path.Combine(_root, "wider")));
        Assert.Contains("another network", wider.Message);
        var cosine = Assert.Throws<CheckpointException>(() => Trainer.Create(conditional, new DiffusionConfig(new ScheduleConfig(ScheduleKind.Cosine, 100)),
            training with { InitFrom = source }, data, Path.Combine(_root, "cosine")));
        Assert.Contains("schedule", cosine.Message);
    }
}
