namespace Ddpm.Generation;

/// <summary>
/// Where a long job is: <see cref="Done"/> of <see cref="Total"/> units (network calls, images) of the phase
/// <see cref="Phase"/> (a phrase such as "DDIM (eta 0), 50 steps, 64 samples"). A job reports its phases in order;
/// a front end shows one progress bar per phase.
/// </summary>
public readonly record struct JobProgress(string Phase, long Done, long Total);

/// <summary>An <see cref="IProgress{T}"/> that calls its handler on the reporting thread (Progress&lt;T&gt; would post to the thread pool).</summary>
public sealed class InlineProgress<T>(Action<T> handler) : IProgress<T>
{
    public void Report(T value) => handler(value);
}
