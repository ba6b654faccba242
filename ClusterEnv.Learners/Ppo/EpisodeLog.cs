using ClusterEnv.Envs;

namespace ClusterEnv.Learners.Ppo;

/// <summary>
/// The episode bookkeeping the PPO and IMPALA loops share: per-iteration sums, the means of the last 20 and the last
/// 100 returns, and the first env step and second at which the mean of the last 20 reached the threshold.
/// </summary>
internal sealed class EpisodeLog(double threshold)
{
    private readonly Queue<double> _recent = new();
    private readonly Queue<double> _last100 = new();
    private double _last100Sum;
    private int _episodes;
    private double _returnSum, _lengthSum;

    public long? StepsToThreshold { get; private set; }

    public double? SecondsToThreshold { get; private set; }

    public double MeanReturn20 => _recent.Count > 0 ? _recent.Average() : double.NaN;

    /// <summary>Mean of the last 100 returns (fewer before 100 episodes; NaN before the first): how results tables report a final return.</summary>
    public double MeanReturn100 => _last100.Count > 0 ? _last100Sum / _last100.Count : double.NaN;

    /// <summary>Records an episode that ended at env step <paramref name="globalStep"/>.</summary>
    public void Add(in EpisodeStatistics episode, long globalStep, double seconds)
    {
        _episodes++;
        _returnSum += episode.Return;
        _lengthSum += episode.Length;
        _recent.Enqueue(episode.Return);
        if (_recent.Count > 20) _recent.Dequeue();
        _last100.Enqueue(episode.Return);
        _last100Sum += episode.Return;
        if (_last100.Count > 100) _last100Sum -= _last100.Dequeue();
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
