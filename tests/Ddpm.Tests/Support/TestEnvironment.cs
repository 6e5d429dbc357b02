using System.Runtime.CompilerServices;

namespace Ddpm.Tests.Support;

/// <summary>
/// The variables that change what the library and the command line do are cleared before any test runs, so a
/// developer's shell (DDPM_DEBUG=1 adds stack traces to error output, DDPM_FONT picks another typeface for the figures)
/// cannot change an outcome; a test that depends on one sets it itself. Child processes inherit the cleared values.
/// </summary>
internal static class TestEnvironment
{
    public static readonly string[] ClearedVariables = { "DDPM_DEBUG", "DDPM_FONT", "DDPM_NO_BF16" };

#pragma warning disable CA2255 // a module initializer is the one hook that runs before every test, whatever the order
    [ModuleInitializer]
    internal static void Clear()
    {
        foreach (var name in ClearedVariables) Environment.SetEnvironmentVariable(name, null);
    }
#pragma warning restore CA2255
}
