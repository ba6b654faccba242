using ClusterEnv.Nn;
using ClusterEnv.Policies;

namespace ClusterEnv.Sync;

/// <summary>One push-or-skip decision of the <see cref="ApsGate"/>.</summary>
/// <param name="Push">Send the current weights.</param>
/// <param name="Kl">KL(deployed ‖ current) over the states (NaN when not measured; +∞ before the first deployment).</param>
/// <param name="ByLag">The push is due to the lag cap, not to the strategy.</param>
public readonly record struct SyncDecision(bool Push, double Kl, bool ByLag);

/// <summary>
/// Adaptive Policy Synchronization's decision, and nothing else: given the distribution a worker's deployed policy
/// gave on its recent states (the logits or Gaussian means its rollouts carry, and the log-std), the learner's current
/// policy, and how far behind the worker is, says whether to push. KL(deployed ‖ current) is averaged over those
/// states, exact for the distribution kind; only the current policy runs forward (the deployed side is what the worker
/// computed while acting, with its own observation statistics). It holds no per-worker state (the
/// <see cref="PolicyPublisher"/> does); only scratch buffers, so one gate serves every worker, on one thread at a time.
/// </summary>
public sealed class ApsGate
{
    private float[] _picked = [];
    private float[] _pickedParams = [];

    /// <summary>A gate for policies of <paramref name="spec"/>, deciding with <paramref name="strategy"/>.</summary>
    public ApsGate(PolicySpec spec, SyncStrategy strategy, int maxStates = 512)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(strategy);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxStates);
        Spec = spec;
        Strategy = strategy;
        MaxStates = maxStates;
    }

    /// <summary>The architecture every worker acts with.</summary>
    public PolicySpec Spec { get; }

    /// <summary>The rule.</summary>
    public SyncStrategy Strategy { get; }

    /// <summary>At most this many states (evenly spaced) enter each KL estimate.</summary>
    public int MaxStates { get; }

    /// <summary>
    /// Decides for a worker. <paramref name="deployed"/> false: it acts with nothing yet, so the first deployment
    /// happens whatever the strategy. Otherwise it is <paramref name="updatesSincePush"/> learner updates after its
    /// last push and <paramref name="lag"/> versions behind, and <paramref name="count"/> of its recent raw
    /// <paramref name="states"/> come with the deployed policy's distribution parameters on them
    /// (<paramref name="deployedParams"/>, count × action size; <paramref name="deployedLogStd"/> for a Gaussian);
    /// count 0 means no state acted by the deployed version has arrived yet (the KL is then NaN, which never exceeds τ).
    /// <paramref name="lagCap"/> &gt; 0 pushes a worker that far behind whatever the strategy says.
    /// </summary>
    public SyncDecision Decide(bool deployed, ActorCritic current, int updatesSincePush, ulong lag, int lagCap,
        ReadOnlySpan<float> states, ReadOnlySpan<float> deployedParams, ReadOnlySpan<float> deployedLogStd, int count)
    {
        ArgumentNullException.ThrowIfNull(current);
        if (!deployed) return new SyncDecision(true, double.PositiveInfinity, false);
        double kl = count > 0 ? MeanKl(deployedParams, deployedLogStd, current, states, count) : double.NaN;
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
    /// policies. The deployed side is given as its distribution parameters on each state (logits, or Gaussian means
    /// with <paramref name="deployedLogStd"/>); the current policy sees the states normalised with its own statistics.
    /// </summary>
    public double MeanKl(ReadOnlySpan<float> deployedParams, ReadOnlySpan<float> deployedLogStd, ActorCritic current, ReadOnlySpan<float> states, int count)
    {
        if (count <= 0) return 0;
        int m = Spec.ObservationSize, k = Spec.ActionSize;
        if (deployedParams.Length < count * k || states.Length < count * m)
            throw new ArgumentException($"{count} states need {count * m} observation floats and {count * k} distribution parameters; got {states.Length} and {deployedParams.Length}.");
        if (Spec.Continuous && deployedLogStd.Length != k)
            throw new ArgumentException($"A Gaussian policy's KL needs the deployed log-std ({k} floats); got {deployedLogStd.Length}.", nameof(deployedLogStd));
        int used = Math.Min(count, MaxStates);
        // Evenly spaced states when there are more than MaxStates.
        if (_picked.Length < used * m) _picked = new float[used * m];
        if (_pickedParams.Length < used * k) _pickedParams = new float[used * k];
        for (int j = 0; j < used; j++)
        {
            int src = (int)((long)j * count / used);
            states.Slice(src * m, m).CopyTo(_picked.AsSpan(j * m, m));
            deployedParams.Slice(src * k, k).CopyTo(_pickedParams.AsSpan(j * k, k));
        }
        var head = current.ForwardActor(current.Prepare(_picked.AsSpan(0, used * m), used), used);
        double sum = 0;
        for (int j = 0; j < used; j++)
        {
            var p = _pickedParams.AsSpan(j * k, k);
            var q = head.Slice(j * k, k);
            sum += Spec.Continuous ? DiagGaussian.Kl(p, deployedLogStd, q, current.LogStd) : Categorical.Kl(p, q);
        }
        return sum / used;
    }
}
