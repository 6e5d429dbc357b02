using Ddpm.Runtime;

namespace Ddpm.Training;

/// <summary>How training timesteps are drawn.</summary>
public enum TimestepSampling
{
    /// <summary>t ~ Uniform{1..T} (Ho et al. 2020, Algorithm 1).</summary>
    Uniform,
    /// <summary>Importance sampling p_t ∝ √E[L_t²] from the last 10 losses per t (Nichol &amp; Dhariwal 2021, Eq. 17).</summary>
    LossAware,
}

/// <summary>How the EMA's decay evolves over a run.</summary>
public enum EmaProfile
{
    /// <summary>A fixed decay d (Ho et al. 2020: 0.9999), optionally with warm-up min(d, (1 + k)/(10 + k)).</summary>
    Constant,

    /// <summary>
    /// EDM2's power-function EMA (Karras et al. 2024, Eq. 3): after the k-th update the decay is (1 − 1/k)^(γ+1), so the
    /// average weights step i by i^γ and always spans a fixed fraction of the run so far; γ follows from the relative
    /// width σ_rel (<see cref="TrainingConfig.EmaStd"/>).
    /// </summary>
    Power,
}

/// <summary>How the learning rate falls at the end of a run.</summary>
public enum LearningRateDecay
{
    /// <summary>Constant after the warm-up (the paper's recipe).</summary>
    None,
    /// <summary>Half a cosine from the learning rate to zero over the last <see cref="TrainingConfig.LrDecaySteps"/> steps.</summary>
    Cosine,
    /// <summary>A straight line from the learning rate to zero over the last <see cref="TrainingConfig.LrDecaySteps"/> steps.</summary>
    Linear,
}

/// <summary>
/// The trainer's options; defaults are the paper's recipe (Ho et al. 2020, App. B). <see cref="InitFrom"/> names the
/// trained model or checkpoint whose weights a fine-tuning run starts from (null: random initialisation).
/// <see cref="Precision"/> and <see cref="ChannelsLast"/> say how a U-Net's forward and backward passes run
/// (<see cref="ComputeSettings"/>); they are kept with the run so that a resumed run computes exactly as before.
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
    string? InitFrom = null,
    Precision Precision = Precision.Fp32,
    bool ChannelsLast = false,
    EmaProfile EmaProfile = EmaProfile.Constant,
    double EmaStd = 0.05,
    LearningRateDecay LrDecay = LearningRateDecay.None,
    long LrDecaySteps = 0)
{
    /// <summary>How the network computes: <see cref="Precision"/> and <see cref="ChannelsLast"/> together.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public ComputeSettings Compute => new(Precision, ChannelsLast);

    /// <summary>
    /// The learning rate of step <paramref name="step"/> (0-based): the linear warm-up over <see cref="WarmupSteps"/>
    /// times the decay over the last <see cref="LrDecaySteps"/> steps (0: all steps after the warm-up), which reaches 0
    /// after the last step.
    /// </summary>
    public double LearningRateAt(long step)
    {
        double rate = WarmupSteps > 0 ? LearningRate * Math.Min(1.0, (step + 1.0) / WarmupSteps) : LearningRate;
        if (LrDecay == LearningRateDecay.None) return rate;
        long length = LrDecaySteps > 0 ? LrDecaySteps : Math.Max(1, Steps - WarmupSteps);
        long start = Steps - length;
        if (step < start) return rate;
        double progress = Math.Min(1.0, (step - start + 1.0) / length);   // 1/length at the first decayed step, 1 at the last
        double factor = LrDecay == LearningRateDecay.Cosine ? 0.5 * (1 + Math.Cos(Math.PI * progress)) : 1 - progress;
        return rate * factor;
    }

    /// <summary>Throws an ArgumentException that names the option and its allowed range.</summary>
    public void Validate()
    {
        if (Steps < 1) throw new ArgumentException($"steps must be >= 1; got {Steps}.", nameof(Steps));
        if (BatchSize < 1) throw new ArgumentException($"batch size must be >= 1; got {BatchSize}.", nameof(BatchSize));
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentException($"learning rate must be > 0; got {LearningRate}.", nameof(LearningRate));
        if (WarmupSteps < 0) throw new ArgumentException($"warm-up steps must be >= 0; got {WarmupSteps}.", nameof(WarmupSteps));
        if (!(GradClip > 0)) throw new ArgumentException($"gradient clipping norm must be > 0; got {GradClip}.", nameof(GradClip));
        if (!(EmaDecay >= 0 && EmaDecay < 1)) throw new ArgumentException($"EMA decay must be in [0, 1); got {EmaDecay}.", nameof(EmaDecay));
        if (!(EmaStd > 0 && EmaStd < PowerEma.MaxStd))
            throw new ArgumentException($"the EMA's relative width σ_rel must be in (0, {PowerEma.MaxStd:0.####}) (EDM2 uses 0.05-0.10); got {EmaStd}.", nameof(EmaStd));
        if (LrDecaySteps < 0) throw new ArgumentException($"learning-rate decay steps must be >= 0 (0: all steps after the warm-up); got {LrDecaySteps}.", nameof(LrDecaySteps));
        if (LrDecaySteps > Steps)
            throw new ArgumentException($"the learning-rate decay lasts {LrDecaySteps} steps, longer than the run's {Steps}: lower the decay steps or raise the steps.", nameof(LrDecaySteps));
        if (LrDecay == LearningRateDecay.None && LrDecaySteps > 0)
            throw new ArgumentException("learning-rate decay steps were given without a decay: choose cosine or linear decay, or drop the decay steps.", nameof(LrDecaySteps));
        if (!(ClassDropout >= 0 && ClassDropout < 1)) throw new ArgumentException($"class dropout must be in [0, 1); got {ClassDropout}.", nameof(ClassDropout));
        if (Seed < 0) throw new ArgumentException($"seed must be >= 0; got {Seed}.", nameof(Seed));
        if (LogEvery < 1) throw new ArgumentException($"log interval must be >= 1; got {LogEvery}.", nameof(LogEvery));
        if (SampleEvery < 0) throw new ArgumentException($"sample interval must be >= 0 (0: never); got {SampleEvery}.", nameof(SampleEvery));
        if (CheckpointEvery < 1) throw new ArgumentException($"checkpoint interval must be >= 1; got {CheckpointEvery}.", nameof(CheckpointEvery));
        if (KeepCheckpoints < 1) throw new ArgumentException($"checkpoints to keep must be >= 1; got {KeepCheckpoints}.", nameof(KeepCheckpoints));
    }
}
