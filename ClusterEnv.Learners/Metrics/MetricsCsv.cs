namespace ClusterEnv.Learners.Metrics;

/// <summary>One CSV layout for every learner's metrics: the column is the part of the TensorBoard tag after the '/'.</summary>
internal static class MetricsCsv
{
    public static string Header((string Tag, double Value)[] scalars) => string.Join(",", scalars.Select(s => s.Tag[(s.Tag.IndexOf('/') + 1)..]));

    public static string Row((string Tag, double Value)[] scalars) =>
        string.Join(",", scalars.Select(s => s.Value.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
}
