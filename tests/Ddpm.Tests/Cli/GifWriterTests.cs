using Ddpm.Imaging;
using SkiaSharp;

namespace Ddpm.Tests.Cli;

/// <summary>Our GIF89a encoder, checked by decoding its output with SkiaSharp (an independent decoder).</summary>
public class GifWriterTests
{
    private static byte[] Encode(int width, int height, GifPalette palette, IReadOnlyList<(byte[] Indices, int Delay)> frames, int loop = 0)
    {
        using var stream = new MemoryStream();
        var writer = new GifWriter(stream, width, height, palette, loop);
        foreach (var (indices, delay) in frames) writer.AddFrame(indices, delay);
        writer.Finish();
        return stream.ToArray();
    }

    /// <summary>Decodes every frame and checks each pixel against the palette colour of its index.</summary>
    private static void AssertDecodesTo(byte[] gif, int width, int height, GifPalette palette, IReadOnlyList<(byte[] Indices, int Delay)> frames)
    {
        using var data = SKData.CreateCopy(gif);
        using var codec = SKCodec.Create(data);
        Assert.NotNull(codec);
        Assert.Equal(SKEncodedImageFormat.Gif, codec.EncodedFormat);
        Assert.Equal(width, codec.Info.Width);
        Assert.Equal(height, codec.Info.Height);
        Assert.Equal(frames.Count, codec.FrameCount);
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        for (int f = 0; f < frames.Count; f++)
        {
            if (frames.Count > 1)
                Assert.Equal(frames[f].Delay * 10, codec.FrameInfo[f].Duration);
            var result = codec.GetPixels(info, bitmap.GetPixels(), new SKCodecOptions(f));
            Assert.Equal(SKCodecResult.Success, result);
            var pixels = bitmap.GetPixelSpan();
            var indices = frames[f].Indices;
            for (int i = 0; i < indices.Length; i++)
            {
                var (r, g, b) = palette[indices[i]];
                int o = 4 * i;
                if (pixels[o] != r || pixels[o + 1] != g || pixels[o + 2] != b || pixels[o + 3] != 255)
                    Assert.Fail($"frame {f}, pixel {i} (x {i % width}, y {i / width}): decoded ({pixels[o]}, {pixels[o + 1]}, {pixels[o + 2]}, {pixels[o + 3]}), expected index {indices[i]} = ({r}, {g}, {b})");
            }
        }
    }

    [Fact]
    public void Frames_DecodeToTheirPaletteColours_RandomGradientAndConstant()
    {
        const int w = 97, h = 61;   // odd sizes; random frames fill the 4096-entry table many times over
        var random = new Random(5);
        var noise = new byte[w * h];
        random.NextBytes(noise);
        var gradient = Enumerable.Range(0, w * h).Select(i => (byte)((i % w) * 255 / (w - 1))).ToArray();
        var constant = Enumerable.Repeat((byte)200, w * h).ToArray();
        var fewColours = Enumerable.Range(0, w * h).Select(i => (byte)(random.Next(4) * 60)).ToArray();
        var frames = new List<(byte[], int)> { (noise, 5), (gradient, 7), (constant, 10), (fewColours, 250) };
        var gif = Encode(w, h, GifPalette.Grey, frames);
        Assert.Equal((byte)'G', gif[0]);
        Assert.Equal("GIF89a", System.Text.Encoding.ASCII.GetString(gif, 0, 6));
        Assert.Equal(0x3B, gif[^1]);
        AssertDecodesTo(gif, w, h, GifPalette.Grey, frames);
    }

    [Fact]
    public void LargeRandomFrame_WithTheColourCube_Decodes()
    {
        const int w = 400, h = 300;
        var random = new Random(6);
        var indices = new byte[w * h];
        random.NextBytes(indices);
        // Runs of repeated pixels too, so that long strings enter the table.
        for (int i = 0; i < indices.Length / 3; i++) indices[i] = (byte)(i / 1000);
        var frames = new List<(byte[], int)> { (indices, 3), (Enumerable.Reverse(indices).ToArray(), 4) };
        AssertDecodesTo(Encode(w, h, GifPalette.ColorCube, frames), w, h, GifPalette.ColorCube, frames);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(1, 255)]
    [InlineData(16, 16)]
    [InlineData(23, 23)]    // 529 pixels of one value: the code width grows just at the end
    public void TinyFrames_Decode(int w, int h)
    {
        var random = new Random(w * 1000 + h);
        var same = Enumerable.Repeat((byte)17, w * h).ToArray();
        var varied = Enumerable.Range(0, w * h).Select(_ => (byte)random.Next(256)).ToArray();
        var frames = new List<(byte[], int)> { (same, 1), (varied, 2) };
        AssertDecodesTo(Encode(w, h, GifPalette.Grey, frames), w, h, GifPalette.Grey, frames);
    }

    [Fact]
    public void EveryCodeWidthBoundary_Decodes()
    {
        // A single row of a slowly changing pattern hits each code-width change (512, 1024, 2048, 4096) with many
        // different string lengths at the end; check a range of lengths around the boundaries.
        foreach (int length in new[] { 255, 256, 257, 258, 300, 511, 512, 513, 1000, 2100, 5000 })
        {
            var indices = Enumerable.Range(0, length).Select(i => (byte)(i * 7 % 251)).ToArray();
            var frames = new List<(byte[], int)> { (indices, 1) };
            AssertDecodesTo(Encode(length, 1, GifPalette.Grey, frames), length, 1, GifPalette.Grey, frames);
        }
    }

    [Fact]
    public void LoopExtension_MakesTheAnimationRepeatForever_OrNTimes()
    {
        var frame = new byte[4];
        var frames = new List<(byte[], int)> { (frame, 1), (frame, 1) };
        using (var codec = SKCodec.Create(SKData.CreateCopy(Encode(2, 2, GifPalette.Grey, frames, loop: 0))))
            Assert.Equal(-1, codec.RepetitionCount);
        using (var codec = SKCodec.Create(SKData.CreateCopy(Encode(2, 2, GifPalette.Grey, frames, loop: 3))))
            Assert.Equal(3, codec.RepetitionCount);
    }

    [Fact]
    public void Palettes_MapGreysAndCubeColoursExactly_AndOtherColoursToTheNearest()
    {
        for (int v = 0; v < 256; v++)
        {
            Assert.Equal(v, GifPalette.Grey.IndexOf((byte)v, (byte)v, (byte)v));
            var (r, g, b) = GifPalette.ColorCube[GifPalette.ColorCube.IndexOf((byte)v, (byte)v, (byte)v)];
            Assert.True(r == g && g == b, $"grey {v} maps to a colour");
            Assert.InRange(r, v - 4, v + 4);   // 46 grey levels: at most ~3.3 apart from the nearest
        }
        foreach (byte r in GifPalette.CubeLevels)
            foreach (byte g in GifPalette.CubeLevels)
                foreach (byte b in GifPalette.CubeLevels)
                    Assert.Equal((r, g, b), GifPalette.ColorCube[GifPalette.ColorCube.IndexOf(r, g, b)]);
        // A colour near a cube point maps to it.
        Assert.Equal(((byte)255, (byte)0, (byte)51), GifPalette.ColorCube[GifPalette.ColorCube.IndexOf(250, 10, 60)]);
        Assert.Equal(256, Enumerable.Range(0, 256).Select(i => GifPalette.ColorCube[i]).Distinct().Count());
        // Luminance for colours in the grey palette.
        Assert.Equal(76, GifPalette.Grey.IndexOf(255, 0, 0));
    }

    [Fact]
    public void AnimatedGif_Indices_ReadsABitmap_AndSaveWritesAtomically()
    {
        using var bitmap = new SKBitmap(3, 2, SKColorType.Rgba8888, SKAlphaType.Opaque);
        bitmap.Erase(new SKColor(0, 51, 102));
        bitmap.SetPixel(2, 1, SKColors.White);
        var indices = AnimatedGif.Indices(bitmap, GifPalette.ColorCube);
        Assert.Equal(((byte)0, (byte)51, (byte)102), GifPalette.ColorCube[indices[0]]);
        Assert.Equal(((byte)255, (byte)255, (byte)255), GifPalette.ColorCube[indices[5]]);

        using var temp = new TempDirectory();
        string path = temp.Combine("dir", "a.gif");
        AnimatedGif.Save(path, 3, 2, GifPalette.ColorCube, new[] { new GifFrame(indices, 10) });
        Assert.Equal(new[] { "a.gif" }, Directory.GetFiles(temp.Combine("dir")).Select(Path.GetFileName));
        AssertDecodesTo(File.ReadAllBytes(path), 3, 2, GifPalette.ColorCube, new List<(byte[], int)> { (indices, 10) });
    }
}
