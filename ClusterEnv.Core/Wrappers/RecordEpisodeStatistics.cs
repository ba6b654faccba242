using System.Diagnostics;
using ClusterEnv.Envs;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Puts the return, length and duration of each episode into <see cref="EnvInfo.Episode"/> at its last step, as
/// Gymnasium's <c>RecordEpisodeStatistics</c> does with <c>info["episode"]</c>; keeps the last
/// <see cref="BufferLength"/> episodes in <see cref="ReturnQueue"/> and <see cref="LengthQueue"/>. Around an image env
/// it passes the frames on as bytes (<see cref="IByteObservationEnv"/>), so a vector env keeps them without a round
/// trip through floats.
/// </summary>
public sealed class RecordEpisodeStatistics : EnvWrapper, IByteObservationEnv
{
    private readonly IByteObservationEnv? _byteInner;
    private float[] _floats = [];
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
        _byteInner = ByteObservations.Of(env);
    }

    /// <summary>How many finished episodes the queues keep.</summary>
    public int BufferLength { get; }

    /// <summary>Returns of the most recent episodes, oldest first.</summary>
    public IReadOnlyCollection<double> ReturnQueue => _returns;

    /// <summary>Lengths of the most recent episodes, oldest first.</summary>
    public IReadOnlyCollection<int> LengthQueue => _lengths;

    /// <inheritdoc />
    public override EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null) => Started(Env.Reset(observation, seed, options));

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation) => Stepped(Env.Step(action, observation));

    /// <inheritdoc />
    public EnvInfo ResetBytes(Span<byte> observation, long? seed = null, ResetOptions? options = null)
    {
        if (_byteInner is not null) return Started(_byteInner.ResetBytes(observation, seed, options));
        var info = Started(Env.Reset(Floats(observation.Length), seed, options));
        Pixels.ToBytes(_floats, observation);
        return info;
    }

    /// <inheritdoc />
    public StepResult StepBytes(EnvAction action, Span<byte> observation)
    {
        if (_byteInner is not null) return Stepped(_byteInner.StepBytes(action, observation));
        var r = Stepped(Env.Step(action, Floats(observation.Length)));
        Pixels.ToBytes(_floats, observation);
        return r;
    }

    private Span<float> Floats(int size) => _floats.Length == size ? _floats : _floats = new float[size];

    private EnvInfo Started(EnvInfo info)
    {
        _episodeReturn = 0;
        _episodeLength = 0;
        _episodeStart = Stopwatch.GetTimestamp();
        return info;
    }

    private StepResult Stepped(StepResult r)
    {
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
