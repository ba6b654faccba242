using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using Microsoft.Extensions.Logging;
using Google.Protobuf;
using AutoresetMode = ClusterEnv.Vector.AutoresetMode;
using Space = ClusterEnv.Spaces.Space;

namespace ClusterEnv.Cluster;

/// <summary>
/// A vector env whose sub-envs live in worker processes: <see cref="Reset(int?, ResetOptions?)"/> and
/// <see cref="Step(ReadOnlySpan{int})"/> are shipped to the workers over one gRPC stream each and the replies are
/// gathered into the same contiguous buffers as <see cref="SyncVectorEnv"/>. Sub-envs are ordered worker by worker
/// (workers sorted by id), and autoreset behaves exactly as in <see cref="SyncVectorEnv"/> because each worker runs
/// one. See <see cref="IVectorEnv"/> for the contract.
/// </summary>
/// <remarks>
/// <para>With no configuration beyond the env id and count, it starts a hub on a free loopback port and a
/// <see cref="LocalWorkerPool"/>; with <see cref="ClusterOptions.LocalWorkers"/> false it waits for workers started
/// elsewhere. <see cref="StepAsync(ReadOnlySpan{int})"/> / <see cref="StepWait"/> let a learner overlap work with a step.</para>
/// <para><b>Failures.</b> A sub-env that throws on its worker surfaces as <see cref="SubEnvException"/> (with the
/// worker id and remote stack trace), after which a reset is needed. A lost worker gives <see cref="WorkerLostException"/>
/// and a missed deadline <see cref="WorkerTimeoutException"/>; after either the vector env is unusable and must be closed.</para>
/// </remarks>
/// <example>
/// <code>
/// // was: using var envs = Gym.MakeVec("CartPole-v1", numEnvs: 8);
/// using var envs = new ClusterVecEnv("CartPole-v1", numEnvs: 8);
/// </code>
/// </example>
public sealed partial class ClusterVecEnv : IVectorEnv, IWorkerReplySink
{
    private enum State { Idle, Pending, Broken, Closed }

    private sealed class Slot(WorkerConnection connection)
    {
        public readonly WorkerConnection Connection = connection;
        public int Offset;
        public int Count;
        public bool Lost;
        // Commands sent and not yet answered, oldest first (workers answer in order). Guarded by itself: the learner
        // enqueues, the connection's read loop dequeues.
        public readonly Queue<(ulong Seq, int Field, long SentAt)> Outstanding = new(4);
        // Held while a command is registered and written, so the wire order is the queue's order even when a push is
        // sent from another thread while a rollout is being collected. The read loop never takes it.
        public readonly Lock SendLock = new();
        public int Gathering;                 // outstanding commands that the current gather waits for
        public long LastHeard;                // Stopwatch timestamp of the worker's last message (reply or progress); read loop writes
        public readonly WorkerPolicyState Policy = new();
        // A push not yet written because the stream is back-pressured; a newer push replaces it. Under SendLock.
        public (HubMessage Message, ulong Version, long Bytes)? PendingPush;
        // Streaming: the StreamRollouts command's seq (0: not streaming; its rollouts bypass the ledger), rollouts
        // granted and not yet received, rollouts received, and the worker_id field appended to each queued rollout.
        public ulong StreamSeq;
        public int InFlight;
        public long StreamReceived;
        public byte[] IdField = [];
    }

    private readonly ClusterOptions _options;
    private readonly Microsoft.Extensions.Logging.ILogger _logger;
    private readonly ClusterHub _hub;
    private readonly LocalWorkerPool? _pool;
    private readonly Lock _lock = new();
    private readonly List<WorkerConnection> _joined = [];
    private readonly Slot[] _slots;
    private readonly ActionLayout _actions;
    private readonly int[] _actionShape;
    private readonly float[] _observations;
    private readonly double[] _rewards;
    private readonly bool[] _terminated;
    private readonly bool[] _truncated;
    private readonly bool[] _autoreset;
    private readonly VectorInfo _info;
    private readonly ManualResetEventSlim _replied = new(false, spinCount: 50);
    private readonly ManualResetEventSlim _allJoined = new(false);
    private int _pending;
    private ulong _seq;
    private long _gatherStart;              // Stopwatch timestamp of the current gather's Begin
    private State _state = State.Idle;
    private bool _needsReset = true;
    private bool _closing;
    private string? _brokenBecause;
    private Exception? _fatal;              // set by the read loops: the first lost worker
    private SubEnvException? _subEnvError;  // set by the read loops: the first sub-env error of this call
    private Exception? _workerError;
    private Rollouts.RolloutBatch? _rollouts;   // the target of the rollouts being collected

    /// <summary>Starts a hub and a local pool of workers hosting <paramref name="numEnvs"/> sub-envs of <paramref name="envId"/> in total.</summary>
    public ClusterVecEnv(string envId, int numEnvs, int numWorkers = 0, AutoresetMode autoresetMode = AutoresetMode.NextStep)
        : this(new ClusterOptions { EnvId = envId, NumEnvs = numEnvs, NumWorkers = numWorkers, AutoresetMode = autoresetMode }) { }

    /// <summary>Starts a hub, starts or waits for the workers, and blocks until all of them have registered.</summary>
    public ClusterVecEnv(ClusterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        int numWorkers = options.EffectiveNumWorkers;
        if (options.LocalWorkers && string.IsNullOrEmpty(options.Hub.Token))
            options = options with { Hub = options.Hub with { Token = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)) } };
        _options = options;
        _logger = (options.LoggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger<ClusterVecEnv>();
        _hub = ClusterHub.StartAsync(options.Hub, loggerFactory: options.LoggerFactory).GetAwaiter().GetResult();
        _hub.SetAdmission(Admit);
        try
        {
            if (options.LocalWorkers)
            {
                var counts = Enumerable.Range(0, numWorkers).Select(w => options.NumEnvs / numWorkers + (w < options.NumEnvs % numWorkers ? 1 : 0)).ToArray();
                _pool = LocalWorkerPool.Start(_hub.Url, options.EnvId, counts, options.Hub.Token, options.WorkerAssemblies, options.EnvArgs, options.WorkerPath);
            }
            _slots = WaitForWorkers(numWorkers);
        }
        catch
        {
            _pool?.Dispose();
            _hub.Dispose();
            throw;
        }

        int offset = 0;
        foreach (var s in _slots)
        {
            s.Offset = offset;
            s.Count = s.Connection.NumEnvs;
            offset += s.Count;
        }
        NumEnvs = offset;
        ClusterLog.AllRegistered(_logger, _slots.Length, NumEnvs);
        if (options.NumEnvs > 0 && NumEnvs != options.NumEnvs)
        {
            Dispose();
            throw new InvalidOperationException($"The workers host {NumEnvs} envs in total ({Describe(_slots)}) but ClusterOptions.NumEnvs is {options.NumEnvs}; start workers with matching --num-envs or set NumEnvs = 0.");
        }
        SingleObservationSpace = _slots[0].Connection.ObservationSpace;
        SingleActionSpace = _slots[0].Connection.ActionSpace;
        _actions = ActionLayout.For(SingleActionSpace);
        _actionShape = [.. new[] { 0 }, .. SingleActionSpace.Shape];
        ObservationSize = SingleObservationSpace.EncodedSize;
        ObservationSpace = SingleObservationSpace.Batch(NumEnvs);
        ActionSpace = SingleActionSpace.Batch(NumEnvs);
        _observations = new float[NumEnvs * ObservationSize];
        _rewards = new double[NumEnvs];
        _terminated = new bool[NumEnvs];
        _truncated = new bool[NumEnvs];
        _autoreset = new bool[NumEnvs];
        _info = new VectorInfo(NumEnvs, ObservationSize);
        Spec = Gym.Ids.Contains(options.EnvId) ? Gym.Spec(options.EnvId) : null;
        _replied.Wait(1); // the event creates its lock object on its first blocking wait: do that now, not inside a step

        // A worker is admitted before the hub has sent its response headers; commands may only follow them.
        var started = Task.WhenAll(_slots.Select(s => s.Connection.Started));
        try { started.Wait(options.ConnectTimeout); }
        catch (AggregateException) { }
        for (int i = 0; i < _slots.Length; i++)
        {
            var slot = _slots[i];
            slot.Connection.Attach(this);
            slot.Connection.Drained = () => SendPendingPush(slot);
            var welcome = new HubMessage
            {
                Welcome = new Welcome
                {
                    ProtocolVersion = ClusterHub.ProtocolVersion,
                    AutoresetMode = (Autoreset)(int)options.AutoresetMode,
                    RecordEpisodeStatistics = options.RecordEpisodeStatistics,
                    EnvOffset = (uint)slot.Offset,
                    ProgressIntervalMs = (uint)ProgressInterval(options.StepTimeout).TotalMilliseconds,
                    MaxMessageSize = (uint)options.Hub.MaxMessageSize,
                },
            };
            if (!slot.Connection.Started.IsCompletedSuccessfully || !slot.Connection.Send(welcome))
            {
                var lost = new WorkerLostException(slot.Connection.Id, "its stream ended before it was welcomed", _pool?.Describe(slot.Connection.Id));
                Dispose();
                throw lost;
            }
        }
    }

    /// <inheritdoc />
    public int NumEnvs { get; }

    /// <inheritdoc />
    public Space SingleObservationSpace { get; }

    /// <inheritdoc />
    public Space SingleActionSpace { get; }

    /// <inheritdoc />
    public Space ObservationSpace { get; }

    /// <inheritdoc />
    public Space ActionSpace { get; }

    /// <inheritdoc />
    public int ObservationSize { get; }

    /// <inheritdoc />
    public int ActionSize => _actions.Size;

    /// <inheritdoc />
    public AutoresetMode AutoresetMode => _options.AutoresetMode;

    /// <inheritdoc />
    public EnvSpec? Spec { get; }

    /// <inheritdoc />
    public bool IsClosed => _state == State.Closed;

    /// <summary>
    /// How often a worker reports progress during a rollout: often enough that a healthy worker always reports well
    /// within <see cref="ClusterOptions.StepTimeout"/>, and at most once a second.
    /// </summary>
    internal static TimeSpan ProgressInterval(TimeSpan stepTimeout) =>
        TimeSpan.FromMilliseconds(Math.Clamp(stepTimeout.TotalMilliseconds / 4, 10, 1000));

    /// <summary>The hub the workers are connected to (its URL is what external workers dial).</summary>
    public ClusterHub Hub => _hub;

    /// <summary>The options this vector env was created with.</summary>
    public ClusterOptions Options => _options;

    /// <summary>The local worker pool, when this vector env started one.</summary>
    public LocalWorkerPool? Pool => _pool;

    /// <summary>The workers in sub-env order, with the index of each one's first sub-env.</summary>
    public IReadOnlyList<(string WorkerId, int EnvOffset, int NumEnvs)> Workers =>
        _slots.Select(s => (s.Connection.Id, s.Offset, s.Count)).ToArray();

    // ---------------- registration ----------------

    private string? Admit(WorkerConnection w)
    {
        lock (_lock)
        {
            if (_allJoined.IsSet || _closing)
            {
                var lost = _joined.Where(j => j.IsCompleted).Select(j => j.Id).ToArray();
                var live = _joined.Where(j => !j.IsCompleted).Select(j => j.Id).ToArray();
                return lost.Length == 0
                    ? $"This vector env already has its {live.Length} workers ({string.Join(", ", live)}); worker '{w.Id}' is not needed."
                    : $"This vector env lost {string.Join(", ", lost.Select(l => $"worker '{l}'"))} and does not take replacements " +
                      $"({live.Length} live: {(live.Length == 0 ? "none" : string.Join(", ", live))}); worker '{w.Id}' cannot join. Close the vector env and create a new one.";
            }
            if (w.Registration.EnvId != _options.EnvId)
                return $"Worker '{w.Id}' hosts '{w.Registration.EnvId}' but this vector env runs '{_options.EnvId}'; start the worker with --env {_options.EnvId}.";
            _joined.RemoveAll(j => j.IsCompleted);
            if (_joined.Any(j => j.Id == w.Id))
                return $"A worker with id '{w.Id}' is already registered; give every worker a unique --worker-id.";
            if (_joined.Count > 0)
            {
                var first = _joined[0];
                if (!w.ObservationSpace.Equals(first.ObservationSpace))
                    return $"Worker '{w.Id}' has observation space {w.ObservationSpace} but '{first.Id}' has {first.ObservationSpace}; all workers must host the same env.";
                if (!w.ActionSpace.Equals(first.ActionSpace))
                    return $"Worker '{w.Id}' has action space {w.ActionSpace} but '{first.Id}' has {first.ActionSpace}; all workers must host the same env.";
            }
            else
            {
                try { ActionLayout.For(w.ActionSpace); }
                catch (NotSupportedException e) { return e.Message; }
            }
            _joined.Add(w);
            if (_joined.Count == _options.EffectiveNumWorkers) _allJoined.Set();
            return null;
        }
    }

    private Slot[] WaitForWorkers(int numWorkers)
    {
        var sw = Stopwatch.StartNew();
        while (!_allJoined.Wait(TimeSpan.FromMilliseconds(100)))
        {
            _pool?.ThrowIfAnyExited();
            if (sw.Elapsed < _options.ConnectTimeout) continue;
            lock (_lock)
            {
                _closing = true;
                var have = _joined.Select(j => j.Id).ToArray();
                var missing = _pool is null ? [] : _pool.WorkerIds.Except(have).ToArray();
                var refused = _hub.Refusals;
                throw new WorkerTimeoutException(
                    $"Only {have.Length} of {numWorkers} workers registered within {_options.ConnectTimeout.TotalSeconds:0.#} s " +
                    $"(registered: {(have.Length == 0 ? "none" : string.Join(", ", have))}" +
                    (missing.Length > 0 ? $"; missing: {string.Join(", ", missing)}" : "") +
                    (refused.Count > 0 ? $"; {refused.Count} refused: {string.Join("; ", refused)}" : "") +
                    $"). Workers must dial {_hub.Url} with --env {_options.EnvId}" + (string.IsNullOrEmpty(_options.Hub.Token) ? "" : " and the hub's token") + ".",
                    missing);
            }
        }
        lock (_lock)
            return _joined.OrderBy(j => j.Id, StringComparer.Ordinal).Select(j => new Slot(j)).ToArray();
    }

    // ---------------- reset ----------------

    /// <inheritdoc />
    public VectorResetResult Reset(int? seed = null, ResetOptions? options = null)
    {
        ThrowIfUnusable();
        VectorArgs.CheckSeed(seed, NumEnvs);
        return ResetCore(seed is int s ? i => s + i : _ => null, options);
    }

    /// <inheritdoc />
    public VectorResetResult Reset(IReadOnlyList<int?> seeds, ResetOptions? options = null)
    {
        ThrowIfUnusable();
        if (_stream is not null) ThrowIfNotSteppable();
        VectorArgs.CheckSeeds(seeds, NumEnvs);
        return ResetCore(i => seeds[i], options);
    }

    private VectorResetResult ResetCore(Func<int, int?> seedOf, ResetOptions? options)
    {
        var mask = VectorArgs.CheckMask(options, NumEnvs);
        var commands = new HubMessage?[_slots.Length];
        for (int w = 0; w < _slots.Length; w++)
        {
            var s = _slots[w];
            if (mask is not null && Array.IndexOf(mask, true, s.Offset, s.Count) < 0) continue;
            var reset = new ResetCommand();
            for (int i = 0; i < s.Count; i++)
            {
                int? seed = seedOf(s.Offset + i);
                reset.HasSeed.Add(seed.HasValue);
                reset.Seeds.Add(seed ?? 0);
                if (mask is not null) reset.Mask.Add(mask[s.Offset + i]);
            }
            if (options is not null)
            {
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
            }
            commands[w] = new HubMessage { Reset = reset };
        }

        _info.Clear();
        Begin();
        for (int w = 0; w < _slots.Length; w++)
        {
            if (commands[w] is not { } cmd) continue;
            SendTracked(_slots[w], cmd, WorkerMessage.ResetFieldNumber);
        }
        End("Reset");
        for (int i = 0; i < NumEnvs; i++)
        {
            if (mask is not null && !mask[i]) continue;
            _terminated[i] = _truncated[i] = _autoreset[i] = false;
        }
        if (mask is null) _needsReset = false;
        return new VectorResetResult(_observations, _info);
    }

    // ---------------- step ----------------

    /// <inheritdoc />
    public VectorStepResult Step(ReadOnlySpan<int> actions)
    {
        StepAsync(actions);
        return StepWait();
    }

    /// <inheritdoc />
    public VectorStepResult Step(ReadOnlySpan<float> actions)
    {
        StepAsync(actions);
        return StepWait();
    }

    /// <summary>Sends a step with integer actions and returns at once; collect the result with <see cref="StepWait"/>.</summary>
    public void StepAsync(ReadOnlySpan<int> actions)
    {
        ThrowIfNotSteppable();
        _actions.Check(actions, NumEnvs);
        VectorArgs.CheckNotFinished(AutoresetMode, _autoreset, _terminated);
        SendSteps(actions, default);
    }

    /// <summary>Sends a step with continuous actions and returns at once; collect the result with <see cref="StepWait"/>.</summary>
    public void StepAsync(ReadOnlySpan<float> actions)
    {
        ThrowIfNotSteppable();
        _actions.Check(actions, NumEnvs);
        VectorArgs.CheckNotFinished(AutoresetMode, _autoreset, _terminated);
        SendSteps(default, actions);
    }

    private readonly ref struct StepState(ulong seq, ReadOnlySpan<int> shape, ReadOnlySpan<int> ints, ReadOnlySpan<float> floats)
    {
        public readonly ulong Seq = seq;
        public readonly ReadOnlySpan<int> Shape = shape;
        public readonly ReadOnlySpan<int> Ints = ints;
        public readonly ReadOnlySpan<float> Floats = floats;
    }

    private static int WriteStep(Span<byte> dest, StepState st) => st.Floats.IsEmpty
        ? StepCodec.WriteStepCommand(dest, st.Seq, st.Shape, st.Ints)
        : StepCodec.WriteStepCommand(dest, st.Seq, st.Shape, st.Floats);

    private void SendSteps(ReadOnlySpan<int> ints, ReadOnlySpan<float> floats)
    {
        _info.Clear();
        Begin();
        int size = _actions.Size;
        bool continuous = !floats.IsEmpty;
        foreach (var s in _slots)
        {
            _actionShape[0] = s.Count;
            lock (s.SendLock)
            {
                if (s.PendingPush is not null) WritePendingPushLocked(s);
                ulong seq = Expect(s, WorkerMessage.StepFieldNumber);
                var st = continuous
                    ? new StepState(seq, _actionShape, default, floats.Slice(s.Offset * size, s.Count * size))
                    : new StepState(seq, _actionShape, ints.Slice(s.Offset * size, s.Count * size), default);
                int bytes = StepCodec.StepCommandSize(seq, _actionShape, s.Count * size, continuous);
                s.Connection.Send(bytes, st, WriteStep); // false when the stream has ended: its read loop reports why
            }
        }
    }

    /// <summary>Waits for the step sent by <c>StepAsync</c> and returns its result (buffers owned by this vector env).</summary>
    public VectorStepResult StepWait()
    {
        if (_state == State.Closed) throw VectorArgs.Closed();
        // Reset and Step finish their own gathers, so a pending state between calls is always a StepAsync.
        if (_state != State.Pending) throw new NoAsyncCallException("StepWait was called with no step pending; call StepAsync(actions) first.");
        End("Step");
        for (int i = 0; i < NumEnvs; i++) _autoreset[i] = _terminated[i] || _truncated[i];
        return new VectorStepResult(_observations, _rewards, _terminated, _truncated, _info);
    }

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
        lock (s.SendLock)
        {
            s.Policy.Queued(version, replaced: s.PendingPush is not null);
            s.PendingPush = (message, version, bytes);
        }
        SendPendingPush(s);
        return bytes;
    }

    // Writes the queued push unless the stream is back-pressured (then the connection's Drained callback comes back here).
    private void SendPendingPush(Slot s)
    {
        lock (s.SendLock)
        {
            if (s.PendingPush is null || s.Connection.IsBackPressured) return;
            WritePendingPushLocked(s);
        }
    }

    // Under s.SendLock. Registers and writes the queued push, if any.
    private void WritePendingPushLocked(Slot s)
    {
        if (s.PendingPush is not { } push) return;
        s.PendingPush = null;
        push.Message.Seq = Expect(s, WorkerMessage.PolicyAckFieldNumber, gather: false);
        s.Policy.Sent(push.Bytes); // before sending: the acknowledgement may arrive before Send returns
        s.Connection.Send(push.Message);
    }

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

    private void OnPolicyAck(Slot s, long sentAt, int bodyField, ReadOnlySpan<byte> body)
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

    // ---------------- the gather ----------------

    private void Begin()
    {
        _subEnvError = null;
        _workerError = null;
        _replied.Reset();
        _gatherStart = System.Diagnostics.Stopwatch.GetTimestamp();
        Volatile.Write(ref _pending, 1); // a guard released by End, so replies racing the sends cannot finish early
        _state = State.Pending;
        if (Volatile.Read(ref _fatal) is not null) _replied.Set(); // a loss reported just before the Reset above must still wake End
    }

    /// <summary>Commands written to worker <paramref name="workerIndex"/> and not yet answered (a command is counted once it is on the wire).</summary>
    internal int OutstandingCommands(int workerIndex)
    {
        var s = _slots[workerIndex];
        lock (s.SendLock) lock (s.Outstanding) return s.Outstanding.Count;
    }

    // Registers and writes a generated command as one step under the slot's send lock (a queued push goes first).
    // A send to a stream that has ended is not reported here: the stream's read loop always reports the loss, with
    // the reason it saw (reset, silence, protocol error), and that wakes the gather.
    private void SendTracked(Slot s, HubMessage command, int replyField, bool gather = true)
    {
        lock (s.SendLock)
        {
            WritePendingPushLocked(s);
            command.Seq = Expect(s, replyField, gather);
            s.Connection.Send(command);
        }
    }

    // Registers a command before it is sent (its reply may race the send). Gathered commands hold the learner's wait.
    private ulong Expect(Slot s, int field, bool gather = true)
    {
        ulong seq = Interlocked.Increment(ref _seq);
        if (gather)
        {
            Interlocked.Increment(ref _pending);
            Interlocked.Increment(ref s.Gathering);
        }
        lock (s.Outstanding) s.Outstanding.Enqueue((seq, field, System.Diagnostics.Stopwatch.GetTimestamp()));
        return seq;
    }

    // Waits for the gather. A worker is hung when it has sent nothing — no reply, no progress — for StepTimeout since
    // the gather began or since its last message, so a long rollout that reports progress never times out.
    private void End(string operation)
    {
        if (Interlocked.Decrement(ref _pending) == 0) _replied.Set();
        long timeout = (long)(_options.StepTimeout.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        while (true)
        {
            long now = System.Diagnostics.Stopwatch.GetTimestamp(), wait = timeout;
            bool late = false;
            foreach (var s in _slots)
            {
                if (Volatile.Read(ref s.Gathering) <= 0) continue;
                long left = Math.Max(Volatile.Read(ref s.LastHeard), _gatherStart) + timeout - now;
                if (left <= 0) late = true;
                else wait = Math.Min(wait, left);
            }
            if (late && !_replied.IsSet) break;
            int ms = (int)Math.Min(int.MaxValue, wait * 1000 / System.Diagnostics.Stopwatch.Frequency + 1);
            if (_replied.Wait(ms)) break;
        }
        if (Volatile.Read(ref _fatal) is { } fatal)
        {
            Break(fatal.Message);
            throw fatal;
        }
        if (!_replied.IsSet) ThrowHung(operation, timeout);
        _state = State.Idle;
        if (_workerError is { } we)
        {
            _needsReset = true;
            throw we;
        }
        if (_subEnvError is { } se)
        {
            _needsReset = true;
            throw se;
        }
    }

    // Kept out of End: its lambdas capture locals, and a closure in End would be allocated on every step.
    private void ThrowHung(string operation, long timeout)
    {
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        var hung = _slots.Where(s => Volatile.Read(ref s.Gathering) > 0 && now - Math.Max(Volatile.Read(ref s.LastHeard), _gatherStart) >= timeout).ToArray();
        var late = hung.Select(s => s.Connection.Id).ToArray();
        string message = $"{operation} got no reply and no progress from {string.Join(", ", late.Select(l => $"worker '{l}'"))} for " +
                         $"{_options.StepTimeout.TotalSeconds:0.###} s (ClusterOptions.StepTimeout). The worker may be hung in its env; the vector env is unusable now, close it and create a new one.";
        foreach (var s in hung)
        {
            ClusterLog.WorkerHung(_logger, operation, s.Connection.Id, _options.StepTimeout.TotalSeconds);
            s.Connection.Close(GrpcStatusCode.DeadlineExceeded, $"No reply and no progress for {_options.StepTimeout.TotalSeconds:0.###} s.");
        }
        Break(message);
        throw new WorkerTimeoutException(message, late);
    }

    private void Break(string reason)
    {
        _state = State.Broken;
        _brokenBecause = reason;
    }

    private void Done(Slot s)
    {
        Interlocked.Decrement(ref s.Gathering);
        if (Interlocked.Decrement(ref _pending) == 0) _replied.Set();
    }

    private Slot SlotOf(WorkerConnection w)
    {
        foreach (var s in _slots) if (ReferenceEquals(s.Connection, w)) return s;
        throw new InvalidOperationException($"Unknown {w}.");
    }

    void IWorkerReplySink.OnReply(WorkerConnection worker, ulong seq, int bodyField, ReadOnlySpan<byte> body)
    {
        if (Volatile.Read(ref _closing)) return;
        var s = SlotOf(worker);
        Volatile.Write(ref s.LastHeard, System.Diagnostics.Stopwatch.GetTimestamp());
        (ulong Seq, int Field, long SentAt) head;
        if (seq != 0 && seq == Volatile.Read(ref s.StreamSeq))
        {
            OnStreamReply(s, bodyField, body);
            return;
        }
        if (bodyField == WorkerMessage.ProgressFieldNumber)
        {
            lock (s.Outstanding)
                if (!s.Outstanding.TryPeek(out head) || head.Seq != seq)
                    throw new GrpcException(GrpcStatusCode.FailedPrecondition, $"Progress for seq {seq} does not belong to the oldest pending command" +
                        (s.Outstanding.Count == 0 ? " (none is pending)" : $" (seq {head.Seq})") + ".");
            return;
        }
        lock (s.Outstanding)
        {
            if (!s.Outstanding.TryDequeue(out head) || head.Seq != seq)
                throw new GrpcException(GrpcStatusCode.FailedPrecondition, $"Reply with seq {seq} (field {bodyField}) does not answer the oldest pending command" +
                    (s.Outstanding.Count == 0 && head.Seq == 0 ? " (none is pending)" : $" (seq {head.Seq})") + "; answer each command once, in order.");
        }
        if (head.Field == WorkerMessage.PolicyAckFieldNumber)
        {
            OnPolicyAck(s, head.SentAt, bodyField, body);
            return;
        }
        switch (bodyField)
        {
            case WorkerMessage.StepFieldNumber when head.Field == WorkerMessage.StepFieldNumber:
                StepCodec.ReadStepResult(body, new StepCodec.StepTarget(_observations, _rewards, _terminated, _truncated, _info, s.Offset, s.Count, ObservationSize));
                break;
            case WorkerMessage.ResetFieldNumber when head.Field == WorkerMessage.ResetFieldNumber:
                ReadReset(s, ResetResult.Parser.ParseFrom(body));
                break;
            case WorkerMessage.RolloutFieldNumber when head.Field == WorkerMessage.RolloutFieldNumber:
                _rollouts!.Fill(RolloutResult.Parser.ParseFrom(body), s.Offset, s.Count);
                break;
            case WorkerMessage.StreamEndedFieldNumber when head.Field == WorkerMessage.StreamEndedFieldNumber:
                Volatile.Write(ref s.StreamSeq, 0UL); // every rollout of the stream came before this reply
                break;
            case WorkerMessage.ErrorFieldNumber:
                var e = WorkerError.Parser.ParseFrom(body);
                if (e.EnvIndex >= 0 && e.EnvIndex < s.Count)
                    Interlocked.CompareExchange(ref _subEnvError, new SubEnvException(s.Offset + e.EnvIndex, worker.Id, e.Type, e.Message, NullIfEmpty(e.StackTrace)), null);
                else
                    Interlocked.CompareExchange(ref _workerError, new WorkerException(worker.Id, e.Type, e.Message, NullIfEmpty(e.StackTrace)), null);
                break;
            default:
                throw new GrpcException(GrpcStatusCode.FailedPrecondition, $"Reply field {bodyField} does not answer the pending command (expects field {head.Field}).");
        }
        Done(s);
    }

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;

    private void ReadReset(Slot s, ResetResult r)
    {
        var t = r.Observations ?? throw new InvalidDataException("ResetResult has no observations.");
        int n = s.Count * ObservationSize;
        if (t.Dtype != Transport.Protos.DType.Float32 || t.Data.Length != n * 4)
            throw new InvalidDataException($"ResetResult observations are {t.Dtype} with {t.Data.Length} bytes; expected FLOAT32 with {n * 4}.");
        MemoryMarshal.Cast<byte, float>(t.Data.Span).CopyTo(_observations.AsSpan(s.Offset * ObservationSize, n));
        if (r.Episode is { } ep) StepCodec.ReadEpisodeStats(ep.ToByteArray(), _info.Episode, s.Offset, s.Count);
    }

    /// <inheritdoc cref="IWorkerReplySink.OnLost" />
    public void OnLost(WorkerConnection worker, string reason)
    {
        if (Volatile.Read(ref _closing)) return;
        Slot s;
        try { s = SlotOf(worker); }
        catch (InvalidOperationException) { return; }
        lock (_lock)
        {
            if (s.Lost) return;
            s.Lost = true;
        }
        ClusterLog.WorkerLost(_logger, worker.Id, reason);
        var lost = new WorkerLostException(worker.Id, reason, _pool?.Describe(worker.Id));
        Interlocked.CompareExchange(ref _fatal, lost, null);
        _replied.Set(); // wake the learner at once; the other workers' replies no longer matter
    }

    // ---------------- state checks and close ----------------

    private void ThrowIfUnusable(bool allowPending = false)
    {
        switch (_state)
        {
            case State.Closed: throw VectorArgs.Closed();
            case State.Pending when !allowPending: throw new AlreadyPendingCallException("A step is pending; call StepWait() before calling Reset or Step again.");
            case State.Broken: throw new InvalidOperationException($"This vector env is unusable after an earlier failure ({_brokenBecause}); close it and create a new one.");
        }
        if (Volatile.Read(ref _fatal) is { } fatal)
        {
            Break(fatal.Message);
            throw fatal;
        }
    }

    private void ThrowIfNotSteppable()
    {
        ThrowIfUnusable();
        if (_stream is not null)
            throw new InvalidOperationException("Rollouts are streaming from the workers; stop the stream (StopStreaming, or dispose the StreamingRolloutSource) before stepping, resetting or collecting lockstep rollouts.");
        if (_needsReset) throw VectorArgs.ResetNeeded();
    }

    /// <inheritdoc />
    public void Close()
    {
        if (_state == State.Closed) return;
        if (_state == State.Pending)
        {
            try { _replied.Wait(_options.CloseTimeout); } catch (ObjectDisposedException) { }
        }
        _state = State.Closed;
        Volatile.Write(ref _closing, true);
        var slots = _slots ?? [];
        foreach (var s in slots)
            lock (s.SendLock) s.Connection.Send(new HubMessage { Seq = Interlocked.Increment(ref _seq), Close = new CloseCommand() });
        var sw = Stopwatch.StartNew();
        while (slots.Any(s => !s.Connection.IsCompleted) && sw.Elapsed < _options.CloseTimeout) Thread.Sleep(5);
        foreach (var s in slots) s.Connection.Close(GrpcStatusCode.OK, null);
        _hub.Dispose();
        _pool?.Stop(_options.CloseTimeout);
        ClusterLog.Closed(_logger, slots.Length);
        _pool?.Dispose();
    }

    /// <inheritdoc />
    public void Dispose() => Close();

    /// <inheritdoc />
    public override string ToString() => $"ClusterVecEnv({_options.EnvId}, num_envs={NumEnvs}, workers={_slots.Length}, hub={_hub.Url})";

    private static string Describe(Slot[] slots) => string.Join(", ", slots.Select(s => $"{s.Connection.Id}: {s.Connection.NumEnvs}"));
}
