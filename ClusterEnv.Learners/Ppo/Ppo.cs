using System.Diagnostics;
using System.Runtime.CompilerServices;
using ClusterEnv.Common;
using ClusterEnv.Learners.Distributed;
using ClusterEnv.Learners.Estimators;
using ClusterEnv.Nn;
using ClusterEnv.Policies;
using ClusterEnv.Rollouts;
using ClusterEnv.Sync;
using ClusterEnv.Spaces;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Learners.Ppo;

/// <summary>What a PPO run produced.</summary>
public sealed record PpoResult(ActorCritic Policy, IReadOnlyList<PpoMetrics> History, long? StepsToThreshold, double? SecondsToThreshold,
    double FinalMeanReturn20, RunningMeanStd? ObservationStatistics)
{
    /// <summary>Mean return of the last 100 episodes of the run (fewer when it had fewer; NaN when none ended).</summary>
    public double FinalMeanReturn100 { get; init; } = double.NaN;

    /// <summary>Training was cancelled before its step budget: <see cref="Policy"/> and <see cref="History"/> are what it had learned by then.</summary>
    public bool Stopped { get; init; }
}

/// <summary>
/// Proximal Policy Optimization with CleanRL's implementation details, over any <see cref="IVectorEnv"/>
/// (a local <see cref="SyncVectorEnv"/> or a <c>ClusterVecEnv</c>). Reads top to bottom: rollout → advantages →
/// minibatch epochs → metrics. Two fixes over CleanRL: a truncated episode bootstraps from the value of its final
/// observation, and the autoreset step of NextStep mode (whose action is ignored) is masked out of the update.
/// </summary>
public static partial class Ppo
{
    /// <summary>
    /// Trains a new actor-critic on <paramref name="envs"/>, the learner acting (CleanRL's way); <paramref name="onIteration"/>
    /// sees each iteration's metrics. Cancelling <paramref name="cancellationToken"/> stops at the next iteration boundary
    /// and returns what was learned so far (<see cref="PpoResult.Stopped"/>), so a caller can still write its checkpoint
    /// (e.g. on Ctrl-C or SIGTERM). The same loop as <see cref="TrainOnWorkers"/>, over a <see cref="LocalRolloutSource"/>.
    /// </summary>
    public static PpoResult Train(IVectorEnv envs, PpoOptions options, Action<PpoMetrics>? onIteration = null, CancellationToken cancellationToken = default,
        Checkpoints.TrainingCheckpoint? resume = null)
    {
        var policy = Setup(envs, options, resume);
        var dp = options.Collective ?? SingleCollective.Instance;
        var version = new StrongBox<ulong>(1); // the learner acts with its current policy: no lag
        using var source = new LocalRolloutSource(envs, options.NumSteps, () => (policy, version.Value), (int)DataParallel.RankSeed(options.Seed, dp));
        return Learn(source, envs, policy, publisher: null, version, options, onIteration, cancellationToken, resume);
    }

    // Checks the options against the envs and makes the policy (observation statistics included when normalising).
    // With resume, the policy starts as the checkpoint's (weights and observation statistics).
    private static ActorCritic Setup(IVectorEnv envs, PpoOptions o, Checkpoints.TrainingCheckpoint? resume)
    {
        ArgumentNullException.ThrowIfNull(envs);
        ArgumentNullException.ThrowIfNull(o);
        o.Validate(envs.NumEnvs);
        if (envs.AutoresetMode == AutoresetMode.Disabled)
            throw new ArgumentException("PPO needs an autoresetting vector env; create it with AutoresetMode.NextStep (the default) or SameStep.", nameof(envs));
        var policy = new ActorCritic(PolicySpec.Of(envs.SingleObservationSpace, envs.SingleActionSpace, o.Hidden, o.Encoder), o.Seed);
        if (o.NormalizeObservations) policy.Normalizer = ObservationNormalizer.From(new RunningMeanStd(policy.Spec.ObservationSize), o.ObservationClip);
        if (resume is not null)
        {
            if (!resume.Policy.Spec.Equals(policy.Spec))
                throw new ArgumentException($"The checkpoint holds a policy of spec {resume.Policy.Spec.ToJson()}; this run builds {policy.Spec.ToJson()}. Resume with the same env and hidden sizes.");
            policy.LoadParameters(resume.Policy.Parameters);
            if (o.NormalizeObservations) policy.Normalizer = resume.Policy.Normalizer ?? policy.Normalizer;
        }
        return policy;
    }

    /// <summary>
    /// The PPO loop, whoever acts: take a rollout from <paramref name="source"/> → advantages with the learner's current
    /// critic → epochs of shuffled minibatches → metrics → (workers acting) the publisher pushes where APS says so.
    /// </summary>
    /// <remarks>
    /// <para>The behaviour log-probabilities the rollout carries are the "old" log-probabilities of the ratio
    /// r = π_θ(a|s) / μ(a|s). Acting with the learner's policy, μ is the pre-update policy, as in ordinary PPO. With a
    /// stale worker (policy lag &gt; 0) μ is older: r starts away from 1 before the first gradient step, so more samples
    /// fall outside [1 − ε, 1 + ε] and contribute no gradient — the clipped objective discards what staleness made
    /// off-policy. Clip fraction and approx-KL rise with <see cref="PpoMetrics.MeanPolicyLag"/>.</para>
    /// <para>With <see cref="PpoOptions.NormalizeObservations"/>, the statistics belong to the policy
    /// (<see cref="ActorCritic.Normalizer"/>): updated from the raw observations of each rollout, then the values and the
    /// update use the new snapshot, and every push carries the snapshot the weights were trained with.</para>
    /// </remarks>
    private static PpoResult Learn(IRolloutSource source, IVectorEnv envs, ActorCritic policy, PolicyPublisher? publisher, StrongBox<ulong> version,
        PpoOptions o, Action<PpoMetrics>? onIteration, CancellationToken cancellationToken, Checkpoints.TrainingCheckpoint? resume = null)
    {
        // ---- setup: optimizer, engines, storage ----
        int n = envs.NumEnvs, T = o.NumSteps, m = policy.Spec.ObservationSize;
        var adam = new Adam(policy.Store.Count, o.LearningRate, eps: o.AdamEps);
        var dp = o.Collective ?? SingleCollective.Instance;
        var rng = new Rng(DataParallel.RankSeed(o.Seed, dp) + 1); // minibatch shuffling (acting has the source's own stream)
        DataParallel.Start(dp, policy.Store.Values, T * n, o.GradientBucketSize);
        using var device = o.Device is { } deviceName ? Gpu.GpuDevice.Open(deviceName == "cpu-kernels" ? "cpu" : deviceName) : null;
        using var gpuModel = device is null ? null : new Gpu.GpuActorCritic(device, policy);
        using var gpuPpo = gpuModel is null ? null : new Gpu.GpuPpo(gpuModel);
        double threshold = o.RewardThreshold ?? envs.Spec?.RewardThreshold ?? double.PositiveInfinity;

        var values = new float[T * n];
        var nextValues = new float[T * n];
        var rewards = new float[T * n];
        var terminated = new bool[T * n];
        var done = new bool[T * n];
        var valid = new bool[T * n];
        var advantages = new float[T * n];
        var returns = new float[T * n];
        var lastValues = new float[n];
        var pendingReset = new bool[n];                 // NextStep: the sub-env's next step is its autoreset step
        var obsRms = o.NormalizeObservations ? new RunningMeanStd(m) : null;
        var normalized = new float[T * n * m];          // what the update's networks see
        float[] rawObs = [], finalObs = new float[m];   // image batches widened to floats (float32 ones are read in place)
        var returnRms = o.NormalizeRewards ? new RunningMeanStd(1) : null;
        var discountedReturn = new double[n];
        var episodeLog = new EpisodeLog(threshold);
        var history = new List<PpoMetrics>();
        var taken = new List<RolloutBatch>(1);
        long globalStep = 0;
        int firstIteration = 1;
        if (resume is not null)
        {
            // Optimizer, random state and counters continue; the statistics continue with the counts they came from.
            resume.RestoreInto(policy, adam, rng);
            (firstIteration, globalStep) = ((int)resume.Update + 1, resume.GlobalStep / dp.WorldSize);
            if (obsRms is not null && policy.Normalizer is { } saved && Count(resume, "observation_count") is double oc and > 0)
                obsRms.Restore(saved.Mean.Select(x => (double)x).ToArray(), saved.Var.Select(x => (double)x).ToArray(), oc);
            if (returnRms is not null && Count(resume, "return_count") is double rc and > 0)
                returnRms.Restore([Count(resume, "return_mean") ?? 0], [Count(resume, "return_var") ?? 1], rc);
        }
        long startStep = globalStep;
        double busySeconds = 0; // the learner computing (advantages and the update), not waiting for rollouts or pushing
        var clock = Stopwatch.StartNew();

        int iterations = (int)(o.TotalTimesteps / ((long)o.BatchSize(n) * dp.WorldSize));
        for (int iteration = firstIteration; iteration <= iterations; iteration++)
        {
            if (DataParallel.AnyStopped(dp, cancellationToken.IsCancellationRequested)) break;
            if (o.AnnealLearningRate) adam.LearningRate = (1.0 - (iteration - 1.0) / iterations) * o.LearningRate;

            // ---- rollout: T steps of every env, acted by the learner or by the workers ----
            taken.Clear();
            source.Take(1, taken, cancellationToken);
            var batch = taken[0];
            long learnStart = Stopwatch.GetTimestamp();
            globalStep += (long)T * n;
            double lag = 0;
            for (int i = 0; i < n; i++) lag += version.Value - Math.Min(version.Value, batch.PolicyVersion[i]);
            lag /= n;
            if (batch.ObservationType != DType.Float32 && rawObs.Length < (T + 1) * n * m) rawObs = new float[(T + 1) * n * m];
            var rows = batch.ObservationRows(0, (T + 1) * n, rawObs); // images widen to floats here, at the policy's input
            var obs = rows[..(T * n * m)];
            if (obsRms is not null)
            {
                // The statistics move with the raw observations; the values and the update below use the new snapshot.
                for (int j = 0; j < T * n; j++) obsRms.Update(obs.Slice(j * m, m));
                policy.Normalizer = ObservationNormalizer.From(obsRms, o.ObservationClip);
                policy.Normalizer.Normalize(obs, normalized);
            }
            else obs.CopyTo(normalized);
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
                episodeLog.Add(ep, (globalStep - (long)(T - 1 - step) * n) * dp.WorldSize, clock.Elapsed.TotalSeconds);

            // ---- advantages with the learner's current critic; a truncated episode bootstraps from its final observation ----
            policy.Value(obs, T * n, values);
            policy.Value(rows[(T * n * m)..], n, lastValues);
            for (int t = 0; t < T; t++)
                for (int i = 0; i < n; i++)
                {
                    int idx = t * n + i;
                    nextValues[idx] = batch.HasFinalObservation[idx] && !o.TruncationAsTermination
                        ? policy.Value(batch.FinalObservationRows(idx, 1, finalObs))
                        : t + 1 < T ? values[idx + n] : lastValues[i];
                }
            Gae.Compute(rewards, values, nextValues, terminated, done, T, n, o.Gamma, o.GaeLambda, advantages, returns);

            // ---- update: epochs of shuffled minibatches over the valid transitions; the behaviour log-probs are the old ones ----
            var indices = Enumerable.Range(0, T * n).Where(j => valid[j]).ToArray();
            PpoMetrics stats;
            if (gpuPpo is null) stats = Update(policy, adam, o, indices, rng, normalized, m, batch.DiscreteActions, batch.ContinuousActions, batch.LogProbs, values, advantages, returns);
            else
            {
                stats = gpuPpo.Update(o, adam.LearningRate, indices, rng, normalized, batch.DiscreteActions, batch.ContinuousActions, batch.LogProbs, values, advantages, returns);
                gpuModel!.Download(policy.Store.Values); // the acting policy gets the new weights
            }
            if (dp.WorldSize > 1) Collectives.CheckInSync(dp, policy.Store.Values, iteration);
            busySeconds += Stopwatch.GetElapsedTime(learnStart).TotalSeconds;

            // ---- APS: the publisher pushes the new version where the strategy says so ----
            publisher?.Observe(batch);
            source.Return(batch);
            var round = publisher?.Publish(policy) ?? new PublishRound(version.Value + 1, 0, double.NaN, 0, 0);
            version.Value = round.Version;

            double seconds = clock.Elapsed.TotalSeconds;
            var metrics = stats with
            {
                Iteration = iteration,
                GlobalStep = globalStep * dp.WorldSize,
                Seconds = seconds,
                Sps = (globalStep - startStep) * dp.WorldSize / seconds, // this run's steps (a resumed run's earlier ones excluded)
                LearningRate = adam.LearningRate,
                ExplainedVariance = ExplainedVariance(values, returns, valid),
                PolicyVersion = round.Version,
                Pushes = round.Pushes,
                TotalPushes = publisher?.TotalPushes ?? 0,
                BytesPushed = publisher?.BytesPushed ?? 0,
                MeanKl = round.MeanKl,
                MeanPolicyLag = lag,
                BusyFraction = busySeconds / seconds,
            };
            metrics = episodeLog.EndIteration(metrics);
            history.Add(metrics);
            onIteration?.Invoke(metrics);
            if (dp.Rank == 0 && o.CheckpointDirectory is { } dir && o.CheckpointEvery > 0 && iteration % o.CheckpointEvery == 0)
                SaveCheckpoint(dir, iteration, globalStep * dp.WorldSize);
        }
        bool savedLast = history.Count > 0 && o.CheckpointEvery > 0 && history[^1].Iteration % o.CheckpointEvery == 0;
        if (dp.Rank == 0 && o.CheckpointDirectory is { } last && history.Count > 0 && !savedLast) // and one at the end, finished or stopped
            SaveCheckpoint(last, history[^1].Iteration, history[^1].GlobalStep);
        void SaveCheckpoint(string dir, int iteration, long steps) =>
            Checkpoints.TrainingCheckpoint.Save(dir, iteration, steps, policy, adam, rng, new Dictionary<string, string>
            {
                ["algorithm"] = "ppo",
                ["observation_count"] = (obsRms?.Count ?? 0).ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                ["return_mean"] = (returnRms?.Mean[0] ?? 0).ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                ["return_var"] = (returnRms?.Var[0] ?? 1).ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                ["return_count"] = (returnRms?.Count ?? 0).ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            }, o.KeepCheckpoints);
        return new PpoResult(policy, history, episodeLog.StepsToThreshold, episodeLog.SecondsToThreshold, episodeLog.MeanReturn20, obsRms)
        {
            FinalMeanReturn100 = episodeLog.MeanReturn100,
            Stopped = history.Count < iterations - firstIteration + 1,
        };
    }

    // A saved statistic (a number written by SaveCheckpoint), or null when the checkpoint has none.
    private static double? Count(Checkpoints.TrainingCheckpoint c, string key) =>
        c.Counters.TryGetValue(key, out var v) && double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double d) && double.IsFinite(d) ? d : null;

    // One PPO update over the rollout. Returns the loss statistics (other fields are filled by the caller).
    internal static PpoMetrics Update(ActorCritic policy, Adam adam, PpoOptions o, int[] indices, Rng rng, float[] obs, int obsSize,
        int[] discreteActions, float[] continuousActions, float[] oldLogProbs, float[] oldValues, float[] advantages, float[] returns)
    {
        var dp = o.Collective ?? SingleCollective.Instance;
        var spec = policy.Spec;
        int k = spec.ActionSize, count = indices.Length;
        int maxMb = (count + o.NumMinibatches - 1) / o.NumMinibatches;
        var mbObs = new float[maxMb * obsSize];
        var mbAdv = new float[maxMb];
        var dHead = new float[maxMb * k];
        var dValue = new float[maxMb];
        double pgLoss = 0, vLoss = 0, entropy = 0, oldKl = 0, kl = 0, clipped = 0, clipCount = 0;
        GradientBuckets? buckets = null;
        for (int epoch = 0; epoch < o.UpdateEpochs; epoch++)
        {
            Shuffle(indices, rng);
            // Over several ranks: every minibatch's union moments in one all-reduce per epoch.
            var moments = o.NormalizeAdvantages && dp.WorldSize > 1 ? DataParallel.UnionMoments(dp, advantages, indices, o.NumMinibatches) : null;
            for (int m = 0; m < o.NumMinibatches; m++)
            {
                int start = (int)((long)m * count / o.NumMinibatches), end = (int)((long)(m + 1) * count / o.NumMinibatches), B = end - start;
                if (B == 0 && dp.WorldSize == 1) continue; // a rank of a world still takes part in the all-reduce
                for (int b = 0; b < B; b++)
                {
                    int j = indices[start + b];
                    obs.AsSpan(j * obsSize, obsSize).CopyTo(mbObs.AsSpan(b * obsSize, obsSize));
                    mbAdv[b] = advantages[j];
                }
                if (o.NormalizeAdvantages)
                {
                    if (dp.WorldSize == 1) NormalizeUnbiased(mbAdv.AsSpan(0, B));
                    else DataParallel.Normalize(mbAdv.AsSpan(0, B), moments![m]); // over the union of the ranks' minibatches
                }

                policy.Forward(mbObs.AsSpan(0, B * obsSize), B, out var head, out var newValues);
                policy.Store.ZeroGrad();
                Array.Clear(dHead);
                pgLoss = vLoss = entropy = oldKl = kl = 0;
                for (int b = 0; b < B; b++)
                {
                    int j = indices[start + b];
                    var row = head.Slice(b * k, k);
                    float newLogProb = spec.Continuous ? DiagGaussian.LogProb(row, policy.LogStd, continuousActions.AsSpan(j * k, k)) : Categorical.LogProb(row, discreteActions[j]);
                    double ent = spec.Continuous ? DiagGaussian.Entropy(policy.LogStd) : Categorical.Entropy(row);
                    double logRatio = newLogProb - oldLogProbs[j], ratio = Math.Exp(logRatio);
                    oldKl += -logRatio;
                    kl += (ratio - 1) - logRatio;
                    bool isClipped = Math.Abs(ratio - 1) > o.ClipCoef;
                    if (isClipped) clipped++;

                    // Clipped surrogate: max(−A·r, −A·clip(r)); its gradient flows through r only where the unclipped term is the max.
                    double adv = mbAdv[b], clippedRatio = Math.Clamp(ratio, 1 - o.ClipCoef, 1 + o.ClipCoef);
                    double l1 = -adv * ratio, l2 = -adv * clippedRatio;
                    pgLoss += Math.Max(l1, l2);
                    double dLogProb = (l1 >= l2 ? -adv * ratio : (isClipped ? 0 : -adv * ratio)) / B;
                    double dEntropy = -o.EntCoef / B;
                    entropy += ent;
                    if (spec.Continuous)
                        DiagGaussian.Backward(row, policy.LogStd, continuousActions.AsSpan(j * k, k), (float)dLogProb, (float)dEntropy, dHead.AsSpan(b * k, k), policy.LogStdGrad);
                    else
                        Categorical.Backward(row, discreteActions[j], (float)dLogProb, (float)dEntropy, dHead.AsSpan(b * k, k));

                    // Value loss: 0.5·max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²), or 0.5·(V − R)².
                    double v = newValues[b], ret = returns[j], vOld = oldValues[j];
                    double e1 = v - ret;
                    if (o.ClipValueLoss)
                    {
                        double vClipped = vOld + Math.Clamp(v - vOld, -o.ClipCoef, o.ClipCoef), e2 = vClipped - ret;
                        bool first = e1 * e1 >= e2 * e2;
                        vLoss += 0.5 * Math.Max(e1 * e1, e2 * e2);
                        bool inside = Math.Abs(v - vOld) < o.ClipCoef;
                        dValue[b] = (float)(o.VfCoef * (first ? e1 : (inside ? e2 : 0)) / B);
                    }
                    else
                    {
                        vLoss += 0.5 * e1 * e1;
                        dValue[b] = (float)(o.VfCoef * e1 / B);
                    }
                }
                DataParallel.BackwardAndAverage(dp, policy, dHead.AsSpan(0, B * k), dValue.AsSpan(0, B), o.GradientBucketSize, ref buckets);
                Adam.ClipGradNorm(policy.Store.Grads, o.MaxGradNorm);
                adam.Step(policy.Store.Values, policy.Store.Grads);
                int per = Math.Max(B, 1);
                pgLoss /= per; vLoss /= per; entropy /= per; oldKl /= per; kl /= per;
                clipCount += B;
            }
            if (o.TargetKl is double target && DataParallel.Mean(dp, kl) > target) break; // every rank stops at the same epoch
        }
        return new PpoMetrics
        {
            PolicyLoss = pgLoss, ValueLoss = vLoss, Entropy = entropy, OldApproxKl = oldKl, ApproxKl = kl,
            ClipFraction = clipCount > 0 ? clipped / clipCount : 0,
        };
    }

    // ---- helpers ----

    private static (float[] Low, float[] High) Bounds(Box box) => (box.Low.ToArray(), box.High.ToArray());

    private static void Observe(ReadOnlySpan<float> raw, Span<float> dest, RunningMeanStd? rms, double clip)
    {
        if (rms is null)
        {
            raw.CopyTo(dest);
            return;
        }
        int size = rms.Mean.Length;
        for (int i = 0; i < raw.Length / size; i++) rms.Update(raw.Slice(i * size, size));
        NormalizeInto(raw, dest, rms, clip);
    }

    private static void NormalizeInto(ReadOnlySpan<float> raw, Span<float> dest, RunningMeanStd? rms, double clip)
    {
        if (rms is null)
        {
            raw.CopyTo(dest);
            return;
        }
        int size = rms.Mean.Length;
        for (int j = 0; j < raw.Length; j++)
        {
            int c = j % size;
            dest[j] = (float)Math.Clamp((raw[j] - rms.Mean[c]) / Math.Sqrt(rms.Var[c] + 1e-8), -clip, clip);
        }
    }

    // Gymnasium's NormalizeReward: scale by the std of a running discounted return (reset at episode ends), then clip.
    private static double ScaleReward(double reward, int env, bool valid, bool done, double[] discounted, RunningMeanStd? rms, PpoOptions o)
    {
        if (rms is null || !valid) return reward;
        discounted[env] = discounted[env] * o.Gamma + reward;
        rms.Update(discounted[env]);
        if (done) discounted[env] = 0;
        return Math.Clamp(reward / Math.Sqrt(rms.Var[0] + 1e-8), -o.RewardClip, o.RewardClip);
    }

    internal static void NormalizeUnbiased(Span<float> x)
    {
        if (x.Length < 2) return;
        double mean = 0;
        foreach (float v in x) mean += v;
        mean /= x.Length;
        double var = 0;
        foreach (float v in x) var += (v - mean) * (v - mean);
        double std = Math.Sqrt(var / (x.Length - 1));
        for (int i = 0; i < x.Length; i++) x[i] = (float)((x[i] - mean) / (std + 1e-8));
    }

    internal static void Shuffle(int[] a, Rng rng)
    {
        for (int i = a.Length - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (a[i], a[j]) = (a[j], a[i]);
        }
    }

    private static double ExplainedVariance(float[] values, float[] returns, bool[] valid)
    {
        double mr = 0, cnt = 0;
        for (int i = 0; i < values.Length; i++) if (valid[i]) { mr += returns[i]; cnt++; }
        if (cnt < 2) return double.NaN;
        mr /= cnt;
        double varY = 0, varD = 0, md = 0;
        for (int i = 0; i < values.Length; i++) if (valid[i]) md += returns[i] - values[i];
        md /= cnt;
        for (int i = 0; i < values.Length; i++)
        {
            if (!valid[i]) continue;
            varY += (returns[i] - mr) * (returns[i] - mr);
            double d = returns[i] - values[i] - md;
            varD += d * d;
        }
        return varY == 0 ? double.NaN : 1 - varD / varY;
    }
}
