using Ddpm.Data;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Data;

public sealed class ImageFolderTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static void WriteImage(string path, int width, int height, Func<int, int, SKColor> color, SKEncodedImageFormat format, SKColorType colorType = SKColorType.Rgba8888)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, colorType, colorType == SKColorType.Gray8 ? SKAlphaType.Opaque : SKAlphaType.Premul));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, color(x, y));
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 95);
        File.WriteAllBytes(path, data.ToArray());
    }

    /// <summary>The RGB value of pixel (x, y) of image <paramref name="index"/>, back on the 0..255 scale.</summary>
    private static (double R, double G, double B) Rgb(ImageDataset dataset, long index, int x, int y)
    {
        using var scope = NewDisposeScope();
        var v = ((dataset.Images[index, .., y, x] + 1) * 127.5).to(ScalarType.Float64).data<double>().ToArray();
        return (v[0], v[1], v[2]);
    }

    private static void AssertColour((double R, double G, double B) expected, (double R, double G, double B) actual, double tolerance, string what)
    {
        Assert.True(Math.Abs(expected.R - actual.R) <= tolerance && Math.Abs(expected.G - actual.G) <= tolerance && Math.Abs(expected.B - actual.B) <= tolerance,
            $"{what}: expected {expected}, got {actual} (tolerance {tolerance}).");
    }

    [Fact]
    public void CropsResizesAndConvertsToRgb()
    {
        string root = _temp.Sub("images");
        // 60x40, left half red, right half blue: the centre crop (x 10..50) keeps red on the left, blue on the right.
        WriteImage(Path.Combine(root, "a", "wide.png"), 60, 40, (x, y) => x < 30 ? SKColors.Red : SKColors.Blue, SKEncodedImageFormat.Png);
        // 32x96, green bands in the top and bottom thirds: the centre crop (rows 32..64) is all white.
        WriteImage(Path.Combine(root, "b", "tall.jpg"), 32, 96, (x, y) => y is >= 32 and < 64 ? SKColors.White : SKColors.Lime, SKEncodedImageFormat.Jpeg);
        // 8x8 solid colour, enlarged to 16x16.
        WriteImage(Path.Combine(root, "c", "small.png"), 8, 8, (x, y) => new SKColor(10, 200, 30), SKEncodedImageFormat.Png);
        // Greyscale PNG with an upper-case extension; sorts first ('B' < 'a').
        WriteImage(Path.Combine(root, "B_gray.PNG"), 16, 16, (x, y) => new SKColor(90, 90, 90), SKEncodedImageFormat.Png, SKColorType.Gray8);
        File.WriteAllText(Path.Combine(root, "notes.txt"), "not an image");

        using var dataset = DatasetLoader.Load("folder:" + root, null, imageSize: 16);
        Assert.Equal(new long[] { 4, 3, 16, 16 }, dataset.Images.shape);
        Assert.Null(dataset.Labels);
        Assert.Equal(0, dataset.NumClasses);
        Assert.Equal("folder:" + root, dataset.Name);
        Assert.True(dataset.Images.min().item<float>() >= -1f && dataset.Images.max().item<float>() <= 1f);

        // 0: B_gray.PNG, same size: an exact copy, grey on all three channels.
        AssertColour((90, 90, 90), Rgb(dataset, 0, 7, 7), 1e-3, "grey PNG");
        // 1: wide.png.
        foreach (int y in new[] { 0, 15 })
        {
            AssertColour((255, 0, 0), Rgb(dataset, 1, 0, y), 1e-3, $"wide.png left corner y={y}");
            AssertColour((0, 0, 255), Rgb(dataset, 1, 15, y), 1e-3, $"wide.png right corner y={y}");
        }
        // 2: tall.jpg, white once the green bands are cropped away. Green would read R = B = −1; the decoder's chroma
        // upsampling interpolates across the band edge, so the outermost rows come out about 0.85, not 1.
        using (var scope = NewDisposeScope())
        {
            var rows = dataset.Images[2].amin(new long[] { 0, 2 }).data<float>().ToArray();
            Assert.True(rows.Min() > 0.7f && rows[1..^1].Min() > 0.97f, $"The centre crop of tall.jpg should contain no green; row minima: {string.Join(", ", rows.Select(v => v.ToString("F2")))}.");
        }
        // 3: small.png enlarged: a constant stays constant.
        AssertColour((10, 200, 30), Rgb(dataset, 3, 0, 0), 1, "small.png corner");
        AssertColour((10, 200, 30), Rgb(dataset, 3, 9, 12), 1, "small.png interior");
    }

    [Fact]
    public void ShrinkingAveragesInsteadOfAliasing()
    {
        // A one-pixel checkerboard shrunk 7x: point sampling would give pure black or white; averaging gives grey.
        string root = _temp.Sub("checker");
        WriteImage(Path.Combine(root, "checker.png"), 63, 63, (x, y) => (x + y) % 2 == 0 ? SKColors.White : SKColors.Black, SKEncodedImageFormat.Png);
        using var dataset = DatasetLoader.Load("folder:" + root, null, imageSize: 9);
        using var scope = NewDisposeScope();
        float worst = dataset.Images.abs().max().item<float>();
        Assert.True(worst < 0.25f, $"Shrunk checkerboard pixels should be near grey (0); the farthest is {worst}.");
    }

    [Fact]
    public void EnlargingInterpolatesInsteadOfRepeatingPixels()
    {
        // A horizontal ramp 0, 85, 170, 255 over 4 pixels enlarged 4×. Output column j samples the input at
        // u = (j + ½)/4 − ½ (pixel centres aligned); an interpolating filter that reproduces linear functions (bilinear,
        // Mitchell's cubic) gives 85·u wherever its support lies inside the image, u in [1, 2], columns 6 to 9.
        // Nearest-neighbour enlargement would give 85 or 170 there: 32 levels off at u = 1.375.
        string root = _temp.Sub("ramp");
        WriteImage(Path.Combine(root, "ramp.png"), 4, 4, (x, y) => new SKColor((byte)(85 * x), (byte)(85 * x), (byte)(85 * x)), SKEncodedImageFormat.Png);
        using var dataset = DatasetLoader.Load("folder:" + root, null, imageSize: 16);
        for (int j = 6; j <= 9; j++)
        {
            double u = (j + 0.5) / 4 - 0.5;
            foreach (int y in new[] { 0, 7, 15 })
                AssertColour((85 * u, 85 * u, 85 * u), Rgb(dataset, 0, j, y), 1.5, $"column {j}, row {y}");
        }
        // The ends keep their values: the ramp is not blurred past its extremes.
        AssertColour((0, 0, 0), Rgb(dataset, 0, 0, 5), 1.5, "left edge");
        AssertColour((255, 255, 255), Rgb(dataset, 0, 15, 5), 1.5, "right edge");
    }

    [Fact]
    public void UndecodableFilesAreNamed()
    {
        string root = _temp.Sub("broken");
        WriteImage(Path.Combine(root, "good.png"), 8, 8, (x, y) => SKColors.Red, SKEncodedImageFormat.Png);
        string garbage = Path.Combine(root, "garbage.jpg");
        File.WriteAllBytes(garbage, Enumerable.Range(0, 500).Select(i => (byte)(i * 13)).ToArray());
        var ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load("folder:" + root, null, imageSize: 8).Dispose());
        Assert.Contains(garbage, ex.Message);
        Assert.Contains("remove or replace", ex.Message);

        File.Delete(garbage);
        string truncated = Path.Combine(root, "truncated.png");
        WriteImage(truncated, 64, 64, (x, y) => new SKColor((byte)(x * 4), (byte)(y * 4), (byte)(x ^ y)), SKEncodedImageFormat.Png);
        var bytes = File.ReadAllBytes(truncated);
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load("folder:" + root, null, imageSize: 8).Dispose());
        Assert.Contains(truncated, ex.Message);
    }

    [Fact]
    public void EmptyOrMissingFolders()
    {
        string empty = _temp.Sub("nothing");
        File.WriteAllText(Path.Combine(empty, "readme.md"), "no images here");
        var ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load("folder:" + empty, null, imageSize: 8).Dispose());
        Assert.Contains("no .png/.jpg/.jpeg images", ex.Message);
        string missing = _temp.File("missing");
        ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load("folder:" + missing, null, imageSize: 8).Dispose());
        Assert.Contains(missing, ex.Message);
        Assert.Contains("does not exist", ex.Message);
        ex = Assert.Throws<DatasetException>(() => DatasetLoader.Load("folder:" + empty, null, imageSize: 0).Dispose());
        Assert.Contains("--image-size", ex.Message);
    }

    [Fact]
    public void FilesAreInOrdinalPathOrder()
    {
        string root = _temp.Sub("order");
        foreach (var name in new[] { "b/2.png", "a/10.png", "a/9.jpeg", "A.png", "c.JPG" })
            WriteImage(Path.Combine(root, name), 4, 4, (x, y) => SKColors.Gray, name.EndsWith("png") ? SKEncodedImageFormat.Png : SKEncodedImageFormat.Jpeg);
        var files = ImageFolder.FindImages(root).Select(f => Path.GetRelativePath(root, f)).ToArray();
        Assert.Equal(new[] { "A.png", "a/10.png", "a/9.jpeg", "b/2.png", "c.JPG" }, files);
    }
}
