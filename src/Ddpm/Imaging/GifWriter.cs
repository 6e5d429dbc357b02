using System.Text;
using Ddpm.IO;
using SkiaSharp;

namespace Ddpm.Imaging;

/// <summary>
/// A 256-colour palette for GIF frames and the mapping from 8-bit RGB to its indices. Two are built in:
/// <see cref="Grey"/> (index i = grey level i, exact for 1-channel images) and <see cref="ColorCube"/> (a 6×6×6 cube
/// of the levels 0, 51, …, 255 plus 40 greys between them, for RGB images and plots).
/// </summary>
public sealed class GifPalette
{
    public const int Size = 256;

    private readonly byte[] _rgb;
    private readonly Func<byte, byte, byte, byte> _map;

    private GifPalette(byte[] rgb, Func<byte, byte, byte, byte> map)
    {
        _rgb = rgb;
        _map = map;
    }

    /// <summary>The 256 colours as r, g, b bytes (768 bytes).</summary>
    public ReadOnlySpan<byte> Rgb => _rgb;

    /// <summary>The colour at <paramref name="index"/>.</summary>
    public (byte R, byte G, byte B) this[int index] => (_rgb[3 * index], _rgb[3 * index + 1], _rgb[3 * index + 2]);

    /// <summary>The palette index for a colour (nearest colour for the cube palette, luminance for the grey one).</summary>
    public byte IndexOf(byte r, byte g, byte b) => _map(r, g, b);

    /// <summary>Maps interleaved pixels (<paramref name="channels"/> = 1, 3 or 4 bytes each; alpha ignored) to indices.</summary>
    public byte[] Map(ReadOnlySpan<byte> pixels, int channels)
    {
        if (channels is not (1 or 3 or 4))
            throw new ArgumentException($"Pixels must have 1, 3 or 4 bytes each; got {channels}.", nameof(channels));
        if (pixels.Length % channels != 0)
            throw new ArgumentException($"{pixels.Length} bytes are not a whole number of {channels}-byte pixels.", nameof(pixels));
        var result = new byte[pixels.Length / channels];
        for (int i = 0; i < result.Length; i++)
        {
            int o = i * channels;
            result[i] = channels == 1 ? _map(pixels[o], pixels[o], pixels[o]) : _map(pixels[o], pixels[o + 1], pixels[o + 2]);
        }
        return result;
    }

    /// <summary>The cube's levels (declared before the palettes: static initialisers run in order).</summary>
    public static IReadOnlyList<byte> CubeLevels { get; } = new byte[] { 0, 51, 102, 153, 204, 255 };

    /// <summary>256 greys: index i is (i, i, i); colours map by luminance (0.299 R + 0.587 G + 0.114 B).</summary>
    public static GifPalette Grey { get; } = CreateGrey();

    /// <summary>The 216 colours of a 6×6×6 cube (levels 0, 51, …, 255) followed by 40 greys round(255·k/41), k = 1..40.</summary>
    public static GifPalette ColorCube { get; } = CreateColorCube();

    private static GifPalette CreateGrey()
    {
        var rgb = new byte[3 * Size];
        for (int i = 0; i < Size; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = (byte)i;
        return new GifPalette(rgb, (r, g, b) => r == g && g == b ? r : (byte)Math.Clamp((int)Math.Round(0.299 * r + 0.587 * g + 0.114 * b), 0, 255));
    }

    private static GifPalette CreateColorCube()
    {
        var rgb = new byte[3 * Size];
        int n = 0;
        for (int r = 0; r < 6; r++)
            for (int g = 0; g < 6; g++)
                for (int b = 0; b < 6; b++, n++)
                {
                    rgb[3 * n] = CubeLevels[r];
                    rgb[3 * n + 1] = CubeLevels[g];
                    rgb[3 * n + 2] = CubeLevels[b];
                }
        for (int k = 1; k <= 40; k++, n++)
            rgb[3 * n] = rgb[3 * n + 1] = rgb[3 * n + 2] = (byte)Math.Round(255.0 * k / 41);

        // Grey levels in the palette (the cube's diagonal and the 40 extra greys), sorted, with their indices.
        var greys = Enumerable.Range(0, Size).Where(i => rgb[3 * i] == rgb[3 * i + 1] && rgb[3 * i + 1] == rgb[3 * i + 2])
            .Select(i => (Level: rgb[3 * i], Index: (byte)i)).OrderBy(p => p.Level).ToArray();
        var nearestGrey = new byte[256];
        for (int v = 0; v < 256; v++)
            nearestGrey[v] = greys.MinBy(p => Math.Abs(p.Level - v)).Index;

        // Nearest colour by squared RGB distance: the cube's nearest point against the nearest grey.
        byte Nearest(byte r, byte g, byte b)
        {
            if (r == g && g == b) return nearestGrey[r];
            int ri = (r + 25) / 51, gi = (g + 25) / 51, bi = (b + 25) / 51;
            int dc = Sq(r - 51 * ri) + Sq(g - 51 * gi) + Sq(b - 51 * bi);
            byte grey = nearestGrey[(r + g + b + 1) / 3];
            int level = rgb[3 * grey];
            int dg = Sq(r - level) + Sq(g - level) + Sq(b - level);
            return dg < dc ? grey : (byte)((ri * 6 + gi) * 6 + bi);
        }
        return new GifPalette(rgb, Nearest);

        static int Sq(int x) => x * x;
    }
}

/// <summary>
/// A minimal animated GIF89a encoder: one global 256-colour palette, full-canvas frames given as palette indices,
/// each with its own delay, LZW-compressed (8-bit minimum code size, variable code width up to 12 bits, a clear code
/// whenever the 4096-entry table fills), and the NETSCAPE2.0 extension so that viewers loop the animation.
/// Usage: construct, <see cref="AddFrame"/> for each frame, then <see cref="Finish"/> (or dispose) to write the trailer.
/// The stream is not closed.
/// </summary>
public sealed class GifWriter : IDisposable
{
    private readonly Stream _stream;
    private bool _finished;

    public int Width { get; }
    public int Height { get; }
    public GifPalette Palette { get; }
    public int FrameCount { get; private set; }

    /// <param name="loopCount">How many times viewers repeat the animation: 0 = forever.</param>
    public GifWriter(Stream stream, int width, int height, GifPalette palette, int loopCount = 0)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(palette);
        if (width < 1 || width > ushort.MaxValue || height < 1 || height > ushort.MaxValue)
            throw new ArgumentException($"GIF frames must be 1 to 65535 pixels wide and high; got {width}x{height}.", nameof(width));
        if (loopCount < 0 || loopCount > ushort.MaxValue)
            throw new ArgumentException($"loopCount must be in [0, 65535] (0 = forever); got {loopCount}.", nameof(loopCount));
        _stream = stream;
        Width = width;
        Height = height;
        Palette = palette;

        Write(Encoding.ASCII.GetBytes("GIF89a"));
        WriteUInt16(width);
        WriteUInt16(height);
        _stream.WriteByte(0xF7);    // global colour table, 8 bits of colour resolution, unsorted, 2^(7+1) = 256 entries
        _stream.WriteByte(0);       // background colour index
        _stream.WriteByte(0);       // pixel aspect ratio: unspecified
        Write(palette.Rgb);

        // Application extension NETSCAPE2.0: sub-block 1 holds the loop count.
        Write(new byte[] { 0x21, 0xFF, 0x0B });
        Write(Encoding.ASCII.GetBytes("NETSCAPE2.0"));
        Write(new byte[] { 0x03, 0x01 });
        WriteUInt16(loopCount);
        _stream.WriteByte(0);
    }

    /// <summary>Appends a full-canvas frame of palette indices (row-major, Width × Height) shown for <paramref name="delayCentiseconds"/>.</summary>
    public void AddFrame(ReadOnlySpan<byte> indices, int delayCentiseconds)
    {
        if (_finished) throw new InvalidOperationException("The GIF is finished; no frames can be added.");
        if (indices.Length != Width * Height)
            throw new ArgumentException($"A frame needs {Width}x{Height} = {Width * Height} indices; got {indices.Length}.", nameof(indices));
        if (delayCentiseconds < 0 || delayCentiseconds > ushort.MaxValue)
            throw new ArgumentException($"The frame delay must be in [0, 65535] hundredths of a second; got {delayCentiseconds}.", nameof(delayCentiseconds));

        // Graphic control extension: disposal 1 (leave the frame in place), no transparency.
        Write(new byte[] { 0x21, 0xF9, 0x04, 0x04 });
        WriteUInt16(delayCentiseconds);
        _stream.WriteByte(0);
        _stream.WriteByte(0);

        // Image descriptor: the whole canvas, no local colour table, not interlaced.
        _stream.WriteByte(0x2C);
        WriteUInt16(0);
        WriteUInt16(0);
        WriteUInt16(Width);
        WriteUInt16(Height);
        _stream.WriteByte(0);

        _stream.WriteByte(MinCodeSize);
        var data = Lzw(indices);
        for (int offset = 0; offset < data.Length; offset += 255)
        {
            int length = Math.Min(255, data.Length - offset);
            _stream.WriteByte((byte)length);
            _stream.Write(data, offset, length);
        }
        _stream.WriteByte(0);
        FrameCount++;
    }

    /// <summary>Writes the trailer. Idempotent.</summary>
    public void Finish()
    {
        if (_finished) return;
        if (FrameCount == 0) throw new InvalidOperationException("A GIF needs at least one frame.");
        _stream.WriteByte(0x3B);
        _stream.Flush();
        _finished = true;
    }

    public void Dispose()
    {
        if (!_finished && FrameCount > 0) Finish();
    }

    private const byte MinCodeSize = 8;
    private const int ClearCode = 1 << MinCodeSize;
    private const int EndCode = ClearCode + 1;
    private const int MaxCodes = 4096;

    /// <summary>
    /// GIF's LZW. The decoder adds a table entry after every code but the first after a clear, and widens its codes
    /// as soon as its next free code reaches 2^width; the encoder, which is one entry ahead, widens once the entry it
    /// just added equals 2^width. When entry 4095 has been added the encoder sends a clear code and starts over.
    /// </summary>
    public static byte[] Lzw(ReadOnlySpan<byte> indices)
    {
        var output = new BitPacker();
        // The string table as a trie: child[code * 256 + symbol] = code of (string + symbol), 0 = none.
        var child = new short[MaxCodes * 256];
        int codeSize = MinCodeSize + 1;
        int nextCode = EndCode + 1;
        output.Write(ClearCode, codeSize);
        if (indices.Length == 0)
        {
            output.Write(EndCode, codeSize);
            return output.ToArray();
        }

        int current = indices[0];
        for (int i = 1; i < indices.Length; i++)
        {
            int symbol = indices[i];
            int next = child[current * 256 + symbol];
            if (next != 0)
            {
                current = next;
                continue;
            }
            output.Write(current, codeSize);
            child[current * 256 + symbol] = (short)nextCode;
            if (nextCode == 1 << codeSize && codeSize < 12) codeSize++;
            nextCode++;
            if (nextCode == MaxCodes)
            {
                output.Write(ClearCode, codeSize);
                Array.Clear(child);
                codeSize = MinCodeSize + 1;
                nextCode = EndCode + 1;
            }
            current = symbol;
        }
        output.Write(current, codeSize);
        // The decoder adds an entry for this last code before it reads the end code, and may widen for it.
        if (nextCode == 1 << codeSize && codeSize < 12) codeSize++;
        output.Write(EndCode, codeSize);
        return output.ToArray();
    }

    private sealed class BitPacker
    {
        private readonly MemoryStream _bytes = new();
        private int _buffer, _bits;

        public void Write(int code, int width)
        {
            _buffer |= code << _bits;
            _bits += width;
            while (_bits >= 8)
            {
                _bytes.WriteByte((byte)_buffer);
                _buffer >>= 8;
                _bits -= 8;
            }
        }

        public byte[] ToArray()
        {
            if (_bits > 0)
            {
                _bytes.WriteByte((byte)_buffer);
                _buffer = 0;
                _bits = 0;
            }
            return _bytes.ToArray();
        }
    }

    private void Write(ReadOnlySpan<byte> bytes) => _stream.Write(bytes);

    private void WriteUInt16(int value)
    {
        _stream.WriteByte((byte)(value & 0xFF));
        _stream.WriteByte((byte)(value >> 8));
    }
}

/// <summary>One frame of an animated GIF: palette indices (row-major) and how long it is shown.</summary>
public sealed record GifFrame(byte[] Indices, int DelayCentiseconds);

/// <summary>Animated GIFs from bitmaps, written atomically.</summary>
public static class AnimatedGif
{
    /// <summary>The palette indices of <paramref name="bitmap"/>'s pixels (alpha ignored).</summary>
    public static byte[] Indices(SKBitmap bitmap, GifPalette palette)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        ArgumentNullException.ThrowIfNull(palette);
        using var rgba = bitmap.ColorType == SKColorType.Rgba8888 ? null : bitmap.Copy(SKColorType.Rgba8888);
        var source = rgba ?? bitmap;
        int width = source.Width, height = source.Height, rowBytes = source.RowBytes;
        var pixels = source.GetPixelSpan();
        var result = new byte[width * height];
        for (int y = 0; y < height; y++)
        {
            var row = palette.Map(pixels.Slice(y * rowBytes, width * 4), 4);
            row.CopyTo(result, y * width);
        }
        return result;
    }

    /// <summary>Writes <paramref name="frames"/> (each Width × Height indices) as a looping GIF at <paramref name="path"/>, atomically.</summary>
    public static void Save(string path, int width, int height, GifPalette palette, IReadOnlyList<GifFrame> frames, int loopCount = 0)
    {
        ArgumentNullException.ThrowIfNull(frames);
        if (frames.Count == 0) throw new ArgumentException("An animated GIF needs at least one frame.", nameof(frames));
        AtomicFile.Write(path, stream =>
        {
            using var buffered = new BufferedStream(stream, 1 << 16);
            var writer = new GifWriter(buffered, width, height, palette, loopCount);
            foreach (var frame in frames)
                writer.AddFrame(frame.Indices, frame.DelayCentiseconds);
            writer.Finish();
            buffered.Flush();
        });
    }
}
