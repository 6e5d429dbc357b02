using Ddpm.Data;
using Ddpm.Diffusion;
using Ddpm.Models;
using Ddpm.Runtime;
using Ddpm.Schedules;
using Ddpm.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Guidance;

/// <summary>The shape of a <see cref="NoisyClassifier"/> and the noise schedule it was trained on.</summary>
public sealed record NoisyClassifierConfig(ScheduleConfig Schedule, int Channels = 1, int ImageSize = 28, int NumClasses = 10, int Width = 32)
{
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Schedule);
        if (Channels is not (1 or 3)) throw new ArgumentException($"Channels must be 1 or 3; got {Channels}.", nameof(Channels));
        if (ImageSize < 8) throw new ArgumentException($"ImageSize must be at least 8; got {ImageSize}.", nameof(ImageSize));
        if (NumClasses < 2) throw new ArgumentException($"NumClasses must be at least 2; got {NumClasses}.", nameof(NumClasses));
        if (Width < 8 || Width % 8 != 0) throw new ArgumentException($"Width must be a positive multiple of 8; got {Width}.", nameof(Width));
    }
}

/// <summary>What config.json of a classifier directory holds: accuracies on the test split at random t and at t = 0.</summary>
public sealed record NoisyClassifierInfo(NoisyClassifierConfig Config, string Dataset, double NoisyTestAccuracy, double CleanTestAccuracy, int Epochs, long Seed, int FormatVersion = 1);

/// <summary>
/// The noise-aware classifier p_φ(y | x_t, t) of classifier guidance (Dhariwal &amp; Nichol 2021, §4): three stages of
/// 3×3 convolutions with GroupNorm and SiLU, each stage shifted by a projection of the sinusoidal embedding of t (as in
/// the U-Net's residual blocks), global average pooling and a linear classifier. It is trained on x_t = q(x_t | x_0)
/// at uniformly random t, so its gradient ∇_x log p_φ(y | x_t, t) is meaningful along the whole reverse chain.
/// </summary>
public sealed class NoisyClassifier : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> convs;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> norms;
    private readonly ModuleList<Linear> timeProjections;
    private readonly Linear timeHidden;
    private readonly Linear head;
    private readonly int[] _channels;

    public NoisyClassifierConfig Config { get; }

    public NoisyClassifier(NoisyClassifierConfig config) : base("NoisyClassifier")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        int w = config.Width;
        _channels = new[] { w, w, 2 * w, 2 * w, 4 * w };
        convs = new ModuleList<nn.Module<Tensor, Tensor>>();
        norms = new ModuleList<nn.Module<Tensor, Tensor>>();
        timeProjections = new ModuleList<Linear>();
        int input = config.Channels;
        foreach (int c in _channels)
        {
            convs.Add(Layers.Conv2d(input, c, 3, padding: 1));
            norms.Add(Layers.GroupNorm(8, c));
            timeProjections.Add(nn.Linear(4 * w, c));
            input = c;
        }
        timeHidden = nn.Linear(w, 4 * w);
        head = nn.Linear(4 * w, config.NumClasses);
        RegisterComponents();
    }

    /// <summary>Class logits [B, NumClasses] of x_t [B, C, H, W] at timesteps t [B] (0-based, as everywhere).</summary>
    public override Tensor forward(Tensor xt, Tensor t)
    {
        if (xt.dim() != 4 || xt.shape[1] != Config.Channels || xt.shape[2] != Config.ImageSize || xt.shape[3] != Config.ImageSize)
            throw new ArgumentException($"The classifier takes [B, {Config.Channels}, {Config.ImageSize}, {Config.ImageSize}] images; got [{string.Join(", ", xt.shape)}]: use a classifier trained on the model's data set.", nameof(xt));
        using var scope = NewDisposeScope();
        var emb = nn.functional.silu(timeHidden.forward(TimestepEmbedding.Sinusoidal(t, Config.Width, xt.dtype)));
        var h = xt;
        for (int i = 0; i < _channels.Length; i++)
        {
            h = convs[i].forward(h);
            h = norms[i].forward(h) + timeProjections[i].forward(emb).unsqueeze(-1).unsqueeze(-1);
            h = nn.functional.silu(h);
            if (i is 1 or 3) h = nn.functional.avg_pool2d(h, 2);
        }
        return head.forward(h.mean(new long[] { 2, 3 })).MoveToOuterDisposeScope();
    }

    /// <summary>log p_φ(y | x_t, t) per example, [B].</summary>
    public Tensor LogProbability(Tensor xt, Tensor t, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var logp = nn.functional.log_softmax(forward(xt, t), 1);
        return logp.gather(1, labels.to(ScalarType.Int64).unsqueeze(1)).squeeze(1).MoveToOuterDisposeScope();
    }

    public void Save(string dir, NoisyClassifierInfo info) => ModelDirectory.Save(dir, info, this);

    public static (NoisyClassifier Classifier, NoisyClassifierInfo Info) Load(string dir) =>
        ModelDirectory.Load<NoisyClassifier, NoisyClassifierInfo>(dir, info => new NoisyClassifier(info.Config), info => info.Config.Validate(),
            "noise-aware classifier", $"train one with 'ddpm classifier train --dataset NAME --out {dir}'");

    /// <summary>
    /// Trains on x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε at t uniform in [0, T), with the data set's labels (cross-entropy), and
    /// returns the test accuracy at random t and at t = 0.
    /// </summary>
    public (double Noisy, double Clean) Train(ImageDataset train, ImageDataset test, ClassifierTrainingOptions options,
        IProgress<ClassifierTrainingProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        using var diffusion = new GaussianDiffusion(new DiffusionConfig(Config.Schedule));
        int T = diffusion.Timesteps;
        Tensor Noised(Tensor x, Generator g, out Tensor t)
        {
            t = randint(0, T, new long[] { x.shape[0] }, dtype: ScalarType.Int64, generator: g);
            return diffusion.QSample(x, t, randn(x.shape, dtype: x.dtype, generator: g));
        }
        ClassifierTraining.Train(this, (x, g) => forward(Noised(x, g, out var t), t), train, options, progress, cancellation);
        using var evaluation = new Generator((ulong)options.Seed + 1);
        double noisy = ClassifierTraining.Accuracy(x => forward(Noised(x, evaluation, out var t), t), test);
        double clean = ClassifierTraining.Accuracy(x => forward(x, zeros(new long[] { x.shape[0] }, dtype: ScalarType.Int64)), test);
        return (noisy, clean);
    }
}
