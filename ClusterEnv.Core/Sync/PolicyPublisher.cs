using ClusterEnv.Cluster;
using ClusterEnv.Policies;
using ClusterEnv.Rollouts;

namespace ClusterEnv.Sync;

/// <summary>What one <see cref="PolicyPublisher.Publish"/> did.</summary>
/// <param name="Version">The learner's version that was published.</param>
/// <param name="Pushes">Workers sent the new weights this round.</param>
/// <param name="MeanKl">Mean KL(deployed ‖ current) over the workers the gate measured (NaN when none).</param>
/// <param name="InFlight">Workers skipped because their previous push is not acknowledged yet.</param>
/// <param name="LagPushes">Pushes made because a worker was <see cref="PolicyPublisher.LagCap"/> versions behind, not because of the strategy.</param>
public readonly record struct PublishRound(ulong Version, int Pushes, double MeanKl, int InFlight, int LagPushes);

/// <summary>
/// Adaptive Policy Synchronization as a publisher in front of the workers, and the one owner of its state: the version
/// counter, the latest weights, and per worker slot the version it was sent and the one it acknowledged (a version
/// counts as deployed when the worker acknowledges it), its generation (a replacement starts afresh), its recent
/// states with the distribution its deployed policy gave on them (from its rollouts: the gate measures KL against
/// what the worker really computed, without running the deployed weights again), and its decision counters.
/// It also decides the starting policy of every replacement (the newest version, pushed once), so no version is ever
/// pushed twice to the same worker. <see cref="ApsGate"/> is its pure decision. A refused push is reported at the
/// next <see cref="Publish"/>. PPO on workers and IMPALA/IMPACT share it. Thread-safe: replacements arrive on other threads.
/// </summary>
public sealed class PolicyPublisher
{
    private sealed class WorkerSync(int states, int observationSize, int actionSize)
    {
        public int Generation;
        public ulong PendingVersion;             // sent and not yet acknowledged (0: none)
        public ulong DeployedVersion;            // acknowledged (0: nothing deployed, a new worker)
        public int UpdatesSincePush;
        public readonly float[] States = new float[states * observationSize];
        public readonly float[] Params = new float[states * actionSize]; // the acting policy's logits or means on States
        public readonly float[] LogStd = new float[actionSize];
        public int StateCount;
        public ulong StatesVersion;              // the version that acted on States
        public int Deployments, Skips;
        public double LastKl = double.NaN;
    }

    private readonly ClusterVecEnv _envs;
    private readonly ApsGate _gate;
    private readonly WorkerSync[] _workers;
    private readonly Dictionary<string, int> _index;
    private readonly Lock _lock = new();
    private float[] _latest = [];
    private ObservationNormalizer? _latestNormalizer;

    /// <summary>
    /// A publisher for the workers of <paramref name="envs"/>, acting with policies of <paramref name="spec"/>. The lag
    /// cap is the tighter of the strategy's (<see cref="SyncStrategy.MaxLag"/>) and <paramref name="learnerLagLimit"/>,
    /// the staleness a learner tolerates (IMPALA drops rollouts older than that, so a worker further behind would have
    /// all its data thrown away); 0 for either means none.
    /// </summary>
    public PolicyPublisher(ClusterVecEnv envs, PolicySpec spec, SyncStrategy strategy, int maxStates = 512, int learnerLagLimit = 0)
    {
        ArgumentNullException.ThrowIfNull(envs);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentOutOfRangeException.ThrowIfNegative(learnerLagLimit);
        _envs = envs;
        Spec = spec;
        Strategy = strategy;
        _gate = new ApsGate(spec, strategy, maxStates);
        _workers = envs.Workers.Select(_ => new WorkerSync(maxStates, spec.ObservationSize, spec.ActionSize)).ToArray();
        _index = envs.Workers.Select((w, i) => (w.WorkerId, i)).ToDictionary(x => x.WorkerId, x => x.i);
        LagCap = strategy.MaxLag > 0 && learnerLagLimit > 0 ? Math.Min(strategy.MaxLag, learnerLagLimit) : Math.Max(strategy.MaxLag, learnerLagLimit);
        envs.Policies.DecideReplacementPolicy(StartReplacement);
    }

    /// <summary>The architecture the workers act with.</summary>
    public PolicySpec Spec { get; }

    /// <summary>The push rule.</summary>
    public SyncStrategy Strategy { get; }

    /// <summary>A worker this many versions behind is pushed whatever the strategy says (0: no cap).</summary>
    public int LagCap { get; }

    /// <summary>The learner's latest version (0 before the first <see cref="Publish"/>).</summary>
    public ulong Version { get; private set; }

    /// <summary>Pushes written to the workers so far, the first deployment included (the slots' own count, so replacements' starting pushes are in it).</summary>
    public int TotalPushes => _envs.Policies.States.Sum(s => s.Pushes);

    /// <summary>Bytes of those pushes on the wire.</summary>
    public long BytesPushed => _envs.Policies.States.Sum(s => s.BytesPushed);

    /// <summary>The version worker <paramref name="worker"/> acknowledged acting with (0: none yet).</summary>
    public ulong DeployedVersion(int worker)
    {
        lock (_lock) return _workers[worker].DeployedVersion;
    }

    /// <summary>How many versions worker <paramref name="worker"/>'s acknowledged policy is behind the learner.</summary>
    public ulong Lag(int worker)
    {
        lock (_lock) return Version - Math.Min(Version, _workers[worker].DeployedVersion);
    }

    /// <summary>Versions worker <paramref name="worker"/> acknowledged (deployments), the first included.</summary>
    public int Deployments(int worker)
    {
        lock (_lock) return _workers[worker].Deployments;
    }

    /// <summary>Decisions not to push to worker <paramref name="worker"/>.</summary>
    public int Skips(int worker)
    {
        lock (_lock) return _workers[worker].Skips;
    }

    /// <summary>The KL measured at worker <paramref name="worker"/>'s latest decision (NaN before any).</summary>
    public double LastKl(int worker)
    {
        lock (_lock) return _workers[worker].LastKl;
    }

    /// <summary>
    /// Remembers a rollout's states (a streaming worker's, or a lockstep gather of all workers) as that worker's recent
    /// states for the KL, with the distribution parameters and the version that acted on them.
    /// </summary>
    public void Observe(RolloutBatch rollout)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        int k = Spec.ActionSize, n = rollout.NumEnvs;
        if (rollout.DistributionSize != k) throw new ArgumentException($"The rollout carries {rollout.DistributionSize} distribution parameters per step; the policy has {k}.", nameof(rollout));
        lock (_lock)
        {
            if (rollout.WorkerId.Length > 0)
            {
                if (_index.TryGetValue(rollout.WorkerId, out int w)) Keep(_workers[w], rollout, 0, n);
                return;
            }
            var workers = _envs.Workers;
            for (int w = 0; w < workers.Count; w++)
            {
                var (_, offset, count) = workers[w];
                Keep(_workers[w], rollout, offset, count); // this worker's columns of every row
            }
        }
    }

    // Evenly spaced states of sub-envs offset..offset+count of every step of the rollout (state s is step s / count of
    // sub-env offset + s % count), read straight into the worker's buffer (images widened to floats there).
    private void Keep(WorkerSync w, RolloutBatch rollout, int offset, int count)
    {
        int m = Spec.ObservationSize, k = Spec.ActionSize, n = rollout.NumEnvs, total = rollout.Steps * count, room = w.States.Length / m;
        int take = Math.Min(total, room);
        for (int j = 0; j < take; j++)
        {
            int s = (int)((long)j * total / take), row = s / count * n + offset + s % count;
            rollout.CopyObservations(row, 1, w.States.AsSpan(j * m, m));
            rollout.DistributionParameters.AsSpan(row * k, k).CopyTo(w.Params.AsSpan(j * k, k));
        }
        if (Spec.Continuous) rollout.LogStd.AsSpan(offset * k, k).CopyTo(w.LogStd);
        w.StatesVersion = rollout.PolicyVersion[offset];
        w.StateCount = take;
    }

    /// <summary>
    /// Advances the version and, per worker, pushes <paramref name="policy"/> when the gate says so (KL over the
    /// worker's recent states above τ, every N versions, always, or <see cref="LagCap"/> reached). A worker whose last
    /// push is still unacknowledged is skipped this round (its weights are on their way). The first call deploys to every worker.
    /// </summary>
    /// <exception cref="PolicyRejectedException">A worker refused a push since the last call (named, with its reason).</exception>
    public PublishRound Publish(ActorCritic policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        lock (_lock)
        {
            Version++;
            if (_latest.Length != policy.Parameters.Length) _latest = new float[policy.Parameters.Length];
            policy.Parameters.CopyTo(_latest);
            _latestNormalizer = policy.Normalizer;
            int pushes = 0, inFlight = 0, lagPushes = 0, measured = 0;
            double klSum = 0;
            List<string>? refused = null;
            for (int i = 0; i < _workers.Length; i++)
            {
                var w = _workers[i];
                var st = _envs.Policies.State(i).Snapshot(); // which worker, and what it acknowledged, in one read
                if (NewWorker(i, st.Worker)) w.UpdatesSincePush = 0;
                if (w.PendingVersion != 0)
                {
                    if (st.Unacknowledged > 0)
                    {
                        inFlight++;
                        continue;
                    }
                    if (st.LastError is null && st.ActiveVersion >= w.PendingVersion) Deployed(w);
                    else (refused ??= []).Add($"worker '{_envs.Workers[i].WorkerId}' refused version {w.PendingVersion} and keeps acting with version {st.ActiveVersion}: {st.LastError ?? "no reason given"}");
                    w.PendingVersion = 0;
                }
                bool deployed = w.DeployedVersion != 0;
                if (deployed) w.UpdatesSincePush++;
                ulong lag = deployed ? Version - w.DeployedVersion : 0;
                // Only states the deployed version acted on measure its drift (right after a new version is
                // acknowledged, none may have arrived yet: no KL this round).
                int count = w.StatesVersion == w.DeployedVersion ? w.StateCount : 0;
                var decision = _gate.Decide(deployed, policy, w.UpdatesSincePush, lag, LagCap,
                    w.States.AsSpan(0, count * Spec.ObservationSize), w.Params.AsSpan(0, count * Spec.ActionSize), w.LogStd, count);
                w.LastKl = decision.Kl;
                if (double.IsFinite(decision.Kl))
                {
                    klSum += decision.Kl;
                    measured++;
                }
                if (!decision.Push)
                {
                    w.Skips++;
                    continue;
                }
                if (decision.ByLag) lagPushes++;
                PushLatest(i);
                pushes++;
            }
            if (refused is not null) throw new PolicyRejectedException(string.Join("; ", refused));
            return new PublishRound(Version, pushes, measured > 0 ? klSum / measured : double.NaN, inFlight, lagPushes);
        }
    }

    // Under the lock: a replacement has taken slot i since this publisher last looked, so it acts with nothing yet.
    // Whether slot i has a worker this publisher has not seen (its pending push and deployment were the old worker's).
    private bool NewWorker(int i, int generation)
    {
        var w = _workers[i];
        if (generation == w.Generation) return false;
        w.Generation = generation;
        w.PendingVersion = 0;
        w.DeployedVersion = 0;
        w.StateCount = 0;
        return true;
    }

    private static void Deployed(WorkerSync w)
    {
        w.DeployedVersion = w.PendingVersion;
        w.UpdatesSincePush = 0;
        w.Deployments++;
    }

    // Under the lock: the latest weights to slot i (queued by the slot until its worker can take them).
    private void PushLatest(int i)
    {
        _envs.Policies.Push(i, Version, Spec, _latest, _latestNormalizer);
        _workers[i].PendingVersion = Version;
    }

    // From a replacement's take-over, before its welcome: it starts with the latest version, pushed once, here.
    private void StartReplacement(int i)
    {
        lock (_lock)
        {
            if (!NewWorker(i, _envs.Policies.State(i).Snapshot().Worker) || Version == 0) return; // Publish already pushed to this generation, or nothing was published yet
            PushLatest(i);
        }
    }
}
