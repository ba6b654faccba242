using ClusterEnv.Envs;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Truncates episodes after <see cref="MaxEpisodeSteps"/> steps, as Gymnasium's <c>TimeLimit</c>: the step that
/// reaches the limit returns <c>truncated = true</c> (together with <c>terminated</c> if the env also ended).
/// <see cref="Gym.Make"/> adds it from the registry's <c>max_episode_steps</c>.
/// </summary>
public sealed class TimeLimit : EnvWrapper
{
    private int _elapsedSteps = -1;

    /// <summary>Wraps <paramref name="env"/> with a limit of <paramref name="maxEpisodeSteps"/> steps.</summary>
    public TimeLimit(IEnv env, int maxEpisodeSteps) : base(env)
    {
        if (maxEpisodeSteps <= 0)
            throw new ArgumentOutOfRangeException(nameof(maxEpisodeSteps), maxEpisodeSteps, "TimeLimit needs max_episode_steps >= 1.");
        MaxEpisodeSteps = maxEpisodeSteps;
    }

    /// <summary>The time limit.</summary>
    public int MaxEpisodeSteps { get; }

    /// <summary>Steps taken in the current episode.</summary>
    public int ElapsedSteps => Math.Max(_elapsedSteps, 0);

    /// <inheritdoc />
    public override EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null)
    {
        var info = Env.Reset(observation, seed, options);
        _elapsedSteps = 0;
        return info;
    }

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        var r = Env.Step(action, observation);
        _elapsedSteps++;
        return _elapsedSteps >= MaxEpisodeSteps ? r with { Truncated = true } : r;
    }
}
