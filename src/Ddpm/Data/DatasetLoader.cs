using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>
/// Loads an image dataset by name:
/// <list type="bullet">
/// <item><c>fashion-mnist</c>: IDX files, by default from <see cref="FashionMnistDefaultDirectory"/> (Debian's dataset-fashion-mnist); 10 classes, 1 × 28 × 28.</item>
/// <item><c>mnist</c>: the same file names, from --data-dir; 10 classes, 1 × 28 × 28.</item>
/// <item><c>cifar10</c>: the binary version (data_batch_1..5.bin, test_batch.bin), from --data-dir; 10 classes, 3 × 32 × 32.</item>
/// <item><c>folder:PATH</c>: every .png/.jpg/.jpeg below PATH, as RGB, centre-cropped and resized to imageSize; unlabelled.</item>
/// </list>
/// Every problem (missing files, damaged files, unknown names) is a <see cref="DatasetException"/> whose message says how to fix it.
/// </summary>
public static class DatasetLoader
{
    public const string FashionMnistDefaultDirectory = "/usr/share/datasets/fashion-mnist";
    public const string FolderPrefix = "folder:";

    /// <summary>The names <see cref="Load"/> accepts (folder datasets as "folder:PATH").</summary>
    public static IReadOnlyList<string> KnownNames { get; } = new[] { "fashion-mnist", "mnist", "cifar10", "folder:PATH" };

    /// <summary>The splits of the named datasets; folder datasets have only "train".</summary>
    public static IReadOnlyList<string> Splits { get; } = new[] { "train", "test" };

    private const int MnistClasses = 10;
    private const int CifarClasses = 10;

    /// <summary>
    /// Loads the <paramref name="split"/> ("train" or "test") of dataset <paramref name="name"/> from
    /// <paramref name="dataDir"/> (null: the dataset's default directory, where it has one).
    /// <paramref name="imageSize"/> is required for folder datasets; for the others it may be given only when it
    /// equals their native size.
    /// </summary>
    public static ImageDataset Load(string name, string? dataDir, string split = "train", int? imageSize = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(split);
        string trimmed = name.Trim();
        if (trimmed.StartsWith(FolderPrefix, StringComparison.OrdinalIgnoreCase))
        {
            string folder = trimmed[FolderPrefix.Length..];
            if (folder.Length == 0)
                throw new DatasetException($"Dataset '{name}' names no folder: use folder:PATH, e.g. folder:./images.");
            if (dataDir is not null)
                throw new DatasetException($"Dataset '{name}' takes its directory from the name; drop --data-dir ({dataDir}) or name the dataset folder:{dataDir}.");
            if (split != "train")
                throw new DatasetException($"Folder datasets have a single split, 'train'; got split '{split}'.");
            if (imageSize is null)
                throw new DatasetException($"Dataset '{name}' needs an image size (--image-size N): its images are centre-cropped and resized to N x N.");
            return ImageFolder.Load(trimmed, folder, imageSize.Value);
        }

        string key = trimmed.ToLowerInvariant();
        if (key is not ("fashion-mnist" or "mnist" or "cifar10"))
        {
            string hint = key.StartsWith("toy:", StringComparison.Ordinal)
                ? $" ('{name}' is a 2-D toy point set, not an image dataset; toy sets are {string.Join(", ", ToyDatasets.Names)})"
                : "";
            throw new DatasetException($"Unknown dataset '{name}'{hint}; known image datasets: {string.Join(", ", KnownNames)}.");
        }
        if (!Splits.Contains(split))
            throw new DatasetException($"Unknown split '{split}' for dataset '{key}'; use {string.Join(" or ", Splits)}.");

        return key switch
        {
            "fashion-mnist" => LoadMnistStyle(key, dataDir ?? FashionMnistDefaultDirectory, split, imageSize,
                "install it with: sudo apt-get install dataset-fashion-mnist (or pass --data-dir DIR)"),
            "mnist" => LoadMnistStyle(key, dataDir ?? throw new DatasetException(MnistNeedsDirectory), split, imageSize,
                "download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz into it (e.g. from https://ossci-datasets.s3.amazonaws.com/mnist/) or pass --data-dir DIR"),
            _ => Cifar10.Load(key, dataDir ?? throw new DatasetException(Cifar10.NeedsDirectory), split, imageSize),
        };
    }

    private const string MnistNeedsDirectory =
        "Dataset 'mnist' has no default location: pass --data-dir DIR with train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz) (e.g. from https://ossci-datasets.s3.amazonaws.com/mnist/).";

    private static ImageDataset LoadMnistStyle(string name, string directory, string split, int? imageSize, string howToGet)
    {
        string prefix = split == "train" ? "train" : "t10k";
        if (!Directory.Exists(directory))
            throw new DatasetException($"Dataset '{name}' not found: directory '{directory}' does not exist; {howToGet}.");
        string imagesPath = FindIdx(name, directory, $"{prefix}-images-idx3-ubyte", howToGet);
        string labelsPath = FindIdx(name, directory, $"{prefix}-labels-idx1-ubyte", howToGet);

        var images = IdxReader.ReadImages(imagesPath);
        var labels = IdxReader.ReadLabels(labelsPath);
        if (labels.Count != images.Count)
            throw new DatasetException($"Dataset '{name}' ({split}): label count != image count ({labels.Count} labels in '{labelsPath}', {images.Count} images in '{imagesPath}'); the files do not belong together, re-download them.");
        CheckLabels(name, labelsPath, labels.Data, MnistClasses);
        int height = images.Dimensions[1], width = images.Dimensions[2];
        CheckNativeSize(name, imageSize, height, width);

        var tensor = Pixels.NewImageTensor(images.Count, 1, height, width);
        Tensor? labelTensor = null;
        try
        {
            Pixels.ToUnitRange(images.Data, tensor, 0);
            labelTensor = Pixels.LabelTensor(labels.Data);
            return new ImageDataset(name, tensor, labelTensor, MnistClasses);
        }
        catch
        {
            tensor.Dispose();
            labelTensor?.Dispose();
            throw;
        }
    }

    /// <summary>The raw file, or failing that its .gz (Debian ships the .gz, other mirrors the extracted files).</summary>
    private static string FindIdx(string name, string directory, string baseName, string howToGet)
    {
        foreach (var candidate in new[] { baseName, baseName + ".gz" })
        {
            string path = Path.Combine(directory, candidate);
            if (File.Exists(path))
                return path;
        }
        throw new DatasetException($"Dataset '{name}' not found: '{directory}' has neither {baseName} nor {baseName}.gz; {howToGet}.");
    }

    internal static void CheckLabels(string name, string path, ReadOnlySpan<byte> labels, int numClasses)
    {
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] >= numClasses)
                throw new DatasetException($"Dataset '{name}': label {labels[i]} at index {i} of '{path}' is outside 0..{numClasses - 1}; the file is corrupt, re-download it.");
    }

    internal static void CheckNativeSize(string name, int? imageSize, int height, int width)
    {
        if (imageSize is int size && (size != height || size != width))
            throw new DatasetException($"Dataset '{name}' has {height}x{width} images; image size {size} is not supported for it (omit --image-size or use {height}).");
    }
}
