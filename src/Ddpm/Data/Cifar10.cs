using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>
/// The binary version of CIFAR-10 (https://www.cs.toronto.edu/~kriz/cifar.html): each .bin file is a sequence of
/// 3073-byte records, one label byte (0..9) then 3072 pixel bytes, the 1024 red, then green, then blue values of a
/// 32 × 32 image in row-major order, which is already the CHW layout the models use.
/// </summary>
internal static class Cifar10
{
    public const int Side = 32;
    public const int Channels = 3;
    public const int PixelBytes = Channels * Side * Side;
    public const int RecordBytes = 1 + PixelBytes;
    public const string ExtractedFolder = "cifar-10-batches-bin";
    private const int Classes = 10;

    private const string HowToGet =
        "download the binary version from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz, extract it and pass --data-dir DIR (the cifar-10-batches-bin folder or its parent)";

    public const string NeedsDirectory = "Dataset 'cifar10' has no default location: " + HowToGet + ".";

    public static IReadOnlyList<string> FileNames(string split) => split == "train"
        ? Enumerable.Range(1, 5).Select(i => $"data_batch_{i}.bin").ToArray()
        : new[] { "test_batch.bin" };

    public static ImageDataset Load(string name, string dataDir, string split, int? imageSize)
    {
        DatasetLoader.CheckNativeSize(name, imageSize, Side, Side);
        string directory = ResolveDirectory(name, dataDir);
        var files = FileNames(split).Select(f => Path.Combine(directory, f)).ToArray();
        var missing = files.Where(f => !File.Exists(f)).Select(Path.GetFileName).ToArray();
        if (missing.Length > 0)
            throw new DatasetException($"Dataset '{name}' ({split}) is incomplete: '{directory}' lacks {string.Join(", ", missing)}; {HowToGet}.");

        var counts = new long[files.Length];
        for (int i = 0; i < files.Length; i++)
        {
            long length = new FileInfo(files[i]).Length;
            if (length == 0 || length % RecordBytes != 0)
                throw new DatasetException($"CIFAR-10 file '{files[i]}' is truncated or not a CIFAR-10 binary batch: expected a non-zero multiple of {RecordBytes} bytes (1 label + {PixelBytes} pixels per image), got {length}; re-download it.");
            counts[i] = length / RecordBytes;
        }
        long total = counts.Sum();

        var images = Pixels.NewImageTensor(total, Channels, Side, Side);
        Tensor? labelTensor = null;
        try
        {
            var labels = new byte[total];
            long record = 0;
            for (int i = 0; i < files.Length; i++)
            {
                var bytes = ReadAll(files[i]);
                int n = (int)counts[i];
                // Gather the pixel bytes of this batch into one block so the conversion is a single pass.
                var pixels = new byte[(long)n * PixelBytes];
                for (int r = 0; r < n; r++)
                {
                    labels[record + r] = bytes[(long)r * RecordBytes];
                    Buffer.BlockCopy(bytes, r * RecordBytes + 1, pixels, r * PixelBytes, PixelBytes);
                }
                DatasetLoader.CheckLabels(name, files[i], labels.AsSpan((int)record, n), Classes);
                Pixels.ToUnitRange(pixels, images, record * PixelBytes);
                record += n;
            }
            labelTensor = Pixels.LabelTensor(labels);
            return new ImageDataset(name, images, labelTensor, Classes);
        }
        catch
        {
            images.Dispose();
            labelTensor?.Dispose();
            throw;
        }
    }

    /// <summary>The folder that holds the .bin files: <paramref name="dataDir"/> itself or its cifar-10-batches-bin subfolder.</summary>
    private static string ResolveDirectory(string name, string dataDir)
    {
        if (!Directory.Exists(dataDir))
            throw new DatasetException($"Dataset '{name}' not found: directory '{dataDir}' does not exist; {HowToGet}.");
        string nested = Path.Combine(dataDir, ExtractedFolder);
        bool hasBatches = Directory.EnumerateFiles(dataDir, "*.bin").Any();
        return !hasBatches && Directory.Exists(nested) ? nested : dataDir;
    }

    private static byte[] ReadAll(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new DatasetException($"CIFAR-10 file '{path}' could not be read ({ex.Message}).", ex);
        }
    }
}
