using ClusterEnv.Nn;
using ClusterEnv.Policies;

namespace ClusterEnv.Sync;

/// <summary>One push-or-skip decision of the <see cref="ApsGate"/>.</summary>
public readonly record struct SyncDecision(int Worker, bool Push, double Kl, ulong DeployedVersion, ulong CurrentVersion);

/// <summary>
/// Adaptive Policy Synchronization: a gate in front of publishing weights. It remembers which weights each worker acts
/// with and, after each learner update, measures KL(deployed ‖ current) averaged over that worker's most recent
/// observations — the same states for both policies, exact for the distribution kind — and says to push only when
/// the strategy asks for it (for <see cref="SyncKind.KlThreshold"/>: KL &gt; τ). The first deployment always happens.
/// </summary>
public sealed class ApsGate
{
    private readonly float[][] _deployed;
    private readonly ulong[] _deployedVersion;
    private readonly Policies.ObservationNormalizer?[] _deployedNormalizer;
    private float[] _normalized = [];
    private readonly int[] _updatesSincePush;
    private readonly ActorCritic _scratch;
    private float[] _headCurrent = [];

    /// <summary>A gate for <paramref name="numWorkers"/> workers acting with policies of <paramref name="spec"/>.</summary>
    public ApsGate(PolicySpec spec, int numWorkers, SyncStrategy strategy, int maxStates = 512)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(strategy);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numWorkers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxStates);
        Spec = spec;
        Strategy = strategy;
        MaxStates = maxStates;
        _deployed = new float[numWorkers][];
        _deployedVersion = new ulong[numWorkers];
        _deployedNormalizer = new Policies.ObservationNormalizer?[numWorkers];
        _updatesSincePush = new int[numWorkers];
        _scratch = new ActorCritic(spec);
        Pushes = new int[numWorkers];
        Skips = new int[numWorkers];
        LastKl = new double[numWorkers];
    }

    /// <summary>The architecture every worker acts with.</summary>
    public PolicySpec Spec { get; }

    /// <summary>The rule.</summary>
    public SyncStrategy Strategy { get; }

    /// <summary>At most this many states (evenly spaced) enter each KL estimate.</summary>
    public int MaxStates { get; }

    /// <summary>Pushes per worker, the first deployment included.</summary>
    public int[] Pushes { get; }

    /// <summary>Decisions not to push, per worker.</summary>
    public int[] Skips { get; }

    /// <summary>The KL measured at each worker's latest decision (NaN before any).</summary>
    public double[] LastKl { get; }

    /// <summary>The version worker <paramref name="worker"/> was last sent (0: none).</summary>
    public ulong DeployedVersion(int worker) => _deployedVersion[worker];

    /// <summary>
    /// Decides for <paramref name="worker"/> after an update of <paramref name="current"/> to <paramref name="currentVersion"/>,
    /// measuring the KL on <paramref name="states"/> (count × observation size, normalised as the policy sees them).
    /// Call <see cref="Deployed"/> when the push is sent.
    /// </summary>
    public SyncDecision Decide(int worker, ActorCritic current, ulong currentVersion, ReadOnlySpan<float> states, int count)
    {
        ArgumentNullException.ThrowIfNull(current);
        if (_deployed[worker] is null) return new SyncDecision(worker, true, double.PositiveInfinity, 0, currentVersion);
        _updatesSincePush[worker]++;
        bool needKl = Strategy.Kind == SyncKind.KlThreshold;
        double kl = needKl || count > 0 ? MeanKl(_deployed[worker], current, states, count, _deployedNormalizer[worker]) : double.NaN;
        LastKl[worker] = kl;
        bool push = Strategy.Kind switch
        {
            SyncKind.Always => true,
            SyncKind.Never => false,
            SyncKind.EveryN => _updatesSincePush[worker] >= Strategy.Every,
            _ => kl > Strategy.Tau,
        };
        if (!push) Skips[worker]++;
        return new SyncDecision(worker, push, kl, _deployedVersion[worker], currentVersion);
    }

    /// <summary>Records that <paramref name="weights"/> (version <paramref name="version"/>, acting with <paramref name="normalizer"/>'s statistics) were deployed to <paramref name="worker"/>.</summary>
    public void Deployed(int worker, ulong version, ReadOnlySpan<float> weights, Policies.ObservationNormalizer? normalizer = null)
    {
        _deployedNormalizer[worker] = normalizer;
        if (weights.Length != _scratch.Store.Count)
            throw new ArgumentException($"Got {weights.Length} weights; the gate's spec has {_scratch.Store.Count}.", nameof(weights));
        _deployed[worker] ??= new float[weights.Length];
        weights.CopyTo(_deployed[worker]);
        _deployedVersion[worker] = version;
        _updatesSincePush[worker] = 0;
        Pushes[worker]++;
    }

    /// <summary>Forgets what worker <paramref name="worker"/> acts with (it was replaced by a new process): its next decision deploys.</summary>
    public void Forget(int worker)
    {
        _deployed[worker] = null!;
        _deployedVersion[worker] = 0;
        _deployedNormalizer[worker] = null;
        _updatesSincePush[worker] = 0;
    }

    /// <summary>
    /// Mean over raw states of KL(π_deployed(·|s) ‖ π_current(·|s)), exact for categorical and diagonal-Gaussian
    /// policies; each policy sees the states normalised with its own statistics (the deployed ones with <paramref name="deployedNormalizer"/>).
    /// </summary>
    public double MeanKl(ReadOnlySpan<float> deployedWeights, ActorCritic current, ReadOnlySpan<float> states, int count, Policies.ObservationNormalizer? deployedNormalizer = null)
    {
        if (count <= 0) return 0;
        int m = Spec.ObservationSize, k = Spec.ActionSize;
        int used = Math.Min(count, MaxStates);
        // Evenly spaced states when there are more than MaxStates.
        var picked = new float[used * m];
        for (int j = 0; j < used; j++)
        {
            int src = (int)((long)j * count / used);
            states.Slice(src * m, m).CopyTo(picked.AsSpan(j * m, m));
        }
        _scratch.LoadParameters(deployedWeights);
        if (_headCurrent.Length < used * k) _headCurrent = new float[used * k];
        current.Actor.Forward(Normalized(picked, current.Normalizer), used)[..(used * k)].CopyTo(_headCurrent);
        var headDeployed = _scratch.Actor.Forward(Normalized(picked, deployedNormalizer), used);
        double sum = 0;
        for (int j = 0; j < used; j++)
        {
            var p = headDeployed.Slice(j * k, k);
            var q = _headCurrent.AsSpan(j * k, k);
            sum += Spec.Continuous ? DiagGaussian.Kl(p, _scratch.LogStd, q, current.LogStd) : Categorical.Kl(p, q);
        }
        return sum / used;
    }

    private ReadOnlySpan<float> Normalized(float[] states, Policies.ObservationNormalizer? normalizer)
    {
        if (normalizer is null) return states;
        if (_normalized.Length < states.Length) _normalized = new float[states.Length];
        normalizer.Normalize(states, _normalized.AsSpan(0, states.Length));
        return _normalized.AsSpan(0, states.Length);
    }
}
