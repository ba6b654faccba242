namespace ClusterEnv.Envs;

/// <summary>Convenience overloads for <see cref="IEnv"/>: single-int actions and Python-style returned arrays.</summary>
public static class EnvExtensions
{
    /// <summary>Steps with a Discrete action value, writing the observation into <paramref name="observation"/>.</summary>
    public static StepResult Step(this IEnv env, int action, Span<float> observation) =>
        env.Step(new EnvAction(new ReadOnlySpan<int>(in action)), observation);

    /// <summary>Resets and returns a fresh observation array (allocates; for scripts and tests).</summary>
    public static (float[] Observation, EnvInfo Info) Reset(this IEnv env, long? seed = null, ResetOptions? options = null)
    {
        var obs = new float[env.ObservationSpace.EncodedSize];
        var info = env.Reset(obs, seed, options);
        return (obs, info);
    }

    /// <summary>Steps with a Discrete action and returns a fresh observation array (allocates).</summary>
    public static (float[] Observation, double Reward, bool Terminated, bool Truncated, EnvInfo Info) Step(this IEnv env, int action)
    {
        var obs = new float[env.ObservationSpace.EncodedSize];
        var r = env.Step(action, obs);
        return (obs, r.Reward, r.Terminated, r.Truncated, r.Info);
    }

    /// <summary>Steps with a continuous action and returns a fresh observation array (allocates).</summary>
    public static (float[] Observation, double Reward, bool Terminated, bool Truncated, EnvInfo Info) Step(this IEnv env, float[] action)
    {
        var obs = new float[env.ObservationSpace.EncodedSize];
        var r = env.Step(action, obs);
        return (obs, r.Reward, r.Terminated, r.Truncated, r.Info);
    }

    /// <summary>The innermost env under all wrappers.</summary>
    public static IEnv Unwrapped(this IEnv env)
    {
        while (env is Wrappers.EnvWrapper w) env = w.Env;
        return env;
    }
}
