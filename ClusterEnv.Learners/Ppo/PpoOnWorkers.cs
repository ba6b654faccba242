using System.Runtime.CompilerServices;
using ClusterEnv.Cluster;
using ClusterEnv.Sync;

namespace ClusterEnv.Learners.Ppo;

public static partial class Ppo
{
    /// <summary>
    /// PPO where the workers act (DETACH rollouts): each iteration every worker runs its local copy of the policy for
    /// <see cref="PpoOptions.NumSteps"/> steps and ships the rollout in one message; the learner updates, and the
    /// <see cref="PolicyPublisher"/> decides per worker whether the new weights are worth sending. With
    /// <see cref="ClusterOptions.ReplaceLostWorkers"/>, a worker lost during a rollout is replaced: its replacement starts
    /// with the newest policy and fresh episodes, and supplies the lost worker's rows of that rollout.
    /// </summary>
    /// <remarks>The loop is <c>Learn</c>'s, the same as <see cref="Train"/>'s; the rollouts come from a <see cref="LockstepRolloutSource"/>.</remarks>
    public static PpoResult TrainOnWorkers(ClusterVecEnv envs, PpoOptions options, SyncStrategy strategy, Action<PpoMetrics>? onIteration = null,
        CancellationToken cancellationToken = default, Checkpoints.TrainingCheckpoint? resume = null)
    {
        ArgumentNullException.ThrowIfNull(strategy);
        var policy = Setup(envs, options, resume);
        var publisher = new PolicyPublisher(envs, policy.Spec, strategy);
        envs.Reset(seed: options.Seed);
        publisher.Publish(policy); // version 1 to every worker
        var version = new StrongBox<ulong>(publisher.Version);
        using var source = new LockstepRolloutSource(envs, options.NumSteps, (ulong)options.Seed);
        var result = Learn(source, envs, policy, publisher, version, options, onIteration, cancellationToken, resume);
        envs.Policies.WaitForAcks();
        return result;
    }

}
