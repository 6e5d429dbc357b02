using Ddpm.Data;
using Ddpm.Imaging;
using SkiaSharp;

namespace Ddpm.Tests.Cli;

[Collection(CheckpointCollection.Name)]
public class ForwardCommandTests(CheckpointFixture fixture)
{
    private static void AssertSuccess(CliRun run)
    {
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}; stderr: {run.Stderr}");
        Assert.Equal("", run.Stderr);
    }

    /// <summary>Pixel (x, y) of the image in grid cell (row, column), for a grid drawn by LabelledGrid with padding 2 and a label band.</summary>
    private static SKColor Cell(SKBitmap bitmap, int band, int scale, int row, int column, int x, int y)
    {
        int cell = CheckpointFixture.ImageSize * scale + 2;
        return bitmap.GetPixel(2 + column * cell + x * scale, band + 2 + row * cell + y * scale);
    }

    [Fact]
    public void Forward_GridHasOneRowPerImageAndOneColumnPerT_TZeroIsTheCleanImage()
    {
        using var temp = new TempDirectory();
        string output = temp.Combine("sub", "forward.png");
        var run = CliRunner.Run("forward", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--t", "0,10,50,100", "--timesteps", "100", "--n", "3", "--seed", "5", "--out", output);
        AssertSuccess(run);
        Assert.Contains("t=100", run.Stdout);

        using var bitmap = SKBitmap.Decode(output);
        int scale = LabelledGrid.ScaleFor(CheckpointFixture.ImageSize);
        int cell = CheckpointFixture.ImageSize * scale + 2;
        Assert.Equal(4 * cell + 2, bitmap.Width);
        int band = LabelledGrid.BandHeight();
        Assert.Equal(band + 3 * cell + 2, bitmap.Height);
        // Column t = 0 holds the clean images: pixel p ↦ p/127.5 − 1 ↦ round((x + 1)·127.5) = p.
        for (int row = 0; row < 3; row++)
            for (int y = 0; y < CheckpointFixture.ImageSize; y++)
                for (int x = 0; x < CheckpointFixture.ImageSize; x++)
                {
                    byte expected = fixture.TestPixels[row, y, x];
                    Assert.Equal(new SKColor(expected, expected, expected), Cell(bitmap, band, scale, row, 0, x, y));
                }
        // Columns t > 0 are noisy: they differ from the clean image.
        int differing = 0;
        for (int y = 0; y < CheckpointFixture.ImageSize; y++)
            for (int x = 0; x < CheckpointFixture.ImageSize; x++)
                if (Cell(bitmap, band, scale, 0, 3, x, y) != Cell(bitmap, band, scale, 0, 0, x, y)) differing++;
        Assert.True(differing > 50, $"only {differing} of 64 pixels changed at t = T");

        // Same seed: same bytes. Another seed: other noise.
        string again = temp.Combine("again.png"), other = temp.Combine("other.png");
        AssertSuccess(CliRunner.Run("forward", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--t", "0,10,50,100", "--timesteps", "100", "--n", "3", "--seed", "5", "--out", again));
        AssertSuccess(CliRunner.Run("forward", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--t", "0,10,50,100", "--timesteps", "100", "--n", "3", "--seed", "6", "--out", other));
        Assert.Equal(File.ReadAllBytes(output), File.ReadAllBytes(again));
        Assert.NotEqual(File.ReadAllBytes(output), File.ReadAllBytes(other));
        Assert.Empty(Directory.GetFiles(temp.Path, "*.tmp", SearchOption.AllDirectories));
    }

    [Fact]
    public void Forward_Index_ShowsOneRow_WithTheCosineSchedule()
    {
        using var temp = new TempDirectory();
        string output = temp.Combine("one.png");
        AssertSuccess(CliRunner.Run("forward", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--index", "11", "--t", "0,1000", "--schedule", "cosine", "--out", output));
        using var bitmap = SKBitmap.Decode(output);
        int scale = LabelledGrid.ScaleFor(CheckpointFixture.ImageSize);
        int cell = CheckpointFixture.ImageSize * scale + 2;
        Assert.Equal(2 * cell + 2, bitmap.Width);
        int band = LabelledGrid.BandHeight();
        Assert.Equal(band + cell + 2, bitmap.Height);
        Assert.Equal(new SKColor(fixture.TestPixels[11, 0, 0], fixture.TestPixels[11, 0, 0], fixture.TestPixels[11, 0, 0]), Cell(bitmap, band, scale, 0, 0, 0, 0));
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("cosine")]
    public void Forward_ScheduleOption_NoisesWithThatSchedulesAlphaBar(string schedule)
    {
        // Column t = 500 is √ᾱ x_0 + √(1 − ᾱ) ε, ε the first N(0, I) draw of a generator seeded with --seed. ᾱ is
        // evaluated here from each schedule's formula (Ho et al. 2020: β linear from 1e-4 to 0.02; Nichol & Dhariwal
        // 2021, Eq. 17: ᾱ(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2), s = 0.008): 0.078 and 0.490, so a command
        // that ignored --schedule would miss one of them by up to 100 levels.
        using var temp = new TempDirectory();
        string output = temp.Combine("forward.png");
        AssertSuccess(CliRunner.Run("forward", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--index", "11", "--t", "0,500", "--schedule", schedule, "--seed", "7", "--out", output));
        double alphaBar = 1;
        if (schedule == "linear")
            for (int i = 0; i < 500; i++) alphaBar *= 1 - (1e-4 + (0.02 - 1e-4) * i / 999.0);
        else
        {
            static double F(double u) => Math.Pow(Math.Cos((u + 0.008) / 1.008 * Math.PI / 2), 2);
            alphaBar = F(0.5) / F(0);
        }
        float[] epsilon;
        using (var scope = TorchSharp.torch.NewDisposeScope())
            epsilon = TorchSharp.torch.randn(new long[] { 1, 1, CheckpointFixture.ImageSize, CheckpointFixture.ImageSize }, generator: new TorchSharp.torch.Generator(7)).data<float>().ToArray();
        using var bitmap = SKBitmap.Decode(output);
        int scale = LabelledGrid.ScaleFor(CheckpointFixture.ImageSize), band = LabelledGrid.BandHeight();
        for (int y = 0; y < CheckpointFixture.ImageSize; y++)
            for (int x = 0; x < CheckpointFixture.ImageSize; x++)
            {
                double x0 = fixture.TestPixels[11, y, x] / 127.5 - 1;
                double noisy = Math.Sqrt(alphaBar) * x0 + Math.Sqrt(1 - alphaBar) * epsilon[y * CheckpointFixture.ImageSize + x];
                double expected = Math.Clamp((noisy + 1) * 127.5, 0, 255);
                Assert.InRange(Cell(bitmap, band, scale, 0, 1, x, y).Red, expected - 1, expected + 1);
            }
    }

    [Fact]
    public void Forward_IndexAndNTogether_IsAUsageError()
    {
        using var temp = new TempDirectory();
        var run = CliRunner.Run("forward", "--dataset", "mnist", "--data-dir", fixture.DataDir, "--index", "1", "--n", "2", "--out", temp.Combine("x.png"));
        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("error: --index and --n exclude each other", Assert.Single(run.StderrLines));
        Assert.False(File.Exists(temp.Combine("x.png")));
    }

    [Fact]
    public void Forward_OnRealFashionMnist_DefaultColumnsAndRows()
    {
        // CI installs the real data set (.ci/run: apt-get install dataset-fashion-mnist): a missing one is a failure, not a pass.
        Assert.True(File.Exists(Path.Combine(DatasetLoader.FashionMnistDefaultDirectory, "t10k-images-idx3-ubyte.gz")),
            $"{DatasetLoader.FashionMnistDefaultDirectory} is missing: apt-get install dataset-fashion-mnist");
        using var temp = new TempDirectory();
        string output = temp.Combine("fashion.png");
        AssertSuccess(CliRunner.Run("forward", "--dataset", "fashion-mnist", "--out", output));
        using var bitmap = SKBitmap.Decode(output);
        int cell = 28 * LabelledGrid.ScaleFor(28) + 2;
        Assert.Equal(5 * cell + 2, bitmap.Width);         // t = 0, 100, 250, 500, 1000
        Assert.Equal(LabelledGrid.BandHeight() + 8 * cell + 2, bitmap.Height);  // the labels above 8 rows
    }
}
