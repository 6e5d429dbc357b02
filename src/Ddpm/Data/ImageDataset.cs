using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>
/// A whole image dataset in memory: <see cref="Images"/> [N, C, H, W] float32 in [−1, 1] (pixel p ↦ p/127.5 − 1, so
/// 0 ↦ −1 and 255 ↦ 1 exactly) and, for labelled sets, <see cref="Labels"/> [N] int64 in [0, NumClasses).
/// The tensors belong to no DisposeScope: the dataset owns them until <see cref="Dispose"/>.
/// </summary>
public sealed class ImageDataset : IDisposable
{
    /// <summary>The name it was loaded under, e.g. "fashion-mnist" or "folder:./faces".</summary>
    public string Name { get; }

    /// <summary>[N, C, H, W] float32 in [−1, 1].</summary>
    public Tensor Images { get; }

    /// <summary>[N] int64 class indices, or null for an unlabelled set.</summary>
    public Tensor? Labels { get; }

    /// <summary>The number of classes, 0 when unlabelled.</summary>
    public int NumClasses { get; }

    public long Count { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }

    /// <summary>The side of the (square) images.</summary>
    public int ImageSize => Height == Width
        ? Height
        : throw new InvalidOperationException($"Dataset '{Name}' has non-square {Height}x{Width} images; use Height and Width.");

    public bool IsLabelled => Labels is not null;

    /// <summary>Takes ownership of <paramref name="images"/> and <paramref name="labels"/> and detaches them from any DisposeScope.</summary>
    public ImageDataset(string name, Tensor images, Tensor? labels, int numClasses)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4)
            throw new ArgumentException($"Images must be [N, C, H, W]; got [{string.Join(", ", images.shape)}].", nameof(images));
        if (images.dtype != ScalarType.Float32)
            throw new ArgumentException($"Images must be float32; got {images.dtype}.", nameof(images));
        if (labels is null ? numClasses != 0 : numClasses < 1)
            throw new ArgumentException($"numClasses must be 0 for an unlabelled dataset and >= 1 for a labelled one; got {numClasses}.", nameof(numClasses));
        if (labels is not null)
        {
            if (labels.dim() != 1 || labels.shape[0] != images.shape[0])
                throw new ArgumentException($"Labels must be [N] with N = {images.shape[0]}; got [{string.Join(", ", labels.shape)}].", nameof(labels));
            if (labels.dtype != ScalarType.Int64)
                throw new ArgumentException($"Labels must be int64; got {labels.dtype}.", nameof(labels));
        }

        Name = name;
        Images = images.DetachFromDisposeScope();
        Labels = labels?.DetachFromDisposeScope();
        NumClasses = numClasses;
        Count = images.shape[0];
        Channels = (int)images.shape[1];
        Height = (int)images.shape[2];
        Width = (int)images.shape[3];
    }

    public void Dispose()
    {
        Images.Dispose();
        Labels?.Dispose();
    }

    public override string ToString() =>
        $"{Name}: {Count} x {Channels} x {Height} x {Width}" + (IsLabelled ? $", {NumClasses} classes" : ", unlabelled");
}
