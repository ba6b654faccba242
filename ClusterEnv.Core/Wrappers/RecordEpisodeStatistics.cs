using System.Diagnostics;
using ClusterEnv.Envs;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Puts the return, length and duration of each episode into <see cref="EnvInfo.Episode"/> at its last step, as
/// Gymnasium's <c>RecordEpisodeStatistics</c> does with <c>info["episode"]</c>; keeps the last
/// <see cref="BufferLength"/> episodes in <see cref="ReturnQueue"/> and <see cref="LengthQueue"/>.
/// </summary>
public sealed class RecordEpisodeStatistics : EnvWrapper
{
    private readonly Queue<double> _returns;
    private readonly Queue<int> _lengths;
    private double _episodeReturn;
    private int _episodeLength;
    private long _episodeStart;

    /// <summary>Wraps <paramref name="env"/>, keeping statistics of the last <paramref name="bufferLength"/> episodes.</summary>
    public RecordEpisodeStatistics(IEnv env, int bufferLength = 100) : base(env)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bufferLength);
        BufferLength = bufferLength;
        _returns = new Queue<double>(bufferLength);
        _lengths = new Queue<int>(bufferLength);
    }

    /// <summary>How many finished episodes the queues keep.</summary>
    public int BufferLength { get; }

    /// <summary>Returns of the most recent episodes, oldest first.</summary>
    public IReadOnlyCollection<double> ReturnQueue => _returns;

    /// <summary>Lengths of the most recent episodes, oldest first.</summary>
    public IReadOnlyCollection<int> LengthQueue => _lengths;

    /// <inheritdoc />
    public override EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null)
    {
        var info = Env.Reset(observation, seed, options);
        _episodeReturn = 0;
        _episodeLength = 0;
        _episodeStart = Stopwatch.GetTimestamp();
        return info;
    }

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        var r = Env.Step(action, observation);
        _episodeReturn += r.Reward;
        _episodeLength++;
        if (!r.Terminated && !r.Truncated) return r;

        double seconds = Math.Round(Stopwatch.GetElapsedTime(_episodeStart).TotalSeconds, 6);
        if (_returns.Count == BufferLength) { _returns.Dequeue(); _lengths.Dequeue(); }
        _returns.Enqueue(_episodeReturn);
        _lengths.Enqueue(_episodeLength);
        return r with { Info = r.Info with { Episode = new EpisodeStatistics(_episodeReturn, _episodeLength, seconds) } };
    }
}
