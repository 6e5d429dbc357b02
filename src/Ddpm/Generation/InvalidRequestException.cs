namespace Ddpm.Generation;

/// <summary>
/// A request that cannot be carried out as given: a class the model does not have, a classifier for other images, an
/// image file that is not a picture. The message is one line that names the problem and the fix; fields are written
/// as the command line spells them (<c>--class</c>), and <see cref="Field"/> names the field (<c>class</c>) for
/// front ends that spell them otherwise. Front ends report it as a usage error (exit code 2, HTTP 400).
/// </summary>
public sealed class InvalidRequestException(string? field, string message) : Exception(message)
{
    /// <summary>The request field at fault, in kebab case (<c>guidance-scale</c>), or null when no single field is.</summary>
    public string? Field { get; } = field;

    /// <summary>A library <see cref="ArgumentException"/> as a request error on <paramref name="field"/>, without its " (Parameter '…')" suffix.</summary>
    public static InvalidRequestException FromArgument(string field, ArgumentException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        string suffix = $" (Parameter '{e.ParamName}')";
        string message = e.ParamName is not null && e.Message.EndsWith(suffix, StringComparison.Ordinal) ? e.Message[..^suffix.Length] : e.Message;
        return new InvalidRequestException(field, message);
    }
}
