using System.Runtime.InteropServices;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using Google.Protobuf;

namespace ClusterEnv.Cluster;

// Worker-side acting: policy pushes and their acknowledgements, and lockstep rollouts (streaming is in ClusterVecEnv.Streaming.cs).
public sealed partial class ClusterVecEnv
{
    // ---------------- worker-side acting (DETACH rollouts) and policy pushes ----------------

    /// <summary>Per worker, in sub-env order: the policy versions it was sent and acts with, pushes, bytes and latency.</summary>
    public IReadOnlyList<WorkerPolicyState> PolicyStates => _slots.Select(s => s.Policy).ToArray();

    /// <summary>
    /// Sends policy weights to worker <paramref name="workerIndex"/> (in <see cref="Workers"/> order) and returns at
    /// once, whatever the network does: the worker applies them between commands, so a rollout in progress finishes
    /// with the old version. When the worker's stream is back-pressured (it is busy in a long rollout and not reading),
    /// the push waits in a one-slot queue and a newer push replaces it (counted in <see cref="WorkerPolicyState.Coalesced"/>);
    /// a queued push always goes out before the next command to that worker. Returns the push's size on the wire.
    /// The acknowledgement updates <see cref="PolicyStates"/>; <see cref="WaitForPolicyAcks"/> waits for it.
    /// Unlike the other methods, this one may be called from another thread while a step or rollout is in flight.
    /// </summary>
    /// <exception cref="ArgumentException">A weight is NaN or infinite (named by index), or the push is larger than the worker accepts.</exception>
    public long PushPolicy(int workerIndex, ulong version, Policies.PolicySpec spec, ReadOnlySpan<float> weights, Policies.ObservationNormalizer? normalizer = null) =>
        Push(workerIndex, version, spec, weights, checkFinite: true, normalizer);

    /// <summary>Tests only: a push without the learner's finiteness check, so that the worker's own check can be seen to work.</summary>
    internal long PushPolicyUnchecked(int workerIndex, ulong version, Policies.PolicySpec spec, ReadOnlySpan<float> weights) =>
        Push(workerIndex, version, spec, weights, checkFinite: false);

    private long Push(int workerIndex, ulong version, Policies.PolicySpec spec, ReadOnlySpan<float> weights, bool checkFinite, Policies.ObservationNormalizer? normalizer = null)
    {
        ThrowIfUnusable(allowPending: true);
        ArgumentOutOfRangeException.ThrowIfNegative(workerIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(workerIndex, _slots.Length);
        ArgumentNullException.ThrowIfNull(spec);
        if (version == 0) throw new ArgumentOutOfRangeException(nameof(version), version, "Policy versions start at 1 (0 means 'no policy').");
        int bad = checkFinite ? Policies.ActorCritic.IndexOfNonFinite(weights) : -1;
        if (bad >= 0)
            throw new ArgumentException($"Weight {bad} of {weights.Length} is {weights[bad]}; a policy with NaN or infinite weights acts with NaN log-probs. " +
                                        "The update diverged: lower the learning rate or clip gradients, and push the last finite weights.", nameof(weights));
        var s = _slots[workerIndex];
        var update = new PolicyUpdate
        {
            Version = version,
            SpecJson = spec.ToJson(),
            Weights = new Tensor { Dtype = Transport.Protos.DType.Float32, Shape = { weights.Length }, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(weights)) },
        };
        if (normalizer is not null)
        {
            if (normalizer.Mean.Length != spec.ObservationSize)
                throw new ArgumentException($"The observation statistics have {normalizer.Mean.Length} elements; the policy's observations have {spec.ObservationSize}.", nameof(normalizer));
            update.ObsMean = new Tensor { Dtype = Transport.Protos.DType.Float32, Shape = { normalizer.Mean.Length }, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(normalizer.Mean.AsSpan())) };
            update.ObsVar = new Tensor { Dtype = Transport.Protos.DType.Float32, Shape = { normalizer.Var.Length }, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(normalizer.Var.AsSpan())) };
            update.ObsClip = normalizer.Clip;
        }
        var message = new HubMessage { Policy = update };
        long bytes = message.CalculateSize() + WireMessage.PrefixSize;
        if (bytes > s.Connection.MaxCommandSize)
            throw new ArgumentException($"The push is {bytes:N0} bytes but worker '{s.Connection.Id}' accepts commands of at most {s.Connection.MaxCommandSize:N0} bytes; " +
                                        "start the worker with a larger --max-message-size (or use a smaller policy).", nameof(weights));
        s.QueuePush(message, version, bytes);
        if (version >= (Volatile.Read(ref _latestPush)?.Version ?? 0)) Volatile.Write(ref _latestPush, new LatestPush(message, version, bytes));
        StartReplacementStream(s);
        return bytes;
    }

    // The newest policy pushed to any worker: a replacement gets it as soon as it takes over, so that it streams again
    // even while the learner waits for rollouts (every worker lost at once) and so publishes nothing.
    private sealed record LatestPush(HubMessage Message, ulong Version, long Bytes);
    private LatestPush? _latestPush;

    /// <summary>Waits until every push has been acknowledged; throws <see cref="PolicyRejectedException"/> naming workers that refused one.</summary>
    public void WaitForPolicyAcks(TimeSpan? timeout = null)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        var limit = timeout ?? _options.StepTimeout;
        while (_slots.Any(s => s.Policy.Unacknowledged > 0))
        {
            if (Volatile.Read(ref _fatal) is { } fatal) throw fatal;
            if (deadline.Elapsed > limit)
                throw new WorkerTimeoutException($"Policy pushes were not acknowledged within {limit.TotalSeconds:0.#} s by " +
                    string.Join(", ", _slots.Where(s => s.Policy.Unacknowledged > 0).Select(s => $"worker '{s.Connection.Id}'")) +
                    " (a worker busy in a long rollout acknowledges when it ends; wait longer or collect shorter rollouts).",
                    _slots.Where(s => s.Policy.Unacknowledged > 0).Select(s => s.Connection.Id).ToArray());
            Thread.Sleep(1);
        }
        var refused = _slots.Where(s => s.Policy.LastError is not null).ToArray();
        if (refused.Length > 0)
            throw new PolicyRejectedException(string.Join("; ", refused.Select(s => $"worker '{s.Connection.Id}' refused the push and keeps acting with version {s.Policy.ActiveVersion}: {s.Policy.LastError}")));
    }

    private void OnPolicyAck(WorkerChannel s, long sentAt, int bodyField, ReadOnlySpan<byte> body)
    {
        double latencyMs = (System.Diagnostics.Stopwatch.GetTimestamp() - sentAt) * 1000.0 / System.Diagnostics.Stopwatch.Frequency;
        if (bodyField == WorkerMessage.PolicyAckFieldNumber)
        {
            var ack = PolicyAck.Parser.ParseFrom(body);
            s.Policy.Acknowledged(ack.ActiveVersion, ack.Error, latencyMs);
        }
        else if (bodyField == WorkerMessage.ErrorFieldNumber)
        {
            var e = WorkerError.Parser.ParseFrom(body);
            s.Policy.Acknowledged(s.Policy.ActiveVersion, $"{e.Type}: {e.Message}", latencyMs);
        }
        else throw new GrpcException(GrpcStatusCode.FailedPrecondition, $"Reply field {bodyField} does not answer a policy push (expects policy_ack).");
    }

    /// <summary>
    /// Has every worker act with its local policy for <paramref name="steps"/> steps of each of its sub-envs and
    /// gathers the rollouts, one round trip per worker. Each worker must have acknowledged a policy push first. The
    /// returned batch is reused by the next call with the same <paramref name="steps"/>. A rollout may take longer than
    /// <see cref="ClusterOptions.StepTimeout"/>: workers report progress, and only a worker silent for that long is hung.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A worker's rollout would not fit in one message (<see cref="HubOptions.MaxMessageSize"/>) or in memory; the message gives the largest step count that fits.</exception>
    public Rollouts.RolloutBatch CollectRollouts(int steps, ulong seed = 0)
    {
        ThrowIfNotSteppable();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        var layout = ActionLayout.For(SingleActionSpace);
        int dist = SingleActionSpace is Spaces.Discrete d ? d.N : layout.Size;
        if (_rollouts is null || _rollouts.Steps != steps)
        {
            CheckRolloutSize(steps, layout, dist);
            _rollouts = new Rollouts.RolloutBatch(steps, NumEnvs, ObservationSize, layout.IsContinuous, layout.Size, dist);
        }
        _rollouts.Episodes.Clear();
        Begin();
        foreach (var s in _slots)
        {
            SendTracked(s, new HubMessage { Rollout = new CollectRollout { Steps = (uint)steps, Seed = seed } }, WorkerMessage.RolloutFieldNumber);
        }
        End("CollectRollouts");
        _rollouts.SortEpisodes(); // they arrive worker by worker, in whatever order the replies came
        return _rollouts;
    }

    // Refuses, before any work, a rollout that a worker could not send in one message or that the learner could not hold.
    private void CheckRolloutSize(int steps, ActionLayout layout, int dist)
    {
        long limit = _options.Hub.MaxMessageSize;
        foreach (var s in _slots)
        {
            var (fixedBytes, perStep) = Rollouts.RolloutBatch.MessageSize(s.Count, ObservationSize, layout.IsContinuous, layout.Size, dist);
            long bytes = fixedBytes + steps * perStep;
            if (bytes > limit)
                throw new ArgumentOutOfRangeException(nameof(steps), steps,
                    $"A rollout of {steps:N0} steps would make worker '{s.Connection.Id}' ({s.Count} envs) send at least {bytes / 1048576.0:N1} MiB in one message, " +
                    $"above HubOptions.MaxMessageSize ({limit / 1048576.0:N1} MiB). Collect at most {Math.Max(0, (limit - fixedBytes) / perStep):N0} steps per call, or raise HubOptions.MaxMessageSize.");
        }
        long floats = (steps + 1L) * NumEnvs * Math.Max(ObservationSize, dist);
        if (floats > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"A rollout of {steps:N0} steps of {NumEnvs} envs needs arrays of {floats:N0} elements, more than .NET allows ({Array.MaxLength:N0}); collect fewer steps per call.");
    }
}
