using Ddpm.Diffusion;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ddpm.Models;

/// <summary>Configuration of the toy denoiser for low-dimensional data.</summary>
public sealed record ToyMlpConfig(int DataDimension = 2, int Hidden = 128, int Layers = 3, int TimeEmbedding = 32, bool LearnVariance = false);

/// <summary>
/// A small time-conditioned MLP ε_θ(x_t, t) for 2-D toy data: [x_t, sinusoidal(t)] → (Linear → SiLU)×L → Linear.
/// With a learned variance its output has twice the data dimension.
/// </summary>
public sealed class ToyMlp : nn.Module<Tensor, Tensor, Tensor>, IDenoisingNetwork
{
    private readonly Sequential net;
    public ToyMlpConfig Config { get; }

    public ToyMlp(ToyMlpConfig config) : base(nameof(ToyMlp))
    {
        if (config.DataDimension < 1 || config.Hidden < 1 || config.Layers < 1 || config.TimeEmbedding < 2)
            throw new ArgumentException($"Invalid toy MLP configuration {config}: dimensions must be >= 1 and the time embedding >= 2.", nameof(config));
        Config = config;
        var layers = new List<(string, nn.Module<Tensor, Tensor>)>();
        long inputs = config.DataDimension + config.TimeEmbedding;
        for (int i = 0; i < config.Layers; i++)
        {
            layers.Add(($"linear{i}", nn.Linear(i == 0 ? inputs : config.Hidden, config.Hidden)));
            layers.Add(($"act{i}", nn.SiLU()));
        }
        layers.Add(("out", nn.Linear(config.Hidden, config.DataDimension * (config.LearnVariance ? 2 : 1))));
        net = nn.Sequential(layers);
        RegisterComponents();
    }

    public override Tensor forward(Tensor sample, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var embedding = TimestepEmbedding.Sinusoidal(timesteps, Config.TimeEmbedding, sample.dtype);
        return net.forward(cat(new[] { sample, embedding }, 1)).MoveToOuterDisposeScope();
    }

    /// <summary>This network as a <see cref="Denoiser"/>; the toy model has no class embedding.</summary>
    public Denoiser AsDenoiser(Tensor? classLabels = null) => classLabels is null
        ? (sample, timesteps) => forward(sample, timesteps)
        : throw new ArgumentException("The toy MLP is unconditional: pass no class labels.", nameof(classLabels));

    /// <summary>2 FLOPs per multiply-add of the linear layers.</summary>
    public long ForwardFlops
    {
        get
        {
            long inputs = Config.DataDimension + Config.TimeEmbedding, h = Config.Hidden;
            return 2 * (inputs * h + (Config.Layers - 1) * h * h + h * Config.DataDimension * (Config.LearnVariance ? 2 : 1));
        }
    }
}
