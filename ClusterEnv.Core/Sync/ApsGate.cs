using ClusterEnv.Nn;
using ClusterEnv.Policies;

namespace ClusterEnv.Sync;

/// <summary>One push-or-skip decision of the <see cref="ApsGate"/>.</summary>
/// <param name="Push">Send the current weights.</param>
/// <param name="Kl">KL(deployed ‖ current) over the states (NaN when not measured; +∞ before the first deployment).</param>
/// <param name="ByLag">The push is due to the lag cap, not to the strategy.</param>
public readonly record struct SyncDecision(bool Push, double Kl, bool ByLag);

/// <summary>
/// Adaptive Policy Synchronization's decision, and nothing else: given the weights a worker acts with, the learner's
/// current policy, the worker's recent observations and how far behind it is, says whether to push. KL(deployed ‖
/// current) is averaged over the states — the same states for both policies, each normalised with its own
/// statistics — exact for the distribution kind. It holds no per-worker state (the <see cref="PolicyPublisher"/> does);
/// only scratch buffers, so one gate serves every worker of a publisher, on one thread at a time.
/// </summary>
public sealed class ApsGate
{
    private readonly ActorCritic _scratch;
    private float[] _normalized = [];
    private float[] _headCurrent = [];
    private float[] _picked = [];

    /// <summary>A gate for policies of <paramref name="spec"/>, deciding with <paramref name="strategy"/>.</summary>
    public ApsGate(PolicySpec spec, SyncStrategy strategy, int maxStates = 512)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(strategy);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxStates);
        Spec = spec;
        Strategy = strategy;
        MaxStates = maxStates;
        _scratch = new ActorCritic(spec);
    }

    /// <summary>The architecture every worker acts with.</summary>
    public PolicySpec Spec { get; }

    /// <summary>The rule.</summary>
    public SyncStrategy Strategy { get; }

    /// <summary>At most this many states (evenly spaced) enter each KL estimate.</summary>
    public int MaxStates { get; }

    /// <summary>
    /// Decides for a worker acting with <paramref name="deployed"/> (null: nothing yet, so the first deployment happens
    /// whatever the strategy), <paramref name="updatesSincePush"/> learner updates after its last push and
    /// <paramref name="lag"/> versions behind, measuring the KL on <paramref name="states"/> (count × observation size,
    /// raw). <paramref name="lagCap"/> &gt; 0 pushes a worker that far behind whatever the strategy says.
    /// </summary>
    public SyncDecision Decide(ReadOnlySpan<float> deployed, ObservationNormalizer? deployedNormalizer, ActorCritic current, int updatesSincePush, ulong lag, int lagCap,
        ReadOnlySpan<float> states, int count)
    {
        ArgumentNullException.ThrowIfNull(current);
        if (deployed.IsEmpty) return new SyncDecision(true, double.PositiveInfinity, false);
        bool needKl = Strategy.Kind == SyncKind.KlThreshold;
        double kl = needKl || count > 0 ? MeanKl(deployed, current, states, count, deployedNormalizer) : double.NaN;
        bool push = Strategy.Kind switch
        {
            SyncKind.Always => true,
            SyncKind.Never => false,
            SyncKind.EveryN => updatesSincePush >= Strategy.Every,
            _ => kl > Strategy.Tau,
        };
        bool byLag = !push && lagCap > 0 && lag >= (ulong)lagCap;
        return new SyncDecision(push || byLag, kl, byLag);
    }

    /// <summary>
    /// Mean over raw states of KL(π_deployed(·|s) ‖ π_current(·|s)), exact for categorical and diagonal-Gaussian
    /// policies; each policy sees the states normalised with its own statistics (the deployed ones with <paramref name="deployedNormalizer"/>).
    /// </summary>
    public double MeanKl(ReadOnlySpan<float> deployedWeights, ActorCritic current, ReadOnlySpan<float> states, int count, ObservationNormalizer? deployedNormalizer = null)
    {
        if (count <= 0) return 0;
        int m = Spec.ObservationSize, k = Spec.ActionSize;
        int used = Math.Min(count, MaxStates);
        // Evenly spaced states when there are more than MaxStates.
        if (_picked.Length < used * m) _picked = new float[used * m];
        var picked = _picked.AsSpan(0, used * m);
        for (int j = 0; j < used; j++)
        {
            int src = (int)((long)j * count / used);
            states.Slice(src * m, m).CopyTo(picked.Slice(j * m, m));
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

    private ReadOnlySpan<float> Normalized(ReadOnlySpan<float> states, ObservationNormalizer? normalizer)
    {
        if (normalizer is null) return states;
        if (_normalized.Length < states.Length) _normalized = new float[states.Length];
        normalizer.Normalize(states, _normalized.AsSpan(0, states.Length));
        return _normalized.AsSpan(0, states.Length);
    }
}
