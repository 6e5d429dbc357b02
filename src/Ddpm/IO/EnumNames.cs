namespace Ddpm.IO;

/// <summary>How enum values are written in files, reports and on the command line.</summary>
public static class EnumNames
{
    /// <summary>FixedSmall → fixed-small, X0 → x0; a [Description] on the member overrides it (DpmSolver2M → dpm++2m).</summary>
    public static string Kebab<T>(T value) where T : struct, Enum
    {
        var member = typeof(T).GetField(value.ToString());
        if (member?.GetCustomAttributes(typeof(System.ComponentModel.DescriptionAttribute), false) is [System.ComponentModel.DescriptionAttribute d, ..])
            return d.Description;
        return System.Text.RegularExpressions.Regex.Replace(value.ToString(), "(?<=[a-z0-9])([A-Z])", "-$1").ToLowerInvariant();
    }
}
