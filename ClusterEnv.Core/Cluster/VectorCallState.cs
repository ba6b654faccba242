using System.Diagnostics;
using ClusterEnv.Vector;
using Microsoft.Extensions.Logging;
using Grpc.Core;

namespace ClusterEnv.Cluster;

/// <summary>
/// The vector env's calls as a state machine, like Gymnasium's <c>AsyncState</c>: one call at a time (Idle → Pending
/// → Idle), Broken after a lost or hung worker, Closed at the end; whether a reset is needed; the first fatal failure;
/// and the gather of the call in progress (the replies it waits for, the first sub-env or worker error among them,
/// and the no-progress deadline). The learner's thread drives it; read loops report replies and failures into it.
/// </summary>
internal sealed class VectorCallState(ClusterOptions options, ILogger logger)
{
    private enum Mode { Idle, Pending, Broken, Closed }

    private readonly ManualResetEventSlim _replied = CreateEvent();
    private WorkerSlot[] _gathered = new WorkerSlot[4];
    private int _gatheredCount;
    private int _pending;
    private long _gatherStart;
    private Mode _mode = Mode.Idle;
    private string? _brokenBecause;
    private Exception? _fatal;
    private SubEnvException? _subEnvError;
    private WorkerException? _workerError;

    private static ManualResetEventSlim CreateEvent()
    {
        var e = new ManualResetEventSlim(false, spinCount: 50);
        e.Wait(1); // the event creates its lock object on its first blocking wait: do that now, not inside a step
        return e;
    }

    /// <summary>Stepping needs a reset first (before the first one, after a sub-env error, after streaming or gradients used the envs).</summary>
    public bool NeedsReset = true;

    /// <summary>True while a call is pending (a StepAsync waits for its StepWait).</summary>
    public bool IsPending => _mode == Mode.Pending;

    public bool IsClosed => _mode == Mode.Closed;

    /// <summary>The first failure that ended the vector env (a worker lost for good, a replacement that never came), or null.</summary>
    public Exception? Fatal => Volatile.Read(ref _fatal);

    /// <summary>Records a fatal failure (the first one wins) and wakes the learner at once.</summary>
    public void Fail(Exception failure)
    {
        Interlocked.CompareExchange(ref _fatal, failure, null);
        _replied.Set();
    }

    /// <summary>Throws the fatal failure, if any, and marks the vector env unusable.</summary>
    public void ThrowIfFatal()
    {
        if (Volatile.Read(ref _fatal) is not { } fatal) return;
        Break(fatal.Message);
        throw fatal;
    }

    public void Break(string reason)
    {
        if (_mode == Mode.Closed) return;
        _mode = Mode.Broken;
        _brokenBecause = reason;
    }

    public void ThrowIfUnusable(bool allowPending = false, bool allowFirstReady = false)
    {
        switch (_mode)
        {
            case Mode.Idle or Mode.Pending when FirstReadyInFlight > 0 && !allowPending && !allowFirstReady:
                throw new AlreadyPendingCallException("Sub-envs sent with Send(actions, envIds) have not all been returned by Recv; Recv them (or Reset, which waits for them and drops their results) first.");
            case Mode.Closed: throw VectorArgs.Closed();
            case Mode.Pending when !allowPending: throw new AlreadyPendingCallException("A step is pending; call StepWait() before calling Reset or Step again.");
            case Mode.Broken: throw new InvalidOperationException($"This vector env is unusable after an earlier failure ({_brokenBecause}); close it and create a new one.");
        }
        ThrowIfFatal();
    }

    /// <summary>First-ready stepping: workers sent a step with Send and not yet returned by Recv (the learner's thread writes it).</summary>
    public int FirstReadyInFlight;

    /// <summary>Wakes the learner waiting in <see cref="WaitWoken"/> (a first-ready answer it waits for).</summary>
    public void Wake() => _replied.Set();

    /// <summary>Before checking what to wait for: a wake after this is not missed.</summary>
    public void ResetWake() => _replied.Reset();

    /// <summary>Waits up to <paramref name="milliseconds"/> for a wake or a fatal failure.</summary>
    public void WaitWoken(int milliseconds) => _replied.Wait(milliseconds);

    /// <summary>First-ready stepping: throws the first worker or sub-env error recorded since the last (a reset is needed after it).</summary>
    public void ThrowCallErrors()
    {
        if (Interlocked.Exchange(ref _workerError, null) is { } we)
        {
            NeedsReset = true;
            throw we;
        }
        if (Interlocked.Exchange(ref _subEnvError, null) is { } se)
        {
            NeedsReset = true;
            throw se;
        }
    }

    /// <summary>Drops recorded errors (a reset after them).</summary>
    public void ClearCallErrors()
    {
        _workerError = null;
        _subEnvError = null;
    }

    /// <summary>Starts a gather. An <paramref name="interruptible"/> one (Step, Reset) goes on without a worker lost and being replaced.</summary>
    public void Begin(bool interruptible = false)
    {
        Interruptible = interruptible;
        _subEnvError = null;
        _workerError = null;
        _replied.Reset();
        _gatherStart = Stopwatch.GetTimestamp();
        Volatile.Write(ref _pending, 1); // a guard released by End, so replies racing the sends cannot finish early
        _gatheredCount = 0;
        _mode = Mode.Pending;
        if (Volatile.Read(ref _fatal) is not null) _replied.Set(); // a loss reported before the Reset above must still wake End
    }

    /// <summary>The current gather may go on without a lost worker (read by the loss handler).</summary>
    public volatile bool Interruptible;

    /// <summary>Before a gathered command is written to <paramref name="slot"/>: its reply may race the write.</summary>
    public void Track(WorkerSlot slot)
    {
        Interlocked.Increment(ref _pending);
        if (_gatheredCount == _gathered.Length) Array.Resize(ref _gathered, _gathered.Length * 2);
        _gathered[_gatheredCount++] = slot;
    }

    /// <summary>
    /// A tracked command was not written after all: the slot is being replaced (the call goes on without it) or has
    /// failed (the call then fails with the slot's failure, never with a partial result).
    /// </summary>
    public void Untrack(WorkerSlot slot)
    {
        if (slot.State == SlotState.Failed) Fail(slot.Failure!);
        Release(1);
    }

    /// <summary>On a read loop: one gathered reply arrived.</summary>
    public void Done()
    {
        if (Interlocked.Decrement(ref _pending) == 0) _replied.Set();
    }

    /// <summary>The learner stops waiting for <paramref name="commands"/> replies of a worker that is being replaced.</summary>
    public void Release(int commands)
    {
        for (int i = 0; i < commands; i++)
            if (Interlocked.Decrement(ref _pending) == 0) _replied.Set();
    }

    /// <summary>On a read loop: the first sub-env error of the call (the call then throws it, and a reset is needed).</summary>
    public void SubEnvFailed(SubEnvException e) => Interlocked.CompareExchange(ref _subEnvError, e, null);

    /// <summary>On a read loop: the first worker error of the call.</summary>
    public void WorkerFailed(WorkerException e) => Interlocked.CompareExchange(ref _workerError, e, null);

    /// <summary>
    /// Waits for the gather. A worker is hung when it has sent nothing — no reply, no progress — for StepTimeout since
    /// the gather began or since its last message, so a long rollout that reports progress never times out. A slot
    /// that failed is never called hung: its failure is thrown, by name.
    /// </summary>
    public void End(string operation)
    {
        Done();
        if (!_replied.IsSet) ReadInline();
        long timeout = (long)(options.StepTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            long now = Stopwatch.GetTimestamp(), wait = timeout;
            bool late = false;
            for (int g = 0; g < _gatheredCount; g++)
            {
                var s = _gathered[g];
                if (Volatile.Read(ref s.Gathering) <= 0) continue;
                if (s.State == SlotState.Failed)
                {
                    Fail(s.Failure!);
                    break;
                }
                long left = Math.Max(Volatile.Read(ref s.LastHeard), _gatherStart) + timeout - now;
                if (left <= 0) late = true;
                else wait = Math.Min(wait, left);
            }
            if (late && !_replied.IsSet) break;
            int ms = (int)Math.Min(int.MaxValue, wait * 1000 / Stopwatch.Frequency + 1);
            if (_replied.Wait(ms)) break;
        }
        ThrowIfFatal();
        if (!_replied.IsSet) ThrowHung(operation, timeout);
        _mode = Mode.Idle;
        if (_workerError is { } we)
        {
            NeedsReset = true;
            throw we;
        }
        if (_subEnvError is { } se)
        {
            NeedsReset = true;
            throw se;
        }
    }

    private Transport.WorkerConnection[] _inline = new Transport.WorkerConnection[4];
    private int _inlineSpinUs = MaxInlineSpinUs, _inlineProbe;
    private const int MaxInlineSpinUs = 200;

    // Workers on shared memory: the learner's thread reads their replies itself for a short while, rather than sleep
    // until the connection's reader thread has read and handed them over (two thread wake-ups per step, most of a
    // same-host step's cost). The spin adapts like the ring's: kept while replies come within it, halved when they do
    // not, and tried in full every 32nd gather once worn down. Streaming workers are left to their reader threads
    // (their rollouts are queued from there, and a full queue waits for the learner). Then End's wait as before.
    private void ReadInline()
    {
        int spinUs = _inlineSpinUs > 0 || ++_inlineProbe % 32 != 0 ? _inlineSpinUs : MaxInlineSpinUs;
        // With the spin worn down, rings are asked for only ahead of a probe (a reader thread hands its ring over
        // after its next message, so the request comes one gather early); otherwise only the ones kept since the last
        // gather are given back.
        bool request = spinUs > 0 || (_inlineProbe + 1) % 32 == 0;
        int taken = 0;
        for (int g = 0; g < _gatheredCount; g++)
        {
            var slot = _gathered[g];
            if (Volatile.Read(ref slot.StreamSeq) != 0 || slot.Connection is not { } c || !c.TakeRing(request)) continue;
            if (taken == _inline.Length) Array.Resize(ref _inline, taken * 2);
            _inline[taken++] = c;
        }
        if (taken == 0) return;
        if (spinUs == 0)
        {
            for (int i = 0; i < taken; i++)
            {
                var c = _inline[i];
                ReleaseInline(i, keep: false); // back to its reader thread for this gather's wait
                if (request) c.TakeRing(); // ahead of a probe: asked back for the next gather
            }
            return;
        }
        long until = Stopwatch.GetTimestamp() + spinUs * Stopwatch.Frequency / 1_000_000;
        bool done = false;
        for (int round = 1; ; round++)
        {
            for (int i = 0; i < taken; i++) _inline[i].PollRing();
            if (_replied.IsSet)
            {
                done = true;
                break;
            }
            if (Stopwatch.GetTimestamp() > until) break;
            if (round % 64 == 0) Thread.Yield(); // a worker waiting for this core gets it
            else Thread.SpinWait(8);
        }
        for (int i = 0; i < taken; i++) ReleaseInline(i, keep: done);
        _inlineSpinUs = done ? MaxInlineSpinUs : _inlineSpinUs / 2;
    }

    private void ReleaseInline(int i, bool keep)
    {
        _inline[i].ReleaseRing(keep);
        _inline[i] = null!;
    }

    // Kept out of End: its lambdas capture locals, and a closure in End would be allocated on every step.
    private void ThrowHung(string operation, long timeout)
    {
        long now = Stopwatch.GetTimestamp();
        var hung = _gathered.Take(_gatheredCount).Distinct().Where(s => Volatile.Read(ref s.Gathering) > 0 &&
            now - Math.Max(Volatile.Read(ref s.LastHeard), _gatherStart) >= timeout).ToArray();
        var late = hung.Select(s => s.Id).ToArray();
        string message = $"{operation} got no reply and no progress from {string.Join(", ", late.Select(l => $"worker '{l}'"))} for " +
                         $"{options.StepTimeout.TotalSeconds:0.###} s (ClusterOptions.StepTimeout). The worker may be hung in its env; the vector env is unusable now, close it and create a new one.";
        foreach (var s in hung)
        {
            ClusterLog.WorkerHung(logger, operation, s.Id, options.StepTimeout.TotalSeconds);
            s.Connection.Close(StatusCode.DeadlineExceeded, $"No reply and no progress for {options.StepTimeout.TotalSeconds:0.###} s.");
        }
        Break(message);
        throw new WorkerTimeoutException(message, late);
    }

    /// <summary>Waits (up to <paramref name="timeout"/>) for a pending call to end, then closes.</summary>
    public bool Close(TimeSpan timeout)
    {
        if (_mode == Mode.Closed) return false;
        if (_mode == Mode.Pending)
        {
            try { _replied.Wait(timeout); } catch (ObjectDisposedException) { }
        }
        _mode = Mode.Closed;
        return true;
    }
}
