using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using ClusterEnv.Cluster;
using ClusterEnv.Learners.Metrics;

/// <summary>
/// What a run leaves in its folder besides the checkpoints: <c>config.json</c> (every option, as given or defaulted),
/// <c>metrics.csv</c> and TensorBoard events (bounded by <c>--log-every</c>), and <c>summary.txt</c> (how it ended and
/// what was lost), written on every exit path. The default folder is CleanRL's <c>runs/ENV__ALGO__SEED__UNIXTIME</c>.
/// </summary>
internal static class RunFolder
{
    /// <summary>CleanRL's run name: <c>runs/CartPole-v1__impala__1__1733300000</c>, so reruns never mix their files.</summary>
    public static string DefaultPath(string envId, string algo, int seed) =>
        Path.Combine("runs", $"{envId.Replace('/', '_').Replace(':', '_')}__{algo}__{seed}__{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}");

    /// <summary>The run folder a --resume path belongs to: a run folder itself, the parent of its checkpoints/, or the grandparent of one checkpoint-N folder.</summary>
    public static string OfResume(string resume)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(resume));
        string name = Path.GetFileName(full);
        if (name.StartsWith("checkpoint-", StringComparison.Ordinal)) full = Path.GetDirectoryName(full)!;
        if (Path.GetFileName(full) == "checkpoints") full = Path.GetDirectoryName(full)!;
        return full;
    }

    /// <summary>Writes <c>config.json</c>: every option of <paramref name="root"/> with its value (given or default), and the command line.</summary>
    /// <paramref name="effective"/> holds the values the run settled on where an option's default depends on others (envs, steps).
    public static void WriteConfig(string folder, RootCommand root, ParseResult parsed, IReadOnlyList<string> args, IReadOnlyDictionary<string, object?> effective)
    {
        var options = new SortedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var option in root.Options)
        {
            if (option.Name is "--help" or "--version" or "-h" or "-?") continue;
            if (parsed.GetResult(option) is not OptionResult result) continue;
            object? value = result.GetValueOrDefault<object?>();
            options[option.Name.TrimStart('-')] = value;
        }
        var config = new Dictionary<string, object?>
        {
            ["command_line"] = args, ["started_utc"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["host"] = Environment.MachineName, ["options"] = options, ["effective"] = effective,
        };
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>
    /// The run's metrics log, with the cluster's accounting added to every point: workers lost, replaced and dropped
    /// for bad data, and rollouts lost in flight with them (all zero without a cluster).
    /// </summary>
    public static MetricsLog Metrics(string folder, double logEverySeconds, bool append, Func<ClusterVecEnv?> cluster) =>
        new(folder, TimeSpan.FromSeconds(logEverySeconds), append, () => Accounting(cluster()));

    private static (string Tag, double Value)[] Accounting(ClusterVecEnv? c) =>
    [
        ("workers/workers_lost", c?.Elastic.WorkersLost ?? 0), ("workers/workers_replaced", c?.Elastic.WorkersReplaced ?? 0),
        ("workers/workers_dropped_bad_data", c?.Elastic.Evictions.Count ?? 0), ("workers/rollouts_lost_in_flight", c?.Elastic.RolloutsLostInFlight ?? 0),
    ];

    /// <summary>
    /// summary.txt: how the run ended, then (workers started) what was lost, replaced and dropped, then
    /// <paramref name="more"/> lines. Returns the workers line for the console.
    /// </summary>
    public static string? WriteSummary(string folder, string outcome, ClusterVecEnv? c, params string[] more)
    {
        string? workersLine = c is null ? null
            : $"workers lost {c.Elastic.WorkersLost}, replaced {c.Elastic.WorkersReplaced}" +
              (c.Elastic.ReplaceSeconds.Count > 0 ? $" (in {string.Join(", ", c.Elastic.ReplaceSeconds.Select(x => x.ToString("F2", CultureInfo.InvariantCulture)))} s)" : "") +
              $"; rollouts lost in flight {c.Elastic.RolloutsLostInFlight}; workers dropped for bad data {c.Elastic.Evictions.Count}" +
              string.Concat(c.Elastic.Evictions.Select(e => Environment.NewLine + "  dropped " + e));
        var lines = new List<string> { outcome };
        if (workersLine is not null) lines.Add(workersLine);
        lines.AddRange(more);
        try { File.WriteAllLines(Path.Combine(folder, "summary.txt"), lines); }
        catch (IOException e) { Console.Error.WriteLine($"Could not write {Path.Combine(folder, "summary.txt")}: {e.Message}"); }
        return workersLine;
    }
}
