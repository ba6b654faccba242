using System.Collections.Concurrent;
using System.Diagnostics;
using ClusterEnv.Transport;
using Grpc.Core;
using ClusterEnv.Transport.Protos;
using Microsoft.Extensions.Logging;

namespace ClusterEnv.Cluster;

/// <summary>
/// Elastic membership (<see cref="ClusterOptions.ReplaceLostWorkers"/>): a lost worker's slot asks its launcher for a
/// replacement, which registers under the same id, takes the same sub-envs, is welcomed and reset with fresh seeds,
/// gets its starting policy from whoever publishes (<see cref="WorkerPolicies"/>), and streams again once its reset is
/// answered. Lockstep calls wait for it; streaming carries on with the others meanwhile. Its counters are here.
/// </summary>
public sealed class WorkerReplacements
{
    private readonly WorkerFleet _fleet;
    private readonly VectorCallState _calls;
    private readonly ClusterOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentQueue<double> _replaceSeconds = new();
    private readonly ConcurrentQueue<string> _evictions = new();
    private readonly ManualResetEventSlim _changed = new(false);
    private WorkerSlot[] _slots = [];
    private long[] _lostAt = [];            // per slot: Stopwatch timestamp of the loss being replaced (0: none)
    private int _workersLost, _workersReplaced, _replacementsStarted;
    private long _rolloutsLostInFlight;
    private int _replacing;                 // slots whose _lostAt is set: the lockstep calls' fast path reads only this

    internal WorkerReplacements(WorkerFleet fleet, VectorCallState calls, ClusterOptions options, ILogger logger)
    {
        _fleet = fleet;
        _calls = calls;
        _options = options;
        _logger = logger;
    }

    /// <summary>Set once the slots exist: how to welcome a slot, who reads a replacement's reset reply, who gives it its starting policy, and whether a stream is running.</summary>
    internal void Seat(WorkerSlot[] slots, Func<WorkerSlot, HubMessage> welcome, IReplyOwner resetOwner, Action<WorkerSlot> startingPolicy, Func<bool> streaming)
    {
        _slots = slots;
        _lostAt = new long[slots.Length];
        _welcome = welcome;
        _resetOwner = resetOwner;
        _startingPolicy = startingPolicy;
        _streaming = streaming;
        _fleet.ReplacementAdmission = Admit;
    }

    private Func<WorkerSlot, HubMessage> _welcome = null!;
    private IReplyOwner _resetOwner = null!;
    private Action<WorkerSlot> _startingPolicy = null!;
    private Func<bool> _streaming = null!;

    /// <summary>Workers lost, whether a replacement took over or the loss ended the run.</summary>
    public int WorkersLost => Volatile.Read(ref _workersLost);

    /// <summary>
    /// Rollouts lost with their workers: those a streaming worker had been given credit for and had not delivered
    /// when it was lost (acted in part, or finished and not yet arrived). Counted from the credit ledger, not estimated.
    /// A lockstep collection loses none: it is asked again of the replacement.
    /// </summary>
    public long RolloutsLostInFlight => Interlocked.Read(ref _rolloutsLostInFlight);

    /// <summary>Replacements that took over and are ready again (reset answered; a stream restarts at once).</summary>
    public int WorkersReplaced => Volatile.Read(ref _workersReplaced);

    /// <summary>Seconds from each loss to its replacement being ready again, in order.</summary>
    public IReadOnlyList<double> ReplaceSeconds => [.. _replaceSeconds];

    /// <summary>How many times worker <paramref name="workerIndex"/>'s slot has been taken over by a replacement (0: the original worker).</summary>
    public int Generation(int workerIndex) => _slots[workerIndex].Generation;

    /// <summary>Workers dropped for sending bad data (<see cref="Evict"/>), each as "worker 'ID': what was wrong", in order.</summary>
    public IReadOnlyList<string> Evictions => [.. _evictions];

    /// <summary>
    /// Drops worker <paramref name="workerId"/> for sending data no learner may use (<paramref name="problem"/> says
    /// what): its stream is closed, and like any lost worker it is replaced (<see cref="ClusterOptions.ReplaceLostWorkers"/>)
    /// or ends the run by name. <paramref name="generation"/> is the worker the data came from (<see cref="Generation"/>
    /// when it was sent): data queued by a worker already replaced evicts no one. Returns whether a worker was dropped.
    /// </summary>
    public bool Evict(string workerId, int generation, string problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        var slot = Array.Find(_slots, s => s.Id == workerId);
        if (slot is null || slot.Generation != generation || slot.Connection is not { } connection) return false;
        if (slot.State is SlotState.Replacing or SlotState.Failed or SlotState.Closed) return false;
        RecordEviction(workerId, problem);
        connection.Close(StatusCode.InvalidArgument, $"it sent bad data ({problem}) and was dropped");
        return true;
    }

    // On a worker's read loop: its reply held bad data. Recorded and logged; the read loop throws what this returns,
    // which ends the worker's stream, and the loss is handled as any other (replaced, or the run ends by name).
    internal BadWorkerDataException Rejected(WorkerSlot slot, string problem)
    {
        RecordEviction(slot.Id, problem);
        return new BadWorkerDataException(problem);
    }

    private void RecordEviction(string workerId, string problem)
    {
        _evictions.Enqueue($"worker '{workerId}': {problem}");
        ClusterLog.WorkerEvicted(_logger, workerId, problem);
    }

    /// <summary>Tests only: runs between a slot's failure and the vector env hearing of it (the window where a crash was once reported as a hang).</summary>
    internal static Action? AfterSlotFailedForTests;

    /// <summary>Tests only: runs after a replacement is admitted and before it is welcomed (the window where a push once started its stream before its reset).</summary>
    internal static Action<int>? BeforeWelcomeForTests;

    // On the lost worker's read loop. The slot's fate is decided in one transition (WorkerSlot.Lose).
    internal void OnLost(WorkerSlot slot, int generation, string reason)
    {
        if (_calls.IsClosed) return;
        var failure = new WorkerLostException(slot.Id, reason, _fleet.Describe(slot.Id));
        bool replacing = false;
        int released = slot.Lose(generation, () =>
        {
            // Under the slot's lock, with the transition: whoever sees the slot replacing also sees it counted.
            replacing = CanReplace(slot);
            Interlocked.Increment(ref _workersLost);
            // Under the slot's lock, before the transition: a streaming worker's credited rollouts never arrive now.
            if (slot.State == SlotState.Streaming) Interlocked.Add(ref _rolloutsLostInFlight, Math.Max(0, Volatile.Read(ref slot.InFlight)));
            if (!replacing) return false;
            Interlocked.Increment(ref _replacementsStarted);
            if (Interlocked.Exchange(ref _lostAt[slot.Index], Stopwatch.GetTimestamp()) == 0) Interlocked.Increment(ref _replacing);
            return true;
        }, failure);
        if (released < 0) return;
        ClusterLog.WorkerLost(_logger, slot.Id, reason);
        if (!replacing)
        {
            AfterSlotFailedForTests?.Invoke();
            _calls.Fail(failure);
            _changed.Set();
            return;
        }
        _calls.Release(released);
        _changed.Set();
        string id = slot.Id;
        _ = Task.Run(() =>
        {
            string? why = null;
            try
            {
                if (!_fleet.Launcher.Replace(id) && _fleet.Launcher is not ExternalWorkers)
                    why = $"{_fleet.Launcher.Description} could not start a replacement";
            }
            catch (Exception e)
            {
                why = $"starting a replacement failed ({e.GetType().Name}: {e.Message})";
            }
            if (why is null) return; // external workers may re-register by themselves until ReplaceTimeout
            FailReplacement(slot, new WorkerLostException(id, $"{reason}; {why}", _fleet.Describe(id)));
        });
    }

    // Under the slot's lock: a call waiting for this worker's answer goes on without it only when it is a lockstep Step
    // or Reset (it then waits for the replacement); a rollout collection or the end of a stream cannot, so the loss
    // fails it, by name.
    private bool CanReplace(WorkerSlot slot) =>
        _options.ReplaceLostWorkers && !_calls.IsClosed
        && !(Volatile.Read(ref slot.Gathering) > 0 && !(!_streaming() && _calls.Interruptible))
        && Volatile.Read(ref _replacementsStarted) < _options.MaxReplacements;

    private void FailReplacement(WorkerSlot slot, Exception failure)
    {
        if (!slot.FailReplacement(failure)) return;
        _calls.Fail(failure);
        _changed.Set();
    }

    // The fleet asks here about a worker registering after all expected ones did. True when it is a candidate (then a
    // null refusal admits it); the slot is claimed at once, so a second registration under the same id is refused.
    private bool Admit(WorkerConnection c, out string? refusal)
    {
        refusal = null;
        var slot = Array.Find(_slots, s => s.State == SlotState.Replacing && s.Id == c.Id); // the state first: a slot still being seated has no connection
        if (slot is null) return false; // not a replacement: the fleet refuses it as usual
        var first = _slots[0].Connection;
        if (c.NumEnvs != slot.Count)
            refusal = $"Worker '{c.Id}' replaces one that hosted {slot.Count} envs but brings {c.NumEnvs}; start it with --num-envs {slot.Count}.";
        else if (c.Registration.EnvId != _options.EnvId)
            refusal = $"Worker '{c.Id}' hosts '{c.Registration.EnvId}' but this vector env runs '{_options.EnvId}'.";
        else if (!c.ObservationSpace.Equals(first.ObservationSpace) || !c.ActionSpace.Equals(first.ActionSpace))
            refusal = $"Worker '{c.Id}' has spaces {c.ObservationSpace} / {c.ActionSpace}; the others have {first.ObservationSpace} / {first.ActionSpace}.";
        if (refusal is not null) return true;
        try
        {
            slot.Attach(c);
        }
        catch (InvalidOperationException)
        {
            refusal = $"Worker '{c.Id}' is already being replaced by another registration.";
            return true;
        }
        _ = Task.Run(() => TakeOver(slot, c, slot.Generation));
        return true;
    }

    // Once the hub has answered the replacement's registration: its starting policy is queued (the publisher decides
    // which), then it is welcomed and reset with fresh seeds in one step of its state machine (Joining → Resetting), so
    // nothing can reach it before its welcome and no stream can start before its reset is answered.
    private async Task TakeOver(WorkerSlot slot, WorkerConnection c, int generation)
    {
        try
        {
            await c.Started.WaitAsync(_options.ConnectTimeout).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            OnLost(slot, generation, $"its replacement's stream ended before it started ({e.GetType().Name})");
            return;
        }
        BeforeWelcomeForTests?.Invoke(slot.Index);
        _startingPolicy(slot);
        var reset = new ResetCommand();
        int seedBase = Random.Shared.Next(1, int.MaxValue / 2);
        for (int i = 0; i < slot.Count; i++)
        {
            reset.HasSeed.Add(true);
            reset.Seeds.Add(seedBase + i);
        }
        slot.Welcome(_welcome(slot), new HubMessage { Reset = reset }, _resetOwner); // false: lost again, and its read loop says so
    }

    // The slot's reset was answered (on its read loop): the replacement is done.
    internal void OnReady(WorkerSlot slot)
    {
        long since = Interlocked.Exchange(ref _lostAt[slot.Index], 0);
        if (since == 0) return;
        Interlocked.Decrement(ref _replacing);
        _replaceSeconds.Enqueue(Stopwatch.GetElapsedTime(since).TotalSeconds);
        Interlocked.Increment(ref _workersReplaced);
        _changed.Set();
    }

    /// <summary>Lockstep: every slot being replaced is ready (its reset answered) before the call goes on, or ReplaceTimeout ends the run by name.</summary>
    internal void AwaitReplacements()
    {
        if (Volatile.Read(ref _replacing) == 0) return; // every step asks: no event, no scan, when nothing is replaced
        while (true)
        {
            _changed.Reset();
            bool waiting = false;
            foreach (var s in _slots) waiting |= Volatile.Read(ref _lostAt[s.Index]) != 0;
            if (!waiting) return;
            _calls.ThrowIfFatal();
            ThrowIfAReplacementIsLate();
            _changed.Wait(TimeSpan.FromMilliseconds(100));
        }
    }

    /// <summary>A lost worker whose replacement has not become ready within ReplaceTimeout ends the run, by name.</summary>
    internal void ThrowIfAReplacementIsLate()
    {
        long now = Stopwatch.GetTimestamp();
        foreach (var s in _slots)
        {
            long since = Volatile.Read(ref _lostAt[s.Index]);
            if (since == 0 || Stopwatch.GetElapsedTime(since, now) <= _options.ReplaceTimeout) continue;
            string what = s.State == SlotState.Replacing ? "no replacement registered" : "its replacement registered but was not ready (welcomed and reset)";
            FailReplacement(s, new WorkerLostException(s.Id, $"it was lost and {what} within {_options.ReplaceTimeout.TotalSeconds:0.#} s (ClusterOptions.ReplaceTimeout)",
                _fleet.Describe(s.Id)));
            _calls.ThrowIfFatal();
        }
    }
}
