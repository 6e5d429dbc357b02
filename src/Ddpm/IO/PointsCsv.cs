using System.Globalization;

namespace Ddpm.IO;

/// <summary>2-D points as CSV: header <c>x,y</c>, one point per line, invariant culture, shortest round-trip floats.</summary>
public static class PointsCsv
{
    public static void Write(string path, float[] xs, float[] ys)
    {
        ArgumentNullException.ThrowIfNull(xs);
        ArgumentNullException.ThrowIfNull(ys);
        if (xs.Length != ys.Length)
            throw new ArgumentException($"Got {xs.Length} x values but {ys.Length} y values.", nameof(ys));
        AtomicFile.WriteText(path, writer =>
        {
            writer.WriteLine("x,y");
            for (int i = 0; i < xs.Length; i++)
            {
                writer.Write(xs[i].ToString(CultureInfo.InvariantCulture));
                writer.Write(',');
                writer.WriteLine(ys[i].ToString(CultureInfo.InvariantCulture));
            }
        });
    }

    /// <summary>Reads a file written by <see cref="Write"/>.</summary>
    public static (float[] Xs, float[] Ys) Read(string path)
    {
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0 || lines[0].Trim() != "x,y")
            throw new FormatException($"'{path}' does not start with the header 'x,y'.");
        var xs = new List<float>();
        var ys = new List<float>();
        for (int i = 1; i < lines.Length; i++)
        {
            if (lines[i].Length == 0) continue;
            var parts = lines[i].Split(',');
            if (parts.Length != 2)
                throw new FormatException($"'{path}' line {i + 1}: expected 'x,y', got '{lines[i]}'.");
            xs.Add(float.Parse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture));
            ys.Add(float.Parse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture));
        }
        return (xs.ToArray(), ys.ToArray());
    }
}
