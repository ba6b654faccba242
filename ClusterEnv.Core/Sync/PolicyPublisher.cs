using ClusterEnv.Cluster;
using ClusterEnv.Policies;
using ClusterEnv.Rollouts;

namespace ClusterEnv.Sync;

/// <summary>What one <see cref="PolicyPublisher.Publish"/> did.</summary>
/// <param name="Version">The learner's version that was published.</param>
/// <param name="Pushes">Workers sent the new weights this round.</param>
/// <param name="MeanKl">Mean KL(deployed ‖ current) over the workers the gate measured (NaN when none).</param>
/// <param name="InFlight">Workers skipped because their previous push is not acknowledged yet.</param>
/// <param name="LagPushes">Pushes made because a worker was <see cref="SyncStrategy.MaxLag"/> versions behind, not because of the KL.</param>
public readonly record struct PublishRound(ulong Version, int Pushes, double MeanKl, int InFlight, int LagPushes);

/// <summary>
/// Adaptive Policy Synchronization as a publisher in front of the workers: it owns the version counter, the
/// <see cref="ApsGate"/>, each worker's slice of state (the version it acts with, the weights it was sent, its recent
/// observations) and the pushes. A version counts as deployed when the worker acknowledges it, not when it is sent, so
/// the gate always measures KL against weights the worker really loaded; a worker that refused a push is reported at
/// the next <see cref="Publish"/>, not at the end of the run. PPO on workers and IMPALA/IMPACT share it.
/// </summary>
public sealed class PolicyPublisher
{
    private readonly ClusterVecEnv _envs;
    private readonly ApsGate _gate;
    private readonly int _workers;
    private readonly ulong[] _pending;          // version sent and not yet acknowledged (0: none)
    private readonly float[][] _pendingWeights;
    private readonly Policies.ObservationNormalizer?[] _pendingNormalizer;
    private readonly ulong[] _acked;            // version the worker acknowledged acting with
    private readonly float[][] _states;         // recent observations per worker, for the KL
    private readonly int[] _stateCount;
    private readonly Dictionary<string, int> _index;
    private readonly int[] _generation;         // the worker's slot generation when last seen (a replacement starts afresh)

    /// <summary>A publisher for the workers of <paramref name="envs"/>, acting with policies of <paramref name="spec"/>.</summary>
    public PolicyPublisher(ClusterVecEnv envs, PolicySpec spec, SyncStrategy strategy, int maxStates = 512)
    {
        ArgumentNullException.ThrowIfNull(envs);
        _envs = envs;
        Spec = spec;
        Strategy = strategy;
        _workers = envs.Workers.Count;
        _gate = new ApsGate(spec, _workers, strategy, maxStates);
        _pending = new ulong[_workers];
        _pendingWeights = new float[_workers][];
        _pendingNormalizer = new Policies.ObservationNormalizer?[_workers];
        _acked = new ulong[_workers];
        _states = Enumerable.Range(0, _workers).Select(_ => new float[maxStates * spec.ObservationSize]).ToArray();
        _stateCount = new int[_workers];
        _generation = new int[_workers];
        _index = envs.Workers.Select((w, i) => (w.WorkerId, i)).ToDictionary(x => x.WorkerId, x => x.i);
    }

    /// <summary>The architecture the workers act with.</summary>
    public PolicySpec Spec { get; }

    /// <summary>The push rule.</summary>
    public SyncStrategy Strategy { get; }

    /// <summary>The learner's latest version (0 before the first <see cref="Publish"/>).</summary>
    public ulong Version { get; private set; }

    /// <summary>Pushes sent so far, the first deployment included.</summary>
    public int TotalPushes { get; private set; }

    /// <summary>Bytes of those pushes on the wire.</summary>
    public long BytesPushed { get; private set; }

    /// <summary>The version worker <paramref name="worker"/> acknowledged acting with (0: none yet).</summary>
    public ulong DeployedVersion(int worker) => _acked[worker];

    /// <summary>How many versions worker <paramref name="worker"/>'s acknowledged policy is behind the learner.</summary>
    public ulong Lag(int worker) => Version - Math.Min(Version, _acked[worker]);

    /// <summary>The gate's counters (pushes acknowledged, skips, the last KL per worker).</summary>
    public ApsGate Gate => _gate;

    /// <summary>Remembers the observations of a rollout (a streaming worker's, or a lockstep gather of all workers) as that worker's recent states for the KL.</summary>
    public void Observe(RolloutBatch rollout)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        int m = Spec.ObservationSize, n = rollout.NumEnvs, T = rollout.Steps;
        if (rollout.WorkerId.Length > 0)
        {
            if (_index.TryGetValue(rollout.WorkerId, out int w)) Keep(w, rollout.Observations.AsSpan(0, T * n * m), T * n);
            return;
        }
        var workers = _envs.Workers;
        for (int w = 0; w < workers.Count; w++)
        {
            var (_, offset, count) = workers[w];
            // This worker's columns of every row, then evenly spaced states of them.
            if (_scratch.Length < T * count * m) _scratch = new float[T * count * m];
            for (int t = 0; t < T; t++) rollout.Observations.AsSpan((t * n + offset) * m, count * m).CopyTo(_scratch.AsSpan(t * count * m));
            Keep(w, _scratch.AsSpan(0, T * count * m), T * count);
        }
    }

    private float[] _scratch = [];

    private void Keep(int w, ReadOnlySpan<float> observations, int count)
    {
        int m = Spec.ObservationSize, room = _states[w].Length / m;
        int take = Math.Min(count, room);
        // Evenly spaced over the rollout when it has more states than the buffer holds.
        for (int j = 0; j < take; j++)
        {
            int src = (int)((long)j * count / take);
            observations.Slice(src * m, m).CopyTo(_states[w].AsSpan(j * m, m));
        }
        _stateCount[w] = take;
    }

    /// <summary>
    /// Advances the version and, per worker, pushes <paramref name="policy"/> when the strategy says so (KL over the
    /// worker's recent states above τ, every N versions, always, or the lag cap reached). A worker whose last push is
    /// still unacknowledged is skipped this round (its weights are on their way). The first call deploys to every worker.
    /// </summary>
    /// <param name="policy">The learner's policy after its update.</param>
    /// <param name="forceLag">
    /// When &gt; 0, a worker this many versions behind is pushed to whatever the strategy says: a learner that drops
    /// rollouts older than that would otherwise throw that worker's data away forever.
    /// </param>
    /// <exception cref="PolicyRejectedException">A worker refused a push since the last call (named, with its reason).</exception>
    public PublishRound Publish(ActorCritic policy, int forceLag = 0)
    {
        ArgumentNullException.ThrowIfNull(policy);
        Version++;
        var states = _envs.PolicyStates;
        int pushes = 0, inFlight = 0, lagPushes = 0, measured = 0;
        double klSum = 0;
        List<string>? refused = null;
        for (int w = 0; w < _workers; w++)
        {
            int generation = _envs.WorkerGeneration(w);
            if (generation != _generation[w])
            {
                // A replacement took this worker's place: it acts with nothing yet, so it gets the current policy now.
                _generation[w] = generation;
                _pending[w] = 0;
                _acked[w] = 0;
                _gate.Forget(w);
            }
            var st = states[w];
            if (_pending[w] != 0)
            {
                if (st.Unacknowledged > 0)
                {
                    inFlight++;
                    continue;
                }
                bool refusedOurs = st.LastError is not null && st.PushedVersion == _pending[w];
                if (!refusedOurs && st.ActiveVersion >= _pending[w])
                {
                    // Deployed (a newer version pushed by someone else counts too; the gate then measures from ours).
                    _acked[w] = st.ActiveVersion;
                    _gate.Deployed(w, _pending[w], _pendingWeights[w], _pendingNormalizer[w]);
                }
                else (refused ??= []).Add($"worker '{_envs.Workers[w].WorkerId}' refused version {_pending[w]} and keeps acting with version {st.ActiveVersion}: {st.LastError ?? "no reason given"}");
                _pending[w] = 0;
            }
            bool push;
            int cap = Strategy.MaxLag > 0 && forceLag > 0 ? Math.Min(Strategy.MaxLag, forceLag) : Math.Max(Strategy.MaxLag, forceLag);
            bool byLag = cap > 0 && _acked[w] != 0 && Version - _acked[w] >= (ulong)cap;
            var decision = _gate.Decide(w, policy, Version, _states[w].AsSpan(0, _stateCount[w] * Spec.ObservationSize), _stateCount[w]);
            if (double.IsFinite(decision.Kl))
            {
                klSum += decision.Kl;
                measured++;
            }
            push = decision.Push || byLag;
            if (!push) continue;
            if (byLag && !decision.Push) lagPushes++;
            BytesPushed += _envs.PushPolicy(w, Version, Spec, policy.Parameters, policy.Normalizer);
            _pendingNormalizer[w] = policy.Normalizer;
            _pendingWeights[w] ??= new float[policy.Parameters.Length];
            policy.Parameters.CopyTo(_pendingWeights[w]);
            _pending[w] = Version;
            pushes++;
        }
        TotalPushes += pushes;
        if (refused is not null) throw new PolicyRejectedException(string.Join("; ", refused));
        return new PublishRound(Version, pushes, measured > 0 ? klSum / measured : double.NaN, inFlight, lagPushes);
    }
}
