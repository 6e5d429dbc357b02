using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>
/// An unlabelled dataset made of every .png, .jpg and .jpeg file below a folder (recursively, in ordinal order of
/// the relative path so that the order is the same on every machine). Each image is decoded with SkiaSharp,
/// converted to RGB, centre-cropped to a square and resized to the requested size.
/// </summary>
public static class ImageFolder
{
    public static IReadOnlyList<string> Extensions { get; } = new[] { ".png", ".jpg", ".jpeg" };

    /// <summary>The image files of <paramref name="folder"/>, recursively, in ordinal order of their relative paths.</summary>
    public static IReadOnlyList<string> FindImages(string folder)
    {
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = false, AttributesToSkip = FileAttributes.Hidden | FileAttributes.System };
        return Directory.EnumerateFiles(folder, "*", options)
            .Where(f => Extensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
            .OrderBy(f => Path.GetRelativePath(folder, f).Replace('\\', '/'), StringComparer.Ordinal)
            .ToArray();
    }

    /// <summary>Loads the folder as dataset <paramref name="name"/> of 3 × <paramref name="imageSize"/> × <paramref name="imageSize"/> images.</summary>
    public static ImageDataset Load(string name, string folder, int imageSize)
    {
        if (imageSize < 1 || imageSize > 4096)
            throw new DatasetException($"Image size {imageSize} is outside 1..4096; pass --image-size N with a sensible N (e.g. 32 or 64).");
        if (!Directory.Exists(folder))
            throw new DatasetException($"Dataset '{name}' not found: folder '{folder}' does not exist; check the path after 'folder:'.");
        IReadOnlyList<string> files;
        try
        {
            files = FindImages(folder);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new DatasetException($"Dataset '{name}': folder '{folder}' could not be listed ({ex.Message}).", ex);
        }
        if (files.Count == 0)
            throw new DatasetException($"Dataset '{name}': no {string.Join("/", Extensions)} images found under '{folder}'; put images there or check the path.");

        // Decoding dominates and SkiaSharp objects are independent, so files are decoded in parallel; each result
        // lands in its own slot, and the first failing file (in dataset order) is the one reported.
        int pixelsPerImage = 3 * imageSize * imageSize;
        var decoded = new byte[files.Count][];
        var errors = new DatasetException?[files.Count];
        Parallel.For(0, files.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            try
            {
                decoded[i] = LoadImage(files[i], imageSize);
            }
            catch (Exception ex)
            {
                errors[i] = ex as DatasetException
                    ?? new DatasetException($"Image '{files[i]}' could not be read ({ex.Message}); remove or replace the file.", ex);
            }
        });
        var firstError = errors.FirstOrDefault(e => e is not null);
        if (firstError is not null)
            throw firstError;

        var images = Pixels.NewImageTensor(files.Count, 3, imageSize, imageSize);
        try
        {
            for (int i = 0; i < files.Count; i++)
                Pixels.ToUnitRange(decoded[i], images, (long)i * pixelsPerImage);
            return new ImageDataset(name, images, labels: null, numClasses: 0);
        }
        catch
        {
            images.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Decodes <paramref name="path"/> and returns its centre square resized to <paramref name="size"/>, as RGB bytes in
    /// CHW order. Transparent pixels end up composited over black (the decoded colours are premultiplied).
    /// </summary>
    public static byte[] LoadImage(string path, int size)
    {
        using var codec = SKCodec.Create(path, out var result);
        if (codec is null)
            throw new DatasetException($"Image '{path}' could not be decoded ({result}); remove or replace the file.");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        if (info.Width < 1 || info.Height < 1)
            throw new DatasetException($"Image '{path}' has no pixels ({info.Width}x{info.Height}); remove or replace the file.");
        using var source = new SKBitmap(info);
        var status = codec.GetPixels(info, source.GetPixels());
        if (status != SKCodecResult.Success)
            throw new DatasetException($"Image '{path}' could not be decoded ({status}{(status == SKCodecResult.IncompleteInput ? ": the file is truncated" : "")}); remove or replace the file.");

        int side = Math.Min(info.Width, info.Height);
        var crop = SKRectI.Create((info.Width - side) / 2, (info.Height - side) / 2, side, side);
        using var square = new SKBitmap();
        if (!source.ExtractSubset(square, crop))
            throw new InvalidOperationException($"Could not crop '{path}' to {crop}.");
        using var squareImage = SKImage.FromBitmap(square);

        using var target = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(target))
        {
            canvas.Clear(SKColors.Black);
            canvas.DrawImage(squareImage, new SKRect(0, 0, size, size), Sampling(side, size));
        }

        var rgba = target.GetPixelSpan();
        int rowBytes = target.RowBytes;
        var chw = new byte[3 * size * size];
        int plane = size * size;
        for (int y = 0; y < size; y++)
        {
            var row = rgba.Slice(y * rowBytes, size * 4);
            for (int x = 0; x < size; x++)
            {
                int o = y * size + x;
                chw[o] = row[4 * x];
                chw[plane + o] = row[4 * x + 1];
                chw[2 * plane + o] = row[4 * x + 2];
            }
        }
        return chw;
    }

    /// <summary>
    /// Same size: nearest (an exact copy). Shrinking: bilinear between mipmap levels, which averages the source
    /// pixels each output pixel covers (plain bilinear or bicubic would alias when shrinking by more than 2x).
    /// Enlarging: Mitchell bicubic.
    /// </summary>
    private static SKSamplingOptions Sampling(int from, int to) =>
        from == to ? new SKSamplingOptions(SKFilterMode.Nearest, SKMipmapMode.None)
        : from > to ? new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear)
        : new SKSamplingOptions(SKCubicResampler.Mitchell);
}
