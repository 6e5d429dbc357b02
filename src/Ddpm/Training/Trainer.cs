using System.Diagnostics;
using System.Text.Json;
using Ddpm.Diffusion;
using Ddpm.Imaging;
using Ddpm.IO;
using Ddpm.Models;
using Ddpm.Runtime;
using Ddpm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>One logged training step.</summary>
public sealed record TrainingProgress(long Step, long TotalSteps, double Loss, double? Mse, double? Vb, double GradNorm, double LearningRate, double ImagesPerSecond, double ElapsedSeconds);

/// <summary>The data a trainer draws batches from: samples [N, ...] and optional labels [N].</summary>
public sealed record TrainingData(Tensor Samples, Tensor? Labels, string Name, int NumClasses = 0)
{
    public long Count => Samples.shape[0];
}

/// <summary>What one training step measured: the weighted loss, the gradient norm before clipping, and the loss terms.</summary>
public readonly record struct TrainingStepResult(double Loss, double GradNorm, double? Mse, double? Vb);

/// <summary>Milliseconds spent in each phase of the timed training steps, summed.</summary>
public sealed class StepPhaseTimes
{
    /// <summary>Batch, timesteps, noise and the forward pass with the loss.</summary>
    public double Forward { get; private set; }
    public double Backward { get; private set; }
    public double Clip { get; private set; }
    public double Optimizer { get; private set; }
    public double Ema { get; private set; }

    internal void Add(long t0, long t1, long t2, long t3, long t4, long t5)
    {
        Forward += Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds;
        Backward += Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds;
        Clip += Stopwatch.GetElapsedTime(t2, t3).TotalMilliseconds;
        Optimizer += Stopwatch.GetElapsedTime(t3, t4).TotalMilliseconds;
        Ema += Stopwatch.GetElapsedTime(t4, t5).TotalMilliseconds;
    }
}

/// <summary>Training stopped because the loss or the gradient became non-finite.</summary>
public sealed class TrainingDivergedException : Exception
{
    public TrainingDivergedException(string message) : base(message) { }
}

/// <summary>
/// The paper's training loop (Ho et al. 2020, Algorithm 1 and App. B): Adam, linear warm-up, global-norm
/// gradient clipping, EMA of the weights; checkpoints with exact resume; a JSON-lines log; sample grids from the EMA
/// weights. All randomness comes from one seeded generator (plus libtorch's global generator for dropout), and both
/// are saved in every checkpoint, so N steps in one go and N/2 + resume + N/2 give identical weights.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly nn.Module _network;
    private readonly IDenoisingNetwork _denoiser;
    private readonly Device _device;
    private readonly GaussianDiffusion _diffusion;
    private readonly AdamOptimizer _optimizer;
    private readonly ExponentialMovingAverage _ema;
    private readonly TimestepSampler _timestepSampler;
    private readonly List<(string Name, Tensor Parameter)> _parameters;
    private readonly TorchSharp.Modules.Parameter[] _parameterObjects;
    private readonly Generator _generator;
    private readonly TrainingData _data;
    private Tensor? _epochOrder;
    private long _epochOfOrder = -1;
    private double _elapsedBefore;

    public CheckpointConfig Config { get; }
    public string RunDirectory { get; }
    public long Step { get; private set; }

    private Trainer(CheckpointConfig config, TrainingData data, string runDirectory, string device)
    {
        config.Model.Validate();
        config.Diffusion.Validate();
        config.Training!.Validate();
        Config = config;
        _data = data;
        RunDirectory = runDirectory;
        var sampleShape = config.Model.SampleShape;
        if (!data.Samples.shape.Skip(1).SequenceEqual(sampleShape))
            throw new ArgumentException($"The {data.Name} samples have shape [{string.Join(",", data.Samples.shape.Skip(1))}] but the model expects [{string.Join(",", sampleShape)}]: choose a preset that matches the dataset.", nameof(data));
        if (data.Count < config.Training.BatchSize)
            throw new ArgumentException($"The dataset has {data.Count} samples, fewer than the batch size {config.Training.BatchSize}: lower --batch.", nameof(data));
        if (config.Training.ClassDropout > 0 && (data.Labels is null || config.Model.NumClasses == 0))
            throw new ArgumentException("Class dropout needs a class-conditional model and a labelled dataset.", nameof(config));

        manual_seed(config.Training.Seed);
        // The device is the machine's, not the run's: a run may resume on another one. Random numbers are drawn on the
        // CPU (the data set lives there too) and each batch is moved, so a seed gives the same run on every device.
        string deviceName = ComputeDevice.Validate(device);
        _device = ComputeDevice.ToTorch(deviceName);
        _network = config.Model.Create();
        if (_device.type != DeviceType.CPU) _network.to(_device);
        _denoiser = (IDenoisingNetwork)_network;
        if (_network is UNet unet) unet.Compute = config.Training.Compute with { Device = deviceName };
        _diffusion = new GaussianDiffusion(config.Diffusion);
        _parameters = _network.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).ToList();
        _parameterObjects = _network.parameters().ToArray();
        _optimizer = new AdamOptimizer(_parameters, config.Training.LearningRate);
        _ema = new ExponentialMovingAverage(_parameters, config.Training.EmaDecay, config.Training.EmaWarmup,
            config.Training.EmaProfile, config.Training.EmaStd);
        _timestepSampler = new TimestepSampler(_diffusion.Timesteps, config.Training.TimestepSampling);
        _generator = new Generator((ulong)config.Training.Seed);
    }

    /// <summary>
    /// A new run writing to <paramref name="runDirectory"/>; with <see cref="TrainingConfig.InitFrom"/> it starts from
    /// that model's weights (<see cref="Checkpoint.WarmStart"/>), with fresh Adam moments and warm-up.
    /// </summary>
    public static Trainer Create(ModelConfig model, DiffusionConfig diffusion, TrainingConfig training, TrainingData data, string runDirectory,
        string device = ComputeDevice.Cpu)
    {
        var config = new CheckpointConfig(model.WithLearnedVariance(diffusion.LearnsVariance), diffusion, training, data.Name);
        var trainer = new Trainer(config, data, runDirectory, device);
        if (training.InitFrom is not null)
        {
            try
            {
                Checkpoint.WarmStart(trainer._network, config, training.InitFrom);
            }
            catch
            {
                trainer.Dispose();
                throw;
            }
            // The EMA starts from the loaded weights, not from the random ones they replaced.
            trainer._ema.LoadState(trainer._parameters.ToDictionary(p => p.Name, p => p.Parameter), updates: 0);
        }
        return trainer;
    }

    /// <summary>
    /// Continues from a checkpoint (a checkpoint directory, or a run directory whose newest checkpoint is used),
    /// optionally with a new total step count.
    /// </summary>
    public static Trainer Resume(string checkpointOrRun, TrainingData data, long? totalSteps = null, string? runDirectory = null,
        string device = ComputeDevice.Cpu)
    {
        string dir = Checkpoint.Resolve(checkpointOrRun);
        var config = Checkpoint.ReadConfig(dir);
        if (config.Training is null || !File.Exists(Path.Combine(dir, Checkpoint.StateFile)))
            throw new CheckpointException($"'{dir}' holds weights only (no trainer state): it can be sampled from but not resumed.");
        if (totalSteps is not null) config = config with { Training = config.Training with { Steps = totalSteps.Value } };
        string run = runDirectory ?? Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(dir)))!;
        var trainer = new Trainer(config, data, run, device);
        trainer.LoadState(dir);
        trainer.DiscardWorkAfterCheckpoint();
        return trainer;
    }

    /// <summary>
    /// What a killed run may have left behind, undone before it continues: checkpoint directories it was writing or
    /// replacing (".step-N.tmp-…", ".step-N.old-…") and the log lines of the steps after the checkpoint it resumes from,
    /// which it is about to run again. The log is rewritten atomically with the records up to <see cref="Step"/> (a line
    /// cut off by the kill is dropped too), so that every step appears once however often a run is killed and resumed.
    /// </summary>
    private void DiscardWorkAfterCheckpoint()
    {
        string checkpoints = Path.Combine(RunDirectory, "checkpoints");
        if (Directory.Exists(checkpoints))
            foreach (string stale in Directory.GetDirectories(checkpoints, ".step-*.tmp-*").Concat(Directory.GetDirectories(checkpoints, ".step-*.old-*")))
                Directory.Delete(stale, recursive: true);
        string logPath = Path.Combine(RunDirectory, LogFile);
        if (!File.Exists(logPath)) return;
        var lines = File.ReadAllLines(logPath);
        var kept = lines.Where(line => StepOf(line) is long step && step <= Step).ToArray();
        if (kept.Length != lines.Length)
            AtomicFile.WriteAllText(logPath, kept.Length == 0 ? "" : string.Join("\n", kept) + "\n");
    }

    /// <summary>The step of a log.jsonl record, or null for a line that is not one (cut off by a kill).</summary>
    private static long? StepOf(string line)
    {
        try
        {
            using var record = JsonDocument.Parse(line);
            return record.RootElement.TryGetProperty("step", out var step) && step.TryGetInt64(out long value) ? value : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The run's JSON-lines log, one <see cref="TrainingProgress"/> record per logged step.</summary>
    public const string LogFile = "log.jsonl";

    private double LearningRateAt(long step) => Config.Training!.LearningRateAt(step);

    /// <summary>The indices of the next batch: each epoch is a permutation drawn from (seed, epoch), so resuming needs only the step.</summary>
    private Tensor NextBatchIndices()
    {
        int batch = Config.Training!.BatchSize;
        long perEpoch = _data.Count / batch;
        long epoch = Step / perEpoch, position = Step % perEpoch;
        if (_epochOfOrder != epoch)
        {
            _epochOrder?.Dispose();
            var orderGenerator = new Generator((ulong)(Config.Training.Seed * 1_000_003 + epoch));
            _epochOrder = randperm(_data.Count, generator: orderGenerator).DetachFromDisposeScope();
            _epochOfOrder = epoch;
        }
        return _epochOrder!.narrow(0, position * batch, batch);
    }

    /// <summary>
    /// One training step (Algorithm 1 with the configured recipe): the next batch with flips and class dropout,
    /// timesteps, the loss, backward, global-norm clip, Adam at this step's learning rate, EMA. Advances
    /// <see cref="Step"/>. With <paramref name="times"/> each phase's wall time is added to it (the benchmark times
    /// exactly this step).
    /// </summary>
    public TrainingStepResult TrainStep(StepPhaseTimes? times = null)
    {
        var t = Config.Training!;
        TrainingStepResult result;
        using (var scope = NewDisposeScope())
        {
            long t0 = Stopwatch.GetTimestamp();
            var indices = NextBatchIndices();
            var x0 = _data.Samples.index_select(0, indices);
            var labels = _data.Labels is not null && Config.Model.NumClasses > 0 ? _data.Labels.index_select(0, indices) : null;
            if (t.RandomFlip && x0.dim() == 4)
            {
                var flip = (rand(new long[] { x0.shape[0] }, generator: _generator) < 0.5).reshape(-1, 1, 1, 1);
                x0 = where(flip, x0.flip(3), x0);
            }
            if (labels is not null && t.ClassDropout > 0)
            {
                var drop = rand(new long[] { x0.shape[0] }, generator: _generator) < t.ClassDropout;
                labels = where(drop, full_like(labels, Config.Model.NumClasses), labels);
            }
            var (timesteps, weights) = _timestepSampler.Sample((int)x0.shape[0], _generator);
            var noise = randn(x0.shape, generator: _generator);
            var terms = _diffusion.TrainingLosses(_denoiser.AsDenoiser(labels?.On(_device)), x0.On(_device), timesteps.On(_device), noise.On(_device));
            var loss = (terms.Loss * weights.On(_device)).mean();
            double lossValue = loss.item<float>();
            if (!double.IsFinite(lossValue))
                throw new TrainingDivergedException($"the loss became {lossValue} at step {Step + 1}; the last good checkpoint is {LastCheckpointDescription()}. Lower --lr or raise --warmup and resume from it.");
            long t1 = Stopwatch.GetTimestamp();
            _optimizer.ZeroGrad();
            loss.backward();
            long t2 = Stopwatch.GetTimestamp();
            double gradNorm = nn.utils.clip_grad_norm_(_parameterObjects, t.GradClip);
            if (!double.IsFinite(gradNorm))
                throw new TrainingDivergedException($"the gradient norm became {gradNorm} at step {Step + 1}; the last good checkpoint is {LastCheckpointDescription()}. Lower --lr or raise --warmup and resume from it.");
            long t3 = Stopwatch.GetTimestamp();
            _optimizer.LearningRate = LearningRateAt(Step);
            _optimizer.Step();
            long t4 = Stopwatch.GetTimestamp();
            _ema.Update();
            long t5 = Stopwatch.GetTimestamp();
            _timestepSampler.Update(timesteps.data<long>().ToArray(), terms.Loss.detach().to_type(ScalarType.Float32).data<float>().ToArray());
            result = new TrainingStepResult(lossValue, gradNorm,
                terms.Mse is null ? null : terms.Mse.mean().item<float>(), terms.Vb is null ? null : terms.Vb.mean().item<float>());
            times?.Add(t0, t1, t2, t3, t4, t5);
        }
        Step++;
        return result;
    }

    /// <summary>Trains until the configured number of steps, checkpointing on the way and at the end.</summary>
    public void Run(IProgress<TrainingProgress>? progress = null, CancellationToken cancellation = default)
    {
        var t = Config.Training!;
        Directory.CreateDirectory(RunDirectory);
        string logPath = Path.Combine(RunDirectory, LogFile);
        var clock = Stopwatch.StartNew();
        long imagesSinceLog = 0;
        double lastLogTime = 0;
        _network.train();
        while (Step < t.Steps && !cancellation.IsCancellationRequested)
        {
            var (lossValue, gradNorm, mseValue, vbValue) = TrainStep();
            imagesSinceLog += t.BatchSize;

            if (Step % t.LogEvery == 0 || Step == t.Steps)
            {
                double now = clock.Elapsed.TotalSeconds;
                double rate = imagesSinceLog / Math.Max(1e-9, now - lastLogTime);
                imagesSinceLog = 0;
                lastLogTime = now;
                var record = new TrainingProgress(Step, t.Steps, lossValue, mseValue, vbValue, gradNorm, _optimizer.LearningRate, rate, _elapsedBefore + now);
                File.AppendAllText(logPath, JsonSerializer.Serialize(record, Json.Compact) + "\n");
                progress?.Report(record);
            }
            if (t.SampleEvery > 0 && Step % t.SampleEvery == 0 && Config.Model.IsImageModel)
                SaveSampleGrid(Path.Combine(RunDirectory, "samples", $"step-{Step:D7}.png"));
            if (Step % t.CheckpointEvery == 0 || Step == t.Steps)
                SaveCheckpoint(_elapsedBefore + clock.Elapsed.TotalSeconds);
        }
        if (cancellation.IsCancellationRequested && Step % t.CheckpointEvery != 0)
            SaveCheckpoint(_elapsedBefore + clock.Elapsed.TotalSeconds);
    }

    private string LastCheckpointDescription()
    {
        var all = Checkpoint.List(RunDirectory);
        return all.Length > 0 ? all[^1] : "(none yet)";
    }

    /// <summary>Sixteen samples from the EMA weights with DDIM (50 steps) and a fixed seed, as a grid.</summary>
    public void SaveSampleGrid(string path, int count = 16, int steps = 50)
    {
        using var scope = NewDisposeScope();
        var saved = _parameters.Select(p => p.Parameter.detach().clone()).ToArray();
        try
        {
            var ema = _ema.StateTensors();
            using (no_grad())
                foreach (var (name, p) in _parameters) p.copy_(ema[name]);
            _network.eval();
            using var scheduler = new DdimScheduler(Config.Diffusion);
            scheduler.SetTimesteps(Math.Min(steps, _diffusion.Timesteps));
            var shape = new[] { (long)count }.Concat(Config.Model.SampleShape).ToArray();
            var samples = DiffusionSampler.Sample(scheduler, _denoiser.AsDenoiser(), shape, new Generator(12345), device: _device);
            ImageGrid.SavePng(samples.On(CPU), path, scale: 2);
        }
        finally
        {
            using (no_grad())
                for (int i = 0; i < saved.Length; i++) _parameters[i].Parameter.copy_(saved[i]);
            _network.train();
        }
    }

    /// <summary>Writes RUN/checkpoints/step-N atomically and keeps the newest K.</summary>
    public string SaveCheckpoint(double elapsedSeconds)
    {
        string dir = Checkpoint.StepDirectory(RunDirectory, Step);
        var (history, counts) = _timestepSampler.State();
        var state = new TrainerState(Step, _ema.Updates, _optimizer.StepCount,
            Convert.ToBase64String(_generator.get_state().data<byte>().ToArray()),
            Convert.ToBase64String(get_rng_state().data<byte>().ToArray()),
            Config.Training!.TimestepSampling == TimestepSampling.LossAware ? history : null,
            Config.Training.TimestepSampling == TimestepSampling.LossAware ? counts : null,
            elapsedSeconds);
        Checkpoint.WriteDirectory(dir, temp =>
        {
            AtomicFile.WriteAllText(Path.Combine(temp, Checkpoint.ConfigFile), Json.Serialize(Config));
            SafeTensors.Save(Path.Combine(temp, Checkpoint.ModelFile), _parameters.ToDictionary(p => p.Name, p => p.Parameter));
            SafeTensors.Save(Path.Combine(temp, Checkpoint.EmaFile), _ema.StateTensors());
            SafeTensors.Save(Path.Combine(temp, Checkpoint.OptimizerFile), _optimizer.StateTensors());
            AtomicFile.WriteAllText(Path.Combine(temp, Checkpoint.StateFile), Json.Serialize(state));
        });
        var all = Checkpoint.List(RunDirectory);
        foreach (var old in all.Take(Math.Max(0, all.Length - Config.Training.KeepCheckpoints)))
            Directory.Delete(old, recursive: true);
        return dir;
    }

    private void LoadState(string dir)
    {
        var state = Json.Read<TrainerState>(Path.Combine(dir, Checkpoint.StateFile));
        var weights = LoadTensors(Path.Combine(dir, Checkpoint.ModelFile));
        var ema = LoadTensors(Path.Combine(dir, Checkpoint.EmaFile));
        var moments = LoadTensors(Path.Combine(dir, Checkpoint.OptimizerFile));
        try
        {
            Checkpoint.LoadInto(_network, weights, Path.Combine(dir, Checkpoint.ModelFile));
            _ema.LoadState(ema, state.EmaUpdates);
            _optimizer.LoadState(moments, state.OptimizerSteps);
        }
        finally
        {
            foreach (var t in weights.Values.Concat(ema.Values).Concat(moments.Values)) t.Dispose();
        }
        if (state.SamplerHistory is not null && state.SamplerCounts is not null)
            _timestepSampler.LoadState(state.SamplerHistory, state.SamplerCounts);
        using (var scope = NewDisposeScope())
        {
            _generator.set_state(tensor(Convert.FromBase64String(state.GeneratorState), dtype: ScalarType.Byte));
            set_rng_state(tensor(Convert.FromBase64String(state.GlobalRngState), dtype: ScalarType.Byte));
        }
        Step = state.Step;
        _elapsedBefore = state.ElapsedSeconds;
    }

    private static Dictionary<string, Tensor> LoadTensors(string path)
    {
        try
        {
            return SafeTensors.Load(path);
        }
        catch (Exception e) when (e is CorruptFileException or FileNotFoundException)
        {
            throw new CheckpointException($"{path}: {e.Message} The checkpoint is incomplete or damaged; resume from an earlier one.", e);
        }
    }

    /// <summary>The network being trained (raw weights, not the EMA).</summary>
    public nn.Module Network => _network;

    /// <summary>The EMA weights by parameter name; live tensors.</summary>
    public IReadOnlyDictionary<string, Tensor> EmaWeights => _ema.StateTensors();

    public void Dispose()
    {
        _epochOrder?.Dispose();
        _optimizer.Dispose();
        _ema.Dispose();
        _diffusion.Dispose();
        _network.Dispose();
    }
}
