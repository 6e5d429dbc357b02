using System.Text.Json.Nodes;
using Ddpm.Diffusion;
using Ddpm.Sampling;
using Ddpm.Schedules;
using Ddpm.Training;

namespace Ddpm.Interop;

/// <summary>
/// diffusers' DDPMScheduler / DDIMScheduler scheduler_config.json ⇄ our <see cref="DiffusionConfig"/> and the
/// sampling defaults it carries (timestep spacing, clipping). A value we cannot express is a one-line
/// <see cref="CheckpointException"/> naming the field.
/// </summary>
public static class DiffusersSchedulerConfig
{
    public const string DdpmClassName = "DDPMScheduler";
    public const string DdimClassName = "DDIMScheduler";
    /// <summary>diffusers' name for Nichol &amp; Dhariwal's cosine schedule (offset 0.008, β capped at 0.999).</summary>
    public const string CosineName = "squaredcos_cap_v2";

    public static (DiffusionConfig Diffusion, SamplingDefaults Defaults) Read(JsonObject json, string source)
    {
        var reader = new ConfigReader(json, source);
        string className = reader.String("_class_name", DdpmClassName);
        if (className is not (DdpmClassName or DdimClassName))
            throw reader.Unsupported("_class_name", className, $"only {DdpmClassName} and {DdimClassName} configs are read; write the schedule's fields in one of them");
        reader.RequireNull("trained_betas");
        reader.Require("thresholding", false);
        reader.Require("rescale_betas_zero_snr", false);
        reader.Require("steps_offset", 0);
        if (reader.Double("clip_sample_range", 1.0) != 1.0)
            throw reader.Unsupported("clip_sample_range", reader.Double("clip_sample_range", 1.0), "x̂₀ is clipped to [−1, 1] here");

        int timesteps = reader.Int("num_train_timesteps", 1000);
        if (timesteps < 2) throw reader.Unsupported("num_train_timesteps", timesteps, "use at least 2");
        string betaSchedule = reader.String("beta_schedule", "linear");
        var schedule = betaSchedule switch
        {
            "linear" => new ScheduleConfig(ScheduleKind.Linear, timesteps, reader.Double("beta_start", 1e-4), reader.Double("beta_end", 0.02)),
            CosineName => new ScheduleConfig(ScheduleKind.Cosine, timesteps),
            _ => throw reader.Unsupported("beta_schedule", betaSchedule, $"use linear or {CosineName}"),
        };
        var prediction = reader.String("prediction_type", "epsilon") switch
        {
            "epsilon" => PredictionType.Epsilon,
            "sample" => PredictionType.X0,
            "v_prediction" => PredictionType.V,
            var other => throw reader.Unsupported("prediction_type", other, "use epsilon, sample or v_prediction"),
        };
        // A DDIMScheduler has no variance_type: its models are fixed-variance ones.
        var variance = reader.String("variance_type", "fixed_small") switch
        {
            "fixed_small" or "fixed_small_log" => VarianceType.FixedSmall,
            "fixed_large" or "fixed_large_log" => VarianceType.FixedLarge,
            "learned" => VarianceType.Learned,
            "learned_range" => VarianceType.LearnedRange,
            var other => throw reader.Unsupported("variance_type", other, "use fixed_small, fixed_large, learned or learned_range"),
        };
        var spacing = reader.String("timestep_spacing", "leading") switch
        {
            "leading" => TimestepSpacing.Leading,
            "trailing" => TimestepSpacing.Trailing,
            "linspace" => TimestepSpacing.Linspace,
            var other => throw reader.Unsupported("timestep_spacing", other, "use leading, trailing or linspace"),
        };
        // A learned variance is trained through the bound: hybrid is the loss that goes with it (it matters only for training).
        var loss = variance is VarianceType.Learned or VarianceType.LearnedRange ? LossType.Hybrid : LossType.Simple;
        var diffusion = new DiffusionConfig(schedule, prediction, variance, loss);
        try
        {
            diffusion.Validate();
            schedule.Build();
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException($"{source} describes a diffusion that cannot be built ({e.Message}).", e);
        }
        return (diffusion, new SamplingDefaults(spacing, reader.Bool("clip_sample", true)));
    }

    /// <summary>A DDPMScheduler config with every field explicit (the key set diffusers writes), or an error for a schedule diffusers has no name for.</summary>
    public static JsonObject Write(DiffusionConfig diffusion, SamplingDefaults? defaults = null)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        var schedule = diffusion.Schedule;
        string betaSchedule = schedule.Kind switch
        {
            ScheduleKind.Linear => "linear",
            ScheduleKind.Cosine when schedule.CosineOffset == 0.008 && schedule.MaxBeta == 0.999 => CosineName,
            ScheduleKind.Cosine => throw new CheckpointException($"diffusers' cosine schedule has offset 0.008 and β ≤ 0.999; this model's has {schedule.CosineOffset} and {schedule.MaxBeta}, which its scheduler_config.json cannot say."),
            _ => throw new CheckpointException($"diffusers has no {schedule.Kind.ToString().ToLowerInvariant()} schedule of this form: only linear and cosine models can be exported to it."),
        };
        var spacing = defaults?.Spacing ?? TimestepSpacing.Leading;
        if (spacing is not (TimestepSpacing.Leading or TimestepSpacing.Trailing or TimestepSpacing.Linspace))
            throw new CheckpointException($"diffusers has no {spacing} timestep spacing: use leading, trailing or linspace.");
        return new JsonObject
        {
            ["_class_name"] = DdpmClassName,
            ["_diffusers_version"] = DiffusersUNetConfig.DiffusersVersion,
            ["beta_end"] = schedule.BetaEnd,
            ["beta_schedule"] = betaSchedule,
            ["beta_start"] = schedule.BetaStart,
            ["clip_sample"] = defaults?.Clip ?? true,
            ["clip_sample_range"] = 1.0,
            ["dynamic_thresholding_ratio"] = 0.995,
            ["num_train_timesteps"] = schedule.Timesteps,
            ["prediction_type"] = diffusion.Prediction switch
            {
                PredictionType.Epsilon => "epsilon",
                PredictionType.X0 => "sample",
                PredictionType.V => "v_prediction",
                _ => throw new ArgumentOutOfRangeException(nameof(diffusion), diffusion.Prediction, null),
            },
            ["rescale_betas_zero_snr"] = false,
            ["sample_max_value"] = 1.0,
            ["steps_offset"] = 0,
            ["thresholding"] = false,
            ["timestep_spacing"] = spacing.ToString().ToLowerInvariant(),
            ["trained_betas"] = null,
            ["variance_type"] = diffusion.Variance switch
            {
                VarianceType.FixedSmall => "fixed_small",
                VarianceType.FixedLarge => "fixed_large",
                VarianceType.Learned => "learned",
                VarianceType.LearnedRange => "learned_range",
                _ => throw new ArgumentOutOfRangeException(nameof(diffusion), diffusion.Variance, null),
            },
        };
    }
}
