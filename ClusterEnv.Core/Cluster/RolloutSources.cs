using ClusterEnv.Rollouts;
using ClusterEnv.Transport.Protos;

namespace ClusterEnv.Cluster;

/// <summary>
/// Lockstep workers: each <see cref="Take"/> asks every worker for <see cref="Steps"/> steps and returns one batch of
/// all sub-envs once all have answered (<see cref="WorkerRollouts.Collect"/>). The learner and the workers take
/// turns; PPO on workers uses this.
/// </summary>
public sealed class LockstepRolloutSource(ClusterVecEnv envs, int steps, ulong seed = 0) : IRolloutSource
{
    /// <inheritdoc />
    public string Description => $"{envs.Workers.Count} workers in lockstep, {envs.NumEnvs} envs";

    /// <inheritdoc />
    public int Steps { get; } = steps > 0 ? steps : throw new ArgumentOutOfRangeException(nameof(steps), steps, "Rollouts need at least one step.");

    /// <inheritdoc />
    public long QueueDepth => 0;

    /// <inheritdoc />
    public int Take(int max, List<RolloutBatch> into, CancellationToken cancellationToken = default)
    {
        var batch = envs.Rollouts.Collect(Steps, seed);
        batch.NextStepResets = envs.AutoresetMode == Vector.AutoresetMode.NextStep;
        into.Add(batch);
        return 1;
    }

    /// <inheritdoc />
    public void Return(RolloutBatch rollout) { }

    /// <inheritdoc />
    public void Dispose() { }
}

/// <summary>
/// Streaming workers: every worker keeps acting with the policy it holds and ships each rollout as soon as it is done;
/// rollouts wait in an <see cref="ITrajectoryQueue"/> (in memory by default, or Redis) and the learner takes them as
/// they come. Each worker holds at most <c>credit</c> rollouts in flight; taking one of its rollouts gives it credit
/// for the next, so memory stays bounded and a slow learner slows the actors rather than piling up data. Disposing
/// stops the stream cleanly (<see cref="WorkerRollouts.StopStreaming"/>).
/// </summary>
public sealed class StreamingRolloutSource : IRolloutSource
{
    private readonly ClusterVecEnv _envs;
    private readonly ITrajectoryQueue _queue;
    private readonly bool _ownsQueue;
    private readonly List<byte[]> _raw = [];
    private readonly Dictionary<int, Stack<RolloutBatch>> _free = [];
    private readonly Dictionary<string, (int NumEnvs, int Index)> _workers; // by worker id
    private readonly TimeSpan _poll;
    private bool _stopped;

    /// <summary>
    /// Starts the stream on every worker of <paramref name="envs"/> (each must have a policy: push one first).
    /// <paramref name="queue"/> defaults to an in-memory queue that holds every rollout credit allows (never full).
    /// </summary>
    /// <remarks>
    /// With <paramref name="maxCredit"/> above <paramref name="credit"/>, each worker's credit window adapts, as a TCP
    /// window does to its path: when the learner finds no rollout waiting and a rollout it then takes says its worker
    /// waited for credit (<c>credit_wait_us</c>), that worker may hold one more in flight (up to
    /// <paramref name="maxCredit"/>), so its rollouts in flight cover the round trip; when more rollouts wait than a
    /// fixed window of <paramref name="credit"/> could ever queue (credit × workers) and the learner has taken a whole
    /// window's worth since it last found the queue empty (a backlog, not one of the bursts in which rollouts that
    /// crossed a long link arrive), a taken rollout's credit is kept back until the window is <paramref name="credit"/> again,
    /// so a learner that is the bottleneck does not collect stale rollouts. Workers that do not report their wait
    /// (older ones, the Python and Node workers) keep the fixed window.
    /// </remarks>
    public StreamingRolloutSource(ClusterVecEnv envs, int steps, int credit = 2, ITrajectoryQueue? queue = null, ulong seed = 0, int? maxCredit = null)
    {
        ArgumentNullException.ThrowIfNull(envs);
        if (maxCredit < credit)
            throw new ArgumentOutOfRangeException(nameof(maxCredit), maxCredit, $"maxCredit ({maxCredit}) must be at least credit ({credit}); give the same value for a fixed window.");
        _envs = envs;
        Steps = steps;
        Credit = credit;
        MaxCredit = maxCredit ?? credit;
        _ownsQueue = queue is null;
        _queue = queue ?? new InMemoryTrajectoryQueue(Math.Max(1, MaxCredit * envs.Workers.Count));
        _workers = envs.Workers.Select((w, i) => (w.WorkerId, i, w.NumEnvs)).ToDictionary(p => p.WorkerId, p => (p.NumEnvs, p.i));
        _poll = TimeSpan.FromMilliseconds(Math.Clamp(envs.Options.StepTimeout.TotalMilliseconds / 20, 5, 100));
        envs.Rollouts.StartStreaming(steps, credit, _queue, seed);
    }

    /// <summary>Rollouts each worker may have in flight at the start (and at least).</summary>
    public int Credit { get; }

    /// <summary>Rollouts each worker may have in flight at most, once its window has widened.</summary>
    public int MaxCredit { get; }

    /// <summary>Times a worker's window grew: the learner found no rollout waiting and the worker had waited for credit.</summary>
    public long Widenings { get; private set; }

    /// <summary>Waits for credit up to this long are scheduling noise, not a window too small (100 µs).</summary>
    internal uint CreditWaitThresholdUs { get; init; } = 100;

    /// <inheritdoc />
    public int Steps { get; }

    /// <inheritdoc />
    public string Description => $"{_envs.Workers.Count} workers streaming, {_envs.NumEnvs} envs, credit {(MaxCredit > Credit ? $"{Credit}-{MaxCredit}" : Credit)}, queue {_queue.Description}";

    /// <inheritdoc />
    public long QueueDepth => _queue.Count;

    /// <summary>Rollouts taken from the queue so far.</summary>
    public long Taken { get; private set; }

    /// <summary>Rollouts dropped because they held data no learner may use (non-finite values, actions outside the space, versions never pushed); their workers were dropped and replaced (<see cref="WorkerReplacements.Evict"/>).</summary>
    public long Rejected { get; private set; }

    /// <summary>Queued rollouts that belonged to no current worker (left in a Redis queue by an earlier run) and were used all the same.</summary>
    public long Foreign { get; private set; }

    /// <inheritdoc />
    public int Take(int max, List<RolloutBatch> into, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_stopped, this);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        int added = 0;
        while (added == 0) // every rollout taken may have been rejected: wait for more
        {
            _raw.Clear();
            _envs.Rollouts.ThrowIfStreamFailed(); // at every take: a busy queue must not hide a lost worker
            bool starving = _queue.Count == 0; // the learner is about to wait for rollouts
            while (_queue.Take(max, _raw, _poll, cancellationToken) == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                _envs.Rollouts.ThrowIfStreamFailed();
            }
            added = Decode(into, starving);
        }
        return added;
    }

    private long _sinceEmpty; // rollouts taken since the learner last found the queue empty

    // The raw rollouts just taken into batches; returns how many were usable.
    private int Decode(List<RolloutBatch> into, bool starving)
    {
        int added = 0;
        bool adaptive = MaxCredit > Credit;
        if (starving) _sinceEmpty = 0;
        _sinceEmpty += _raw.Count;
        // A backlog, not a burst: more waiting than a fixed window could queue, and a whole window's worth of rollouts
        // (every worker's, as they stand) taken since the learner last found the queue empty.
        bool backlog = adaptive && _queue.Count > Credit * _workers.Count && _sinceEmpty > _envs.Rollouts.TotalCreditWindow;
        foreach (var bytes in _raw)
        {
            var r = RolloutResult.Parser.ParseFrom(bytes);
            bool ours = _workers.TryGetValue(r.WorkerId, out var worker);
            int n = ours ? worker.NumEnvs : ShapeOf(r);
            if (!ours) Foreign++;
            var batch = Rent(n);
            // Checked before the learner sees it: the right shapes (Fill), finite values, real actions, a version that was pushed.
            string? problem;
            try
            {
                batch.Fill(r, 0, n);
                problem = batch.Problem(0, n, ours ? _envs.Policies.State(worker.Index).PushedVersion : 0);
            }
            catch (InvalidDataException e)
            {
                problem = e.Message;
            }
            if (problem is not null)
            {
                Return(batch);
                Rejected++;
                if (ours) _envs.Elastic.Evict(r.WorkerId, (int)r.WorkerGeneration, $"rollout {r.Index}: {problem}"); // its replacement gets credit anew
                continue;
            }
            batch.SortEpisodes();
            batch.WorkerId = r.WorkerId;
            batch.Index = r.Index;
            into.Add(batch);
            _envs.Rollouts.GrantCredit(r.WorkerId, keepBack: backlog);
            // The learner waited for rollouts while this worker waited for credit: its window is too small for the
            // time a rollout and its credit take to cross (the round trip), so it may hold one more.
            if (adaptive && starving && r.CreditWaitUs > CreditWaitThresholdUs && _envs.Rollouts.WidenCredit(r.WorkerId, MaxCredit)) Widenings++;
            Taken++;
            added++;
        }
        return added;
    }

    private static int ShapeOf(RolloutResult r) =>
        r.Rewards is { } t && t.Shape.Count == 2 ? (int)t.Shape[1] : throw new InvalidDataException("A queued rollout has no (T, n) rewards tensor.");

    private RolloutBatch Rent(int numEnvs)
    {
        if (_free.TryGetValue(numEnvs, out var stack) && stack.Count > 0)
        {
            var b = stack.Pop();
            b.Episodes.Clear();
            return b;
        }
        var layout = Vector.ActionLayout.For(_envs.SingleActionSpace);
        int dist = _envs.SingleActionSpace is Spaces.Discrete d ? d.N : layout.Size;
        return new RolloutBatch(Steps, numEnvs, _envs.ObservationSize, layout.IsContinuous, layout.Size, dist, Vector.ObservationStorage.Of(_envs.SingleObservationSpace))
        {
            NextStepResets = _envs.AutoresetMode == Vector.AutoresetMode.NextStep,
        };
    }

    /// <inheritdoc />
    public void Return(RolloutBatch rollout)
    {
        if (!_free.TryGetValue(rollout.NumEnvs, out var stack)) _free[rollout.NumEnvs] = stack = new Stack<RolloutBatch>();
        stack.Push(rollout);
    }

    /// <summary>Stops the stream (see <see cref="WorkerRollouts.StopStreaming"/>); rollouts still queued stay in the queue. Returns what each worker sent.</summary>
    public IReadOnlyList<long> Stop()
    {
        if (_stopped) return _envs.Rollouts.StreamedRollouts;
        _stopped = true;
        try
        {
            return _envs.Rollouts.StopStreaming();
        }
        finally
        {
            if (_ownsQueue) _queue.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_stopped) return;
        // Best effort: after a failure (a lost worker) there is no clean stop, and the failure was thrown already.
        try { Stop(); }
        catch (Exception) { }
    }
}
