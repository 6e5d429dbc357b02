using Ddpm.Generation;
using Ddpm.Cli.Commands;
using Ddpm.IO;
using Ddpm.Imaging;
using Ddpm.Sampling;
using SkiaSharp;

namespace Ddpm.Tests.Cli;

[Collection(CheckpointCollection.Name)]
public class SampleCommandTests(CheckpointFixture fixture)
{
    private static string[] FileNames(string dir) =>
        Directory.GetFiles(dir).Select(f => Path.GetFileName(f)!).OrderBy(f => f, StringComparer.Ordinal).ToArray();

    [Fact]
    public void Sample_WritesOnePngPerSampleAndAGrid_AndTheSameSeedGivesIdenticalFiles()
    {
        using var temp = new TempDirectory();
        string[] Args(string dir, string seed) =>
            new[] { "sample", "--checkpoint", fixture.Unconditional, "--sampler", "ddim", "--steps", "10", "--n", "5", "--batch", "2", "--seed", seed, "--out", temp.Combine(dir) };

        var first = CliRunner.Run(Args("a", "3"));
        CliAssert.Success(first);
        Assert.Contains("DDIM", first.Stdout);
        Assert.Contains("10 steps", first.Stdout);
        var expected = new[] { SampleFiles.GridFile }.Concat(Enumerable.Range(0, 5).Select(SampleFiles.SampleFile)).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(expected, FileNames(temp.Combine("a")));
        using (var one = SKBitmap.Decode(temp.Combine("a", SampleFiles.SampleFile(4))))
        {
            Assert.Equal(CheckpointFixture.ImageSize, one.Width);
            Assert.Equal(CheckpointFixture.ImageSize, one.Height);
        }
        using (var grid = SKBitmap.Decode(temp.Combine("a", SampleFiles.GridFile)))
            Assert.True(grid.Width > 3 * CheckpointFixture.ImageSize, $"grid is {grid.Width} wide");

        CliAssert.Success(CliRunner.Run(Args("b", "3")));
        CliAssert.Success(CliRunner.Run(Args("c", "4")));
        foreach (var name in expected)
            Assert.Equal(File.ReadAllBytes(temp.Combine("a", name)), File.ReadAllBytes(temp.Combine("b", name)));
        Assert.NotEqual(File.ReadAllBytes(temp.Combine("a", SampleFiles.GridFile)), File.ReadAllBytes(temp.Combine("c", SampleFiles.GridFile)));
    }

    [Fact]
    public void Sample_DefaultsToDdpmWith100Steps_DpmSolverTo20_AndRawWeightsAreAccepted()
    {
        using var temp = new TempDirectory();
        var tiny = CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--n", "2", "--raw-weights", "--out", temp.Combine("raw"));
        CliAssert.Success(tiny);
        Assert.Contains("DDPM (", tiny.Stdout);
        Assert.Contains($"over {Math.Min(100, CheckpointFixture.Timesteps)} steps", tiny.Stdout);
        Assert.Contains("raw weights", tiny.Stdout);
        Assert.Equal(3, FileNames(temp.Combine("raw")).Length);

        var dpm = CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--sampler", "dpm++2m", "--n", "2", "--out", temp.Combine("dpm"));
        CliAssert.Success(dpm);
        Assert.Contains("DPM-Solver++ 2M", dpm.Stdout);
        Assert.Contains("over 20 steps", dpm.Stdout);
    }

    [Fact]
    public void DefaultSteps_DdpmIs100CappedAtT_SdeIsT()
    {
        Assert.Equal(100, SamplerFactory.DefaultSteps(SamplerKind.Ddpm, 1000));
        Assert.Equal(40, SamplerFactory.DefaultSteps(SamplerKind.Ddpm, 40));
        Assert.Equal(1000, SamplerFactory.DefaultSteps(SamplerKind.Sde, 1000));
        Assert.Equal(20, SamplerFactory.DefaultSteps(SamplerKind.DpmSolver2M, 1000));
    }

    [Fact]
    public void Sample_Gif_HasSubsampledFramesOfGreyPaletteColours_LastFrameHeld()
    {
        using var temp = new TempDirectory();
        string dir = temp.Combine("gif");
        var run = CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--sampler", "ddpm", "--steps", "60", "--n", "3", "--gif", "--seed", "1", "--out", dir);
        CliAssert.Success(run);
        Assert.Contains(SampleFiles.GifFile, FileNames(dir));

        using var codec = SKCodec.Create(Path.Combine(dir, SampleFiles.GifFile));
        Assert.NotNull(codec);
        Assert.Equal(SKEncodedImageFormat.Gif, codec.EncodedFormat);
        Assert.Equal(new FrameCapture(SampleCommand.GifSamples, SampleCommand.GifFrames).Steps(60).Length, codec.FrameCount);
        Assert.Equal(SampleCommand.GifFrames, codec.FrameCount);
        Assert.Equal(-1, codec.RepetitionCount); // NETSCAPE2.0 loop count 0: forever
        var frames = codec.FrameInfo;
        Assert.Equal(SampleFiles.GifFrameDelay * 10, frames[0].Duration);
        Assert.Equal(SampleFiles.GifLastFrameDelay * 10, frames[^1].Duration);

        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        foreach (int i in new[] { 0, codec.FrameCount - 1 })
        {
            Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, bitmap.GetPixels(), new SKCodecOptions(i)));
            var pixels = bitmap.GetPixelSpan();
            var greys = new HashSet<byte>();
            for (int p = 0; p < pixels.Length; p += 4)
            {
                Assert.True(pixels[p] == pixels[p + 1] && pixels[p + 1] == pixels[p + 2], $"frame {i}: pixel {p / 4} is not grey");
                Assert.Equal(255, pixels[p + 3]);
                greys.Add(pixels[p]);
            }
            Assert.True(greys.Count > 10, $"frame {i} has only {greys.Count} grey levels");
        }

        // The last frame shows the final samples: every saved sample-NNNN.png appears in its left panel (x_t), pixel
        // for pixel (the grey palette holds all 256 levels), at the grid's scale; the panel is found by search.
        Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, bitmap.GetPixels(), new SKCodecOptions(codec.FrameCount - 1)));
        int scale = LabelledGrid.ScaleFor(CheckpointFixture.ImageSize, 48);
        for (int k = 0; k < 3; k++)
        {
            using var sample = SKBitmap.Decode(Path.Combine(dir, SampleFiles.SampleFile(k)));
            Assert.Equal(CheckpointFixture.ImageSize, sample.Width);
            bool Matches(int ox, int oy)
            {
                for (int y = 0; y < sample.Height; y++)
                    for (int x = 0; x < sample.Width; x++)
                        if (bitmap.GetPixel(ox + x * scale, oy + y * scale).Red != sample.GetPixel(x, y).Red) return false;
                return true;
            }
            int span = (sample.Width - 1) * scale;
            var found = Enumerable.Range(0, bitmap.Height - span).SelectMany(oy => Enumerable.Range(0, bitmap.Width / 2 - span).Select(ox => (ox, oy)))
                .Where(p => Matches(p.ox, p.oy)).ToArray();
            Assert.True(found.Length > 0, $"sample {k} does not appear in the last frame's x_t panel");
        }
    }

    [Fact]
    public void Sample_ClassConditional_TakesAClass_AndRejectsOneOutOfRange()
    {
        using var temp = new TempDirectory();
        CliAssert.Success(CliRunner.Run("sample", "--checkpoint", fixture.Conditional, "--sampler", "ddim", "--steps", "5", "--n", "2", "--class", "7", "--out", temp.Combine("c7")));
        Assert.Equal(3, FileNames(temp.Combine("c7")).Length);
        // Without --class the classes take turns; it runs as well.
        CliAssert.Success(CliRunner.Run("sample", "--checkpoint", fixture.Conditional, "--sampler", "ddim", "--steps", "5", "--n", "2", "--out", temp.Combine("any")));

        var bad = CliRunner.Run("sample", "--checkpoint", fixture.Conditional, "--class", "10", "--out", temp.Combine("c10"));
        Assert.Equal(2, bad.ExitCode);
        Assert.StartsWith("error: --class must be from 0 to 9", Assert.Single(bad.StderrLines));
        Assert.False(Directory.Exists(temp.Combine("c10")));
    }

    [Fact]
    public void Sample_ToyModel_WritesCsvAndScatter_AndAColourGif()
    {
        using var temp = new TempDirectory();
        string dir = temp.Combine("toy");
        var run = CliRunner.Run("sample", "--checkpoint", fixture.Toy, "--sampler", "ddim", "--steps", "20", "--n", "50", "--batch", "30", "--gif", "--out", dir);
        CliAssert.Success(run);
        Assert.Equal(new[] { SampleFiles.GifFile, SampleFiles.CsvFile, SampleFiles.ScatterFile }, FileNames(dir));
        Assert.Equal("x,y", File.ReadLines(Path.Combine(dir, SampleFiles.CsvFile)).First());
        var (xs, ys) = PointsCsv.Read(Path.Combine(dir, SampleFiles.CsvFile));
        Assert.Equal(50, xs.Length);
        Assert.All(xs.Concat(ys), v => Assert.True(float.IsFinite(v)));
        using (var scatter = SKBitmap.Decode(Path.Combine(dir, SampleFiles.ScatterFile)))
            Assert.NotNull(scatter);

        using var codec = SKCodec.Create(Path.Combine(dir, SampleFiles.GifFile));
        Assert.Equal(20, codec.FrameCount);
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, bitmap.GetPixels(), new SKCodecOptions(19)));
        var palette = Enumerable.Range(0, GifPalette.Size).Select(i => GifPalette.ColorCube[i]).ToHashSet();
        var pixels = bitmap.GetPixelSpan();
        for (int p = 0; p < pixels.Length; p += 4)
            Assert.Contains((pixels[p], pixels[p + 1], pixels[p + 2]), palette);
    }

    [Fact]
    public void Sample_EtaWithDdpm_IsAUsageError()
    {
        using var temp = new TempDirectory();
        var run = CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--eta", "0.5", "--out", temp.Combine("x"));
        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("error: --eta applies to --sampler ddim only", Assert.Single(run.StderrLines));
        Assert.False(Directory.Exists(temp.Combine("x")));
    }

    [Theory]
    [InlineData("dpm++2m", "DPM-Solver++ 2M (log-snr)", 4)]
    [InlineData("euler", "Euler ODE (karras)", 4)]
    [InlineData("heun", "Heun ODE (karras)", 7)]
    [InlineData("sde", "reverse SDE (linspace)", 4)]
    public void Sample_FastSamplersRunThroughTheSameCommand(string sampler, string description, int calls)
    {
        using var temp = new TempDirectory();
        var run = CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--sampler", sampler, "--steps", "4", "--n", "3", "--batch", "2", "--out", temp.Combine("s"), "--gif");
        CliAssert.Success(run);
        Assert.Contains(description, run.Stdout);
        Assert.True(File.Exists(temp.Combine("s", SampleFiles.GridFile)));
        Assert.Equal(calls, Ddpm.Sampling.SamplerFactory.NetworkCalls(Enum.Parse<Ddpm.Sampling.SamplerKind>(sampler == "dpm++2m" ? "DpmSolver2M" : sampler, true), 4));
    }

    [Fact]
    public void Sample_SpacingAndVarianceOptionsAreChecked()
    {
        using var temp = new TempDirectory();
        CliAssert.Success(CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--sampler", "ddim", "--spacing", "karras", "--steps", "5", "--n", "2", "--out", temp.Combine("k")));
        CliAssert.Success(CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--sampler", "ddpm", "--variance", "fixed-large", "--steps", "5", "--n", "2", "--out", temp.Combine("v")));
        var wrong = CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--sampler", "heun", "--variance", "fixed-large", "--out", temp.Combine("x"));
        Assert.Equal(2, wrong.ExitCode);
        Assert.Contains("--variance applies to --sampler ddpm only", wrong.Stderr);
        var spacing = CliRunner.Run("sample", "--checkpoint", fixture.Unconditional, "--spacing", "cosine", "--out", temp.Combine("y"));
        Assert.Equal(2, spacing.ExitCode);
        Assert.Contains("--spacing must be one of linspace, leading, trailing, log-snr, karras", spacing.Stderr);
        Assert.False(Directory.Exists(temp.Combine("x")));
    }
}
