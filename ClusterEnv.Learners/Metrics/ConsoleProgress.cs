using System.Globalization;

namespace ClusterEnv.Learners.Metrics;

/// <summary>
/// Progress of a long run on one line: on a terminal the line is rewritten in place (at most 10 times a second);
/// when the output is redirected (CI logs, files, pipes) a plain line is written every <c>plainInterval</c> instead,
/// so logs stay readable. Shows steps done of the total, SPS, an ETA and whatever the caller adds.
/// </summary>
/// <example>
/// <code>
/// var progress = ConsoleProgress.ForStandardOutput();
/// progress.Report(step, total, sps, $"mean-20 {meanReturn:F1}");
/// progress.Complete();
/// </code>
/// </example>
public sealed class ConsoleProgress(TextWriter output, bool inPlace, TimeSpan plainInterval)
{
    private static readonly TimeSpan InPlaceInterval = TimeSpan.FromMilliseconds(100);
    private readonly System.Diagnostics.Stopwatch _since = System.Diagnostics.Stopwatch.StartNew();
    private TimeSpan _last = TimeSpan.MinValue;
    private int _width;
    private (long Step, long Total, double Sps, string? Details)? _unwritten; // the latest state, when it is not on screen yet

    /// <summary>In place on a terminal, a line every 5 s when standard output is redirected.</summary>
    public static ConsoleProgress ForStandardOutput() => new(Console.Out, !Console.IsOutputRedirected, TimeSpan.FromSeconds(5));

    /// <summary>In place on a terminal, a line every 5 s when standard error is redirected.</summary>
    public static ConsoleProgress ForStandardError() => new(Console.Error, !Console.IsErrorRedirected, TimeSpan.FromSeconds(5));

    /// <summary>The line for this state (no I/O): steps of total with the percentage, SPS, ETA, then <paramref name="details"/>.</summary>
    public static string Format(long step, long total, double sps, string? details)
    {
        var c = CultureInfo.InvariantCulture;
        string eta = sps > 0 && total > step ? Duration(TimeSpan.FromSeconds((total - step) / sps)) : "-";
        string head = total > 0
            ? string.Format(c, "step {0:N0}/{1:N0} ({2:F1}%)  SPS {3:N0}  ETA {4}", step, total, 100.0 * step / total, sps, eta)
            : string.Format(c, "step {0:N0}  SPS {1:N0}", step, sps);
        return string.IsNullOrEmpty(details) ? head : head + "  " + details;
    }

    /// <summary>Reports the current state; writes only when it is time to (see the class remarks). The last state always shows after <see cref="Complete"/>.</summary>
    public void Report(long step, long total, double sps, string? details = null)
    {
        var now = _since.Elapsed;
        if (_last != TimeSpan.MinValue && now - _last < (inPlace ? InPlaceInterval : plainInterval) && step < total)
        {
            _unwritten = (step, total, sps, details);
            return;
        }
        Write(Format(step, total, sps, details));
        _last = now;
    }

    /// <summary>Shows the latest state if it is not shown yet, and ends the in-place line (so what follows starts on a new line).</summary>
    public void Complete()
    {
        if (_unwritten is { } u) Write(Format(u.Step, u.Total, u.Sps, u.Details));
        if (inPlace && _width > 0) output.WriteLine();
        _width = 0;
    }

    private void Write(string line)
    {
        _unwritten = null;
        if (!inPlace)
        {
            output.WriteLine(line);
            return;
        }
        int max = TerminalWidth() - 1;
        if (line.Length > max) line = line[..max];
        output.Write('\r' + line + new string(' ', Math.Max(0, _width - line.Length)));
        output.Flush();
        _width = line.Length;
    }

    private static int TerminalWidth()
    {
        try { return Console.WindowWidth > 20 ? Console.WindowWidth : 120; }
        catch (IOException) { return 120; }
    }

    private static string Duration(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}" : $"{t.Minutes}:{t.Seconds:D2}";
}
