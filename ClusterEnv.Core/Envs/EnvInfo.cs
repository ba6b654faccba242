namespace ClusterEnv.Envs;

/// <summary>
/// The info of a reset or a step: typed fields for what the library itself produces, and an optional dictionary
/// for what users' envs add. A value type, so the common case (nothing to report) costs no allocation.
/// </summary>
public readonly record struct EnvInfo
{
    /// <summary>Statistics of the episode that ended at this step (set by <see cref="Wrappers.RecordEpisodeStatistics"/>).</summary>
    public EpisodeStatistics? Episode { get; init; }

    /// <summary>Env-specific extra entries (null when there are none; keep it null on hot paths).</summary>
    public IReadOnlyDictionary<string, object>? Extra { get; init; }

    /// <summary>The empty info.</summary>
    public static EnvInfo Empty => default;
}
