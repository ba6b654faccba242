using ClusterEnv.Common;
using ClusterEnv.Policies;
using ClusterEnv.Vector;

namespace ClusterEnv.Rollouts;

/// <summary>
/// Where a learner's rollouts come from, whoever acts: the learner itself on a local vector env
/// (<see cref="LocalRolloutSource"/>), lockstep workers (<c>LockstepRolloutSource</c>: every worker, one round trip per
/// batch), or streaming workers (<c>StreamingRolloutSource</c>: rollouts as they arrive, with credit). Each rollout is
/// a <see cref="RolloutBatch"/> of T steps that records the policy version that acted for every sub-env.
/// </summary>
public interface IRolloutSource : IDisposable
{
    /// <summary>What acts and where, for logs ("local, 8 envs", "2 workers streaming, credit 2, queue …").</summary>
    string Description { get; }

    /// <summary>T, the steps of every rollout.</summary>
    int Steps { get; }

    /// <summary>
    /// Waits for at least one rollout and adds up to <paramref name="max"/> to <paramref name="into"/>; returns how many.
    /// Give each back with <see cref="Return"/> when done with it. Throws what went wrong (a lost or hung worker, a
    /// queue that failed) instead of waiting forever.
    /// </summary>
    int Take(int max, List<RolloutBatch> into, CancellationToken cancellationToken = default);

    /// <summary>Gives a rollout's buffers back for reuse.</summary>
    void Return(RolloutBatch rollout);

    /// <summary>Rollouts waiting for the learner now (0 where nothing queues).</summary>
    long QueueDepth { get; }
}

/// <summary>
/// The learner acts: each <see cref="Take"/> runs <see cref="Steps"/> steps of a local vector env with the policy the
/// learner holds now (policy lag 0), through the same <see cref="RolloutActor"/> the workers run.
/// </summary>
public sealed class LocalRolloutSource : IRolloutSource
{
    private readonly IVectorEnv _envs;
    private readonly Func<(ActorCritic Policy, ulong Version)> _current;
    private readonly RolloutActor _actor;
    private readonly Rng _rng;
    private readonly Stack<RolloutBatch> _free = new();

    /// <summary>Acts on <paramref name="envs"/> (reset here with <paramref name="seed"/>) with whatever <paramref name="current"/> returns at each take.</summary>
    public LocalRolloutSource(IVectorEnv envs, int steps, Func<(ActorCritic Policy, ulong Version)> current, int seed)
    {
        ArgumentNullException.ThrowIfNull(envs);
        ArgumentNullException.ThrowIfNull(current);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        _envs = envs;
        _current = current;
        Steps = steps;
        _actor = new RolloutActor(envs);
        _rng = new Rng(seed);
        _actor.Begin(envs.Reset(seed: seed).Observations);
    }

    /// <inheritdoc />
    public string Description => $"local, {_envs.NumEnvs} envs";

    /// <inheritdoc />
    public int Steps { get; }

    /// <inheritdoc />
    public long QueueDepth => 0;

    /// <inheritdoc />
    public int Take(int max, List<RolloutBatch> into, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        var (policy, version) = _current();
        var batch = _free.Count > 0 ? _free.Pop() : _actor.CreateBatch(Steps, policy.Spec);
        _actor.Act(policy, version, batch, _rng);
        into.Add(batch);
        return 1;
    }

    /// <inheritdoc />
    public void Return(RolloutBatch rollout) => _free.Push(rollout);

    /// <inheritdoc />
    public void Dispose() { }
}
