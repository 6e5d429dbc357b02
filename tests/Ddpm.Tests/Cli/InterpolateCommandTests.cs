using Ddpm.Imaging;
using SkiaSharp;

namespace Ddpm.Tests.Cli;

[Collection(CheckpointCollection.Name)]
public class InterpolateCommandTests(CheckpointFixture fixture)
{
    private static void AssertSuccess(CliRun run)
    {
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}; stderr: {run.Stderr}");
        Assert.Equal("", run.Stderr);
    }

    private static readonly int Scale = LabelledGrid.ScaleFor(CheckpointFixture.ImageSize);
    private static readonly int CellSize = CheckpointFixture.ImageSize * Scale + 2;

    private static SKColor Pixel(SKBitmap strip, int column, int x, int y) =>
        strip.GetPixel(2 + column * CellSize + x * Scale, LabelledGrid.BandHeight() + 2 + y * Scale);

    /// <summary>Writes a <paramref name="width"/> × <paramref name="height"/> RGB PNG whose every pixel is <paramref name="color"/>, except a red stripe.</summary>
    internal static void WritePng(string path, int width, int height, SKColor color)
    {
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, x == width / 2 ? new SKColor(255, 0, 0) : color);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    [Fact]
    public void Interpolate_Noise_WritesAStripOfAInterpolantsB_Reproducibly()
    {
        using var temp = new TempDirectory();
        string output = temp.Combine("out", "strip.png");
        string[] Args(string path, string seed) =>
            new[] { "interpolate", "--checkpoint", fixture.Unconditional, "--a", "dataset:1", "--b", "mnist:2", "--data-dir", fixture.DataDir, "--t", "30", "--steps", "5", "--seed", seed, "--out", path };
        var run = CliRunner.Run(Args(output, "9"));
        AssertSuccess(run);
        Assert.Contains("t = 30", run.Stdout);

        using (var strip = SKBitmap.Decode(output))
        {
            Assert.Equal(7 * CellSize + 2, strip.Width);   // a, 5 interpolants, b
            Assert.Equal(LabelledGrid.BandHeight() + CellSize + 2, strip.Height);
            // The ends are the inputs, pixel for pixel (test images 1 and 2 of the data set).
            for (int y = 0; y < CheckpointFixture.ImageSize; y++)
                for (int x = 0; x < CheckpointFixture.ImageSize; x++)
                {
                    byte a = fixture.TestPixels[1, y, x], b = fixture.TestPixels[2, y, x];
                    Assert.Equal(new SKColor(a, a, a), Pixel(strip, 0, x, y));
                    Assert.Equal(new SKColor(b, b, b), Pixel(strip, 6, x, y));
                }
        }
        AssertSuccess(CliRunner.Run(Args(temp.Combine("again.png"), "9")));
        AssertSuccess(CliRunner.Run(Args(temp.Combine("other.png"), "10")));
        Assert.Equal(File.ReadAllBytes(output), File.ReadAllBytes(temp.Combine("again.png")));
        Assert.NotEqual(File.ReadAllBytes(output), File.ReadAllBytes(temp.Combine("other.png")));
    }

    [Fact]
    public void Interpolate_Ddim_FromPngFiles_IsDeterministicWhateverTheSeed()
    {
        using var temp = new TempDirectory();
        string a = temp.Combine("a.png"), b = temp.Combine("b.jpg.png");
        WritePng(a, 20, 12, new SKColor(30, 200, 90));   // RGB, not square: converted to grey, centre-cropped, resized to 8×8
        WritePng(b, 8, 8, new SKColor(250, 250, 250));
        string[] Args(string path, string seed) =>
            new[] { "interpolate", "--checkpoint", fixture.Unconditional, "--a", a, "--b", b, "--method", "ddim", "--t", "50", "--ddim-steps", "10", "--steps", "3", "--seed", seed, "--out", path };

        AssertSuccess(CliRunner.Run(Args(temp.Combine("s1.png"), "1")));
        AssertSuccess(CliRunner.Run(Args(temp.Combine("s2.png"), "2")));
        Assert.Equal(File.ReadAllBytes(temp.Combine("s1.png")), File.ReadAllBytes(temp.Combine("s2.png")));

        using var strip = SKBitmap.Decode(temp.Combine("s1.png"));
        Assert.Equal(5 * CellSize + 2, strip.Width);
        // b is uniform light grey (250): the corner of its cell shows exactly that; a became grey too.
        Assert.Equal(new SKColor(250, 250, 250), Pixel(strip, 4, 0, 0));
        var corner = Pixel(strip, 0, 0, 0);
        Assert.True(corner.Red == corner.Green && corner.Green == corner.Blue);
        byte grey = (byte)Math.Round(0.299 * 30 + 0.587 * 200 + 0.114 * 90);
        Assert.InRange(corner.Red, grey - 1, grey + 1);
    }

    [Fact]
    public void Interpolate_DefaultT_IsHalfTheCheckpointsT()
    {
        using var temp = new TempDirectory();
        var run = CliRunner.Run("interpolate", "--checkpoint", fixture.Unconditional, "--a", "dataset:3", "--b", "dataset:4", "--data-dir", fixture.DataDir,
            "--method", "ddim", "--ddim-steps", "4", "--steps", "2", "--out", temp.Combine("half.png"));
        AssertSuccess(run);
        Assert.Contains($"4-step DDIM inversion to t = {CheckpointFixture.Timesteps / 2}", run.Stdout);
        Assert.True(File.Exists(temp.Combine("half.png")));
    }

    [Fact]
    public void Interpolate_ToyCheckpoint_IsAUsageError()
    {
        using var temp = new TempDirectory();
        var run = CliRunner.Run("interpolate", "--checkpoint", fixture.Toy, "--a", "dataset:0", "--b", "dataset:1", "--t", "10", "--out", temp.Combine("x.png"));
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("toy model", Assert.Single(run.StderrLines));
        Assert.False(File.Exists(temp.Combine("x.png")));
    }
}
