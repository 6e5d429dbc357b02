using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ddpm.Training;

namespace Ddpm.Interop;

/// <summary>
/// Typed reads of a diffusers config.json with diffusers' defaults for missing keys; a value of the wrong type, or one we
/// cannot express, is a one-line <see cref="CheckpointException"/> naming the file, the field and the value.
/// </summary>
internal sealed class ConfigReader(JsonObject json, string source)
{
    /// <summary>Parses <paramref name="path"/> as a JSON object.</summary>
    public static JsonObject Parse(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                   ?? throw new CheckpointException($"{path} is not a JSON object: the diffusers config is damaged; use another checkpoint.");
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path} is not valid JSON ({e.Message}): the diffusers config is damaged; use another checkpoint.", e);
        }
    }

    public string Source => source;

    public bool Has(string key) => json.ContainsKey(key);

    public bool IsNull(string key) => json.TryGetPropertyValue(key, out var node) && node is null;

    /// <summary>The value as it appears in the file, for messages.</summary>
    public string Raw(string key) => json.TryGetPropertyValue(key, out var node) ? node?.ToJsonString() ?? "null" : "(missing)";

    public CheckpointException Unsupported(string key, object? value, string why) =>
        new($"{source}: {key} = {Format(value)} is not supported ({why}).");

    public string String(string key, string ifMissing) => Get(key, ifMissing, n => n.GetValue<string>(), "a string");

    public bool Bool(string key, bool ifMissing) => Get(key, ifMissing, n => n.GetValue<bool>(), "true or false");

    public double Double(string key, double ifMissing) => Get(key, ifMissing, n => n.GetValue<double>(), "a number");

    public int Int(string key, int ifMissing) => Get(key, ifMissing, ToInt, "an integer");

    /// <summary>An integer or null; <paramref name="ifMissing"/> when the key is absent.</summary>
    public int? NullableInt(string key, int? ifMissing = null) =>
        !json.TryGetPropertyValue(key, out var node) ? ifMissing : node is null ? null : Convert(key, node, ToInt, "an integer or null");

    public int[] IntList(string key, int[] ifMissing) => Get(key, ifMissing, n => n.AsArray().Select(e => ToInt(e!)).ToArray(), "a list of integers");

    public string[] StringList(string key, string[] ifMissing) => Get(key, ifMissing, n => n.AsArray().Select(e => e!.GetValue<string>()).ToArray(), "a list of strings");

    /// <summary>sample_size: an integer or a square [height, width].</summary>
    public int SampleSize()
    {
        if (!json.TryGetPropertyValue("sample_size", out var node) || node is null)
            throw new CheckpointException($"{source} has no sample_size: the image size is unknown; add \"sample_size\": N.");
        if (node is JsonArray)
        {
            var sizes = IntList("sample_size", Array.Empty<int>());
            if (sizes.Length != 2 || sizes[0] != sizes[1]) throw Unsupported("sample_size", Raw("sample_size"), "only square images are supported");
            return sizes[0];
        }
        return Int("sample_size", 0);
    }

    /// <summary>The key must be absent or hold <paramref name="expected"/>.</summary>
    public void Require<T>(string key, T expected)
    {
        if (!json.TryGetPropertyValue(key, out var node)) return;
        string why = $"only {Format(expected)} is supported";
        if (node is null) throw Unsupported(key, null, why);
        var value = Convert(key, node, n => n.GetValue<T>(), $"{Format(expected)}");
        if (!EqualityComparer<T>.Default.Equals(value, expected)) throw Unsupported(key, value, why);
    }

    /// <summary>The key must be absent or null.</summary>
    public void RequireNull(string key)
    {
        if (json.TryGetPropertyValue(key, out var node) && node is not null)
            throw Unsupported(key, node.ToJsonString(), "only null is supported");
    }

    private T Get<T>(string key, T ifMissing, Func<JsonNode, T> read, string expected) =>
        json.TryGetPropertyValue(key, out var node)
            ? node is null ? throw new CheckpointException($"{source}: {key} is null but must be {expected}.") : Convert(key, node, read, expected)
            : ifMissing;

    private T Convert<T>(string key, JsonNode node, Func<JsonNode, T> read, string expected)
    {
        try
        {
            return read(node);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException or NullReferenceException)
        {
            throw new CheckpointException($"{source}: {key} = {node.ToJsonString()} must be {expected}.");
        }
    }

    private static int ToInt(JsonNode node)
    {
        double value = node.GetValue<double>();
        return value == Math.Floor(value) && Math.Abs(value) <= int.MaxValue ? (int)value : throw new FormatException();
    }

    private static string Format(object? value) => value switch
    {
        null => "null",
        string s => s.StartsWith('[') || s.StartsWith('"') ? s : $"\"{s}\"",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "null",
    };
}
