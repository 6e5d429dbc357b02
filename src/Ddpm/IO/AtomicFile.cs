using System.Text;

namespace Ddpm.IO;

/// <summary>
/// Writes files so that readers see either the old content or the complete new content, never a half-written
/// file: the content goes to a temporary file in the same directory, is flushed to disk, and then replaces the
/// target with one rename. If writing fails the temporary file is deleted and the old file is left as it was.
/// Every file the project writes (images, CSVs, checkpoints, reports) goes through here.
/// </summary>
public static class AtomicFile
{
    private const string TempSuffix = ".tmp";

    /// <summary>
    /// Creates or replaces <paramref name="path"/> with what <paramref name="write"/> writes to the stream it is
    /// given. Creates the parent directory if needed. The stream must not be disposed by the callback (it may be).
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        string target = TargetPath(path);
        string directory = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(directory);
        string temp = Path.Combine(directory, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}{TempSuffix}");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                write(stream);
                if (stream.CanWrite)
                    stream.Flush(flushToDisk: true);
            }
            File.Move(temp, target, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 without a byte-order mark.</summary>
    public static void WriteAllText(string path, string text, Encoding? encoding = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var enc = encoding ?? new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, enc, bufferSize: 1 << 16, leaveOpen: true);
            writer.Write(text);
        });
    }

    /// <summary>Writes the text produced by <paramref name="write"/> (UTF-8 without a byte-order mark, "\n" line ends).</summary>
    public static void WriteText(string path, Action<TextWriter> write, Encoding? encoding = null)
    {
        ArgumentNullException.ThrowIfNull(write);
        var enc = encoding ?? new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, enc, bufferSize: 1 << 16, leaveOpen: true) { NewLine = "\n" };
            write(writer);
        });
    }

    /// <summary>Writes <paramref name="bytes"/>.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        // A span cannot be captured by the callback; copy once.
        var copy = bytes.ToArray();
        Write(path, stream => stream.Write(copy, 0, copy.Length));
    }

    private static string TargetPath(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        if (string.IsNullOrEmpty(Path.GetFileName(full)))
            throw new ArgumentException($"'{path}' names a directory, not a file.", nameof(path));
        if (Directory.Exists(full))
            throw new ArgumentException($"'{path}' is an existing directory; give a file path.", nameof(path));
        return full;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
