using Ddpm.IO;

namespace Ddpm.Tests.Cli;

public class AtomicFileTests
{
    [Fact]
    public void WriteAllText_CreatesTheDirectory_AndLeavesNoTemporaryFile()
    {
        using var temp = new TempDirectory();
        string path = temp.Combine("a", "b", "file.txt");

        AtomicFile.WriteAllText(path, "hello\n");

        Assert.Equal("hello\n", File.ReadAllText(path));
        Assert.Equal(new[] { path }, Directory.GetFileSystemEntries(temp.Combine("a", "b")));
        // UTF-8 without a byte-order mark.
        Assert.Equal((byte)'h', File.ReadAllBytes(path)[0]);
    }

    [Fact]
    public void Write_ReplacesAnExistingFile()
    {
        using var temp = new TempDirectory();
        string path = temp.Combine("file.bin");
        File.WriteAllBytes(path, new byte[] { 1, 2, 3, 4, 5 });

        AtomicFile.Write(path, s => s.Write(new byte[] { 9, 8 }));

        Assert.Equal(new byte[] { 9, 8 }, File.ReadAllBytes(path));
        Assert.Single(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void ExceptionInsideTheWriter_LeavesTheOldFileIntact_AndNoTemporaryFile()
    {
        using var temp = new TempDirectory();
        string path = temp.Combine("file.txt");
        File.WriteAllText(path, "old content");

        var e = Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s =>
        {
            s.Write(new byte[] { 1, 2, 3 });
            throw new InvalidOperationException("writer failed");
        }));

        Assert.Equal("writer failed", e.Message);
        Assert.Equal("old content", File.ReadAllText(path));
        Assert.Equal(new[] { path }, Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void ExceptionInsideTheWriter_CreatesNoFile()
    {
        using var temp = new TempDirectory();
        string path = temp.Combine("new.txt");

        Assert.Throws<IOException>(() => AtomicFile.WriteText(path, w =>
        {
            w.Write("partial");
            throw new IOException("simulated");
        }));

        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void PathThatIsADirectory_IsRejected()
    {
        using var temp = new TempDirectory();
        Assert.Throws<ArgumentException>(() => AtomicFile.WriteAllText(temp.Path, "x"));
        Assert.Throws<ArgumentException>(() => AtomicFile.WriteAllText(" ", "x"));
    }
}
