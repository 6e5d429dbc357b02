using Ddpm.IO;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Imaging;

/// <summary>Images in [−1, 1] as PNG files: one image or a grid.</summary>
public static class ImageGrid
{
    /// <summary>Pixels of [N, C, H, W] images in [−1, 1] as bytes [N, H, W, C] (round((x + 1)·127.5), clamped).</summary>
    public static byte[] ToBytes(Tensor images)
    {
        using var scope = NewDisposeScope();
        var bytes = ((images.detach().to_type(ScalarType.Float32).clamp(-1, 1) + 1) * 127.5).round().to_type(ScalarType.Byte).permute(0, 2, 3, 1).contiguous().cpu();
        return bytes.data<byte>().ToArray();
    }

    /// <summary>
    /// Lays out [N, C, H, W] images (C = 1 or 3) in rows of <paramref name="columns"/> (default ⌈√N⌉) with
    /// <paramref name="padding"/> pixels between them, each pixel drawn <paramref name="scale"/> times.
    /// </summary>
    public static SKBitmap ToBitmap(Tensor images, int? columns = null, int padding = 2, int scale = 1)
    {
        if (images.dim() != 4 || (images.shape[1] != 1 && images.shape[1] != 3))
            throw new ArgumentException($"Expected images of shape [N, 1 or 3, H, W]; got [{string.Join(",", images.shape)}].", nameof(images));
        int n = (int)images.shape[0], c = (int)images.shape[1], h = (int)images.shape[2], w = (int)images.shape[3];
        int cols = Math.Max(1, columns ?? (int)Math.Ceiling(Math.Sqrt(n)));
        int rows = (n + cols - 1) / cols;
        int cellW = w * scale + padding, cellH = h * scale + padding;
        var bitmap = new SKBitmap(cols * cellW + padding, rows * cellH + padding, SKColorType.Rgba8888, SKAlphaType.Opaque);
        var pixels = new byte[bitmap.Width * bitmap.Height * 4];
        for (int i = 0; i < pixels.Length; i += 4) { pixels[i] = pixels[i + 1] = pixels[i + 2] = 255; pixels[i + 3] = 255; }
        var data = ToBytes(images);
        for (int k = 0; k < n; k++)
        {
            int ox = padding + (k % cols) * cellW, oy = padding + (k / cols) * cellH;
            for (int y = 0; y < h * scale; y++)
                for (int x = 0; x < w * scale; x++)
                {
                    int src = ((k * h + y / scale) * w + x / scale) * c;
                    int dst = ((oy + y) * bitmap.Width + ox + x) * 4;
                    pixels[dst] = data[src];
                    pixels[dst + 1] = data[src + (c == 3 ? 1 : 0)];
                    pixels[dst + 2] = data[src + (c == 3 ? 2 : 0)];
                }
        }
        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        return bitmap;
    }

    /// <summary>Writes the grid as a PNG, atomically.</summary>
    public static void SavePng(Tensor images, string path, int? columns = null, int padding = 2, int scale = 1)
    {
        using var bitmap = ToBitmap(images, columns, padding, scale);
        SavePng(bitmap, path);
    }

    public static void SavePng(SKBitmap bitmap, string path)
    {
        byte[] png = EncodePng(bitmap);
        AtomicFile.Write(path, stream => stream.Write(png));
    }

    /// <summary>The bitmap as PNG bytes (what <see cref="SavePng(SKBitmap, string)"/> writes).</summary>
    public static byte[] EncodePng(SKBitmap bitmap)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Png, 100);
        return encoded.ToArray();
    }
}
