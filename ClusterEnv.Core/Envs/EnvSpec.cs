namespace ClusterEnv.Envs;

/// <summary>
/// A registry entry, as Gymnasium's <c>EnvSpec</c>: the id, how to build the env, its time limit and the return at
/// which it counts as solved.
/// </summary>
/// <param name="Id">The id, e.g. <c>"CartPole-v1"</c>.</param>
/// <param name="Factory">Builds the raw env from constructor arguments (may be null or empty).</param>
/// <param name="MaxEpisodeSteps">Time limit applied by <see cref="Gym.Make"/> through TimeLimit; null for none.</param>
/// <param name="RewardThreshold">Mean return at which the task counts as solved; null when none is registered.</param>
public sealed record EnvSpec(
    string Id,
    Func<IReadOnlyDictionary<string, object>?, IEnv> Factory,
    int? MaxEpisodeSteps,
    double? RewardThreshold)
{
    /// <summary>The constructor arguments the env was made with (null for defaults).</summary>
    public IReadOnlyDictionary<string, object>? Kwargs { get; init; }

    /// <summary>Gymnasium's <c>nondeterministic</c>: the same seed may not give the same episode.</summary>
    public bool Nondeterministic { get; init; }

    /// <summary>Gymnasium's <c>metadata["render_modes"]</c>, as far as known.</summary>
    public IReadOnlyList<string> RenderModes { get; init; } = [];

    /// <summary>True for a spec that came from a worker: the env exists there, not in this process's registry.</summary>
    public bool IsRemote { get; init; }
}
