using System.Buffers.Binary;
using System.IO.Compression;

namespace Ddpm.Tests.Data;

/// <summary>A fresh directory under the system temp folder, deleted on dispose, with helpers that write small dataset files.</summary>
public sealed class TempDirectory : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ddpm-tests-" + Guid.NewGuid().ToString("N"));

    public TempDirectory() => Directory.CreateDirectory(Path);

    public string File(string relative) => System.IO.Path.Combine(Path, relative);

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public string Sub(string relative)
    {
        string dir = File(relative);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }

    /// <summary>The bytes of an unsigned-byte IDX file: big-endian magic, big-endian dims, data.</summary>
    public static byte[] Idx(int magic, int[] dims, byte[] data)
    {
        var bytes = new byte[4 + 4 * dims.Length + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (int i = 0; i < dims.Length; i++)
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), dims[i]);
        data.CopyTo(bytes, 4 + 4 * dims.Length);
        return bytes;
    }

    public static byte[] Gzip(byte[] content)
    {
        using var buffer = new MemoryStream();
        using (var gz = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
            gz.Write(content);
        return buffer.ToArray();
    }

    /// <summary>Writes an MNIST-style split (images and labels) into <paramref name="dir"/>.</summary>
    public static void WriteMnistSplit(string dir, string prefix, byte[,,] images, byte[] labels, bool gzip)
    {
        int n = images.GetLength(0), h = images.GetLength(1), w = images.GetLength(2);
        var pixels = new byte[n * h * w];
        Buffer.BlockCopy(images, 0, pixels, 0, pixels.Length);
        var imageFile = Idx(0x803, new[] { n, h, w }, pixels);
        var labelFile = Idx(0x801, new[] { labels.Length }, labels);
        string suffix = gzip ? ".gz" : "";
        System.IO.File.WriteAllBytes(System.IO.Path.Combine(dir, $"{prefix}-images-idx3-ubyte{suffix}"), gzip ? Gzip(imageFile) : imageFile);
        System.IO.File.WriteAllBytes(System.IO.Path.Combine(dir, $"{prefix}-labels-idx1-ubyte{suffix}"), gzip ? Gzip(labelFile) : labelFile);
    }
}
