using System.Diagnostics;
using System.Runtime.InteropServices;
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

    private readonly ClusterOptions _options;
    private readonly Microsoft.Extensions.Logging.ILogger _logger;
    private readonly WorkerFleet _fleet;
    private readonly Lock _lock = new();
    private readonly WorkerChannel[] _slots;
    private readonly ActionLayout _actions;
    private readonly int[] _actionShape;
    private readonly float[] _observations;
    private readonly double[] _rewards;
    private readonly bool[] _terminated;
    private readonly bool[] _truncated;
    private readonly bool[] _autoreset;
    private readonly VectorInfo _info;
    private readonly ManualResetEventSlim _replied = new(false, spinCount: 50);
    private int _pending;
    private ulong _seq;
    private long _gatherStart;              // Stopwatch timestamp of the current gather's Begin
    private State _state = State.Idle;
    private bool _needsReset = true;
    private volatile bool _interruptible; // the current gather is a Step or Reset, which may go on without a lost worker
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
        _logger = (options.LoggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger<ClusterVecEnv>();
        _fleet = new WorkerFleet(options, _logger);
        _options = options = _fleet.Options;
        try
        {
            _slots = _fleet.WaitForAll().Select(c => new WorkerChannel(c, NextSeq)).ToArray();
            _fleet.ReplacementAdmission = TryAdmitReplacement;
            _gathered = new WorkerChannel[_slots.Length];
        }
        catch
        {
            _fleet.Dispose();
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
        _interrupted = new bool[_slots.Length];
        _info = new VectorInfo(NumEnvs, ObservationSize);
        Spec = Gym.Ids.Contains(options.EnvId) ? Gym.Spec(options.EnvId) : RemoteSpec(_slots[0].Connection.Registration.EnvSpec);
        _replied.Wait(1); // the event creates its lock object on its first blocking wait: do that now, not inside a step

        // A worker is admitted before the hub has sent its response headers; commands may only follow them.
        var started = Task.WhenAll(_slots.Select(s => s.Connection.Started));
        try { started.Wait(options.ConnectTimeout); }
        catch (AggregateException) { }
        for (int i = 0; i < _slots.Length; i++)
        {
            var slot = _slots[i];
            slot.Connection.Attach(this);
            slot.Connection.Drained = slot.SendPendingPush;
            if (!slot.Connection.Started.IsCompletedSuccessfully || !slot.Connection.Send(WelcomeFor(slot)))
            {
                var lost = new WorkerLostException(slot.Connection.Id, slot.Connection.LostReason ?? "its stream ended before it was welcomed", _fleet.Describe(slot.Connection.Id));
                Dispose();
                throw lost;
            }
        }
    }

    private HubMessage WelcomeFor(WorkerChannel slot) => new()
    {
        Welcome = new Welcome
        {
            ProtocolVersion = ClusterHub.ProtocolVersion,
            AutoresetMode = (Autoreset)(int)_options.AutoresetMode,
            RecordEpisodeStatistics = _options.RecordEpisodeStatistics,
            EnvOffset = (uint)slot.Offset,
            ProgressIntervalMs = (uint)ProgressInterval(_options.StepTimeout).TotalMilliseconds,
            MaxMessageSize = (uint)_options.Hub.MaxMessageSize,
        },
    };

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

    // An env known only to the workers: its spec as the first worker's registry gave it (Gymnasium's, for a Python worker).
    private static EnvSpec? RemoteSpec(EnvSpecInfo? info) => info is null || info.Id.Length == 0 ? null
        : new EnvSpec(info.Id, _ => throw new InvalidOperationException($"'{info.Id}' exists only on the workers; this process cannot make it (register it here with Gym.Register to run it locally)."),
            info.MaxEpisodeSteps == 0 ? null : (int)info.MaxEpisodeSteps, info.HasRewardThreshold ? info.RewardThreshold : null)
        {
            Nondeterministic = info.Nondeterministic, RenderModes = [.. info.RenderModes], IsRemote = true,
        };

    /// <summary>
    /// How often a worker reports progress during a rollout: often enough that a healthy worker always reports well
    /// within <see cref="ClusterOptions.StepTimeout"/>, and at most once a second.
    /// </summary>
    internal static TimeSpan ProgressInterval(TimeSpan stepTimeout) =>
        TimeSpan.FromMilliseconds(Math.Clamp(stepTimeout.TotalMilliseconds / 4, 10, 1000));

    /// <summary>The hub the workers are connected to (its URL is what external workers dial).</summary>
    public ClusterHub Hub => _fleet.Hub;

    /// <summary>The options this vector env was created with.</summary>
    public ClusterOptions Options => _options;

    /// <summary>The local worker pool, when this vector env started one.</summary>
    public LocalWorkerPool? Pool => _fleet.Pool;

    /// <summary>The workers in sub-env order, with the index of each one's first sub-env.</summary>
    public IReadOnlyList<(string WorkerId, int EnvOffset, int NumEnvs)> Workers =>
        _slots.Select(s => (s.Connection.Id, s.Offset, s.Count)).ToArray();

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
        AwaitReplacements();
        Begin(interruptible: true);
        for (int w = 0; w < _slots.Length; w++)
        {
            if (commands[w] is not { } cmd) continue;
            SendTracked(_slots[w], cmd, WorkerMessage.ResetFieldNumber);
        }
        End("Reset");
        // A worker replaced during the reset: its replacement was reset with fresh seeds, not the ones asked for.
        AwaitReplacements();
        Array.Clear(_interrupted);
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
        AwaitReplacements();
        Begin(interruptible: true);
        int size = _actions.Size;
        bool continuous = !floats.IsEmpty;
        for (int w = 0; w < _slots.Length; w++)
        {
            var s = _slots[w];
            if (_interrupted[w]) continue; // taken over since the last step: reported truncated by StepWait
            _actionShape[0] = s.Count;
            Interlocked.Increment(ref _pending); // before the command is written: its reply may race the write
            _gathered[_gatheredCount++] = s;
            lock (s.SendLock)
            {
                ulong seq = s.RegisterLocked(WorkerMessage.StepFieldNumber, gather: true);
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
        if (AwaitReplacements() || _interruptedAny) ReportInterrupted();
        for (int i = 0; i < NumEnvs; i++) _autoreset[i] = _terminated[i] || _truncated[i];
        return new VectorStepResult(_observations, _rewards, _terminated, _truncated, _info);
    }

    private bool _interruptedAny => Array.IndexOf(_interrupted, true) >= 0;

    // The envs of a worker lost during or before this step: their episodes were cut short, so they report truncated
    // with reward 0 and the replacement's first observation (already in place from its reset).
    private void ReportInterrupted()
    {
        for (int w = 0; w < _slots.Length; w++)
        {
            if (!_interrupted[w]) continue;
            _interrupted[w] = false;
            var s = _slots[w];
            for (int i = s.Offset; i < s.Offset + s.Count; i++)
            {
                _rewards[i] = 0;
                _terminated[i] = false;
                _truncated[i] = true;
            }
        }
    }

    // ---------------- the gather ----------------

    private void Begin(bool interruptible = false)
    {
        _interruptible = interruptible;
        _subEnvError = null;
        _workerError = null;
        _replied.Reset();
        _gatherStart = System.Diagnostics.Stopwatch.GetTimestamp();
        Volatile.Write(ref _pending, 1); // a guard released by End, so replies racing the sends cannot finish early
        _gatheredCount = 0;
        _state = State.Pending;
        if (Volatile.Read(ref _fatal) is not null) _replied.Set(); // a loss reported just before the Reset above must still wake End
    }

    /// <summary>Commands written to worker <paramref name="workerIndex"/> and not yet answered (a command is counted once it is on the wire).</summary>
    internal int OutstandingCommands(int workerIndex)
    {
        return _slots[workerIndex].OutstandingCount;
    }

    // Registers and writes a generated command (a queued push goes first). A gathered command holds the learner's
    // wait: the count goes up before the write, since the reply may race it.
    private void SendTracked(WorkerChannel s, HubMessage command, int replyField, bool gather = true)
    {
        if (gather)
        {
            Interlocked.Increment(ref _pending);
            _gathered[_gatheredCount++] = s;
        }
        s.SendTracked(command, replyField, gather);
    }

    // The channels the current gather waits on (a lost worker's replacement takes its slot, not its place here).
    private WorkerChannel[] _gathered = [];
    private int _gatheredCount;

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
            for (int g = 0; g < _gatheredCount; g++)
            {
                var s = _gathered[g];
                if (Volatile.Read(ref s.Gathering) <= 0) continue;
                if (_interruptible && Volatile.Read(ref s.Lost) && _replacingSince.ContainsKey(s.Id))
                {
                    ReleaseGather(s); // lost after its loss was handled (a command written to a dead stream)
                    continue;
                }
                long left = Volatile.Read(ref s.Lost) ? 0 : Math.Max(Volatile.Read(ref s.LastHeard), _gatherStart) + timeout - now;
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
        var hung = _gathered.Take(_gatheredCount).Where(s => Volatile.Read(ref s.Gathering) > 0 &&
            (Volatile.Read(ref s.Lost) || now - Math.Max(Volatile.Read(ref s.LastHeard), _gatherStart) >= timeout)).ToArray();
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

    private void Done(WorkerChannel s)
    {
        Interlocked.Decrement(ref s.Gathering);
        if (Interlocked.Decrement(ref _pending) == 0) _replied.Set();
    }

    private WorkerChannel SlotOf(WorkerConnection w)
    {
        foreach (var s in _slots) if (ReferenceEquals(s.Connection, w)) return s;
        throw new InvalidOperationException($"Unknown {w}.");
    }

    void IWorkerReplySink.OnReply(WorkerConnection worker, ulong seq, int bodyField, ReadOnlySpan<byte> body)
    {
        if (Volatile.Read(ref _closing)) return;
        var s = SlotOf(worker);
        Volatile.Write(ref s.LastHeard, System.Diagnostics.Stopwatch.GetTimestamp());
        (ulong Seq, int Field, long SentAt, bool Gather) head;
        if (seq != 0 && seq == Volatile.Read(ref s.StreamSeq))
        {
            OnStreamReply(s, bodyField, body);
            return;
        }
        if (bodyField == WorkerMessage.ProgressFieldNumber)
        {
            s.CheckProgress(seq);
            return;
        }
        head = s.TakeReply(seq, bodyField);
        if (head.Field == WorkerMessage.PolicyAckFieldNumber)
        {
            OnPolicyAck(s, head.SentAt, bodyField, body);
            return;
        }
        if (head.Field == WorkerMessage.GradientResultFieldNumber)
        {
            OnGradientReply(s, bodyField, body);
            return;
        }
        switch (bodyField)
        {
            case WorkerMessage.StepFieldNumber when head.Field == WorkerMessage.StepFieldNumber:
                StepCodec.ReadStepResult(body, new StepCodec.StepTarget(_observations, _rewards, _terminated, _truncated, _info, s.Offset, s.Count, ObservationSize));
                break;
            case WorkerMessage.ResetFieldNumber when head.Field == WorkerMessage.ResetFieldNumber:
                ReadReset(s, ResetResult.Parser.ParseFrom(body));
                Volatile.Write(ref s.ResetAnswered, true);
                break;
            case WorkerMessage.RolloutFieldNumber when head.Field == WorkerMessage.RolloutFieldNumber:
                _rollouts!.Fill(RolloutResult.Parser.ParseFrom(body), s.Offset, s.Count);
                break;
            case WorkerMessage.AttrResultFieldNumber when head.Field == WorkerMessage.AttrResultFieldNumber:
                ReadAttrResult(s, AttrResult.Parser.ParseFrom(body));
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
        if (head.Gather) Done(s);
    }

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;

    private ulong NextSeq() => Interlocked.Increment(ref _seq);

    private void ReadReset(WorkerChannel s, ResetResult r)
    {
        var t = r.Observations ?? throw new InvalidDataException("ResetResult has no observations.");
        int n = s.Count * ObservationSize;
        if (t.Dtype != Transport.Protos.DType.Float32 || t.Data.Length != n * 4)
            throw new InvalidDataException($"ResetResult observations are {t.Dtype} with {t.Data.Length} bytes; expected FLOAT32 with {n * 4}.");
        MemoryMarshal.Cast<byte, float>(t.Data.Span).CopyTo(_observations.AsSpan(s.Offset * ObservationSize, n));
        if (r.Episode is { } ep) StepCodec.ReadEpisodeStats(ep.ToByteArray(), _info.Episode, s.Offset, s.Count);
        foreach (var entry in r.Info) InfoCodec.Decode(entry, _info, s.Offset, s.Count);
    }

    /// <inheritdoc cref="IWorkerReplySink.OnLost" />
    public void OnLost(WorkerConnection worker, string reason)
    {
        if (Volatile.Read(ref _closing)) return;
        WorkerChannel s;
        try { s = SlotOf(worker); }
        catch (InvalidOperationException) { return; }
        lock (_lock)
        {
            if (s.Lost) return;
            s.Lost = true;
        }
        ClusterLog.WorkerLost(_logger, worker.Id, reason);
        if (TryReplace(s, reason)) return; // streaming carries on with the others while a replacement starts
        var lost = new WorkerLostException(worker.Id, reason, _fleet.Describe(worker.Id));
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
        _fleet.Close(_slots ?? []);
    }

    /// <inheritdoc />
    public void Dispose() => Close();

    /// <inheritdoc />
    public override string ToString() => $"ClusterVecEnv({_options.EnvId}, num_envs={NumEnvs}, workers={_slots.Length}, hub={_fleet.Hub.Url})";

    private static string Describe(WorkerChannel[] slots) => string.Join(", ", slots.Select(s => $"{s.Connection.Id}: {s.Connection.NumEnvs}"));
}
