using ClusterEnv.Envs;

namespace ClusterEnv.Vector;

/// <summary>
/// Episode statistics of a batch of sub-envs, as Gymnasium's vector <c>info["episode"]</c> with its
/// <c>info["_episode"]</c> mask: entry i is meaningful only where <see cref="Mask"/>[i] is true.
/// </summary>
public sealed class EpisodeBatch
{
    internal EpisodeBatch(int numEnvs)
    {
        Mask = new bool[numEnvs];
        Return = new double[numEnvs];
        Length = new int[numEnvs];
        Seconds = new double[numEnvs];
    }

    /// <summary>Which sub-envs finished an episode.</summary>
    public bool[] Mask { get; }

    /// <summary>Episode returns ("r").</summary>
    public double[] Return { get; }

    /// <summary>Episode lengths ("l").</summary>
    public int[] Length { get; }

    /// <summary>Episode durations in seconds ("t").</summary>
    public double[] Seconds { get; }

    /// <summary>True when any sub-env finished an episode.</summary>
    public bool Any { get; private set; }

    internal void Set(int i, in EpisodeStatistics s)
    {
        Mask[i] = true;
        Return[i] = s.Return;
        Length[i] = s.Length;
        Seconds[i] = s.Seconds;
        Any = true;
    }

    // First-ready stepping: the rows of the sub-envs sent a step (Any stays as it was: it may say true for rows cleared since).
    internal void ClearRows(int offset, int count)
    {
        Array.Clear(Mask, offset, count);
        Array.Clear(Return, offset, count);
        Array.Clear(Length, offset, count);
        Array.Clear(Seconds, offset, count);
    }

    internal void Clear()
    {
        if (!Any) return;
        Array.Clear(Mask);
        Array.Clear(Return);
        Array.Clear(Length);
        Array.Clear(Seconds);
        Any = false;
    }
}
