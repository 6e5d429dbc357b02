using System.Text.RegularExpressions;
using Ddpm.Data;
using Ddpm.Generation;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Web;

/// <summary>
/// An image a client names: a test-split image (<c>dataset:INDEX</c> for the model's own data set, or
/// <c>fashion-mnist:INDEX</c>, <c>mnist:INDEX</c>, <c>cifar10:INDEX</c>) or an uploaded PNG or JPEG as a data URL
/// (<c>data:image/png;base64,…</c>), bounded in bytes and pixels. A client never names a file or folder of the server.
/// </summary>
public sealed record ImageSource(string? Dataset, int Index, byte[]? Upload)
{
    private static readonly Regex DatasetImage = new(@"^(?<name>[a-z0-9\-]+):(?<index>\d{1,9})$", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase);
    private static readonly Regex DataUrl = new(@"^data:image/(?:png|jpeg|jpg);base64,", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase);

    /// <summary>Reads <paramref name="value"/> of request field <paramref name="field"/> for <paramref name="model"/>; every problem is a 400 or 413 naming the field.</summary>
    public static ImageSource Parse(string field, string? value, ModelEntry model, ServerOptions options)
    {
        if (string.IsNullOrWhiteSpace(value))
            throw new ApiProblemException(400, field, $"{field} is required: a test-split image such as \"dataset:0\" (the model's data set) or \"fashion-mnist:12\", or a PNG as a data URL (data:image/png;base64,...).");
        var url = DataUrl.Match(value);
        if (url.Success)
        {
            int encodedLength = value.Length - url.Length;
            if ((long)encodedLength / 4 * 3 > options.MaxUploadBytes)
                throw new ApiProblemException(413, field, $"{field} is larger than {options.MaxUploadBytes} bytes; upload a smaller PNG or JPEG.");
            byte[] bytes;
            try
            {
                bytes = Convert.FromBase64String(value[url.Length..]);
            }
            catch (FormatException)
            {
                throw new ApiProblemException(400, field, $"{field} is not valid base64 after 'base64,'; send the file's bytes base64-encoded.");
            }
            CheckPicture(field, bytes, options.MaxUploadPixels);
            return new ImageSource(null, 0, bytes);
        }
        var match = DatasetImage.Match(value);
        if (!match.Success)
            throw new ApiProblemException(400, field, $"{field} must be DATASET:INDEX (e.g. dataset:0 or fashion-mnist:12) or a data:image/png;base64 URL; server files cannot be named.");
        string name = match.Groups["name"].Value.ToLowerInvariant();
        if (name == "dataset")
            name = model.Config.Dataset?.Trim().ToLowerInvariant() ?? throw new ApiProblemException(400, field, $"{field}: model '{model.Info.Name}' does not name its data set; write e.g. fashion-mnist:{match.Groups["index"].Value}.");
        if (!DatasetCache.Names.Contains(name))
            throw new ApiProblemException(400, field, $"{field}: '{name}' is not a data set this server reads; use one of {string.Join(", ", DatasetCache.Names)} (or dataset for the model's own).");
        return new ImageSource(name, int.Parse(match.Groups["index"].Value, System.Globalization.CultureInfo.InvariantCulture), null);
    }

    /// <summary>The picture as a data set of one image [1, C, size, size] in [−1, 1] for a model of <paramref name="channels"/> channels.</summary>
    public ImageDataset UploadAsDataset(int channels, int size)
    {
        if (Upload is null) throw new InvalidOperationException("not an upload");
        string file = WriteTemporary();
        try
        {
            byte[] rgb;
            try
            {
                rgb = ImageFolder.LoadImage(file, size);
            }
            catch (DatasetException)
            {
                throw new ApiProblemException(400, "image", "the uploaded image could not be decoded; send a complete PNG or JPEG file.");
            }
            using var scope = NewDisposeScope();
            var pixels = tensor(rgb.Select(b => (float)(b / 127.5 - 1.0)).ToArray(), new long[] { 1, 3, size, size }, ScalarType.Float32);
            var image = ImageInput.Conform(pixels, channels, size).MoveToOuterDisposeScope();
            return new ImageDataset("upload", image, null, 0);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>Writes the upload to a temporary file of the server's own (the library reads images from files); delete it after use.</summary>
    public string WriteTemporary()
    {
        if (Upload is null) throw new InvalidOperationException("not an upload");
        string path = Path.Combine(Path.GetTempPath(), $"ddpm-serve-{Guid.NewGuid():N}.img");
        File.WriteAllBytes(path, Upload);
        return path;
    }

    /// <summary>A PNG or JPEG of at most <paramref name="maxPixels"/> pixels, checked from its header before it is decoded.</summary>
    private static void CheckPicture(string field, byte[] bytes, int maxPixels)
    {
        using var stream = new MemoryStream(bytes, writable: false);
        using var codec = SKCodec.Create(stream, out var result);
        if (codec is null)
            throw new ApiProblemException(400, field, $"{field} is not a readable image ({result}); send a PNG or JPEG.");
        if (codec.EncodedFormat is not (SKEncodedImageFormat.Png or SKEncodedImageFormat.Jpeg))
            throw new ApiProblemException(400, field, $"{field} is a {codec.EncodedFormat.ToString().ToUpperInvariant()} image; send a PNG or JPEG.");
        long pixels = (long)codec.Info.Width * codec.Info.Height;
        if (pixels > maxPixels)
            throw new ApiProblemException(413, field, $"{field} has {codec.Info.Width}×{codec.Info.Height} pixels, more than {maxPixels}; scale it down first.");
    }
}
