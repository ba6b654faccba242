namespace ClusterEnv.Benchmarks;

/// <summary>
/// Learning curves of several seeds on one x grid: each run's value at a grid point is its last point at or before
/// it, so runs whose updates fall at different steps line up. The mean over seeds is the line; the lowest and the
/// highest seed are the band.
/// </summary>
public static class Curves
{
    /// <summary>Mean and min–max band over <paramref name="runs"/> at <paramref name="points"/> evenly spaced x values up to the longest run.</summary>
    public static ChartSeries Band(string name, IReadOnlyList<IReadOnlyList<(double X, double Y)>> runs, int points = 100)
    {
        double end = runs.SelectMany(r => r).Select(p => p.X).DefaultIfEmpty(0).Max();
        var line = new List<(double, double)>();
        var band = new List<(double, double, double)>();
        var cursor = new int[runs.Count];
        for (int g = 1; g <= points; g++)
        {
            double x = end * g / points;
            var ys = new List<double>();
            for (int i = 0; i < runs.Count; i++)
            {
                var run = runs[i];
                while (cursor[i] < run.Count && run[cursor[i]].X <= x) cursor[i]++;
                if (cursor[i] > 0 && double.IsFinite(run[cursor[i] - 1].Y)) ys.Add(run[cursor[i] - 1].Y);
            }
            if (ys.Count == 0) continue;
            line.Add((x, ys.Average()));
            band.Add((x, ys.Min(), ys.Max()));
        }
        return new ChartSeries(name, line, runs.Count > 1 ? band : null);
    }

    /// <summary>At most <paramref name="points"/> of <paramref name="curve"/>, evenly spaced in x, the last point kept: what curves.csv stores per run.</summary>
    public static IEnumerable<T> Thin<T>(IReadOnlyList<T> curve, Func<T, double> x, int points = 200)
    {
        if (curve.Count <= points) { foreach (var p in curve) yield return p; yield break; }
        double end = x(curve[^1]), next = 0;
        for (int i = 0; i < curve.Count; i++)
        {
            if (i == curve.Count - 1 || x(curve[i]) >= next)
            {
                yield return curve[i];
                next = x(curve[i]) + end / points;
            }
        }
    }
}
