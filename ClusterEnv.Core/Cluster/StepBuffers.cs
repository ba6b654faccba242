using System.Runtime.InteropServices;
using ClusterEnv.Envs;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using Grpc.Core;

namespace ClusterEnv.Cluster;

/// <summary>
/// The vector env's results, gathered from the workers into the same contiguous buffers as <see cref="SyncVectorEnv"/>:
/// observations, rewards, flags, info. Reads step and reset replies (a replacement's fresh-seed reset included) on the
/// workers' read loops, each into its own rows; builds the reset commands. Owned by <see cref="ClusterVecEnv"/>.
/// </summary>
internal sealed class StepBuffers : IReplyOwner
{
    private readonly VectorCallState _calls;
    private readonly int _numEnvs, _obsSize;

    public StepBuffers(VectorCallState calls, int numEnvs, int observationSize, bool keepBytes = false)
    {
        ObservationBytes = keepBytes ? new byte[numEnvs * observationSize] : null;
        _calls = calls;
        _numEnvs = numEnvs;
        _obsSize = observationSize;
        Observations = new float[numEnvs * observationSize];
        Rewards = new double[numEnvs];
        Terminated = new bool[numEnvs];
        Truncated = new bool[numEnvs];
        Autoreset = new bool[numEnvs];
        Info = new VectorInfo(numEnvs, observationSize);
    }

    public float[] Observations { get; }
    /// <summary>Images: the observations as bytes, as the workers sent them (null for other spaces).</summary>
    public byte[]? ObservationBytes { get; }
    public double[] Rewards { get; }
    public bool[] Terminated { get; }
    public bool[] Truncated { get; }
    /// <summary>Sub-envs whose last step ended an episode (NextStep: their next step is the autoreset).</summary>
    public bool[] Autoreset { get; }
    public VectorInfo Info { get; }

    public VectorStepResult StepResult => new(Observations, Rewards, Terminated, Truncated, Info);

    public VectorResetResult ResetResult => new(Observations, Info);

    /// <summary>After a reset: the reset sub-envs start afresh.</summary>
    public void Restarted(bool[]? mask)
    {
        for (int i = 0; i < _numEnvs; i++)
        {
            if (mask is not null && !mask[i]) continue;
            Terminated[i] = Truncated[i] = Autoreset[i] = false;
        }
    }

    /// <summary>After a step: the envs of a slot taken over since the last step report truncated (their episodes were cut short), with reward 0 and the replacement's first observation.</summary>
    public void Stepped(WorkerSlot[] slots)
    {
        foreach (var s in slots)
        {
            if (!s.Interrupted) continue;
            s.Interrupted = false;
            for (int i = s.Offset; i < s.Offset + s.Count; i++)
            {
                Rewards[i] = 0;
                Terminated[i] = false;
                Truncated[i] = true;
            }
        }
        for (int i = 0; i < _numEnvs; i++) Autoreset[i] = Terminated[i] || Truncated[i];
    }

    /// <summary>The reset command for <paramref name="s"/>'s sub-envs, or null when the mask leaves them all alone.</summary>
    public static HubMessage? ResetCommandFor(WorkerSlot s, Func<int, long?> seedOf, bool[]? mask, ResetOptions? options)
    {
        if (mask is not null && Array.IndexOf(mask, true, s.Offset, s.Count) < 0) return null;
        var reset = new ResetCommand();
        for (int i = 0; i < s.Count; i++)
        {
            long? seed = seedOf(s.Offset + i);
            reset.HasSeed.Add(seed.HasValue);
            reset.Seeds.Add(seed ?? 0);
            if (mask is not null) reset.Mask.Add(mask[s.Offset + i]);
        }
        if (options is null) return new HubMessage { Reset = reset };
        foreach (var (key, value) in options.Values)
        {
            switch (value)
            {
                case string str: reset.Strings[key] = str; break;
                case double or float or int or long or short or byte or decimal: reset.Numbers[key] = Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case bool b: reset.Numbers[key] = b ? 1 : 0; break;
                default:
                    throw new ArgumentException($"Reset option '{key}' has type {value?.GetType().Name ?? "null"}, which cannot be sent to a worker; use a number or a string.", nameof(options));
            }
        }
        return new HubMessage { Reset = reset };
    }

    // On a worker's read loop: the reply to a step or a reset.
    void IReplyOwner.OnReply(WorkerSlot slot, in SlotCommand command, int bodyField, ReadOnlySpan<byte> body)
    {
        switch (bodyField)
        {
            case WorkerMessage.StepFieldNumber when command.ReplyField == WorkerMessage.StepFieldNumber:
                StepCodec.ReadStepResult(body, new StepCodec.StepTarget(Observations, Rewards, Terminated, Truncated, Info, slot.Offset, slot.Count, _obsSize, ObservationBytes));
                break;
            case WorkerMessage.ResetFieldNumber when command.ReplyField == WorkerMessage.ResetFieldNumber:
                ReadReset(slot, Transport.Protos.ResetResult.Parser.ParseFrom(body));
                slot.ResetAnswered();
                break;
            case WorkerMessage.ErrorFieldNumber:
                WorkerErrors.Record(_calls, slot, body);
                break;
            default:
                throw WorkerErrors.Unexpected(bodyField, command);
        }
    }

    private void ReadReset(WorkerSlot s, Transport.Protos.ResetResult r)
    {
        var t = r.Observations ?? throw new InvalidDataException("ResetResult has no observations.");
        int n = s.Count * _obsSize;
        Transport.ObservationCodec.Decode(t.Dtype, t.Data.Span, n, Observations.AsSpan(s.Offset * _obsSize, n),
            ObservationBytes is { } kept ? kept.AsSpan(s.Offset * _obsSize, n) : default, "ResetResult observations");
        if (r.Episode is { } ep) StepCodec.ReadEpisodeStats(Google.Protobuf.MessageExtensions.ToByteArray(ep), Info.Episode, s.Offset, s.Count);
        foreach (var entry in r.Info) InfoCodec.Decode(entry, Info, s.Offset, s.Count);
    }
}
