using System.CommandLine;
using System.Globalization;
using ClusterEnv.CommandLine;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// Columns of a run's metrics.csv as stacked panels over one x axis, optionally a window of it: what the learner did
/// around an event (for example entropy, value loss, KL, ρ clipping and policy lag around a collapse of the return).
/// </summary>
public static class PlotMetrics
{
    public static Command Command()
    {
        var csv = Cli.Option<string>("--csv", "a run's metrics.csv (Train writes RUN/metrics.csv; --log-every 0 gives a row per update)");
        var columns = Cli.List<string>("--columns", "columns to plot, one panel each, top to bottom", "mean_return_20,episodic_length,value_loss,entropy,update_kl,grad_norm,rho_clipped_fraction,mean_policy_lag");
        var log = Cli.List<string>("--log", "columns drawn on a log10 axis", "value_loss,update_kl,grad_norm");
        var x = Cli.Option("--x", "the x column", "global_step");
        var from = Cli.Option<double?>("--from", "first x to plot (default: the first row)");
        var to = Cli.Option<double?>("--to", "last x to plot (default: the last row)");
        var title = Cli.Option<string?>("--title", "chart title (default: the file and the window)");
        var output = Cli.Option("--out", "the SVG to write", "metrics.svg");
        var command = new Command("plot-metrics", "columns of a run's metrics.csv as stacked panels over one x axis (a window of it with --from/--to): one SVG")
        {
            csv, columns, log, x, from, to, title, output,
        };
        command.SetAction(p => Run(p.GetValue(csv) ?? throw new ArgumentException("--csv is required: the metrics.csv of a run (RUN/metrics.csv)."),
            p.GetValue(columns)!, p.GetValue(log)!, p.GetValue(x)!, p.GetValue(from), p.GetValue(to), p.GetValue(title), p.GetValue(output)!));
        return command;
    }

    private static void Run(string path, string[] columns, string[] logColumns, string xColumn, double? from, double? to, string? title, string output)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist: give --csv the metrics.csv of a run folder.", path);
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToArray();
        if (lines.Length < 2) throw new ArgumentException($"{path} has no rows after its header.");
        var header = lines[0].Split(',');
        int Index(string name)
        {
            int i = Array.IndexOf(header, name);
            return i >= 0 ? i : throw new ArgumentException($"{path} has no column '{name}'. Its columns: {string.Join(", ", header)}.");
        }
        int xi = Index(xColumn);
        var indices = columns.Select(Index).ToArray();
        var rows = lines.Skip(1).Select(l => l.Split(',')).Select(c => c.Select(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : double.NaN).ToArray())
            .Where(r => r.Length == header.Length && (from is null || r[xi] >= from) && (to is null || r[xi] <= to)).ToArray();
        if (rows.Length == 0) throw new ArgumentException($"No row of {path} has {xColumn} within [{from?.ToString(CultureInfo.InvariantCulture) ?? "start"}, {to?.ToString(CultureInfo.InvariantCulture) ?? "end"}].");
        var panels = columns.Select((name, k) => (name.Replace('_', ' '),
            (IReadOnlyList<ChartSeries>)[new ChartSeries(name, rows.Select(r => (r[xi], r[indices[k]])).ToArray())], logColumns.Contains(name))).ToArray();
        string chartTitle = title ?? $"{Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(path)))}: {xColumn.Replace('_', ' ')} {SvgChart.FormatValue(rows[0][xi])}–{SvgChart.FormatValue(rows[^1][xi])}, {rows.Length} rows";
        File.WriteAllText(output, SvgChart.Panels(chartTitle, xColumn.Replace('_', ' '), panels));
        Console.Error.WriteLine($"Wrote {output}: {columns.Length} panels, {rows.Length} rows.");
    }
}
