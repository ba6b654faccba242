namespace ClusterEnv.Envs;

/// <summary>
/// What <see cref="IEnv.Step"/> returns besides the observation it writes: Gymnasium's
/// <c>(reward, terminated, truncated, info)</c>. See <see cref="IEnv"/> for what the two flags mean.
/// </summary>
public readonly record struct StepResult(double Reward, bool Terminated, bool Truncated, EnvInfo Info)
{
    /// <summary>True when the episode ended, either way.</summary>
    public bool Done => Terminated || Truncated;
}
