using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;

namespace BlockDance.Cli;

/// <summary>
/// Step progress on standard error: a redrawn bar on a terminal, otherwise a line every tenth of the run (so logs stay
/// readable).
/// </summary>
public sealed class ProgressBar(TextWriter err, bool interactive, string label) : IProgress<GenerationProgress>
{
    private double _elapsed;
    private int _lastDecile = -1;

    /// <summary>Draws the step just finished.</summary>
    public void Report(GenerationProgress value)
    {
        var (step, steps, kind, milliseconds) = value;
        _elapsed += milliseconds;
        int done = step + 1;
        double eta = _elapsed / done * (steps - done) / 1000;
        if (interactive)
        {
            const int width = 30;
            int filled = done * width / steps;
            err.Write($"\r{label} [{new string('#', filled)}{new string('.', width - filled)}] {done}/{steps} {StepPlan.Letter(kind)} {milliseconds,8:F1} ms/step, ~{eta:F0} s left ");
            if (done == steps)
                err.WriteLine();
            return;
        }
        int decile = done * 10 / steps;
        if (decile != _lastDecile || done == steps)
        {
            _lastDecile = decile;
            err.WriteLine($"{label} step {done}/{steps} ({_elapsed / 1000:F1} s, ~{eta:F0} s left)");
        }
    }

    /// <summary>A bar, or null when <paramref name="quiet"/>.</summary>
    public static ProgressBar? Unless(bool quiet, Console2 console, string label) => quiet ? null : new ProgressBar(console.Err, console.Interactive, label);
}
