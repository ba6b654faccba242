using System.Diagnostics;
using ClusterEnv.Rollouts;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using Grpc.Core;

namespace ClusterEnv.Cluster;

/// <summary>
/// Worker-side acting (the DETACH rollouts): each worker acts with the policy it was pushed and ships whole rollouts,
/// either on request (<see cref="Collect"/>, lockstep) or as a stream that never waits for the learner
/// (<see cref="StartStreaming"/>, with credit so memory stays bounded). Owns the stream's state; each slot owns its
/// own credit. Most learners use <see cref="LockstepRolloutSource"/> or <see cref="StreamingRolloutSource"/>.
/// </summary>
public sealed class WorkerRollouts : IReplyOwner
{
    private readonly WorkerSlot[] _slots;
    private readonly VectorCallState _calls;
    private readonly WorkerReplacements _replacements;
    private readonly ClusterOptions _options;
    private readonly int _numEnvs, _observationSize;
    private readonly Spaces.Space _actionSpace;
    private RolloutBatch? _batch;          // the target of the lockstep rollouts being collected
    private readonly bool[] _delivered;    // per slot: its rows of the batch being collected have arrived
    private volatile StreamState? _stream;

    private sealed class StreamState(ITrajectoryQueue queue, int steps, int credit, ulong seed)
    {
        public readonly ITrajectoryQueue Queue = queue;
        public int Credit => credit;
        public HubMessage Command() => new() { Stream = new StreamRollouts { Steps = (uint)steps, Credit = (uint)credit, Seed = seed } };
        public Exception? Failure; // the first worker error or queue failure of the stream
    }

    private readonly int _observationElementSize; // bytes per observation value on the wire (1 for images)
    private readonly Spaces.Space _observationSpace;

    internal WorkerRollouts(WorkerSlot[] slots, VectorCallState calls, WorkerReplacements replacements, ClusterOptions options, int numEnvs, Spaces.Space observationSpace, Spaces.Space actionSpace)
    {
        _slots = slots;
        _calls = calls;
        _replacements = replacements;
        _options = options;
        _numEnvs = numEnvs;
        _observationSpace = observationSpace;
        _observationSize = observationSpace.EncodedSize;
        _actionSpace = actionSpace;
        _observationElementSize = ObservationCodec.ElementSize(ObservationCodec.WireTypeOf(observationSpace));
        _delivered = new bool[slots.Length];
    }

    /// <summary>True while rollouts stream from the workers (between <see cref="StartStreaming"/> and <see cref="StopStreaming"/>).</summary>
    public bool IsStreaming => _stream is not null;

    private (ActionLayout Layout, int Dist) Shape()
    {
        var layout = ActionLayout.For(_actionSpace);
        return (layout, _actionSpace is Spaces.Discrete d ? d.N : layout.Size);
    }

    /// <summary>
    /// Has every worker act with its local policy for <paramref name="steps"/> steps of each of its sub-envs and
    /// gathers the rollouts, one round trip per worker. Each worker must have acknowledged a policy push first. The
    /// returned batch is reused by the next call with the same <paramref name="steps"/>. A rollout may take longer than
    /// <see cref="ClusterOptions.StepTimeout"/>: workers report progress, and only a worker silent for that long is hung.
    /// With <see cref="ClusterOptions.ReplaceLostWorkers"/>, a worker lost meanwhile is replaced and its replacement
    /// (reset with fresh seeds, acting with the newest policy) supplies its rows.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A worker's rollout would not fit in one message (<see cref="HubOptions.MaxMessageSize"/>) or in memory; the message gives the largest step count that fits.</exception>
    public RolloutBatch Collect(int steps, ulong seed = 0)
    {
        ThrowIfNotSteppable();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        var (layout, dist) = Shape();
        if (_batch is null || _batch.Steps != steps)
        {
            CheckRolloutSize(steps, layout, dist);
            _batch = new RolloutBatch(steps, _numEnvs, _observationSize, layout.IsContinuous, layout.Size, dist, Vector.ObservationStorage.Of(_observationSpace));
        }
        _batch.Episodes.Clear();
        _replacements.AwaitReplacements();
        Array.Clear(_delivered);
        while (true)
        {
            // A worker lost during the collection is replaced (ClusterOptions.ReplaceLostWorkers): its replacement,
            // reset with fresh seeds and given the newest policy, is asked for the rows it owes.
            _calls.Begin(interruptible: true);
            foreach (var s in _slots)
            {
                if (_delivered[s.Index]) continue;
                _calls.Track(s);
                if (!s.Send(new HubMessage { Rollout = new CollectRollout { Steps = (uint)steps, Seed = seed } }, WorkerMessage.RolloutFieldNumber, gather: true, this))
                    _calls.Untrack(s); // being replaced: asked again below; failed for good: End throws why
            }
            _calls.End("CollectRollouts");
            if (Array.TrueForAll(_delivered, d => d)) break;
            _replacements.AwaitReplacements();
        }
        _batch.SortEpisodes(); // they arrive worker by worker, in whatever order the replies came
        return _batch;
    }

    // Stepping the envs from the learner and acting on the workers exclude each other.
    private void ThrowIfNotSteppable()
    {
        _calls.ThrowIfUnusable();
        if (_stream is not null)
            throw new InvalidOperationException("Rollouts are streaming from the workers; stop the stream (StopStreaming, or dispose the StreamingRolloutSource) before stepping, resetting or collecting lockstep rollouts.");
        if (_calls.NeedsReset) throw VectorArgs.ResetNeeded();
    }

    /// <summary>Refused while streaming, by name (for the vector env's own calls).</summary>
    internal void ThrowIfStreaming(string what)
    {
        if (_stream is not null) throw new InvalidOperationException($"Rollouts are streaming from the workers; stop the stream before {what}.");
    }

    // Refuses, before any work, a rollout that a worker could not send in one message or that the learner could not hold.
    private void CheckRolloutSize(int steps, ActionLayout layout, int dist)
    {
        long limit = _options.Hub.MaxMessageSize;
        foreach (var s in _slots)
        {
            var (fixedBytes, perStep) = RolloutBatch.MessageSize(s.Count, _observationSize, layout.IsContinuous, layout.Size, dist, _observationElementSize);
            long bytes = fixedBytes + steps * perStep;
            if (bytes > limit)
                throw new ArgumentOutOfRangeException(nameof(steps), steps,
                    $"A rollout of {steps:N0} steps would make worker '{s.Id}' ({s.Count} envs) send at least {bytes / 1048576.0:N1} MiB in one message, " +
                    $"above HubOptions.MaxMessageSize ({limit / 1048576.0:N1} MiB). Collect at most {Math.Max(0, (limit - fixedBytes) / perStep):N0} steps per call, or raise HubOptions.MaxMessageSize.");
        }
        long floats = (steps + 1L) * _numEnvs * Math.Max(_observationSize, dist);
        if (floats > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"A rollout of {steps:N0} steps of {_numEnvs} envs needs arrays of {floats:N0} elements, more than .NET allows ({Array.MaxLength:N0}); collect fewer steps per call.");
    }

    /// <summary>
    /// Has every worker act with its local policy and ship rollouts of <paramref name="steps"/> steps, one after
    /// another, into <paramref name="queue"/>, without waiting for the learner. Each worker holds at most
    /// <paramref name="credit"/> rollouts in flight (acting, on the wire or queued); <see cref="GrantCredit"/> returns
    /// one when the learner has taken a rollout. Pushes are applied between rollouts. Step, Reset and Collect are
    /// refused until <see cref="StopStreaming"/>. A replacement starts streaming once its reset is answered.
    /// </summary>
    public void StartStreaming(int steps, int credit, ITrajectoryQueue queue, ulong seed = 0)
    {
        ThrowIfNotSteppable();
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(credit);
        var (layout, dist) = Shape();
        CheckRolloutSize(steps, layout, dist);
        var unpolicied = _slots.Where(s => s.Policy.ActiveVersion == 0 && s.Policy.Unacknowledged == 0).Select(s => s.Id).ToArray();
        if (unpolicied.Length > 0)
            throw new InvalidOperationException($"No policy has been pushed to {string.Join(", ", unpolicied.Select(id => $"worker '{id}'"))}; push one (envs.Policies.Push) before streaming rollouts.");
        var stream = new StreamState(queue, steps, credit, seed);
        _stream = stream;
        foreach (var s in _slots) s.StartStream(stream.Command(), stream.Credit); // a slot not ready starts when it is (OnSlotReady)
    }

    // A slot became ready (a replacement answered its reset): it joins the running stream.
    internal void OnSlotReady(WorkerSlot slot)
    {
        if (_stream is { } stream) slot.StartStream(stream.Command(), stream.Credit);
    }

    /// <summary>
    /// Gives worker <paramref name="workerId"/> credit for one more rollout (the learner has taken one of its rollouts).
    /// With <paramref name="keepBack"/> (rollouts are piling up at the learner), a window widened by
    /// <see cref="WidenCredit"/> narrows by one instead, down to the stream's credit. Unknown ids are ignored (a
    /// rollout left in a Redis queue by an earlier run).
    /// </summary>
    public void GrantCredit(string workerId, bool keepBack = false)
    {
        if (_stream is not { } stream) return;
        foreach (var s in _slots)
        {
            if (s.Id != workerId) continue;
            if (Volatile.Read(ref s.StreamSeq) == 0) return;
            if (keepBack && NarrowWindow(s, stream.Credit)) return;
            SendCredit(s);
            return;
        }
    }

    /// <summary>
    /// Widens worker <paramref name="workerId"/>'s credit window by one rollout, up to <paramref name="maxCredit"/>,
    /// and sends it that credit: its rollouts in flight do not cover the time one takes to reach the learner and its
    /// credit to come back. False when the window is at the maximum or the worker is not streaming.
    /// </summary>
    public bool WidenCredit(string workerId, int maxCredit)
    {
        if (_stream is null) return false;
        foreach (var s in _slots)
        {
            if (s.Id != workerId) continue;
            if (Volatile.Read(ref s.StreamSeq) == 0) return false;
            int window = Volatile.Read(ref s.CreditWindow);
            if (window >= maxCredit || Interlocked.CompareExchange(ref s.CreditWindow, window + 1, window) != window) return false;
            SendCredit(s);
            return true;
        }
        return false;
    }

    /// <summary>The sum of the workers' credit windows (streaming).</summary>
    internal int TotalCreditWindow
    {
        get
        {
            int sum = 0;
            foreach (var s in _slots) sum += Volatile.Read(ref s.CreditWindow);
            return sum;
        }
    }

    /// <summary>Each worker's credit window now (streaming), in worker order.</summary>
    internal int[] CreditWindows => _slots.Select(s => Volatile.Read(ref s.CreditWindow)).ToArray();

    private static bool NarrowWindow(WorkerSlot s, int floor)
    {
        int window = Volatile.Read(ref s.CreditWindow);
        return window > floor && Interlocked.CompareExchange(ref s.CreditWindow, window - 1, window) == window;
    }

    private static void SendCredit(WorkerSlot s)
    {
        // A worker without credit is silent by design: its no-progress deadline counts from now.
        if (Interlocked.Increment(ref s.InFlight) == 1) Volatile.Write(ref s.LastHeard, Stopwatch.GetTimestamp());
        s.SendUntracked(new HubMessage { Credit = new Credit { Rollouts = 1 } });
    }

    /// <summary>
    /// Throws what ended the stream, if anything did: a lost worker (<see cref="WorkerLostException"/>), a worker's
    /// failure (<see cref="WorkerException"/>), the queue's failure, or a worker that holds credit and has sent nothing
    /// — no rollout, no progress — for <see cref="ClusterOptions.StepTimeout"/> (<see cref="WorkerTimeoutException"/>).
    /// </summary>
    public void ThrowIfStreamFailed()
    {
        _calls.ThrowIfFatal();
        if (_stream?.Failure is { } failure)
        {
            _calls.Break(failure.Message);
            throw failure;
        }
        _replacements.ThrowIfAReplacementIsLate();
        long now = Stopwatch.GetTimestamp(), timeout = (long)(_options.StepTimeout.TotalSeconds * Stopwatch.Frequency);
        var hung = _slots.Where(s => s.State == SlotState.Streaming && Volatile.Read(ref s.InFlight) > 0 && now - Volatile.Read(ref s.LastHeard) > timeout).ToArray();
        if (hung.Length == 0 || _stream is null) return;
        string message = $"Streaming rollouts: {string.Join(", ", hung.Select(s => $"worker '{s.Id}'"))} sent no rollout and no progress for " +
                         $"{_options.StepTimeout.TotalSeconds:0.###} s (ClusterOptions.StepTimeout) while holding credit. The worker may be hung in its env; the vector env is unusable now.";
        foreach (var s in hung) s.Connection.Close(StatusCode.DeadlineExceeded, $"No rollout and no progress for {_options.StepTimeout.TotalSeconds:0.###} s.");
        _calls.Break(message);
        throw new WorkerTimeoutException(message, hung.Select(s => s.Id).ToArray());
    }

    /// <summary>Rollouts received from each worker slot since streaming started (across replacements), in <see cref="ClusterVecEnv.Workers"/> order.</summary>
    public IReadOnlyList<long> StreamedRollouts => _slots.Select(s => Interlocked.Read(ref s.StreamReceived)).ToArray();

    /// <summary>
    /// Ends the stream: every worker drops the rollout it is acting (never sent) and answers once everything it sent
    /// has arrived, so no rollout is lost or counted twice. Rollouts already queued stay in the queue. Returns the
    /// number of rollouts each worker sent (in <see cref="ClusterVecEnv.Workers"/> order). Afterwards the vector env steps again, after a reset.
    /// </summary>
    public IReadOnlyList<long> StopStreaming()
    {
        if (_stream is not { } stream) return StreamedRollouts;
        _calls.ThrowIfUnusable();
        _calls.Begin();
        foreach (var s in _slots)
        {
            _calls.Track(s);
            if (!s.StopStream(new HubMessage { StopStream = new StopStream() }, WorkerMessage.StreamEndedFieldNumber, this)) _calls.Untrack(s); // a lost one never answers
        }
        try
        {
            _calls.End("StopStreaming");
        }
        finally
        {
            _stream = null;
            // The envs kept running on the workers: the vector env's own observations are stale, so stepping needs a reset.
            _calls.NeedsReset = true;
        }
        if (stream.Failure is { } failure) throw failure;
        return StreamedRollouts;
    }

    // On the slot's read loop: a rollout of the stream goes to the queue with its worker's id appended (a protobuf
    // field appended to a message's bytes is merged into it), progress only refreshes LastHeard, and an error ends the
    // stream for the learner.
    internal void OnStreamMessage(WorkerSlot s, int bodyField, ReadOnlySpan<byte> body)
    {
        if (_stream is not { } stream) return;
        switch (bodyField)
        {
            case WorkerMessage.RolloutFieldNumber:
                var idField = s.IdField.Length > 0 ? s.IdField : (s.IdField = WorkerIdField(s.Id, s.Generation));
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
                Interlocked.CompareExchange(ref stream.Failure, new WorkerException(s.Id, e2.Type, e2.Message, e2.StackTrace.Length == 0 ? null : e2.StackTrace), null);
                break;
            default:
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Reply field {bodyField} does not belong to a rollout stream (expects rollout, progress or error)."));
        }
    }

    // RolloutResult.worker_id and worker_generation (fields 17 and 18) as encoded bytes.
    private static byte[] WorkerIdField(string id, int generation) =>
        Google.Protobuf.MessageExtensions.ToByteArray(new RolloutResult { WorkerId = id, WorkerGeneration = (uint)generation });

    // Replies to Collect and to the stop of a stream.
    void IReplyOwner.OnReply(WorkerSlot slot, in SlotCommand command, int bodyField, ReadOnlySpan<byte> body)
    {
        switch (bodyField)
        {
            case WorkerMessage.RolloutFieldNumber when command.ReplyField == WorkerMessage.RolloutFieldNumber:
                var rollout = RolloutResult.Parser.ParseFrom(body);
                _batch!.Fill(rollout, slot.Offset, slot.Count);
                if (_batch.Problem(slot.Offset, slot.Count, slot.Policy.PushedVersion) is { } problem)
                    throw _replacements.Rejected(slot, problem); // not delivered: its replacement is asked again
                _delivered[slot.Index] = true;
                break;
            case WorkerMessage.StreamEndedFieldNumber when command.ReplyField == WorkerMessage.StreamEndedFieldNumber:
                slot.StreamEnded(); // every rollout of the stream came before this reply
                break;
            case WorkerMessage.ErrorFieldNumber:
                WorkerErrors.Record(_calls, slot, body);
                break;
            default:
                throw WorkerErrors.Unexpected(bodyField, command);
        }
    }
}
