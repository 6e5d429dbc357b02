namespace Ddpm.Training;

/// <summary>How training timesteps are drawn.</summary>
public enum TimestepSampling
{
    /// <summary>t ~ Uniform{1..T} (Ho et al. 2020, Algorithm 1).</summary>
    Uniform,
    /// <summary>Importance sampling p_t ∝ √E[L_t²] from the last 10 losses per t (Nichol &amp; Dhariwal 2021, Eq. 17).</summary>
    LossAware,
}

/// <summary>
/// The trainer's options; defaults are the paper's recipe (Ho et al. 2020, App. B). <see cref="InitFrom"/> names the
/// trained model or checkpoint whose weights a fine-tuning run starts from (null: random initialisation).
/// </summary>
public sealed record TrainingConfig(
    long Steps = 800_000,
    int BatchSize = 128,
    double LearningRate = 2e-4,
    int WarmupSteps = 5000,
    double GradClip = 1.0,
    double EmaDecay = 0.9999,
    bool EmaWarmup = false,
    TimestepSampling TimestepSampling = TimestepSampling.Uniform,
    bool RandomFlip = false,
    double ClassDropout = 0.0,
    long Seed = 0,
    int LogEvery = 10,
    int SampleEvery = 0,
    int CheckpointEvery = 1000,
    int KeepCheckpoints = 3,
    string? InitFrom = null)
{
    /// <summary>Throws an ArgumentException that names the option and its allowed range.</summary>
    public void Validate()
    {
        if (Steps < 1) throw new ArgumentException($"steps must be >= 1; got {Steps}.", nameof(Steps));
        if (BatchSize < 1) throw new ArgumentException($"batch size must be >= 1; got {BatchSize}.", nameof(BatchSize));
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentException($"learning rate must be > 0; got {LearningRate}.", nameof(LearningRate));
        if (WarmupSteps < 0) throw new ArgumentException($"warm-up steps must be >= 0; got {WarmupSteps}.", nameof(WarmupSteps));
        if (!(GradClip > 0)) throw new ArgumentException($"gradient clipping norm must be > 0; got {GradClip}.", nameof(GradClip));
        if (!(EmaDecay >= 0 && EmaDecay < 1)) throw new ArgumentException($"EMA decay must be in [0, 1); got {EmaDecay}.", nameof(EmaDecay));
        if (!(ClassDropout >= 0 && ClassDropout < 1)) throw new ArgumentException($"class dropout must be in [0, 1); got {ClassDropout}.", nameof(ClassDropout));
        if (Seed < 0) throw new ArgumentException($"seed must be >= 0; got {Seed}.", nameof(Seed));
        if (LogEvery < 1) throw new ArgumentException($"log interval must be >= 1; got {LogEvery}.", nameof(LogEvery));
        if (SampleEvery < 0) throw new ArgumentException($"sample interval must be >= 0 (0: never); got {SampleEvery}.", nameof(SampleEvery));
        if (CheckpointEvery < 1) throw new ArgumentException($"checkpoint interval must be >= 1; got {CheckpointEvery}.", nameof(CheckpointEvery));
        if (KeepCheckpoints < 1) throw new ArgumentException($"checkpoints to keep must be >= 1; got {KeepCheckpoints}.", nameof(KeepCheckpoints));
    }
}
