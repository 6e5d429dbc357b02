using System.Diagnostics;
using Ddpm.Diffusion;
using Ddpm.Models;
using Ddpm.Runtime;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Evaluation;

/// <summary>
/// What <see cref="ModelBenchmark.Run"/> measured. FLOP rates follow one convention: a training step costs
/// 3 × the forward FLOPs (the backward pass ≈ 2 × the forward: one product for the input gradient, one for the
/// weight gradient), an inference forward 1 ×; FLOPs are counted analytically (<see cref="UNet.ForwardFlops"/>,
/// 2 per multiply-add, convolutions, linear layers and attention matmuls only).
/// </summary>
public sealed record ModelBenchmarkResult(
    string Preset,
    int Batch,
    int Threads,
    long Parameters,
    long ForwardFlopsPerImage,
    int Steps,
    int Warmup,
    double TrainStepsPerS,
    double TrainImagesPerS,
    double InferImagesPerS,
    double TrainGflops,
    double InferGflops,
    int MatmulSize,
    double PeakGflops,
    double FractionOfPeak,
    double ConvPeakGflops,
    double FractionOfConvPeak,
    double StepMs,
    double ForwardMs,
    double BackwardMs,
    double ClipMs,
    double OptimizerMs,
    double EmaMs,
    string Compute = "fp32, NCHW",
    double? Bf16PeakGflops = null,
    double? Bf16ConvPeakGflops = null,
    double? FractionOfBf16ConvPeak = null);

/// <summary>What <see cref="ModelBenchmark.MemoryCheck"/> measured: resident memory after a baseline and after all steps.</summary>
public sealed record MemoryCheckResult(
    string Preset,
    int Batch,
    int BaselineSteps,
    int Steps,
    int Threads,
    double RssBaselineMb,
    double RssFinalMb,
    long LiveTensorsBaseline,
    long LiveTensorsFinal,
    double SecondsPerStep)
{
    /// <summary>(final − baseline) / baseline in percent.</summary>
    public double GrowthPercent => 100.0 * (RssFinalMb - RssBaselineMb) / RssBaselineMb;
}

/// <summary>
/// Throughput and memory measurements of a U-Net: training steps per second (the <see cref="Trainer"/>'s step:
/// L_simple through <see cref="GaussianDiffusion.TrainingLosses"/>, backward, global-norm clipping, our
/// <see cref="AdamOptimizer"/>, EMA), inference forwards per second, and the machine's float32 matmul rate as the
/// peak to compare against.
/// </summary>
public static class ModelBenchmark
{
    /// <summary>
    /// The best float32 rate of an n×n by n×n matrix product (2n³ FLOPs) over <paramref name="repeats"/> runs after
    /// one warm-up, in GFLOP/s, with the current thread count.
    /// </summary>
    public static double MatmulGflops(int n = 2048, int repeats = 5, ScalarType dtype = ScalarType.Float32)
    {
        if (n < 1) throw new ArgumentException($"matrix size must be >= 1; got {n}.", nameof(n));
        if (repeats < 1) throw new ArgumentException($"repeats must be >= 1; got {repeats}.", nameof(repeats));
        using var scope = NewDisposeScope();
        var generator = new Generator(0);
        var a = randn(new long[] { n, n }, generator: generator).to_type(dtype);
        var b = randn(new long[] { n, n }, generator: generator).to_type(dtype);
        var c = zeros(new long[] { n, n }, dtype: dtype);
        using (no_grad())
        {
            // c = a·b in place (beta 0): the product is written into a buffer whose pages are already mapped, so the
            // rate is the kernel's, not the kernel's plus first-touch page faults of a fresh result.
            c.addmm_(a, b, 0f, 1f);   // warm-up: kernel selection, caches
            double best = double.PositiveInfinity;
            for (int i = 0; i < repeats; i++)
            {
                var clock = Stopwatch.StartNew();
                c.addmm_(a, b, 0f, 1f);
                best = Math.Min(best, clock.Elapsed.TotalSeconds);
            }
            return 2.0 * n * n * (double)n / best / 1e9;
        }
    }

    /// <summary>
    /// The best forward rate of a 3×3, 256→256-channel convolution on a [32, 256, 16, 16] input (oneDNN's best case
    /// on CPU, the widest layers of the CIFAR-10 U-Net), in GFLOP/s. libtorch's matmul goes through MKL, which on AMD
    /// processors runs AVX2 code, while oneDNN's convolutions use AVX-512: on such machines this rate is the higher,
    /// truer peak.
    /// </summary>
    public static double ConvGflops(int repeats = 5, ScalarType dtype = ScalarType.Float32)
    {
        if (repeats < 1) throw new ArgumentException($"repeats must be >= 1; got {repeats}.", nameof(repeats));
        const int batch = 32, channels = 256, size = 16;
        using var scope = NewDisposeScope();
        var generator = new Generator(0);
        var x = randn(new long[] { batch, channels, size, size }, generator: generator).to_type(dtype);
        var w = randn(new long[] { channels, channels, 3, 3 }, generator: generator).mul_(0.02).to_type(dtype);
        var padding = new long[] { 1, 1 };
        using (no_grad())
        {
            nn.functional.conv2d(x, w, padding: padding).Dispose();
            double best = double.PositiveInfinity;
            for (int i = 0; i < repeats; i++)
            {
                var clock = Stopwatch.StartNew();
                nn.functional.conv2d(x, w, padding: padding).Dispose();
                best = Math.Min(best, clock.Elapsed.TotalSeconds);
            }
            return 2.0 * batch * channels * channels * 9 * size * size / best / 1e9;
        }
    }

    /// <summary>
    /// Measures <paramref name="config"/> at batch <paramref name="batch"/>: <paramref name="warmup"/> untimed
    /// training steps, <paramref name="steps"/> timed ones, then the same for inference forwards (eval mode,
    /// no_grad), then the matmul and convolution peaks. <paramref name="threads"/> (null: leave as is) sets libtorch's intra-op
    /// thread count for the run; the previous count is restored afterwards.
    /// </summary>
    public static ModelBenchmarkResult Run(string preset, UNetConfig config, int batch, int steps, int warmup,
        int? threads = null, int matmulSize = 2048, IProgress<string>? progress = null, ComputeSettings? compute = null)
    {
        compute ??= ComputeSettings.Reference;
        ArgumentNullException.ThrowIfNull(config);
        if (batch < 1) throw new ArgumentException($"batch must be >= 1; got {batch}.", nameof(batch));
        if (steps < 1) throw new ArgumentException($"steps must be >= 1; got {steps}.", nameof(steps));
        if (warmup < 0) throw new ArgumentException($"warm-up steps must be >= 0; got {warmup}.", nameof(warmup));
        config.Validate();

        return WithThreads(threads, () =>
        {
            using var step = new BenchmarkTrainer(config, batch, compute, warmup + steps);
            long parameters = step.Network.ParameterCount, forwardFlops = step.Network.ForwardFlops;
            progress?.Report(FormattableString.Invariant($"{preset}: {parameters} parameters, {forwardFlops / 1e9:F3} GFLOP per forward; {warmup} warm-up + {steps} timed training steps at batch {batch}, {get_num_threads()} threads, {compute.Describe()}"));
            for (int i = 0; i < warmup; i++) step.Trainer.TrainStep();
            var phases = new StepPhaseTimes();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++) step.Trainer.TrainStep(phases);
            double trainSeconds = clock.Elapsed.TotalSeconds;

            progress?.Report($"{warmup} warm-up + {steps} timed inference forwards");
            for (int i = 0; i < warmup; i++) step.Infer();
            clock.Restart();
            for (int i = 0; i < steps; i++) step.Infer();
            double inferSeconds = clock.Elapsed.TotalSeconds;

            progress?.Report($"float32 matmul {matmulSize}x{matmulSize}");
            double peak = MatmulGflops(matmulSize);
            progress?.Report("float32 3x3 convolution 256->256 channels, 16x16, batch 32");
            double convPeak = ConvGflops();
            double? bf16Peak = null, bf16ConvPeak = null;
            if (CpuFeatures.HasBFloat16)
            {
                progress?.Report("bfloat16 matmul and 3x3 convolution (the CPU has native bfloat16)");
                bf16Peak = MatmulGflops(matmulSize, dtype: ScalarType.BFloat16);
                bf16ConvPeak = ConvGflops(dtype: ScalarType.BFloat16);
            }

            double trainImages = (double)steps * batch / trainSeconds;
            double inferImages = (double)steps * batch / inferSeconds;
            double trainGflops = 3.0 * forwardFlops * trainImages / 1e9;
            double inferGflops = forwardFlops * inferImages / 1e9;
            return new ModelBenchmarkResult(preset, batch, get_num_threads(), parameters, forwardFlops, steps, warmup,
                steps / trainSeconds, trainImages, inferImages, trainGflops, inferGflops, matmulSize, peak, trainGflops / peak, convPeak, trainGflops / convPeak,
                1000 * trainSeconds / steps, phases.Forward / steps, phases.Backward / steps, phases.Clip / steps,
                phases.Optimizer / steps, phases.Ema / steps, compute.Describe(), bf16Peak, bf16ConvPeak, trainGflops / bf16ConvPeak);
        });
    }

    /// <summary>Runs <paramref name="body"/> with libtorch's intra-op thread count set to <paramref name="threads"/> (null: unchanged), then restores it.</summary>
    public static T WithThreads<T>(int? threads, Func<T> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (threads is < 1) throw new ArgumentException($"threads must be >= 1; got {threads}.", nameof(threads));
        int previous = get_num_threads();
        if (threads is int t && t != previous) set_num_threads(t);
        try
        {
            return body();
        }
        finally
        {
            if (get_num_threads() != previous) set_num_threads(previous);
        }
    }

    /// <summary>
    /// Trains <paramref name="config"/> with the real <see cref="Trainer"/> (on random data, batch
    /// <paramref name="batch"/>, in a temporary run directory that is deleted afterwards) for
    /// <paramref name="steps"/> steps and reads the process's resident memory (after a full garbage collection) at
    /// step <paramref name="baselineSteps"/> and at the last step, before the final checkpoint is written.
    /// </summary>
    public static MemoryCheckResult MemoryCheck(string preset, UNetConfig config, int batch, int steps, int baselineSteps = 100, int? threads = null, IProgress<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (batch < 1) throw new ArgumentException($"batch must be >= 1; got {batch}.", nameof(batch));
        if (baselineSteps < 1) throw new ArgumentException($"baseline steps must be >= 1; got {baselineSteps}.", nameof(baselineSteps));
        if (steps <= baselineSteps) throw new ArgumentException($"steps ({steps}) must be larger than the baseline ({baselineSteps}).", nameof(steps));
        config.Validate();

        string runDirectory = Path.Combine(Path.GetTempPath(), "ddpm-memory-check-" + Guid.NewGuid().ToString("N"));
        var model = new ModelConfig(config);
        var training = new TrainingConfig(Steps: steps, BatchSize: batch, WarmupSteps: 0, LogEvery: Gcd(baselineSteps, steps),
            CheckpointEvery: int.MaxValue, KeepCheckpoints: 1);
        var samples = rand(new long[] { 16L * batch, config.InChannels, config.ImageSize, config.ImageSize }, generator: new Generator(1)).mul_(2).sub_(1).DetachFromDisposeScope();
        try
        {
            var recorder = new RssRecorder(baselineSteps, steps, progress);
            int usedThreads = WithThreads(threads, () =>
            {
                using var trainer = Trainer.Create(model, new DiffusionConfig(), training, new TrainingData(samples, null, "random"), runDirectory);
                trainer.Run(recorder);
                return get_num_threads();
            });
            if (recorder.Baseline is null || recorder.Final is null)
                throw new InvalidOperationException("The trainer did not report the baseline and final steps.");
            var (rss0, tensors0, time0) = recorder.Baseline.Value;
            var (rss1, tensors1, time1) = recorder.Final.Value;
            return new MemoryCheckResult(preset, batch, baselineSteps, steps, usedThreads, rss0 / 1048576.0, rss1 / 1048576.0, tensors0, tensors1,
                (time1 - time0) / (steps - baselineSteps));
        }
        finally
        {
            samples.Dispose();
            try
            {
                if (Directory.Exists(runDirectory)) Directory.Delete(runDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>The process's resident set size in bytes after a full, finalizer-inclusive garbage collection.</summary>
    public static long ResidentBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        return process.WorkingSet64;
    }

    private static int Gcd(int a, int b) => b == 0 ? a : Gcd(b, a % b);

    private sealed class RssRecorder(int baselineStep, int finalStep, IProgress<string>? progress) : IProgress<TrainingProgress>
    {
        public (long Rss, long Tensors, double Seconds)? Baseline { get; private set; }
        public (long Rss, long Tensors, double Seconds)? Final { get; private set; }

        public void Report(TrainingProgress value)
        {
            if (value.Step != baselineStep && value.Step != finalStep) return;
            long rss = ResidentBytes();
            var sample = (rss, Tensor.TotalCount, value.ElapsedSeconds);
            if (value.Step == baselineStep) Baseline = sample;
            else Final = sample;
            progress?.Report(FormattableString.Invariant($"step {value.Step}: resident {rss / 1048576.0:F1} MB, {Tensor.TotalCount} live tensors"));
        }
    }

    /// <summary>
    /// The <see cref="Trainer"/> itself, on <paramref name="batch"/> random images in [−1, 1], so that what is timed is
    /// the step that trains (the paper's defaults for the rest: linear schedule, ε, Adam 2e-4, EMA 0.9999).
    /// </summary>
    private sealed class BenchmarkTrainer : IDisposable
    {
        private readonly TrainingData _data;
        private readonly Generator _generator = new(0);
        private readonly int _batch;

        public BenchmarkTrainer(UNetConfig config, int batch, ComputeSettings compute, long steps)
        {
            _batch = batch;
            var images = rand(new long[] { batch, config.InChannels, config.ImageSize, config.ImageSize }, generator: _generator).mul_(2).sub_(1).DetachFromDisposeScope();
            _data = new TrainingData(images, null, "random images");
            var training = new TrainingConfig(Steps: steps, BatchSize: batch, WarmupSteps: 0, Precision: compute.Precision, ChannelsLast: compute.ChannelsLast);
            // The run directory is never written: the benchmark calls TrainStep, not Run.
            Trainer = Trainer.Create(new ModelConfig(UNet: config), new DiffusionConfig(), training, _data, Path.Combine(Path.GetTempPath(), "ddpm-benchmark-unused"));
            Network = (UNet)Trainer.Network;
        }

        public Trainer Trainer { get; }
        public UNet Network { get; }

        public void Infer()
        {
            Network.eval();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var timesteps = randint(0, Trainer.Config.Diffusion.Schedule.Timesteps, new long[] { _batch }, generator: _generator);
            var output = Network.forward(_data.Samples, timesteps);
            // Read one value so the forward has certainly finished (it has on CPU; this keeps the measurement honest elsewhere).
            _ = output[0, 0, 0, 0].item<float>();
            Network.train();
        }

        public void Dispose()
        {
            Trainer.Dispose();
            _data.Samples.Dispose();
        }
    }
}
