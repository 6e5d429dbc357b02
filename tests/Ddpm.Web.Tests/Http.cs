using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using SkiaSharp;

namespace Ddpm.Web.Tests;

/// <summary>Small helpers for calling the API from tests.</summary>
public static class Http
{
    public static Task<HttpResponseMessage> PostJson(this HttpClient client, string path, object body) =>
        client.PostAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));

    public static Task<HttpResponseMessage> PostRaw(this HttpClient client, string path, string body, string contentType = "application/json") =>
        client.PostAsync(path, new StringContent(body, Encoding.UTF8, contentType));

    public static async Task<JsonElement> Json(this HttpResponseMessage response)
    {
        string text = await response.Content.ReadAsStringAsync();
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Starts a sampling job and returns its id (the answer must be 202).</summary>
    public static async Task<string> StartJob(this HttpClient client, object body)
    {
        using var response = await client.PostJson("/api/samples", body);
        var json = await response.Json();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {json}");
        return json.GetProperty("id").GetString()!;
    }

    /// <summary>Polls the job until <paramref name="until"/> holds for its status document (at most <paramref name="seconds"/>).</summary>
    public static async Task<JsonElement> WaitFor(this HttpClient client, string id, Func<JsonElement, bool> until, double seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonElement status;
        while (true)
        {
            using var response = await client.GetAsync($"/api/samples/{id}");
            status = await response.Json();
            if (until(status)) return status;
            if (DateTime.UtcNow > deadline) break;
            await Task.Delay(20);
        }
        throw new TimeoutException($"job {id} did not reach the expected state in {seconds} s; last: {status}");
    }

    public static Task<JsonElement> WaitUntilFinished(this HttpClient client, string id, double seconds = 60) =>
        client.WaitFor(id, s => s.GetProperty("status").GetString() is "done" or "failed" or "cancelled", seconds);

    /// <summary>Asserts a problem document: the status, the field it names, a one-line detail and no stack trace.</summary>
    public static async Task<JsonElement> AssertProblem(HttpResponseMessage response, int status, string? field)
    {
        string text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var json = JsonDocument.Parse(text).RootElement.Clone();
        Assert.Equal(status, json.GetProperty("status").GetInt32());
        string detail = json.GetProperty("detail").GetString()!;
        Assert.False(string.IsNullOrWhiteSpace(detail));
        Assert.DoesNotContain("\n", detail);
        Assert.DoesNotContain("   at ", text);
        Assert.DoesNotContain("Exception", detail);
        if (field is null) Assert.False(json.TryGetProperty("field", out _), $"unexpected field in {text}");
        else Assert.Equal(field, json.GetProperty("field").GetString());
        return json;
    }

    public static SKBitmap Png(byte[] bytes)
    {
        var bitmap = SKBitmap.Decode(bytes);
        Assert.NotNull(bitmap);
        return bitmap;
    }

    /// <summary>A PNG data URL of a <paramref name="width"/>×<paramref name="height"/> picture of one colour.</summary>
    public static string PngDataUrl(int width, int height, SKColor colour)
    {
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        bitmap.Erase(colour);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return "data:image/png;base64," + Convert.ToBase64String(data.ToArray());
    }

    /// <summary>The server-sent events of a stream read to its end: (event name, data JSON).</summary>
    public static async Task<List<(string Name, JsonElement Data)>> ReadEvents(Stream stream, CancellationToken cancellationToken = default)
    {
        var events = new List<(string, JsonElement)>();
        using var reader = new StreamReader(stream);
        string? name = null;
        string? line;
        while ((line = await reader.ReadLineAsync(cancellationToken)) is not null)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) name = line["event: ".Length..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && name is not null)
            {
                events.Add((name, JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone()));
                name = null;
            }
        }
        return events;
    }

    /// <summary>Waits (at most 20 s) until <paramref name="condition"/> holds.</summary>
    public static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for the server");
            await Task.Delay(10);
        }
    }

    public static MediaTypeHeaderValue? ContentType(this HttpResponseMessage response) => response.Content.Headers.ContentType;
}
