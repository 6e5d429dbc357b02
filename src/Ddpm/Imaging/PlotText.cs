using SkiaSharp;

namespace Ddpm.Imaging;

/// <summary>
/// Text for plots. SkiaSharp's Linux "NoDependencies" native build has no fontconfig: there
/// <see cref="SKTypeface.Default"/> is an empty typeface (no glyphs, text draws nothing). So a typeface is looked up
/// in this order: the file named by the <c>DDPM_FONT</c> environment variable, the default typeface if it has glyphs,
/// a few common families through the font manager, a scan of the usual font directories (DejaVu Sans, Liberation
/// Sans, ... first). Where no font exists at all (a bare container) a built-in 5×7 pixel font (upper case, digits,
/// common punctuation) is drawn instead, so labels never silently disappear; <c>DDPM_FONT=builtin</c> forces it.
/// </summary>
public static class PlotText
{
    private static readonly Lazy<SKTypeface?> s_typeface = new(ResolveTypeface, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The typeface used for plot labels, or null when the built-in pixel font is used.</summary>
    public static SKTypeface? Typeface => s_typeface.Value;

    /// <summary>Width of <paramref name="text"/> in pixels at <paramref name="size"/>.</summary>
    public static float Measure(string text, float size)
    {
        var typeface = Typeface;
        if (typeface is null)
            return PixelFont.Measure(text, PixelFont.ScaleFor(size));
        using var font = NewFont(typeface, size);
        return font.MeasureText(text);
    }

    /// <summary>Draws <paramref name="text"/> with its baseline at <paramref name="baselineY"/>.</summary>
    public static void Draw(SKCanvas canvas, string text, float x, float baselineY, SKTextAlign align, float size, SKColor color)
    {
        ArgumentNullException.ThrowIfNull(canvas);
        if (string.IsNullOrEmpty(text)) return;
        var typeface = Typeface;
        if (typeface is null)
        {
            PixelFont.Draw(canvas, text, x, baselineY, align, PixelFont.ScaleFor(size), color);
            return;
        }
        using var font = NewFont(typeface, size);
        using var paint = new SKPaint { Color = color, IsAntialias = true };
        canvas.DrawText(text, x, baselineY, align, font, paint);
    }

    private static SKFont NewFont(SKTypeface typeface, float size) =>
        new(typeface, size) { Edging = SKFontEdging.Antialias, Subpixel = true };

    private static SKTypeface? ResolveTypeface()
    {
        try
        {
            var fromEnvironment = Environment.GetEnvironmentVariable("DDPM_FONT");
            if (string.Equals(fromEnvironment, "builtin", StringComparison.OrdinalIgnoreCase))
                return null;
            if (!string.IsNullOrWhiteSpace(fromEnvironment) && TryLoad(fromEnvironment) is { } chosen)
                return chosen;
            if (SKTypeface.Default is { GlyphCount: > 0 } platformDefault)
                return platformDefault;
            foreach (var family in new[] { "DejaVu Sans", "Liberation Sans", "Noto Sans", "Arial", "Helvetica", "Segoe UI" })
            {
                var matched = SKFontManager.Default.MatchFamily(family);
                if (matched is { GlyphCount: > 0 }) return matched;
                matched?.Dispose();
            }
            return ScanFontDirectories();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or DllNotFoundException)
        {
            return null;
        }
    }

    private static SKTypeface? TryLoad(string file)
    {
        try
        {
            var typeface = File.Exists(file) ? SKTypeface.FromFile(file) : null;
            if (typeface is { GlyphCount: > 0 }) return typeface;
            typeface?.Dispose();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
        }
        return null;
    }

    private static SKTypeface? ScanFontDirectories()
    {
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var directories = new List<string> { "/usr/share/fonts", "/usr/local/share/fonts", "/System/Library/Fonts", "/Library/Fonts" };
        if (!string.IsNullOrEmpty(home))
        {
            directories.Add(Path.Combine(home, ".fonts"));
            directories.Add(Path.Combine(home, ".local", "share", "fonts"));
        }
        string windowsFonts = Environment.GetFolderPath(Environment.SpecialFolder.Fonts);
        if (!string.IsNullOrEmpty(windowsFonts)) directories.Add(windowsFonts);

        var candidates = new List<string>();
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, MaxRecursionDepth = 6 };
        foreach (var directory in directories.Where(Directory.Exists))
        {
            foreach (var file in Directory.EnumerateFiles(directory, "*", options))
            {
                if (file.EndsWith(".ttf", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".otf", StringComparison.OrdinalIgnoreCase))
                    candidates.Add(file);
                if (candidates.Count >= 5000) break;
            }
        }
        string[] preferred = { "DejaVuSans.ttf", "LiberationSans-Regular.ttf", "NotoSans-Regular.ttf", "Arial.ttf", "arial.ttf", "Helvetica.ttc", "segoeui.ttf" };
        foreach (var name in preferred)
            foreach (var file in candidates.Where(f => Path.GetFileName(f).Equals(name, StringComparison.OrdinalIgnoreCase)))
                if (TryLoad(file) is { } typeface) return typeface;
        foreach (var file in candidates.OrderBy(f => f, StringComparer.Ordinal))
            if (TryLoad(file) is { } typeface) return typeface;
        return null;
    }

    /// <summary>A 5×7 pixel font drawn with rectangles: a last resort where the machine has no font files.</summary>
    internal static class PixelFont
    {
        private const int Columns = 5, Rows = 7, Advance = 6;

        internal static int ScaleFor(float size) => Math.Max(1, (int)MathF.Round(size / 9f));

        internal static float Measure(string text, int scale) => text.Length == 0 ? 0 : (text.Length * Advance - 1) * scale;

        internal static void Draw(SKCanvas canvas, string text, float x, float baselineY, SKTextAlign align, int scale, SKColor color)
        {
            float width = Measure(text, scale);
            float left = align switch { SKTextAlign.Center => x - width / 2, SKTextAlign.Right => x - width, _ => x };
            float top = baselineY - Rows * scale;
            using var paint = new SKPaint { Color = color, IsAntialias = false, Style = SKPaintStyle.Fill };
            for (int i = 0; i < text.Length; i++)
            {
                var rows = Glyph(text[i]);
                float glyphLeft = MathF.Round(left + i * Advance * scale);
                for (int r = 0; r < Rows; r++)
                    for (int c = 0; c < Columns; c++)
                        if (rows[r][c] == '#')
                            canvas.DrawRect(glyphLeft + c * scale, MathF.Round(top) + r * scale, scale, scale, paint);
            }
        }

        private static string[] Glyph(char ch)
        {
            if (ch == '\u2212') ch = '-';   // minus sign
            if (Glyphs.TryGetValue(ch, out var rows) || Glyphs.TryGetValue(char.ToUpperInvariant(ch), out rows))
                return rows;
            return Glyphs['\0'];
        }

        private static string[] G(string packed) => packed.Split(' ');

        private static readonly Dictionary<char, string[]> Glyphs = new()
        {
            ['\0'] = G("##### #...# #...# #...# #...# #...# #####"),
            [' '] = G("..... ..... ..... ..... ..... ..... ....."),
            ['0'] = G(".###. #...# #..## #.#.# ##..# #...# .###."),
            ['1'] = G("..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###."),
            ['2'] = G(".###. #...# ....# ...#. ..#.. .#... #####"),
            ['3'] = G("####. ....# ....# .###. ....# ....# ####."),
            ['4'] = G("...#. ..##. .#.#. #..#. ##### ...#. ...#."),
            ['5'] = G("##### #.... ####. ....# ....# #...# .###."),
            ['6'] = G("..##. .#... #.... ####. #...# #...# .###."),
            ['7'] = G("##### ....# ...#. ..#.. .#... .#... .#..."),
            ['8'] = G(".###. #...# #...# .###. #...# #...# .###."),
            ['9'] = G(".###. #...# #...# .#### ....# ...#. .##.."),
            ['A'] = G(".###. #...# #...# ##### #...# #...# #...#"),
            ['B'] = G("####. #...# #...# ####. #...# #...# ####."),
            ['C'] = G(".###. #...# #.... #.... #.... #...# .###."),
            ['D'] = G("###.. #..#. #...# #...# #...# #..#. ###.."),
            ['E'] = G("##### #.... #.... ####. #.... #.... #####"),
            ['F'] = G("##### #.... #.... ####. #.... #.... #...."),
            ['G'] = G(".###. #...# #.... #.### #...# #...# .####"),
            ['H'] = G("#...# #...# #...# ##### #...# #...# #...#"),
            ['I'] = G(".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###."),
            ['J'] = G("..### ...#. ...#. ...#. ...#. #..#. .##.."),
            ['K'] = G("#...# #..#. #.#.. ##... #.#.. #..#. #...#"),
            ['L'] = G("#.... #.... #.... #.... #.... #.... #####"),
            ['M'] = G("#...# ##.## #.#.# #.#.# #...# #...# #...#"),
            ['N'] = G("#...# #...# ##..# #.#.# #..## #...# #...#"),
            ['O'] = G(".###. #...# #...# #...# #...# #...# .###."),
            ['P'] = G("####. #...# #...# ####. #.... #.... #...."),
            ['Q'] = G(".###. #...# #...# #...# #.#.# #..#. .##.#"),
            ['R'] = G("####. #...# #...# ####. #.#.. #..#. #...#"),
            ['S'] = G(".#### #.... #.... .###. ....# ....# ####."),
            ['T'] = G("##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."),
            ['U'] = G("#...# #...# #...# #...# #...# #...# .###."),
            ['V'] = G("#...# #...# #...# #...# #...# .#.#. ..#.."),
            ['W'] = G("#...# #...# #...# #.#.# #.#.# #.#.# .#.#."),
            ['X'] = G("#...# #...# .#.#. ..#.. .#.#. #...# #...#"),
            ['Y'] = G("#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.."),
            ['Z'] = G("##### ....# ...#. ..#.. .#... #.... #####"),
            ['.'] = G("..... ..... ..... ..... ..... .##.. .##.."),
            [','] = G("..... ..... ..... ..... .##.. ..#.. .#..."),
            ['-'] = G("..... ..... ..... .###. ..... ..... ....."),
            ['+'] = G("..... ..#.. ..#.. ##### ..#.. ..#.. ....."),
            [':'] = G("..... .##.. .##.. ..... .##.. .##.. ....."),
            [';'] = G("..... .##.. .##.. ..... .##.. ..#.. .#..."),
            ['='] = G("..... ..... ##### ..... ##### ..... ....."),
            ['('] = G("...#. ..#.. .#... .#... .#... ..#.. ...#."),
            [')'] = G(".#... ..#.. ...#. ...#. ...#. ..#.. .#..."),
            ['['] = G(".###. .#... .#... .#... .#... .#... .###."),
            [']'] = G(".###. ...#. ...#. ...#. ...#. ...#. .###."),
            ['/'] = G("..... ....# ...#. ..#.. .#... #.... ....."),
            ['%'] = G("##... ##..# ...#. ..#.. .#... #..## ...##"),
            ['!'] = G("..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.."),
            ['?'] = G(".###. #...# ....# ...#. ..#.. ..... ..#.."),
            ['\''] = G("..#.. ..#.. .#... ..... ..... ..... ....."),
            ['"'] = G(".#.#. .#.#. ..... ..... ..... ..... ....."),
            ['_'] = G("..... ..... ..... ..... ..... ..... #####"),
            ['<'] = G("...#. ..#.. .#... #.... .#... ..#.. ...#."),
            ['>'] = G(".#... ..#.. ...#. ....# ...#. ..#.. .#..."),
            ['*'] = G("..... ..#.. #.#.# .###. #.#.# ..#.. ....."),
            ['#'] = G(".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#."),
            ['|'] = G("..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.."),
            ['\u00D7'] = G("..... #...# .#.#. ..#.. .#.#. #...# ....."),   // ×
            ['\u03B7'] = G("..... ..... ####. #...# #...# #...# ....#"),   // η
        };
    }
}
