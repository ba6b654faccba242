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
using Grpc.Core;

namespace ClusterEnv.Cluster;

/// <summary>
/// A vector env whose sub-envs live in worker processes: <see cref="Reset(long?, ResetOptions?)"/> and
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
public sealed class ClusterVecEnv : IVectorEnv
{
    private readonly ClusterOptions _options;
    private readonly WorkerFleet _fleet;
    private readonly VectorCallState _calls;
    private readonly WorkerSlot[] _slots;
    private readonly AttributeCalls _attributes;
    private readonly ActionLayout _actions;
    private readonly int[] _actionShape;
    private readonly StepBuffers _buffers;
    private readonly FirstReadySteps _firstReady;
    private ulong _seq;

    /// <summary>Starts a hub and a local pool of workers hosting <paramref name="numEnvs"/> sub-envs of <paramref name="envId"/> in total.</summary>
    public ClusterVecEnv(string envId, int numEnvs, int numWorkers = 0, AutoresetMode autoresetMode = AutoresetMode.NextStep)
        : this(new ClusterOptions { EnvId = envId, NumEnvs = numEnvs, NumWorkers = numWorkers, AutoresetMode = autoresetMode }) { }

    /// <summary>Starts a hub, starts or waits for the workers, and blocks until all of them have registered.</summary>
    public ClusterVecEnv(ClusterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var logger = (options.LoggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger<ClusterVecEnv>();
        _fleet = new WorkerFleet(options, logger);
        _options = options = _fleet.Options;
        WorkerConnection[] joined;
        try
        {
            joined = _fleet.WaitForAll();
        }
        catch
        {
            _fleet.Dispose();
            throw;
        }

        _calls = new VectorCallState(options, logger);
        Elastic = new WorkerReplacements(_fleet, _calls, options, logger);
        var events = new SlotEvents(_calls, Elastic);
        _slots = new WorkerSlot[joined.Length];
        int offset = 0;
        for (int w = 0; w < joined.Length; w++)
        {
            _slots[w] = new WorkerSlot(w, offset, joined[w].NumEnvs, events, NextSeq);
            offset += joined[w].NumEnvs;
        }
        NumEnvs = offset;
        ClusterLog.AllRegistered(logger, _slots.Length, NumEnvs);
        if (options.NumEnvs > 0 && NumEnvs != options.NumEnvs)
        {
            _fleet.Dispose();
            throw new InvalidOperationException($"The workers host {NumEnvs} envs in total ({string.Join(", ", joined.Select(c => $"{c.Id}: {c.NumEnvs}"))}) but ClusterOptions.NumEnvs is {options.NumEnvs}; start workers with matching --num-envs or set NumEnvs = 0.");
        }
        SingleObservationSpace = joined[0].ObservationSpace;
        SingleActionSpace = joined[0].ActionSpace;
        _actions = ActionLayout.For(SingleActionSpace);
        _actionShape = [.. new[] { 0 }, .. SingleActionSpace.Shape];
        ObservationSize = SingleObservationSpace.EncodedSize;
        ObservationSpace = SingleObservationSpace.Batch(NumEnvs);
        ActionSpace = SingleActionSpace.Batch(NumEnvs);
        ObservationDType = ObservationStorage.Of(SingleObservationSpace);
        _buffers = new StepBuffers(_calls, NumEnvs, ObservationSize, keepBytes: ObservationDType == Spaces.DType.UInt8);
        Spec = Gym.Ids.Contains(options.EnvId) ? Gym.Spec(options.EnvId) : RemoteSpec(joined[0].Registration.EnvSpec);

        Rollouts = new WorkerRollouts(_slots, _calls, Elastic, options, NumEnvs, SingleObservationSpace, SingleActionSpace);
        events.Rollouts = Rollouts;
        Policies = new WorkerPolicies(_slots, _calls, options.StepTimeout);
        Gradients = new WorkerGradients(_slots, _calls, Rollouts, Elastic, options.StepTimeout);
        _attributes = new AttributeCalls(_slots, _calls, Rollouts, NumEnvs);
        _firstReady = new FirstReadySteps(_slots, _calls, Elastic, _buffers, _actions, _actionShape, ObservationSize, options, logger);
        events.FirstReady = _firstReady;
        Elastic.Seat(_slots, WelcomeFor, _buffers, Policies.GiveStartingPolicy, () => Rollouts.IsStreaming);

        // A worker is admitted before the hub has sent its response headers; commands may only follow them.
        var started = Task.WhenAll(joined.Select(c => c.Started));
        try { started.Wait(options.ConnectTimeout); }
        catch (AggregateException) { }
        for (int w = 0; w < _slots.Length; w++)
        {
            var c = joined[w];
            _slots[w].Attach(c);
            if (!c.Started.IsCompletedSuccessfully || !_slots[w].Welcome(WelcomeFor(_slots[w]), reset: null, _buffers))
            {
                var lost = new WorkerLostException(c.Id, c.LostReason ?? "its stream ended before it was welcomed", _fleet.Describe(c.Id));
                Dispose();
                throw lost;
            }
        }
    }

    private HubMessage WelcomeFor(WorkerSlot slot) => new()
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

    /// <summary>Worker-side acting: lockstep rollouts and rollout streams.</summary>
    public WorkerRollouts Rollouts { get; }

    /// <summary>Policy weights pushed to the workers, and their acknowledgements.</summary>
    public WorkerPolicies Policies { get; }

    /// <summary>Policy gradients computed by the workers (NIGT).</summary>
    public WorkerGradients Gradients { get; }

    /// <summary>Lost workers and their replacements (<see cref="ClusterOptions.ReplaceLostWorkers"/>).</summary>
    public WorkerReplacements Elastic { get; }

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
    public Spaces.DType ObservationDType { get; }

    /// <inheritdoc />
    public ReadOnlySpan<byte> ObservationBytes => _buffers.ObservationBytes ?? System.Runtime.InteropServices.MemoryMarshal.AsBytes(_buffers.Observations.AsSpan());

    /// <inheritdoc />
    public AutoresetMode AutoresetMode => _options.AutoresetMode;

    /// <inheritdoc />
    public EnvSpec? Spec { get; }

    /// <inheritdoc />
    public bool IsClosed => _calls.IsClosed;

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
        _slots.Select(s => (s.Id, s.Offset, s.Count)).ToArray();

    /// <summary>Commands written to worker <paramref name="workerIndex"/> and not yet answered (a command is counted once it is on the wire).</summary>
    internal int OutstandingCommands(int workerIndex) => _slots[workerIndex].OutstandingCount;

    internal Transport.WorkerConnection WorkerConnection(int workerIndex) => _slots[workerIndex].Connection;

    /// <inheritdoc />
    public VectorResetResult Reset(long? seed = null, ResetOptions? options = null)
    {
        ThrowIfUnusable(firstReadyAllowed: true);
        VectorArgs.CheckSeed(seed, NumEnvs);
        return ResetCore(seed is long s ? i => s + i : _ => null, options);
    }

    /// <inheritdoc />
    public VectorResetResult Reset(IReadOnlyList<long?> seeds, ResetOptions? options = null)
    {
        ThrowIfUnusable(firstReadyAllowed: true);
        VectorArgs.CheckSeeds(seeds, NumEnvs);
        return ResetCore(i => seeds[i], options);
    }

    // Refused while a call is pending, after a failure, once closed, and while rollouts stream.
    private void ThrowIfUnusable(bool firstReadyAllowed = false)
    {
        _calls.ThrowIfUnusable(allowFirstReady: firstReadyAllowed);
        Rollouts.ThrowIfStreaming("stepping, resetting or collecting lockstep rollouts (StopStreaming, or dispose the StreamingRolloutSource)");
    }

    private VectorResetResult ResetCore(Func<int, long?> seedOf, ResetOptions? options)
    {
        var mask = VectorArgs.CheckMask(options, NumEnvs);
        var commands = _slots.Select(s => StepBuffers.ResetCommandFor(s, seedOf, mask, options)).ToArray(); // a bad option fails here, before anything is sent
        _firstReady.Drain(); // steps sent with Send and not returned by Recv: waited for, and their results dropped
        _buffers.Info.Clear();
        Elastic.AwaitReplacements();
        _calls.Begin(interruptible: true);
        for (int w = 0; w < _slots.Length; w++)
        {
            if (commands[w] is not { } cmd) continue;
            _calls.Track(_slots[w]);
            if (!_slots[w].Send(cmd, WorkerMessage.ResetFieldNumber, gather: true, _buffers)) _calls.Untrack(_slots[w]); // lost meanwhile: its replacement resets with fresh seeds
        }
        _calls.End("Reset");
        // A worker replaced during the reset: its replacement was reset with fresh seeds, not the ones asked for.
        Elastic.AwaitReplacements();
        foreach (var s in _slots) s.Interrupted = false;
        _buffers.Restarted(mask);
        if (mask is null) _calls.NeedsReset = false;
        return _buffers.ResetResult;
    }

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
        VectorArgs.CheckNotFinished(AutoresetMode, _buffers.Autoreset, _buffers.Terminated);
        SendSteps(actions, default);
    }

    /// <summary>Sends a step with continuous actions and returns at once; collect the result with <see cref="StepWait"/>.</summary>
    public void StepAsync(ReadOnlySpan<float> actions)
    {
        ThrowIfNotSteppable();
        _actions.Check(actions, NumEnvs);
        VectorArgs.CheckNotFinished(AutoresetMode, _buffers.Autoreset, _buffers.Terminated);
        SendSteps(default, actions);
    }

    private void ThrowIfNotSteppable()
    {
        ThrowIfUnusable();
        if (_calls.NeedsReset) throw VectorArgs.ResetNeeded();
    }

    private void SendSteps(ReadOnlySpan<int> ints, ReadOnlySpan<float> floats)
    {
        _buffers.Info.Clear();
        Elastic.AwaitReplacements();
        _calls.Begin(interruptible: true);
        int size = _actions.Size;
        foreach (var s in _slots)
        {
            if (s.Interrupted) continue; // taken over since the last step: reported truncated by StepWait
            _actionShape[0] = s.Count;
            _calls.Track(s);
            bool sent = floats.IsEmpty
                ? s.SendStep(_actionShape, ints.Slice(s.Offset * size, s.Count * size), default, _buffers)
                : s.SendStep(_actionShape, default, floats.Slice(s.Offset * size, s.Count * size), _buffers);
            if (!sent) _calls.Untrack(s); // lost meanwhile: StepWait waits for its replacement and reports its envs truncated
        }
    }

    /// <summary>Waits for the step sent by <c>StepAsync</c> and returns its result (buffers owned by this vector env).</summary>
    public VectorStepResult StepWait()
    {
        if (_calls.IsClosed) throw VectorArgs.Closed();
        // Reset and Step finish their own gathers, so a pending state between calls is always a StepAsync.
        if (!_calls.IsPending) throw new NoAsyncCallException("StepWait was called with no step pending; call StepAsync(actions) first.");
        _calls.End("Step");
        Elastic.AwaitReplacements();
        _buffers.Stepped(_slots);
        return _buffers.StepResult;
    }

    /// <summary>
    /// First-ready stepping (EnvPool's <c>send</c>): sends a step with integer actions to the sub-envs in
    /// <paramref name="envIds"/> (row k of <paramref name="actions"/> for sub-env envIds[k]) and returns at once;
    /// collect whichever answer first with <see cref="Recv"/>. The ids must make up whole workers (a worker steps all
    /// its sub-envs at once), none of them still in flight. After a <see cref="Reset(long?, ResetOptions?)"/>, send to
    /// every sub-env once; after that, send to the ids each <c>Recv</c> returned.
    /// </summary>
    /// <example>
    /// <code>
    /// var obs = envs.Reset(seed: 0).Observations;
    /// envs.Send(Act(obs), allIds);
    /// while (training)
    /// {
    ///     var ready = envs.Recv(batchSize: envs.NumEnvs / 2); // the first half to answer
    ///     envs.Send(Act(ready.ObservationRows), ready.EnvIds.AsSpan(0, ready.Count));
    /// }
    /// </code>
    /// </example>
    public void Send(ReadOnlySpan<int> actions, ReadOnlySpan<int> envIds)
    {
        ThrowIfNotFirstReadySteppable();
        _firstReady.Send(actions, default, envIds);
    }

    /// <summary>First-ready stepping with continuous actions; see <see cref="Send(ReadOnlySpan{int}, ReadOnlySpan{int})"/>.</summary>
    public void Send(ReadOnlySpan<float> actions, ReadOnlySpan<int> envIds)
    {
        ThrowIfNotFirstReadySteppable();
        _firstReady.Send(default, actions, envIds);
    }

    private void ThrowIfNotFirstReadySteppable()
    {
        ThrowIfUnusable(firstReadyAllowed: true);
        if (_calls.NeedsReset) throw VectorArgs.ResetNeeded();
        Elastic.ThrowIfAReplacementIsLate();
    }

    /// <summary>
    /// First-ready stepping (EnvPool's <c>recv</c>): waits until workers holding at least <paramref name="batchSize"/>
    /// sub-envs have answered the steps sent with <c>Send</c> (or all that were sent, when fewer are in flight) and
    /// returns them, whole workers in the order they answered, so a slow worker holds up only its own sub-envs. The
    /// result's buffers are reused by the next call. A sub-env error is thrown here (a reset is needed after it); a
    /// lost or hung worker as in <see cref="Step(ReadOnlySpan{int})"/>. Lockstep calls are refused until every sub-env
    /// sent has been returned; <c>Reset</c> waits for them and drops their results.
    /// </summary>
    public ReadySteps Recv(int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        _calls.ThrowIfUnusable(allowFirstReady: true); // closed, broken or a lockstep call pending
        return _firstReady.Recv(batchSize);
    }

    /// <summary>Sub-envs sent with <c>Send</c> and not yet returned by <c>Recv</c>.</summary>
    public int EnvsInFlight => _firstReady.EnvsNotReturned;

    private ulong NextSeq() => Interlocked.Increment(ref _seq);

    /// <inheritdoc />
    public IReadOnlyList<object?> GetAttr(string name) => _attributes.Run(AttrCommand.Types.Op.Get, name, [], null);

    /// <inheritdoc />
    public IReadOnlyList<object?> Call(string name, params object?[] args) => _attributes.Run(AttrCommand.Types.Op.Call, name, args ?? [], null);

    /// <inheritdoc />
    public void SetAttr(string name, IReadOnlyList<object?> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        _attributes.Run(AttrCommand.Types.Op.Set, name, [], values);
    }

    /// <inheritdoc />
    public void SetAttr(string name, object? value) => SetAttr(name, Enumerable.Repeat(value, NumEnvs).ToArray());

    /// <inheritdoc />
    public void Close()
    {
        if (!_calls.Close(_options.CloseTimeout)) return;
        _fleet.Close(_slots ?? []);
    }

    /// <inheritdoc />
    public void Dispose() => Close();

    /// <inheritdoc />
    public override string ToString() => $"ClusterVecEnv({_options.EnvId}, num_envs={NumEnvs}, workers={_slots.Length}, hub={_fleet.Hub.Url})";
}
