using System.Text.Json;
using Ddpm.Data;
using Ddpm.Generation;
using Ddpm.IO;
using Ddpm.Training;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Ddpm.Web;

/// <summary>
/// A request the API refuses: HTTP <paramref name="status"/> (400, 404, 409, 413, 422, 429) with a one-line
/// <paramref name="detail"/> that names the problem and the fix, and the request <paramref name="field"/> at fault
/// (camelCase, as the JSON spells it) when one is. Written as <c>application/problem+json</c> (RFC 9457).
/// </summary>
public sealed class ApiProblemException(int status, string? field, string detail, int? retryAfterSeconds = null) : Exception(detail)
{
    public int Status { get; } = status;
    public string? Field { get; } = field;
    public int? RetryAfterSeconds { get; } = retryAfterSeconds;
}

/// <summary>Turns every failure of a request into a problem document: never a stack trace, never a 5xx for a bad request.</summary>
public static class ApiProblems
{
    public const string ContentType = "application/problem+json";

    /// <summary>
    /// The status, field and detail for an exception: the library's request errors are 400 (their field in camelCase),
    /// unreadable checkpoints and data sets 422, anything unexpected 500 with a generic detail (the log has the rest).
    /// </summary>
    public static ApiProblemException From(Exception exception) => exception switch
    {
        ApiProblemException problem => problem,
        InvalidRequestException invalid => new ApiProblemException(StatusCodes.Status400BadRequest, CamelCase(invalid.Field), invalid.Message),
        CheckpointException checkpoint => new ApiProblemException(StatusCodes.Status422UnprocessableEntity, "model", checkpoint.Message),
        DatasetException dataset => new ApiProblemException(StatusCodes.Status422UnprocessableEntity, "image", dataset.Message),
        CorruptFileException corrupt => new ApiProblemException(StatusCodes.Status422UnprocessableEntity, null, corrupt.Message),
        JsonException json when UnmappedProperty(json.Message) is { } name => new ApiProblemException(StatusCodes.Status400BadRequest, name,
            $"unknown field '{name}'; check its spelling against the API in the README (fields are camelCase, e.g. guidanceScale)."),
        JsonException json => new ApiProblemException(StatusCodes.Status400BadRequest, JsonField(json.Path),
            $"the request body is not the JSON this endpoint takes{(json.Path is { Length: > 1 } ? $" (at {json.Path})" : "")}: {FirstSentence(json.Message)}"),
        BadHttpRequestException bad => new ApiProblemException(bad.StatusCode, null, FirstSentence(bad.Message)),
        _ => new ApiProblemException(StatusCodes.Status500InternalServerError, null, "the server failed on this request; its log says why."),
    };

    /// <summary>Writes <paramref name="problem"/> as the response (with Retry-After for 429).</summary>
    public static async Task WriteAsync(HttpContext context, ApiProblemException problem)
    {
        var response = context.Response;
        response.Clear();
        response.StatusCode = problem.Status;
        if (problem.RetryAfterSeconds is int seconds) response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        response.ContentType = ContentType;
        var body = new Dictionary<string, object?>
        {
            ["type"] = "about:blank",
            ["title"] = Title(problem.Status),
            ["status"] = problem.Status,
            ["detail"] = OneLine(problem.Message),
        };
        if (problem.Field is not null) body["field"] = problem.Field;
        await response.WriteAsync(JsonSerializer.Serialize(body, ApiJson.Options), context.RequestAborted);
    }

    /// <summary>
    /// Middleware: runs the rest of the pipeline and answers any exception with a problem document. A request whose
    /// client went away is not answered.
    /// </summary>
    public static async Task Handle(HttpContext context, RequestDelegate next, ILogger logger)
    {
        try
        {
            await next(context);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client left; nobody reads an answer.
        }
        catch (Exception e)
        {
            var problem = From(e);
            if (problem.Status >= 500) logger.LogError(e, "{Method} {Path} failed", context.Request.Method, context.Request.Path);
            if (context.Response.HasStarted)
            {
                context.Abort();
                return;
            }
            await WriteAsync(context, problem);
        }
    }

    public static string Title(int status) => status switch
    {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };

    /// <summary>guidance-scale → guidanceScale: the library names fields as the command line does, the JSON in camelCase.</summary>
    public static string? CamelCase(string? kebab)
    {
        if (kebab is null) return null;
        var parts = kebab.Split('-', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) return kebab;
        return parts[0] + string.Concat(parts.Skip(1).Select(p => char.ToUpperInvariant(p[0]) + p[1..]));
    }

    /// <summary>$.guidanceScale → guidanceScale; $.t[2] → t.</summary>
    private static string? JsonField(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$") return null;
        string field = path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');
        int end = field.IndexOfAny(new[] { '.', '[' });
        return end > 0 ? field[..end] : field;
    }

    /// <summary>The property a JSON object had that the request type lacks (System.Text.Json's message names it), or null.</summary>
    private static string? UnmappedProperty(string message)
    {
        var match = System.Text.RegularExpressions.Regex.Match(message, @"The JSON property '([^']{1,64})' could not be mapped");
        return match.Success ? match.Groups[1].Value : null;
    }

    private static string FirstSentence(string message)
    {
        string line = OneLine(message);
        int path = line.IndexOf(" Path: ", StringComparison.Ordinal);
        return path > 0 ? line[..path] : line;
    }

    private static string OneLine(string text) => System.Text.RegularExpressions.Regex.Replace(text, @"\s*[\r\n]+\s*", " ").Trim();
}
