using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Learners.Estimators;
using ClusterEnv.Nn;
using ClusterEnv.Policies;
using ClusterEnv.Sync;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

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
    /// <remarks>
    /// <para>The behaviour log-probabilities recorded by the worker are the "old" log-probabilities of the ratio
    /// r = π_θ(a|s) / μ(a|s). With an up-to-date worker μ is the pre-update policy, as in ordinary PPO. With a stale
    /// worker (policy lag &gt; 0) μ is older: r starts away from 1 before the first gradient step, so more samples fall
    /// outside [1 − ε, 1 + ε] and contribute no gradient — the clipped objective discards what staleness made
    /// off-policy. The metrics show it: clip fraction and approx-KL rise with <see cref="PpoMetrics.MeanPolicyLag"/>.
    /// Values and advantages are recomputed with the learner's current critic.</para>
    /// <para>With <see cref="PpoOptions.NormalizeObservations"/>, the statistics belong to the policy
    /// (<see cref="ActorCritic.Normalizer"/>): the learner updates them from the raw observations of each rollout, and
    /// every push carries the snapshot the weights were trained with, so each worker acts with a consistent pair.</para>
    /// </remarks>
    public static PpoResult TrainOnWorkers(ClusterVecEnv envs, PpoOptions options, SyncStrategy strategy, Action<PpoMetrics>? onIteration = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(envs);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(strategy);
        var o = options;
        int n = envs.NumEnvs, T = o.NumSteps;
        o.Validate(n);
        if (envs.AutoresetMode == AutoresetMode.Disabled)
            throw new ArgumentException("PPO needs an autoresetting vector env; create it with AutoresetMode.NextStep (the default) or SameStep.", nameof(envs));

        // ---- setup: policy, optimizer, APS gate, storage ----
        var spec = PolicySpec.For(envs.SingleObservationSpace, envs.SingleActionSpace, o.Hidden);
        var policy = new ActorCritic(spec, o.Seed);
        var adam = new Adam(policy.Store.Count, o.LearningRate, eps: o.AdamEps);
        var rng = new Common.Rng(o.Seed);
        var workers = envs.Workers;
        var publisher = new PolicyPublisher(envs, spec, strategy);
        int m = spec.ObservationSize, k = spec.ActionSize;
        double threshold = o.RewardThreshold ?? envs.Spec?.RewardThreshold ?? double.PositiveInfinity;

        var obs = new float[T * n * m];
        var values = new float[T * n];
        var nextValues = new float[T * n];
        var rewards = new float[T * n];
        var terminated = new bool[T * n];
        var done = new bool[T * n];
        var valid = new bool[T * n];
        var advantages = new float[T * n];
        var returns = new float[T * n];
        var lastValues = new float[n];
        var pendingReset = new bool[n];
        var returnRms = o.NormalizeRewards ? new RunningMeanStd(1) : null;
        var discountedReturn = new double[n];
        var episodeLog = new EpisodeLog(threshold);
        var history = new List<PpoMetrics>();
        long globalStep = 0;
        double busySeconds = 0; // the learner computing (advantages and the update), not waiting for rollouts or pushing
        var clock = Stopwatch.StartNew();

        var obsRms = o.NormalizeObservations ? new RunningMeanStd(m) : null;
        var normalized = o.NormalizeObservations ? new float[T * n * m] : obs; // what the update's networks see
        if (obsRms is not null) policy.Normalizer = ObservationNormalizer.From(obsRms, o.ObservationClip);
        envs.Reset(seed: o.Seed);
        publisher.Publish(policy); // version 1 to every worker
        ulong version = publisher.Version;
        using var source = new LockstepRolloutSource(envs, T, (ulong)o.Seed);
        var taken = new List<Rollouts.RolloutBatch>(1);

        int iterations = o.NumIterations(n);
        for (int iteration = 1; iteration <= iterations; iteration++)
        {
            if (cancellationToken.IsCancellationRequested) break;
            if (o.AnnealLearningRate) adam.LearningRate = (1.0 - (iteration - 1.0) / iterations) * o.LearningRate;

            // ---- rollout: one round trip per worker (a worker lost meanwhile is replaced and its replacement supplies its rows) ----
            taken.Clear();
            source.Take(1, taken, cancellationToken);
            var batch = taken[0];
            long learnStart = Stopwatch.GetTimestamp();
            globalStep += (long)T * n;
            double lag = 0;
            for (int i = 0; i < n; i++) lag += version - batch.PolicyVersion[i];
            lag /= n;
            Array.Copy(batch.Observations, obs, T * n * m);
            if (obsRms is not null)
            {
                // The statistics move with the raw observations; the values and the update below use the new snapshot.
                for (int j = 0; j < T * n; j++) obsRms.Update(obs.AsSpan(j * m, m));
                policy.Normalizer = ObservationNormalizer.From(obsRms, o.ObservationClip);
                policy.Normalizer.Normalize(obs, normalized);
            }
            for (int t = 0; t < T; t++)
                for (int i = 0; i < n; i++)
                {
                    int idx = t * n + i;
                    valid[idx] = !pendingReset[i];
                    bool term = batch.Terminated[idx], trunc = batch.Truncated[idx];
                    terminated[idx] = term || (trunc && o.TruncationAsTermination);
                    done[idx] = term || trunc;
                    rewards[idx] = (float)ScaleReward(batch.Rewards[idx], i, valid[idx], done[idx], discountedReturn, returnRms, o);
                    if (envs.AutoresetMode == AutoresetMode.NextStep) pendingReset[i] = done[idx];
                }
            foreach (var (step, _, ep) in batch.Episodes.OrderBy(e => e.Step))
                episodeLog.Add(ep, globalStep - (long)(T - 1 - step) * n, clock.Elapsed.TotalSeconds);

            // ---- advantages with the learner's current critic ----
            policy.Value(obs, T * n, values);
            policy.Value(batch.Observations.AsSpan(T * n * m, n * m), n, lastValues);
            for (int t = 0; t < T; t++)
                for (int i = 0; i < n; i++)
                {
                    int idx = t * n + i;
                    nextValues[idx] = batch.HasFinalObservation[idx] && !o.TruncationAsTermination
                        ? policy.Value(batch.FinalObservations.AsSpan(idx * m, m))
                        : t + 1 < T ? values[idx + n] : lastValues[i];
                }
            Gae.Compute(rewards, values, nextValues, terminated, done, T, n, o.Gamma, o.GaeLambda, advantages, returns);

            // ---- update: the behaviour log-probabilities are the old ones ----
            var indices = Enumerable.Range(0, T * n).Where(j => valid[j]).ToArray();
            var stats = Update(policy, adam, o, indices, rng, normalized, m, batch.DiscreteActions, batch.ContinuousActions, batch.LogProbs, values, advantages, returns);
            busySeconds += Stopwatch.GetElapsedTime(learnStart).TotalSeconds;

            // ---- APS: the publisher pushes the new version where the strategy says so ----
            publisher.Observe(batch);
            var round = publisher.Publish(policy);
            version = round.Version;

            double seconds = clock.Elapsed.TotalSeconds;
            var metrics = stats with
            {
                Iteration = iteration,
                GlobalStep = globalStep,
                Seconds = seconds,
                Sps = globalStep / seconds,
                LearningRate = adam.LearningRate,
                ExplainedVariance = ExplainedVariance(values, returns, valid),
                PolicyVersion = version,
                Pushes = round.Pushes,
                TotalPushes = publisher.TotalPushes,
                BytesPushed = publisher.BytesPushed,
                MeanKl = round.MeanKl,
                MeanPolicyLag = lag,
                BusyFraction = busySeconds / seconds,
            };
            metrics = episodeLog.EndIteration(metrics);
            history.Add(metrics);
            onIteration?.Invoke(metrics);
        }
        envs.Policies.WaitForAcks();
        return new PpoResult(policy, history, episodeLog.StepsToThreshold, episodeLog.SecondsToThreshold, episodeLog.MeanReturn20, obsRms)
        {
            Stopped = history.Count < iterations,
        };
    }

}
