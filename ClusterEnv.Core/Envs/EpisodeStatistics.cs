namespace ClusterEnv.Envs;

/// <summary>
/// Statistics of a finished episode, as Gymnasium's <c>info["episode"] = {"r", "l", "t"}</c>.
/// </summary>
/// <param name="Return">Sum of rewards over the episode ("r").</param>
/// <param name="Length">Number of steps ("l").</param>
/// <param name="Seconds">Wall-clock seconds since the episode started, rounded to 6 decimals ("t").</param>
public readonly record struct EpisodeStatistics(double Return, int Length, double Seconds);
