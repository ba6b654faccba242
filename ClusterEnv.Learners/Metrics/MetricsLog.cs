using System.Diagnostics;
using System.Globalization;

namespace ClusterEnv.Learners.Metrics;

/// <summary>
/// A run's metrics, bounded: <c>metrics.csv</c> and TensorBoard events get one point per <see cref="Interval"/> (and
/// the last one on <see cref="Dispose"/>), not one per update, so a long run's logs stay small (a learner can make
/// hundreds of updates a second). Between points, episodes are pooled: <c>charts/episodes</c> counts those that
/// ended since the previous point and <c>charts/episodic_return</c> / <c>charts/episodic_length</c> are their means,
/// written only when some ended. A value that is not a number (no KL measured yet, no episode) is left out of the
/// events and left empty in the CSV, so no plot has NaN points. A resumed run continues the run's own CSV.
/// </summary>
/// <example>
/// <code>
/// using var log = new MetricsLog("runs/CartPole-v1__impala__1__1733300000", TimeSpan.FromSeconds(0.5), append: false);
/// log.Record(metrics.Scalars(), metrics.GlobalStep); // per update; writes at most twice a second
/// </code>
/// </example>
public sealed class MetricsLog : IDisposable
{
    private const string Episodes = "charts/episodes", Return = "charts/episodic_return", Length = "charts/episodic_length";
    private readonly string _csvPath;
    private readonly bool _append;
    private readonly Func<IEnumerable<(string Tag, double Value)>>? _extra;
    private readonly TensorBoardWriter _events;
    private readonly long _intervalTicks;
    private StreamWriter? _csv;
    private (string Tag, double Value)[]? _pending;
    private long _pendingStep, _lastWrite;
    private double _episodes, _returnSum, _lengthSum;

    /// <param name="runDirectory">The run folder (created if needed): <c>metrics.csv</c> and an event file go there.</param>
    /// <param name="interval">At most one point per interval; <see cref="TimeSpan.Zero"/>: every record.</param>
    /// <param name="append">Continue the folder's <c>metrics.csv</c> (a resumed run) instead of starting it anew.</param>
    /// <param name="extra">Scalars added to every point (e.g. workers lost and replaced), read when the point is written.</param>
    public MetricsLog(string runDirectory, TimeSpan interval, bool append, Func<IEnumerable<(string Tag, double Value)>>? extra = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(runDirectory);
        ArgumentOutOfRangeException.ThrowIfLessThan(interval, TimeSpan.Zero);
        Directory.CreateDirectory(runDirectory);
        _csvPath = System.IO.Path.Combine(runDirectory, "metrics.csv");
        _append = append;
        _extra = extra;
        Interval = interval;
        _intervalTicks = (long)(interval.TotalSeconds * Stopwatch.Frequency);
        _events = new TensorBoardWriter(runDirectory);
    }

    /// <summary>The least time between two points.</summary>
    public TimeSpan Interval { get; }

    /// <summary>The CSV file.</summary>
    public string CsvPath => _csvPath;

    /// <summary>The TensorBoard event file.</summary>
    public string EventsPath => _events.Path;

    /// <summary>Points written so far.</summary>
    public long Points { get; private set; }

    /// <summary>One update's scalars; written now if the interval has passed since the last point, else kept as the next point's values.</summary>
    public void Record(IReadOnlyList<(string Tag, double Value)> scalars, long step)
    {
        ArgumentNullException.ThrowIfNull(scalars);
        foreach (var (tag, value) in scalars)
        {
            if (tag == Episodes && value > 0)
            {
                _episodes += value;
                _returnSum += value * Lookup(scalars, Return);
                _lengthSum += value * Lookup(scalars, Length);
            }
        }
        _pending = scalars as (string, double)[] ?? scalars.ToArray();
        _pendingStep = step;
        long now = Stopwatch.GetTimestamp();
        if (Points == 0 || now - _lastWrite >= _intervalTicks) Write(now);
    }

    /// <summary>Writes the kept values, if any, as a point now.</summary>
    public void Flush()
    {
        if (_pending is not null) Write(Stopwatch.GetTimestamp());
        _csv?.Flush();
        _events.Flush();
    }

    private static double Lookup(IReadOnlyList<(string Tag, double Value)> scalars, string tag)
    {
        foreach (var (t, v) in scalars) if (t == tag) return v;
        return double.NaN;
    }

    private void Write(long now)
    {
        var point = _pending!.Select(s => s.Tag switch
        {
            Episodes => (Tag: s.Tag, Value: _episodes),
            Return => (Tag: s.Tag, Value: _episodes > 0 ? _returnSum / _episodes : double.NaN),
            Length => (Tag: s.Tag, Value: _episodes > 0 ? _lengthSum / _episodes : double.NaN),
            _ => s,
        }).Concat(_extra?.Invoke() ?? []).ToArray();
        _csv ??= OpenCsv(MetricsCsv.Header(point));
        _csv.WriteLine(string.Join(",", point.Select(s => double.IsFinite(s.Value) ? s.Value.ToString("R", CultureInfo.InvariantCulture) : "")));
        _events.AddScalars(point.Where(s => double.IsFinite(s.Value)), _pendingStep);
        // On disk at once: a learner that crashes (and is restarted from its checkpoint) keeps every point it wrote.
        _csv.Flush();
        _events.Flush();
        (_pending, _lastWrite, _episodes, _returnSum, _lengthSum) = (null, now, 0, 0, 0);
        Points++;
    }

    // A new file with its header, or (resuming) the run's own file continued after its last row. A file with other
    // columns (written by another version) is kept under a new name rather than mixed with these rows.
    private StreamWriter OpenCsv(string header)
    {
        bool continuing = _append && File.Exists(_csvPath) && new FileInfo(_csvPath).Length > 0;
        if (continuing)
        {
            string? existing;
            using (var reader = new StreamReader(_csvPath)) existing = reader.ReadLine();
            if (existing != header)
            {
                string kept = System.IO.Path.ChangeExtension(_csvPath, $".before-{DateTime.UtcNow:yyyyMMddTHHmmss}.csv");
                File.Move(_csvPath, kept);
                Console.Error.WriteLine($"{_csvPath} has other columns (an earlier version wrote it); it is kept as {kept} and this run starts a new one.");
                continuing = false;
            }
        }
        var writer = new StreamWriter(_csvPath, append: continuing);
        if (!continuing) writer.WriteLine(header);
        return writer;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_pending is not null) Write(Stopwatch.GetTimestamp());
        _csv?.Dispose();
        _events.Dispose();
    }
}
