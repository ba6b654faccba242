namespace ClusterEnv.Benchmarks;

/// <summary>Command-line options shared by the benchmark commands (<c>--name value</c> pairs).</summary>
public sealed class BenchOptions
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public static BenchOptions Parse(ReadOnlySpan<string> args)
    {
        var o = new BenchOptions();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                throw new ArgumentException($"Expected '--name value' pairs, got '{args[i]}'.");
            o._values[args[i][2..]] = args[++i];
        }
        return o;
    }

    public string Get(string name, string fallback) => _values.GetValueOrDefault(name, fallback);

    public double Get(string name, double fallback) => _values.TryGetValue(name, out var v) ? double.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : fallback;

    public int[] GetInts(string name, string fallback) => Get(name, fallback).Split(',').Select(int.Parse).ToArray();
}
