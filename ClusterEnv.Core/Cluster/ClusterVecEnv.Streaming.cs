using System.Diagnostics;
using ClusterEnv.Rollouts;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;

namespace ClusterEnv.Cluster;

public sealed partial class ClusterVecEnv
{
    private sealed class StreamState(ITrajectoryQueue queue, int steps, int credit, ulong seed)
    {
        public readonly ITrajectoryQueue Queue = queue;
        public readonly int Steps = steps;
        public readonly int Credit = credit;
        public readonly ulong Seed = seed;
        public Exception? Failure; // the first worker error or queue failure of the stream
    }

    private StreamState? _stream;

    /// <summary>True while rollouts stream from the workers (between <see cref="StartStreaming"/> and <see cref="StopStreaming"/>).</summary>
    public bool IsStreaming => _stream is not null;

    /// <summary>
    /// Has every worker act with its local policy and ship rollouts of <paramref name="steps"/> steps, one after
    /// another, into <paramref name="queue"/>, without waiting for the learner. Each worker holds at most
    /// <paramref name="credit"/> rollouts in flight (acting, on the wire or queued); <see cref="GrantCredit"/> returns
    /// one when the learner has taken a rollout, so memory stays bounded and a slow learner slows the actors. Pushes
    /// (<see cref="PushPolicy"/>) are applied between rollouts. Step, Reset and CollectRollouts are refused until
    /// <see cref="StopStreaming"/>. Most learners use <see cref="StreamingRolloutSource"/> rather than this directly.
    /// </summary>
    public void StartStreaming(int steps, int credit, ITrajectoryQueue queue, ulong seed = 0)
    {
        ThrowIfNotSteppable();
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(credit);
        var layout = ActionLayout.For(SingleActionSpace);
        CheckRolloutSize(steps, layout, SingleActionSpace is Spaces.Discrete d ? d.N : layout.Size);
        var unpolicied = _slots.Where(s => s.Policy.ActiveVersion == 0 && s.Policy.Unacknowledged == 0).Select(s => s.Connection.Id).ToArray();
        if (unpolicied.Length > 0)
            throw new InvalidOperationException($"No policy has been pushed to {string.Join(", ", unpolicied.Select(id => $"worker '{id}'"))}; push one (PushPolicy) before streaming rollouts.");
        _stream = new StreamState(queue, steps, credit, seed);
        foreach (var s in _slots) StartStream(s, _stream);
    }

    private static void StartStream(WorkerChannel s, StreamState stream) =>
        s.StartStream(new HubMessage { Stream = new StreamRollouts { Steps = (uint)stream.Steps, Credit = (uint)stream.Credit, Seed = stream.Seed } }, stream.Credit);

    /// <summary>Gives worker <paramref name="workerId"/> credit for one more rollout (the learner has taken one of its rollouts). Unknown ids are ignored (a rollout left in a Redis queue by an earlier run).</summary>
    public void GrantCredit(string workerId)
    {
        if (_stream is null) return;
        foreach (var s in _slots)
        {
            if (s.Connection.Id != workerId) continue;
            if (Volatile.Read(ref s.StreamSeq) == 0) return;
            // A worker without credit is silent by design: its no-progress deadline counts from now.
            if (Interlocked.Increment(ref s.InFlight) == 1) Volatile.Write(ref s.LastHeard, Stopwatch.GetTimestamp());
            s.SendUntracked(new HubMessage { Credit = new Credit { Rollouts = 1 } });
            return;
        }
    }

    /// <summary>
    /// Throws what ended the stream, if anything did: a lost worker (<see cref="WorkerLostException"/>), a worker's
    /// failure (<see cref="WorkerException"/>), the queue's failure, or a worker that holds credit and has sent nothing
    /// — no rollout, no progress — for <see cref="ClusterOptions.StepTimeout"/> (<see cref="WorkerTimeoutException"/>).
    /// </summary>
    public void ThrowIfStreamFailed()
    {
        if (Volatile.Read(ref _fatal) is { } fatal)
        {
            Break(fatal.Message);
            throw fatal;
        }
        if (_stream?.Failure is { } failure)
        {
            Break(failure.Message);
            throw failure;
        }
        long now = Stopwatch.GetTimestamp(), timeout = (long)(_options.StepTimeout.TotalSeconds * Stopwatch.Frequency);
        ThrowIfAReplacementIsLate();
        var hung = _slots.Where(s => !s.Lost && Volatile.Read(ref s.StreamSeq) != 0 && Volatile.Read(ref s.InFlight) > 0 && now - Volatile.Read(ref s.LastHeard) > timeout
                                     && _stream is not null).ToArray();
        if (hung.Length == 0) return;
        string message = $"Streaming rollouts: {string.Join(", ", hung.Select(s => $"worker '{s.Connection.Id}'"))} sent no rollout and no progress for " +
                         $"{_options.StepTimeout.TotalSeconds:0.###} s (ClusterOptions.StepTimeout) while holding credit. The worker may be hung in its env; the vector env is unusable now.";
        foreach (var s in hung) s.Connection.Close(GrpcStatusCode.DeadlineExceeded, $"No rollout and no progress for {_options.StepTimeout.TotalSeconds:0.###} s.");
        Break(message);
        throw new WorkerTimeoutException(message, hung.Select(s => s.Connection.Id).ToArray());
    }

    /// <summary>Rollouts received from each worker since streaming started, in <see cref="Workers"/> order.</summary>
    public IReadOnlyList<long> StreamedRollouts => _slots.Select(s => Interlocked.Read(ref s.StreamReceived)).ToArray();

    /// <summary>
    /// Ends the stream: every worker drops the rollout it is acting (never sent) and answers once everything it sent
    /// has arrived, so no rollout is lost or counted twice. Rollouts already queued stay in the queue. Returns the
    /// number of rollouts each worker sent (in <see cref="Workers"/> order). Afterwards the vector env steps again.
    /// </summary>
    public IReadOnlyList<long> StopStreaming()
    {
        if (_stream is null) return StreamedRollouts;
        ThrowIfUnusable();
        Begin();
        foreach (var s in _slots)
            if (!s.Lost) SendTracked(s, new HubMessage { StopStream = new StopStream() }, WorkerMessage.StreamEndedFieldNumber); // a lost one never answers
        End("StopStreaming");
        var failure = _stream.Failure;
        _stream = null;
        // The envs kept running on the workers: the vector env's own observations are stale, so stepping needs a reset.
        _needsReset = true;
        if (failure is not null) throw failure;
        return StreamedRollouts;
    }

    // On the connection's read loop: a rollout of the stream goes to the queue with its worker's id appended (a
    // protobuf field appended to a message's bytes is merged into it), progress only refreshes LastHeard, and an
    // error ends the stream for the learner.
    private void OnStreamReply(WorkerChannel s, int bodyField, ReadOnlySpan<byte> body)
    {
        var stream = _stream;
        if (stream is null) return;
        switch (bodyField)
        {
            case WorkerMessage.RolloutFieldNumber:
                var idField = s.IdField.Length > 0 ? s.IdField : (s.IdField = WorkerIdField(s.Connection.Id));
                var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(body.Length + idField.Length);
                try
                {
                    body.CopyTo(buffer);
                    idField.CopyTo(buffer.AsSpan(body.Length));
                    stream.Queue.Add(buffer.AsSpan(0, body.Length + idField.Length));
                }
                catch (TrajectoryQueueException e)
                {
                    Interlocked.CompareExchange(ref stream.Failure, e, null);
                }
                finally
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                }
                Interlocked.Decrement(ref s.InFlight);
                Interlocked.Increment(ref s.StreamReceived);
                break;
            case WorkerMessage.ProgressFieldNumber:
                break;
            case WorkerMessage.ErrorFieldNumber:
                var e2 = WorkerError.Parser.ParseFrom(body);
                Interlocked.CompareExchange(ref stream.Failure, new WorkerException(s.Connection.Id, e2.Type, e2.Message, NullIfEmpty(e2.StackTrace)), null);
                break;
            default:
                throw new GrpcException(GrpcStatusCode.FailedPrecondition, $"Reply field {bodyField} does not belong to a rollout stream (expects rollout, progress or error).");
        }
    }

    // RolloutResult.worker_id (field 17, length-delimited) as encoded bytes.
    private static byte[] WorkerIdField(string id)
    {
        var message = new RolloutResult { WorkerId = id };
        return Google.Protobuf.MessageExtensions.ToByteArray(message);
    }
}
