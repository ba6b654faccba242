using System.Diagnostics;
using ClusterEnv.Vector;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace ClusterEnv.Cluster;

/// <summary>
/// The sub-envs of one <see cref="ClusterVecEnv.Recv(int)"/>: the first workers to answer, whole, in the order they
/// answered. Rows are compact (row k is sub-env <see cref="EnvIds"/>[k]); <see cref="Info"/> is indexed by global
/// sub-env index. The arrays are owned by the vector env and overwritten by its next <c>Recv</c>; only the first
/// <see cref="Count"/> rows are meaningful.
/// </summary>
public sealed class ReadySteps
{
    internal ReadySteps(int numEnvs, int observationSize, int numWorkers, VectorInfo info)
    {
        ObservationSize = observationSize;
        EnvIds = new int[numEnvs];
        Observations = new float[numEnvs * observationSize];
        Rewards = new double[numEnvs];
        Terminated = new bool[numEnvs];
        Truncated = new bool[numEnvs];
        WorkerIndices = new int[numWorkers];
        Info = info;
    }

    /// <summary>Sub-envs returned (at least the batch size asked for, as whole workers, unless fewer were in flight).</summary>
    public int Count { get; internal set; }

    /// <summary>Floats per observation.</summary>
    public int ObservationSize { get; }

    /// <summary>The global index of the sub-env in each row (EnvPool's <c>info["env_id"]</c>); send actions for them with these ids.</summary>
    public int[] EnvIds { get; }

    /// <summary>Observations, row k for sub-env <see cref="EnvIds"/>[k].</summary>
    public float[] Observations { get; }

    /// <summary>Rewards of the step (0 for a sub-env whose worker was replaced meanwhile).</summary>
    public double[] Rewards { get; }

    /// <summary>Episodes that terminated at this step.</summary>
    public bool[] Terminated { get; }

    /// <summary>Episodes truncated at this step (a time limit, or a worker replaced meanwhile: its sub-envs start afresh).</summary>
    public bool[] Truncated { get; }

    /// <summary>The info of the step, indexed by global sub-env index: meaningful for the sub-envs in <see cref="EnvIds"/>.</summary>
    public VectorInfo Info { get; }

    /// <summary>Workers returned, as indices into <see cref="ClusterVecEnv.Workers"/>; the first <see cref="WorkerCount"/> are meaningful, in row order.</summary>
    public int[] WorkerIndices { get; }

    /// <summary>Workers returned.</summary>
    public int WorkerCount { get; internal set; }

    /// <summary>The first <see cref="Count"/> observation rows.</summary>
    public ReadOnlySpan<float> ObservationRows => Observations.AsSpan(0, Count * ObservationSize);
}

/// <summary>
/// First-ready stepping (EnvPool's <c>send</c>/<c>recv</c>) at the granularity of workers: a step is sent to whole
/// workers, and <see cref="Recv"/> returns the first workers to answer once they hold the batch size asked for, so a
/// slow worker holds up only its own sub-envs. Each slot is idle, in flight (sent, not answered) or answered (queued
/// for <c>Recv</c>); the read loops move slots to answered, the learner's thread does the rest. While any slot is
/// not idle the lockstep calls are refused (<see cref="VectorCallState.FirstReadyInFlight"/>). A worker lost in
/// flight and replaced comes back as answered with its sub-envs truncated, as a lockstep step reports it.
/// </summary>
internal sealed class FirstReadySteps
{
    private const int Idle = 0, InFlight = 1, Answered = 2;

    private readonly VectorCallState _calls;
    private readonly WorkerReplacements _elastic;
    private readonly ClusterOptions _options;
    private readonly ILogger _logger;
    private readonly WorkerSlot[] _slots;
    private readonly StepBuffers _buffers;
    private readonly ActionLayout _actions;
    private readonly int[] _slotOfEnv;
    private readonly int[] _state;          // per slot: Idle, InFlight, Answered
    private readonly long[] _sentAt;        // per slot: when its step went out
    private readonly int[] _covered;        // per slot, scratch for Send: sub-envs named
    private readonly bool[] _named;         // per env, scratch for Send
    private readonly int[] _ints;           // per env × action size: actions in sub-env order
    private readonly float[] _floats;
    private readonly int[] _shape;
    private readonly Lock _lock = new();
    private readonly Queue<WorkerSlot> _answered;
    private int _answeredEnvs;              // under _lock
    private int _wantEnvs = int.MaxValue;   // under _lock: Recv is woken once this many envs have answered
    private int _notIdle;                   // learner thread only: slots in flight or answered

    public FirstReadySteps(WorkerSlot[] slots, VectorCallState calls, WorkerReplacements elastic, StepBuffers buffers, ActionLayout actions,
        int[] actionShape, int observationSize, ClusterOptions options, ILogger logger)
    {
        _slots = slots;
        _calls = calls;
        _elastic = elastic;
        _buffers = buffers;
        _actions = actions;
        _options = options;
        _logger = logger;
        int numEnvs = slots.Sum(s => s.Count);
        _slotOfEnv = new int[numEnvs];
        foreach (var s in slots) Array.Fill(_slotOfEnv, s.Index, s.Offset, s.Count);
        _state = new int[slots.Length];
        _sentAt = new long[slots.Length];
        _covered = new int[slots.Length];
        _named = new bool[numEnvs];
        _ints = actions.IsContinuous ? [] : new int[numEnvs * actions.Size];
        _floats = actions.IsContinuous ? new float[numEnvs * actions.Size] : [];
        _shape = (int[])actionShape.Clone();
        _answered = new Queue<WorkerSlot>(slots.Length);
        Result = new ReadySteps(numEnvs, observationSize, slots.Length, buffers.Info);
    }

    public ReadySteps Result { get; }

    /// <summary>Sub-envs sent and not yet returned by <see cref="Recv"/> (learner thread).</summary>
    public int EnvsNotReturned { get; private set; }

    /// <summary>Sends the actions of the sub-envs in <paramref name="envIds"/> (row k of the actions is sub-env envIds[k]); they must make up whole idle workers.</summary>
    public void Send(ReadOnlySpan<int> ints, ReadOnlySpan<float> floats, ReadOnlySpan<int> envIds)
    {
        int size = _actions.Size;
        bool continuous = _actions.IsContinuous;
        int given = continuous ? floats.Length : ints.Length;
        if (envIds.IsEmpty) throw new ArgumentException("Send needs at least one sub-env id.", nameof(envIds));
        if (given != envIds.Length * size)
            throw new ArgumentException($"Send got {given} action values for {envIds.Length} sub-env ids; it needs {size} per sub-env ({envIds.Length * size}).", continuous ? nameof(floats) : nameof(ints));
        if (continuous) _actions.Check(floats, envIds.Length);
        else _actions.Check(ints, envIds.Length);
        try
        {
            for (int k = 0; k < envIds.Length; k++)
            {
                int id = envIds[k];
                if ((uint)id >= (uint)_named.Length)
                    throw new ArgumentOutOfRangeException(nameof(envIds), id, $"Sub-env id {id} is out of range; this vector env has sub-envs 0..{_named.Length - 1}.");
                if (_named[id]) throw new ArgumentException($"Sub-env id {id} appears twice in one Send.", nameof(envIds));
                var slot = _slots[_slotOfEnv[id]];
                if (_state[slot.Index] != Idle)
                    throw new AlreadyPendingCallException($"Sub-env {id} (worker '{slot.Id}') was sent a step that Recv has not returned yet; Recv it before sending it another.");
                if (_options.AutoresetMode == AutoresetMode.Disabled && _buffers.Autoreset[id])
                    throw new InvalidOperationException($"Sub-env {id} finished its episode and autoreset is Disabled; reset it first with Reset(options: new ResetOptions {{ ResetMask = mask }}).");
                _named[id] = true;
                _covered[slot.Index]++;
                if (continuous) floats.Slice(k * size, size).CopyTo(_floats.AsSpan(id * size, size));
                else ints.Slice(k * size, size).CopyTo(_ints.AsSpan(id * size, size));
            }
            foreach (var s in _slots)
                if (_covered[s.Index] != 0 && _covered[s.Index] != s.Count)
                    throw new ArgumentException($"First-ready stepping sends whole workers: worker '{s.Id}' hosts sub-envs {s.Offset}..{s.Offset + s.Count - 1} and Send named " +
                                                $"{_covered[s.Index]} of them; name all of its sub-envs (ReadySteps.EnvIds of a Recv always does).", nameof(envIds));
            _calls.Interruptible = true; // a worker lost in flight is replaced, as in a lockstep step
            foreach (var s in _slots)
            {
                if (_covered[s.Index] == 0) continue;
                SendTo(s, continuous);
            }
        }
        finally
        {
            Array.Clear(_covered);
            foreach (int id in envIds)
                if ((uint)id < (uint)_named.Length) _named[id] = false;
        }
    }

    private void SendTo(WorkerSlot s, bool continuous)
    {
        _buffers.Info.ClearRows(s.Offset, s.Count);
        _notIdle++;
        EnvsNotReturned += s.Count;
        _calls.FirstReadyInFlight = _notIdle;
        _sentAt[s.Index] = Stopwatch.GetTimestamp();
        Volatile.Write(ref _state[s.Index], InFlight); // before the write: the reply may race it
        if (s.Interrupted)
        {
            OnAnswered(s); // taken over since its last step: returned at once, truncated, with its replacement's first observation
            return;
        }
        int size = _actions.Size;
        _shape[0] = s.Count;
        s.Connection?.ReturnRing(); // Recv waits on the reader threads' replies: a ring the lockstep calls kept goes back now
        bool sent = continuous
            ? s.SendStep(_shape, default, _floats.AsSpan(s.Offset * size, s.Count * size), _buffers)
            : s.SendStep(_shape, _ints.AsSpan(s.Offset * size, s.Count * size), default, _buffers);
        if (!sent && s.State == SlotState.Failed) _calls.Fail(s.Failure!); // lost for good; otherwise it is being replaced and answers once its replacement is ready
    }

    /// <summary>On a read loop: the slot's step was answered (or its replacement is ready). Queued for Recv once.</summary>
    public bool OnAnswered(WorkerSlot s)
    {
        if (Interlocked.CompareExchange(ref _state[s.Index], Answered, InFlight) != InFlight) return false;
        lock (_lock)
        {
            _answered.Enqueue(s);
            _answeredEnvs += s.Count;
            if (_answeredEnvs >= _wantEnvs) _calls.Wake();
        }
        return true;
    }

    /// <summary>Whether the slot has a first-ready step in flight (its gathered reply belongs here, not to a lockstep call).</summary>
    public bool IsInFlight(WorkerSlot s) => Volatile.Read(ref _state[s.Index]) == InFlight;

    /// <summary>Waits until at least <paramref name="batchSize"/> sub-envs (whole workers) have answered, or all sent have, and returns them.</summary>
    public ReadySteps Recv(int batchSize)
    {
        if (EnvsNotReturned == 0) throw new NoAsyncCallException("Recv was called with no sub-env in flight; Send(actions, envIds) first.");
        int want = Math.Min(batchSize, EnvsNotReturned);
        Wait(want);
        var r = Result;
        int rows = 0, workers = 0, m = r.ObservationSize;
        lock (_lock)
        {
            while (rows < want && _answered.TryDequeue(out var s))
            {
                _answeredEnvs -= s.Count;
                r.WorkerIndices[workers++] = s.Index;
                for (int i = 0; i < s.Count; i++, rows++)
                {
                    int id = s.Offset + i;
                    r.EnvIds[rows] = id;
                    if (s.Interrupted)
                    {
                        _buffers.Rewards[id] = 0;
                        _buffers.Terminated[id] = false;
                        _buffers.Truncated[id] = true;
                    }
                    _buffers.Observations.AsSpan(id * m, m).CopyTo(r.Observations.AsSpan(rows * m, m));
                    r.Rewards[rows] = _buffers.Rewards[id];
                    r.Terminated[rows] = _buffers.Terminated[id];
                    r.Truncated[rows] = _buffers.Truncated[id];
                    _buffers.Autoreset[id] = _buffers.Terminated[id] || _buffers.Truncated[id];
                }
                s.Interrupted = false;
                Volatile.Write(ref _state[s.Index], Idle);
                _notIdle--;
                EnvsNotReturned -= s.Count;
            }
        }
        r.Count = rows;
        r.WorkerCount = workers;
        _calls.FirstReadyInFlight = _notIdle;
        _calls.ThrowCallErrors();
        return r;
    }

    /// <summary>Waits for every sub-env in flight and drops the results (a reset, or closing after a failure).</summary>
    public void Drain()
    {
        if (_notIdle == 0) return;
        Wait(EnvsNotReturned);
        lock (_lock)
        {
            while (_answered.TryDequeue(out var s))
            {
                s.Interrupted = false;
                Volatile.Write(ref _state[s.Index], Idle);
            }
            _answeredEnvs = 0;
        }
        _notIdle = 0;
        EnvsNotReturned = 0;
        _calls.FirstReadyInFlight = 0;
        _calls.ClearCallErrors();
    }

    // Until `want` envs have answered. A worker that has sent nothing for StepTimeout since its step went out (or its
    // last progress) is hung; a lost one not replaced ends the wait with its failure; a replacement that does not come
    // within ReplaceTimeout ends it by name.
    private void Wait(int want)
    {
        long timeout = (long)(_options.StepTimeout.TotalSeconds * Stopwatch.Frequency);
        long poll = Stopwatch.Frequency / 10;
        while (true)
        {
            // Checked on every Recv, not only while it waits: with a batch smaller than the sub-envs in flight the
            // fast workers would otherwise keep a hung one from ever being noticed.
            _calls.ResetWake();
            _calls.ThrowIfFatal();
            _elastic.ThrowIfAReplacementIsLate();
            long now = Stopwatch.GetTimestamp(), wait = poll;
            List<WorkerSlot>? hung = null;
            foreach (var s in _slots)
            {
                if (Volatile.Read(ref _state[s.Index]) != InFlight || s.State != SlotState.Ready) continue; // a replacing slot is timed by ReplaceTimeout
                long left = Math.Max(Volatile.Read(ref s.LastHeard), _sentAt[s.Index]) + timeout - now;
                if (left <= 0) (hung ??= []).Add(s);
                else wait = Math.Min(wait, left);
            }
            if (hung is not null) ThrowHung(hung);
            lock (_lock)
            {
                if (_answeredEnvs >= want)
                {
                    _wantEnvs = int.MaxValue;
                    return;
                }
                _wantEnvs = want;
            }
            _calls.WaitWoken((int)(wait * 1000 / Stopwatch.Frequency + 1));
        }
    }

    private void ThrowHung(List<WorkerSlot> hung)
    {
        string message = $"Recv got no reply and no progress from {string.Join(", ", hung.Select(s => $"worker '{s.Id}'"))} for " +
                         $"{_options.StepTimeout.TotalSeconds:0.###} s (ClusterOptions.StepTimeout). The worker may be hung in its env; the vector env is unusable now, close it and create a new one.";
        foreach (var s in hung)
        {
            ClusterLog.WorkerHung(_logger, "Recv", s.Id, _options.StepTimeout.TotalSeconds);
            s.Connection.Close(StatusCode.DeadlineExceeded, $"No reply and no progress for {_options.StepTimeout.TotalSeconds:0.###} s.");
        }
        _calls.Break(message);
        throw new WorkerTimeoutException(message, hung.Select(s => s.Id).ToArray());
    }
}
