using System.Globalization;
using System.Text.RegularExpressions;
using Ddpm.Data;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Generation;

/// <summary>Images given by a user, decoded into what a model takes: [1, C, H, W] float32 in [−1, 1].</summary>
public static class ImageInput
{
    /// <summary>
    /// One image for <paramref name="model"/>, with its channels and size. <paramref name="value"/> is a PNG or JPEG
    /// file (converted to grey for 1-channel models, centre-cropped and resized), or DATASET:INDEX (the test split of
    /// an image data set; <c>dataset:INDEX</c> means the checkpoint's own data set). <paramref name="field"/> names
    /// the input in errors (<c>--a</c>).
    /// </summary>
    public static Tensor Load(string field, string value, DiffusionModel model, string? dataDir)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(model);
        var unet = model.Model.UNet ?? throw Invalid(field, $"'{model.Directory}' holds a 2-D toy model; {field} needs an image model.");
        if (File.Exists(value)) return LoadFile(field, value, unet.InChannels, unet.ImageSize);
        var match = Regex.Match(value, @"^(?<name>[A-Za-z0-9][A-Za-z0-9_.\-]*(?::[^:]+)?):(?<index>-?\d+)$");
        if (!match.Success)
        {
            if (Directory.Exists(value))
                throw Invalid(field, $"{field} '{value}' is a directory; give a PNG or JPEG file, or DATASET:INDEX (e.g. fashion-mnist:12).");
            throw Invalid(field, $"{field} '{value}': no such file, and not of the form DATASET:INDEX; give a PNG or JPEG file, or e.g. fashion-mnist:12 or dataset:12 (the checkpoint's data set).");
        }
        string name = match.Groups["name"].Value;
        if (!int.TryParse(match.Groups["index"].Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int index) || index < 0)
            throw Invalid(field, $"{field} '{value}': the index must be an integer >= 0.");
        if (name.Equals("dataset", StringComparison.OrdinalIgnoreCase))
            name = model.Config.Dataset ?? throw Invalid(field, $"{field} '{value}': the checkpoint does not name its data set; write NAME:{index}, e.g. fashion-mnist:{index}.");
        if (ToyDatasets.IsToy(name))
            throw Invalid(field, $"{field} '{value}': '{name}' is a 2-D toy point set, not an image data set.");
        bool folder = name.StartsWith(DatasetLoader.FolderPrefix, StringComparison.OrdinalIgnoreCase);
        using var dataset = DatasetLoader.Load(name, folder ? null : dataDir, folder ? "train" : "test", folder ? unet.ImageSize : null);
        if (index >= dataset.Count)
            throw Invalid(field, $"{field} '{value}': index {index} is out of range; the {(folder ? "" : "test split of ")}'{dataset.Name}' has {dataset.Count} images (0 to {dataset.Count - 1}).");
        using var scope = NewDisposeScope();
        var image = dataset.Images.narrow(0, index, 1);
        return Conform(image, unet.InChannels, unet.ImageSize).MoveToOuterDisposeScope();
    }

    /// <summary>Converts [N, C, H, W] images in [−1, 1] to <paramref name="channels"/> (1 or 3) and <paramref name="size"/>².</summary>
    public static Tensor Conform(Tensor images, int channels, int size)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        var x = images;
        if (x.shape[1] == 3 && channels == 1)
            x = (0.299 * x.narrow(1, 0, 1) + 0.587 * x.narrow(1, 1, 1) + 0.114 * x.narrow(1, 2, 1));
        else if (x.shape[1] == 1 && channels == 3)
            x = x.expand(-1, 3, -1, -1);
        else if (x.shape[1] != channels)
            throw Invalid(null, $"cannot convert {x.shape[1]}-channel images to the model's {channels} channels.");
        if (x.shape[2] != size || x.shape[3] != size)
        {
            // Centre square, then area averaging when shrinking and bilinear when enlarging.
            long h = x.shape[2], w = x.shape[3], side = Math.Min(h, w);
            x = x.narrow(2, (h - side) / 2, side).narrow(3, (w - side) / 2, side);
            x = side > size
                ? nn.functional.interpolate(x, new long[] { size, size }, mode: InterpolationMode.Area)
                : nn.functional.interpolate(x, new long[] { size, size }, mode: InterpolationMode.Bilinear, align_corners: false);
        }
        return x.clamp(-1.0, 1.0).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>A PNG or JPEG file as [1, C, size, size]: centre-cropped and resized by <see cref="ImageFolder.LoadImage"/>, grey by ITU-R 601 weights for one channel.</summary>
    private static Tensor LoadFile(string field, string path, int channels, int size)
    {
        if (channels is not (1 or 3))
            throw Invalid(field, $"the model has {channels} channels; image files can be used only with 1- or 3-channel models.");
        using (var codec = SKCodec.Create(path, out var result))
        {
            if (codec is null)
                throw Invalid(field, $"{field} '{path}' is not a readable image ({result}); give a PNG or JPEG file, or DATASET:INDEX (e.g. fashion-mnist:12).");
            if (codec.EncodedFormat is not (SKEncodedImageFormat.Png or SKEncodedImageFormat.Jpeg))
                throw Invalid(field, $"{field} '{path}' is a {codec.EncodedFormat.ToString().ToUpperInvariant()} image; give a PNG or JPEG file (convert it first), or DATASET:INDEX.");
        }
        byte[] chw;
        try
        {
            chw = ImageFolder.LoadImage(path, size);
        }
        catch (DatasetException e)
        {
            throw Invalid(field, $"{field}: {e.Message.Replace("remove or replace the file", "give a complete PNG or JPEG file, or DATASET:INDEX")}");
        }
        int plane = size * size;
        var values = new float[channels * plane];
        for (int i = 0; i < plane; i++)
        {
            if (channels == 1)
            {
                double grey = 0.299 * chw[i] + 0.587 * chw[plane + i] + 0.114 * chw[2 * plane + i];
                values[i] = (float)(Math.Round(grey) / 127.5 - 1.0);
            }
            else
            {
                for (int c = 0; c < 3; c++) values[c * plane + i] = (float)(chw[c * plane + i] / 127.5 - 1.0);
            }
        }
        return tensor(values, new long[] { 1, channels, size, size }, ScalarType.Float32);
    }

    private static InvalidRequestException Invalid(string? field, string message) => new(field?.TrimStart('-'), message);
}
