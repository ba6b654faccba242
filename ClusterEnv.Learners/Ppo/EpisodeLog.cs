using ClusterEnv.Envs;

namespace ClusterEnv.Learners.Ppo;

/// <summary>
/// The episode bookkeeping both PPO loops share: per-iteration sums, the mean of the last 20 returns, and the first
/// env step and second at which that mean reached the threshold.
/// </summary>
internal sealed class EpisodeLog(double threshold)
{
    private readonly Queue<double> _recent = new();
    private int _episodes;
    private double _returnSum, _lengthSum;

    public long? StepsToThreshold { get; private set; }

    public double? SecondsToThreshold { get; private set; }

    public double MeanReturn20 => _recent.Count > 0 ? _recent.Average() : double.NaN;

    /// <summary>Records an episode that ended at env step <paramref name="globalStep"/>.</summary>
    public void Add(in EpisodeStatistics episode, long globalStep, double seconds)
    {
        _episodes++;
        _returnSum += episode.Return;
        _lengthSum += episode.Length;
        _recent.Enqueue(episode.Return);
        if (_recent.Count > 20) _recent.Dequeue();
        if (StepsToThreshold is null && _recent.Count == 20 && _recent.Average() >= threshold)
        {
            StepsToThreshold = globalStep;
            SecondsToThreshold = seconds;
        }
    }

    /// <summary>Fills the episode fields of an iteration's metrics and starts the next iteration's sums.</summary>
    public PpoMetrics EndIteration(PpoMetrics metrics)
    {
        var (episodes, ret, length) = TakeIteration();
        return metrics with { Episodes = episodes, EpisodicReturn = ret, EpisodicLength = length, MeanReturn20 = MeanReturn20 };
    }

    /// <summary>Fills the episode fields of an IMPALA update's metrics and starts the next update's sums.</summary>
    public Impala.ImpalaMetrics EndIteration(Impala.ImpalaMetrics metrics)
    {
        var (episodes, ret, length) = TakeIteration();
        return metrics with { Episodes = episodes, EpisodicReturn = ret, EpisodicLength = length, MeanReturn20 = MeanReturn20 };
    }

    // The iteration's episode count, mean return and mean length (NaN when none), and a fresh start.
    private (int Episodes, double Return, double Length) TakeIteration()
    {
        var r = (_episodes, _episodes > 0 ? _returnSum / _episodes : double.NaN, _episodes > 0 ? _lengthSum / _episodes : double.NaN);
        _episodes = 0;
        _returnSum = _lengthSum = 0;
        return r;
    }
}
