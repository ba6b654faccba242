using System.Runtime.InteropServices;
using ClusterEnv.Policies;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using Google.Protobuf;
using Grpc.Core;

namespace ClusterEnv.Cluster;

/// <summary>
/// Policy weights on their way to the workers: pushes, their acknowledgements and each slot's record
/// (<see cref="WorkerPolicyState"/>: versions pushed and acknowledged, pushes, bytes, latency). Which version a
/// replacement starts with is decided by the publisher that claims the role (<see cref="Sync.PolicyPublisher"/> in
/// ClusterEnv.Sync); without one, a replacement starts with the newest version pushed to any worker.
/// Pushes may be sent from any thread, while a step or rollout is in flight.
/// </summary>
public sealed class WorkerPolicies : IReplyOwner
{
    private readonly WorkerSlot[] _slots;
    private readonly VectorCallState _calls;
    private readonly Lock _lock = new();
    private (HubMessage Message, ulong Version, long Bytes)? _latest;
    private Action<int>? _replacementPolicy;

    internal WorkerPolicies(WorkerSlot[] slots, VectorCallState calls, TimeSpan ackTimeout)
    {
        _slots = slots;
        _calls = calls;
        _ackTimeout = ackTimeout;
        foreach (var s in slots) s.Policy.Changed = _acknowledged.Set;
    }

    private readonly TimeSpan _ackTimeout;
    private readonly ManualResetEventSlim _acknowledged = new(false);

    /// <summary>Per worker, in sub-env order: the policy versions it was sent and acts with, pushes, bytes and latency.</summary>
    public IReadOnlyList<WorkerPolicyState> States => _slots.Select(s => s.Policy).ToArray();

    /// <summary>Worker <paramref name="workerIndex"/>'s policy state (no copy of the list: for per-rollout checks).</summary>
    public WorkerPolicyState State(int workerIndex) => _slots[workerIndex].Policy;

    /// <summary>
    /// Sends policy weights to worker <paramref name="workerIndex"/> (in <see cref="ClusterVecEnv.Workers"/> order) and
    /// returns at once, whatever the network does: the worker applies them between commands, so a rollout in progress
    /// finishes with the old version. When the worker's stream is back-pressured (it is busy in a long rollout and not
    /// reading), or a replacement is joining, the push waits in a one-slot queue and a newer push replaces it (counted
    /// in <see cref="WorkerPolicyState.Coalesced"/>); a queued push always goes out before the next command to that
    /// worker. Returns the push's size on the wire. <see cref="WaitForAcks"/> waits for the acknowledgement.
    /// </summary>
    /// <exception cref="ArgumentException">A weight is NaN or infinite (named by index), or the push is larger than the worker accepts.</exception>
    public long Push(int workerIndex, ulong version, PolicySpec spec, ReadOnlySpan<float> weights, ObservationNormalizer? normalizer = null) =>
        Push(workerIndex, version, spec, weights, checkFinite: true, normalizer);

    /// <summary>Tests only: a push without the learner's finiteness check, so that the worker's own check can be seen to work.</summary>
    internal long PushUnchecked(int workerIndex, ulong version, PolicySpec spec, ReadOnlySpan<float> weights) =>
        Push(workerIndex, version, spec, weights, checkFinite: false);

    private long Push(int workerIndex, ulong version, PolicySpec spec, ReadOnlySpan<float> weights, bool checkFinite, ObservationNormalizer? normalizer = null)
    {
        _calls.ThrowIfUnusable(allowPending: true);
        ArgumentOutOfRangeException.ThrowIfNegative(workerIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(workerIndex, _slots.Length);
        ArgumentNullException.ThrowIfNull(spec);
        if (version == 0) throw new ArgumentOutOfRangeException(nameof(version), version, "Policy versions start at 1 (0 means 'no policy').");
        int bad = checkFinite ? ActorCritic.IndexOfNonFinite(weights) : -1;
        if (bad >= 0)
            throw new ArgumentException($"Weight {bad} of {weights.Length} is {weights[bad]}; a policy with NaN or infinite weights acts with NaN log-probs. " +
                                        "The update diverged: lower the learning rate or clip gradients, and push the last finite weights.", nameof(weights));
        var s = _slots[workerIndex];
        var message = new HubMessage { Policy = Update(version, spec, weights, normalizer) };
        long bytes = message.CalculateSize() + WireMessage.PrefixSize;
        if (bytes > s.Connection.MaxCommandSize)
            throw new ArgumentException($"The push is {bytes:N0} bytes but worker '{s.Id}' accepts commands of at most {s.Connection.MaxCommandSize:N0} bytes; " +
                                        "start the worker with a larger --max-message-size (or use a smaller policy).", nameof(weights));
        s.QueuePush(message, version, bytes, this);
        lock (_lock)
            if (version >= (_latest?.Version ?? 0)) _latest = (message, version, bytes);
        return bytes;
    }

    private static PolicyUpdate Update(ulong version, PolicySpec spec, ReadOnlySpan<float> weights, ObservationNormalizer? normalizer)
    {
        var update = new PolicyUpdate
        {
            Version = version,
            SpecJson = spec.ToJson(),
            Weights = new Tensor { Dtype = Transport.Protos.DType.Float32, Shape = { weights.Length }, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(weights)) },
        };
        if (normalizer is null) return update;
        if (normalizer.Mean.Length != spec.ObservationSize)
            throw new ArgumentException($"The observation statistics have {normalizer.Mean.Length} elements; the policy's observations have {spec.ObservationSize}.", nameof(normalizer));
        update.ObsMean = new Tensor { Dtype = Transport.Protos.DType.Float32, Shape = { normalizer.Mean.Length }, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(normalizer.Mean.AsSpan())) };
        update.ObsVar = new Tensor { Dtype = Transport.Protos.DType.Float32, Shape = { normalizer.Var.Length }, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(normalizer.Var.AsSpan())) };
        update.ObsClip = normalizer.Clip;
        return update;
    }

    /// <summary>
    /// Makes <paramref name="decide"/> the one place that gives a replacement its starting policy: it is called with
    /// the slot's index after the replacement registered and before it is welcomed, and pushes (or not) through
    /// <see cref="Push(int, ulong, PolicySpec, ReadOnlySpan{float}, ObservationNormalizer?)"/>. A publisher claims this
    /// so that it never pushes a version the replacement was already given.
    /// </summary>
    internal void DecideReplacementPolicy(Action<int> decide)
    {
        lock (_lock)
        {
            if (_replacementPolicy is not null && _replacementPolicy != decide)
                throw new InvalidOperationException("Another publisher already decides the replacements' policies of this vector env; use one PolicyPublisher per vector env.");
            _replacementPolicy = decide;
        }
    }

    // From a replacement's take-over, before its welcome: the publisher decides; without one, the newest push.
    internal void GiveStartingPolicy(WorkerSlot slot)
    {
        Action<int>? decide;
        (HubMessage Message, ulong Version, long Bytes)? latest;
        lock (_lock) (decide, latest) = (_replacementPolicy, _latest);
        if (decide is not null) decide(slot.Index);
        else if (latest is { } push && push.Bytes <= slot.Connection.MaxCommandSize) slot.QueuePush(push.Message.Clone(), push.Version, push.Bytes, this);
    }

    /// <summary>
    /// Waits until every push has been acknowledged; throws <see cref="PolicyRejectedException"/> naming workers that
    /// refused one. A worker acknowledges between commands, so a worker busy in a long rollout acknowledges when it
    /// ends: by default the wait lasts as long as every worker still owing an acknowledgement is heard from (replies or
    /// rollout progress) within <see cref="ClusterOptions.StepTimeout"/>, and fails by name for one silent that long.
    /// With <paramref name="timeout"/>, it fails after that long in any case.
    /// </summary>
    public void WaitForAcks(TimeSpan? timeout = null)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        while (true)
        {
            _acknowledged.Reset(); // before looking: an acknowledgement after the look sets it again
            if (!_slots.Any(s => s.Policy.Unacknowledged > 0)) break;
            if (_calls.Fatal is { } fatal) throw fatal;
            var owing = _slots.Where(s => s.Policy.Unacknowledged > 0);
            // Silent since the wait began or since its last message, whichever is later (as a gather counts).
            string[] late = timeout is { } limit
                ? (System.Diagnostics.Stopwatch.GetElapsedTime(start) > limit ? owing.Select(s => s.Id).ToArray() : [])
                : owing.Where(s => System.Diagnostics.Stopwatch.GetElapsedTime(Math.Max(Volatile.Read(ref s.LastHeard), start)) > _ackTimeout).Select(s => s.Id).ToArray();
            if (late.Length > 0)
                throw new WorkerTimeoutException(timeout is { } t
                    ? $"Policy pushes were not acknowledged within {t.TotalSeconds:0.#} s by {string.Join(", ", late.Select(id => $"worker '{id}'"))} " +
                      "(a worker busy in a long rollout acknowledges when it ends; wait longer, or call WaitForAcks() without a timeout to wait while the workers make progress)."
                    : $"Policy pushes are owed by {string.Join(", ", late.Select(id => $"worker '{id}'"))}, silent — no reply, no progress — for {_ackTimeout.TotalSeconds:0.#} s " +
                      "(ClusterOptions.StepTimeout); the worker may be hung.", late);
            _acknowledged.Wait(TimeSpan.FromMilliseconds(100)); // the cap: a lost or silent worker fails by name
        }
        var refused = _slots.Where(s => s.Policy.LastError is not null).ToArray();
        if (refused.Length > 0)
            throw new PolicyRejectedException(string.Join("; ", refused.Select(s => $"worker '{s.Id}' refused the push and keeps acting with version {s.Policy.ActiveVersion}: {s.Policy.LastError}")));
    }

    void IReplyOwner.OnReply(WorkerSlot slot, in SlotCommand command, int bodyField, ReadOnlySpan<byte> body)
    {
        double latencyMs = System.Diagnostics.Stopwatch.GetElapsedTime(command.SentAt).TotalMilliseconds;
        if (bodyField == WorkerMessage.PolicyAckFieldNumber)
        {
            var ack = PolicyAck.Parser.ParseFrom(body);
            slot.Policy.Acknowledged(ack.ActiveVersion, ack.Error, latencyMs);
        }
        else if (bodyField == WorkerMessage.ErrorFieldNumber)
        {
            var e = WorkerError.Parser.ParseFrom(body);
            slot.Policy.Acknowledged(slot.Policy.ActiveVersion, $"{e.Type}: {e.Message}", latencyMs);
        }
        else throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Reply field {bodyField} does not answer a policy push (expects policy_ack)."));
    }
}
