namespace Ddpm.Data;

/// <summary>
/// A dataset could not be found or read. The message is one line that names the file or directory, says what is
/// wrong and how to fix it, so that a CLI can print it as is.
/// </summary>
public sealed class DatasetException : Exception
{
    public DatasetException(string message, Exception? innerException = null) : base(message, innerException) { }
}
