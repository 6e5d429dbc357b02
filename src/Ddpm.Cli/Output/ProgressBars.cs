using Ddpm.Generation;
using Spectre.Console;

namespace Ddpm.Cli.Output;

/// <summary>Shows a library job's <see cref="JobProgress"/> as Spectre.Console progress bars, one per phase.</summary>
public static class ProgressBars
{
    public static T Run<T>(CliContext context, Func<IProgress<JobProgress>, T> work)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(work);
        T result = default!;
        context.Console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                ProgressTask? current = null;
                string? phase = null;
                void Finish()
                {
                    if (current is null) return;
                    current.Value = current.MaxValue;
                    current.StopTask();
                }
                var progress = new InlineProgress<JobProgress>(p =>
                {
                    if (p.Phase != phase)
                    {
                        Finish();
                        phase = p.Phase;
                        current = ctx.AddTask(Markup.Escape(p.Phase), maxValue: Math.Max(1, p.Total));
                    }
                    current!.MaxValue = Math.Max(1, p.Total);
                    current.Value = p.Done;
                });
                result = work(progress);
                Finish();
            });
        return result;
    }
}
