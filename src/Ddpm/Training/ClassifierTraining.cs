using Ddpm.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Training;

/// <summary>How <see cref="ClassifierTraining"/> trains: Adam with a cosine decay to zero, random horizontal flips.</summary>
public sealed record ClassifierTrainingOptions(int Epochs = 4, int BatchSize = 128, double LearningRate = 2e-3, bool RandomFlip = true, long Seed = 0)
{
    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentException($"--epochs must be at least 1; got {Epochs}.", nameof(Epochs));
        if (BatchSize < 1) throw new ArgumentException($"--batch must be at least 1; got {BatchSize}.", nameof(BatchSize));
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentException($"--lr must be a number > 0; got {LearningRate}.", nameof(LearningRate));
    }
}

/// <summary>Progress of <see cref="ClassifierTraining.Train"/>: step, total steps, the running mean of the loss.</summary>
public readonly record struct ClassifierTrainingProgress(long Step, long TotalSteps, int Epoch, double Loss);

/// <summary>
/// Trains a classifier with cross-entropy and measures its accuracy. <c>logits(images, generator)</c> maps a batch of
/// clean images to class logits; it may corrupt them first with the generator (the noise-aware classifier of
/// classifier guidance sees x_t at a random t).
/// </summary>
public static class ClassifierTraining
{
    public static void Train(nn.Module network, Func<Tensor, Generator, Tensor> logits, ImageDataset train, ClassifierTrainingOptions options,
        IProgress<ClassifierTrainingProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (!train.IsLabelled)
            throw new ArgumentException($"'{train.Name}' has no labels; the feature network is trained as a classifier on a labelled data set.", nameof(train));

        network.train();
        using var generator = new Generator((ulong)options.Seed);
        using var optimizer = new AdamOptimizer(network.named_parameters().Select(p => (p.name, (Tensor)p.parameter)), options.LearningRate);
        long perEpoch = (train.Count + options.BatchSize - 1) / options.BatchSize;
        long total = perEpoch * options.Epochs, step = 0;
        double runningLoss = double.NaN;
        for (int epoch = 0; epoch < options.Epochs && !cancellation.IsCancellationRequested; epoch++)
        {
            using var order = randperm(train.Count, generator: generator);
            for (long b = 0; b < perEpoch && !cancellation.IsCancellationRequested; b++)
            {
                using var scope = NewDisposeScope();
                long start = b * options.BatchSize, size = Math.Min(options.BatchSize, train.Count - start);
                var index = order.narrow(0, start, size);
                var x = train.Images.index_select(0, index);
                var y = train.Labels!.index_select(0, index);
                if (options.RandomFlip)
                {
                    var flip = (rand(new long[] { size }, generator: generator) < 0.5).reshape(-1, 1, 1, 1);
                    x = where(flip, x.flip(3), x);
                }
                // Cosine decay from the base rate to zero over all steps.
                optimizer.LearningRate = options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * step / total));
                optimizer.ZeroGrad();
                var loss = nn.functional.cross_entropy(logits(x, generator), y);
                loss.backward();
                optimizer.Step();
                double value = loss.item<float>();
                runningLoss = double.IsNaN(runningLoss) ? value : 0.98 * runningLoss + 0.02 * value;
                step++;
                progress?.Report(new ClassifierTrainingProgress(step, total, epoch + 1, runningLoss));
            }
        }
        network.eval();
    }

    /// <summary>The fraction of <paramref name="data"/> that <paramref name="logits"/> classifies correctly.</summary>
    public static double Accuracy(Func<Tensor, Tensor> logits, ImageDataset data, int batchSize = 500)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(data);
        if (!data.IsLabelled) throw new ArgumentException($"'{data.Name}' has no labels.", nameof(data));
        using var noGrad = no_grad();
        long correct = 0;
        for (long start = 0; start < data.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            long size = Math.Min(batchSize, data.Count - start);
            var predicted = logits(data.Images.narrow(0, start, size)).argmax(1);
            correct += predicted.eq(data.Labels!.narrow(0, start, size)).sum().item<long>();
        }
        return (double)correct / data.Count;
    }
}
