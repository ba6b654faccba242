// Over 400 lines on purpose: IMPALA and IMPACT read top to bottom in one file (take rollouts → V-trace → one update →
// publish → metrics), as CleanRL keeps an algorithm in one script; the pure math is in Estimators/.
using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Learners.Checkpoints;
using ClusterEnv.Learners.Distributed;
using ClusterEnv.Learners.Estimators;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Nn;
using ClusterEnv.Policies;
using ClusterEnv.Rollouts;
using ClusterEnv.Sync;
using ClusterEnv.Vector;

namespace ClusterEnv.Learners.Impala;

/// <summary>What an IMPALA or IMPACT run learned and measured.</summary>
public sealed record ImpalaResult(ActorCritic Policy, IReadOnlyList<ImpalaMetrics> History, long? StepsToThreshold, double? SecondsToThreshold, double FinalMeanReturn20)
{
    /// <summary>Mean return of the last 100 episodes of the run (fewer when it had fewer; NaN when none ended).</summary>
    public double FinalMeanReturn100 { get; init; } = double.NaN;

    /// <summary>Training was cancelled before its step budget.</summary>
    public bool Stopped { get; init; }
}

/// <summary>
/// IMPALA (Espeholt et al. 2018): actors act with whatever policy they hold and ship rollouts; the learner takes them
/// as they come and corrects for the lag with V-trace. With <see cref="ImpalaOptions.Impact"/>, IMPACT (Luo et al.
/// 2020): a target network, a circular replay buffer, and a clipped surrogate on the ratio against the target. Reads
/// top to bottom: take rollouts → forward pass → V-trace targets → losses → one optimizer step → publish.
/// </summary>
public static class Impala
{
    /// <summary>
    /// Trains on streaming workers: every worker acts with its local policy and ships rollouts of
    /// <see cref="ImpalaOptions.UnrollLength"/> steps into <paramref name="queue"/> (in memory when null); the
    /// <see cref="PolicyPublisher"/> decides per worker, with <paramref name="strategy"/>, when new weights are worth sending.
    /// <paramref name="resume"/> is a checkpoint loaded (and checked) before the workers started; when null,
    /// <see cref="ImpalaOptions.ResumeFrom"/> is loaded here.
    /// </summary>
    public static ImpalaResult Train(ClusterVecEnv envs, ImpalaOptions options, SyncStrategy strategy, Action<ImpalaMetrics>? onUpdate = null,
        ITrajectoryQueue? queue = null, CancellationToken cancellationToken = default, TrainingCheckpoint? resume = null)
    {
        ArgumentNullException.ThrowIfNull(envs);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (envs.AutoresetMode == AutoresetMode.Disabled)
            throw new ArgumentException("IMPALA needs an autoresetting vector env; create it with AutoresetMode.NextStep (the default) or SameStep.", nameof(envs));
        var spec = PolicySpec.Of(envs.SingleObservationSpace, envs.SingleActionSpace, options.Hidden, options.Encoder);
        var policy = new ActorCritic(spec, options.Seed);
        resume = Resume(options, policy, resume);
        int lagLimit = options.PolicyLagLimit(strategy);
        var publisher = new PolicyPublisher(envs, spec, strategy, learnerLagLimit: lagLimit > 0 ? Math.Max(1, lagLimit - 1) : 0);
        long envSeed = DataParallel.RankSeed(options.Seed, options.Collective ?? SingleCollective.Instance); // ranks act on different episodes
        envs.Reset(seed: (int)envSeed);
        publisher.Publish(policy); // version 1 to every worker
        envs.Policies.WaitForAcks();
        using var source = new StreamingRolloutSource(envs, options.UnrollLength, options.Credit, queue, (ulong)envSeed, options.MaxCredit);
        var threshold = options.RewardThreshold ?? envs.Spec?.RewardThreshold ?? double.PositiveInfinity;
        var result = Run(source, policy, publisher, options, threshold, onUpdate, cancellationToken, resume);
        try
        {
            source.Stop();
        }
        catch (Exception e) when (e is WorkerLostException or WorkerTimeoutException or WorkerException)
        {
            // A worker lost while the stream ends (a replacement caught by the signal that stopped the run) takes
            // nothing from the result: every rollout learned from is in the policy; the loss is in envs.Elastic.
        }
        return result;
    }

    /// <summary>Trains on a local vector env: the learner acts with its current policy (lag 0), through the same acting loop the workers run.</summary>
    public static ImpalaResult Train(IVectorEnv envs, ImpalaOptions options, Action<ImpalaMetrics>? onUpdate = null, CancellationToken cancellationToken = default,
        TrainingCheckpoint? resume = null) =>
        TrainActing(envs, options, (current, seed) => new LocalRolloutSource(envs, options.UnrollLength, current, seed), onUpdate, cancellationToken, resume);

    /// <summary>
    /// Central inference on workers with first-ready stepping: the learner acts with its current policy on whichever
    /// workers answered first (<see cref="FirstReadyRolloutSource"/>), so a slow worker holds up only its own sub-envs;
    /// each worker's sub-envs make up its own rollouts. <paramref name="recvBatch"/> sub-envs are acted on per round
    /// (0: half of them). The workers host envs only; no policy is pushed to them.
    /// </summary>
    public static ImpalaResult TrainFirstReady(ClusterVecEnv envs, ImpalaOptions options, int recvBatch = 0, Action<ImpalaMetrics>? onUpdate = null,
        CancellationToken cancellationToken = default, TrainingCheckpoint? resume = null) =>
        TrainActing(envs, options, (current, seed) => new FirstReadyRolloutSource(envs, options.UnrollLength, current, seed, recvBatch), onUpdate, cancellationToken, resume);

    // The learner acts itself (lag 0 at each step) through the source made by `source` from the current policy and the env seed.
    private static ImpalaResult TrainActing(IVectorEnv envs, ImpalaOptions options, Func<Func<(ActorCritic, ulong)>, int, IRolloutSource> source,
        Action<ImpalaMetrics>? onUpdate, CancellationToken cancellationToken, TrainingCheckpoint? resume)
    {
        ArgumentNullException.ThrowIfNull(envs);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var spec = PolicySpec.Of(envs.SingleObservationSpace, envs.SingleActionSpace, options.Hidden, options.Encoder);
        var policy = new ActorCritic(spec, options.Seed);
        resume = Resume(options, policy, resume);
        ulong version = 1;
        using var rollouts = source(() => (policy, version), (int)DataParallel.RankSeed(options.Seed, options.Collective ?? SingleCollective.Instance));
        var threshold = options.RewardThreshold ?? envs.Spec?.RewardThreshold ?? double.PositiveInfinity;
        return Run(rollouts, policy, null, options, threshold, m => { version = m.PolicyVersion; onUpdate?.Invoke(m); }, cancellationToken, resume);
    }

    // Loads ImpalaOptions.ResumeFrom (unless the caller loaded it) into the fresh policy before anyone acts with it.
    private static TrainingCheckpoint? Resume(ImpalaOptions o, ActorCritic policy, TrainingCheckpoint? loaded)
    {
        if (loaded is null && o.ResumeFrom is null) return null;
        var checkpoint = loaded ?? TrainingCheckpoint.Load(o.ResumeFrom!);
        if ((checkpoint.Policy.ValueScale is not null) != o.NormalizeReturns)
            throw new ArgumentException($"The checkpoint in '{checkpoint.Folder}' was trained {(o.NormalizeReturns ? "without" : "with")} NormalizeReturns (its critic predicts " +
                $"{(o.NormalizeReturns ? "returns as they are" : "scaled returns")}); resume it with NormalizeReturns = {!o.NormalizeReturns}.");
        if ((checkpoint.Policy.Normalizer is not null) != o.NormalizeObservations)
            throw new ArgumentException($"The checkpoint in '{checkpoint.Folder}' was trained {(o.NormalizeObservations ? "without" : "with")} NormalizeObservations; " +
                $"resume it with NormalizeObservations = {!o.NormalizeObservations}.");
        if (!checkpoint.Policy.Spec.Equals(policy.Spec))
            throw new ArgumentException($"The checkpoint in '{o.ResumeFrom}' holds a policy of spec {checkpoint.Policy.Spec.ToJson()}; this run builds {policy.Spec.ToJson()}. Resume with the same env and hidden sizes.");
        policy.LoadParameters(checkpoint.Policy.Parameters);
        policy.Normalizer = checkpoint.Policy.Normalizer;
        return checkpoint;
    }

    /// <summary>The learner loop over any rollout source. <paramref name="publisher"/> is null when the learner acts itself.</summary>
    public static ImpalaResult Run(IRolloutSource source, ActorCritic policy, PolicyPublisher? publisher, ImpalaOptions o, double threshold,
        Action<ImpalaMetrics>? onUpdate = null, CancellationToken cancellationToken = default, TrainingCheckpoint? resume = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(policy);
        o.Validate();
        int maxLag = o.PolicyLagLimit(publisher?.Strategy);
        var spec = policy.Spec;
        var adam = new Adam(policy.Store.Count, o.LearningRate, eps: o.AdamEps);
        var target = o.Impact ? new ActorCritic(spec) : null;
        target?.LoadParameters(policy.Parameters);
        var learner = new Learner(spec, o);
        var replay = new List<(RolloutBatch[] Batch, int Uses)>();
        var rng = new Common.Rng(o.Seed + 7919);
        var episodes = new EpisodeLog(threshold);
        var history = new List<ImpalaMetrics>();
        long updatesDone = 0; // this run's updates (History may keep only the newest of them)
        var taken = new List<RolloutBatch>();
        var lags = new LagHistogram();
        ulong version = publisher?.Version ?? 1;
        long consumed = 0, dropped = 0, updates = 0, firstUpdate = 0;
        if (resume is not null)
        {
            resume.RestoreInto(policy, adam, rng);
            target?.LoadParameters(policy.Parameters);
            (consumed, firstUpdate) = (resume.GlobalStep, resume.Update);
            if (resume.Counters.TryGetValue("optimizer_updates", out var u)) updates = long.Parse(u, System.Globalization.CultureInfo.InvariantCulture);
            if (resume.Counters.TryGetValue("dropped_stale", out var d)) dropped = long.Parse(d, System.Globalization.CultureInfo.InvariantCulture);
            if (o.NormalizeReturns && policy.ValueScale is var (vm, vs) && resume.Counters.TryGetValue("return_count", out var rc)
                && double.TryParse(rc, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var returnCount) && returnCount > 0)
                learner.Returns.Restore([vm], [Math.Max(0, vs * vs - 1e-8)], returnCount);
            if (o.NormalizeObservations && policy.Normalizer is { } saved && resume.Counters.TryGetValue("observation_count", out var oc)
                && double.TryParse(oc, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var obsCount) && obsCount > 0)
                learner.Observations.Restore(saved.Mean.Select(x => (double)x).ToArray(), saved.Var.Select(x => (double)x).ToArray(), obsCount);
        }
        // The first rollouts are acted with the starting statistics (mean 0, variance 1), as PPO's.
        if (o.NormalizeObservations && policy.Normalizer is null) policy.Normalizer = ObservationNormalizer.From(learner.Observations, o.ObservationClip);
        var dp = o.Collective ?? SingleCollective.Instance;
        if (dp.WorldSize > 1 && resume is not null) consumed /= dp.WorldSize; // a checkpoint counts every rank's steps
        DataParallel.Start(dp, policy.Store.Values, o.BatchSize, o.GradientBucketSize);
        long globalConsumed = consumed * dp.WorldSize;
        if (target is not null) target.LoadParameters(policy.Parameters);
        long startConsumed = globalConsumed;
        double lrScale = 1;
        double busy = 0;
        var clock = Stopwatch.StartNew();
        while (globalConsumed < o.TotalTimesteps && !DataParallel.AnyStopped(dp, cancellationToken.IsCancellationRequested))
        {
            // ---- take a batch of rollouts; drop the ones acted by a policy too old to learn from ----
            taken.Clear();
            while (taken.Count < o.BatchSize && !cancellationToken.IsCancellationRequested)
            {
                int before = taken.Count;
                try
                {
                    source.Take(o.BatchSize - taken.Count, taken, cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    break; // stopped while waiting for rollouts: return what was learned
                }
                for (int j = taken.Count - 1; j >= before; j--)
                {
                    ulong lag = version - Math.Min(version, taken[j].PolicyVersion[0]);
                    if (maxLag > 0 && lag > (ulong)maxLag)
                    {
                        dropped++;
                        source.Return(taken[j]);
                        taken.RemoveAt(j);
                    }
                }
            }
            long batchSteps = 0;
            foreach (var b in taken) batchSteps += (long)b.Steps * b.NumEnvs;
            // Every rank agrees to go on (none stopped while waiting) and on the steps taken by all of them.
            var (anyShort, total) = DataParallel.Agree(dp, taken.Count < o.BatchSize, consumed + batchSteps);
            if (anyShort)
            {
                foreach (var b in taken) source.Return(b);
                break;
            }
            var batch = taken.ToArray();
            long stepsBefore = globalConsumed;
            foreach (var b in batch)
            {
                foreach (var (step, _, ep) in b.Episodes)
                    episodes.Add(ep, stepsBefore + (long)(step + 1) * b.NumEnvs * dp.WorldSize, clock.Elapsed.TotalSeconds);
                stepsBefore += (long)b.Steps * b.NumEnvs * dp.WorldSize;
                consumed += (long)b.Steps * b.NumEnvs;
                for (int i = 0; i < b.NumEnvs; i++) lags.Add(version - Math.Min(version, b.PolicyVersion[i]));
                publisher?.Observe(b);
            }

            // ---- learner steps: one on the new batch (IMPACT: and more drawn from the replay buffer) ----
            long start = Stopwatch.GetTimestamp();
            globalConsumed = total;
            double baseLr = o.AnnealLearningRate ? o.LearningRate * Math.Max(0, 1.0 - (double)globalConsumed / o.TotalTimesteps) : o.LearningRate;
            adam.LearningRate = baseLr * lrScale;
            var stats = learner.Step(policy, target, adam, batch, fresh: true);
            if (o.TargetUpdateKl > 0)
            {
                // KL-adaptive step size (Sample Factory's kl_adaptive schedule): an update that moved the policy more than
                // twice the target shrinks the next ones, one that moved it less than half the target lets them grow back.
                if (stats.UpdateKl > 2 * o.TargetUpdateKl) lrScale = Math.Max(lrScale / 1.5, 0.01);
                else if (stats.UpdateKl < o.TargetUpdateKl / 2) lrScale = Math.Min(lrScale * 1.5, 1.0);
            }
            updates++;
            if (o.Impact)
            {
                if (updates % o.TargetUpdateFrequency == 0) target!.LoadParameters(policy.Parameters);
                replay.Add((batch, 1));
                for (int r = 1; r < o.ReplayTimes; r++)
                {
                    int pick = (int)(rng.NextUInt64() % (ulong)replay.Count);
                    learner.Step(policy, target, adam, replay[pick].Batch, fresh: false);
                    replay[pick] = (replay[pick].Batch, replay[pick].Uses + 1);
                    updates++;
                    if (updates % o.TargetUpdateFrequency == 0) target!.LoadParameters(policy.Parameters);
                }
                while (replay.Count > o.ReplayBufferSize)
                {
                    foreach (var b in replay[0].Batch) source.Return(b);
                    replay.RemoveAt(0);
                }
            }
            else foreach (var b in batch) source.Return(b);
            busy += Stopwatch.GetElapsedTime(start).TotalSeconds;

            // ---- publish: the next version, pushed where the strategy says so ----
            // A worker about to act only with versions this learner drops as too stale gets the weights whatever the strategy.
            var round = publisher?.Publish(policy) ?? new PublishRound(version + 1, 0, double.NaN, 0, 0);
            version = round.Version;

            double seconds = clock.Elapsed.TotalSeconds;
            var metrics = episodes.EndIteration(new ImpalaMetrics
            {
                Update = (int)(firstUpdate + ++updatesDone),
                GlobalStep = globalConsumed,
                Seconds = seconds,
                Sps = (globalConsumed - startConsumed) / seconds,
                UpdatesPerSecond = updates / seconds,
                BusyFraction = busy / seconds,
                LearningRate = adam.LearningRate,
                QueueDepth = source.QueueDepth,
                PolicyLoss = stats.PolicyLoss,
                ValueLoss = stats.ValueLoss,
                Entropy = stats.Entropy,
                RhoClippedFraction = stats.RhoClipped,
                GradNorm = stats.GradNorm,
                UpdateKl = stats.UpdateKl,
                MeanPolicyLag = lags.Mean,
                MaxPolicyLag = lags.Max,
                LagHistogram = lags.Fractions(),
                DroppedStale = dropped,
                PolicyVersion = version,
                Pushes = round.Pushes,
                TotalPushes = publisher?.TotalPushes ?? 0,
                BytesPushed = publisher?.BytesPushed ?? 0,
                MeanKl = round.MeanKl,
            });
            lags.Reset();
            if (dp.WorldSize > 1) Collectives.CheckInSync(dp, policy.Store.Values, metrics.Update);
            history.Add(metrics);
            if (o.HistoryLimit > 0 && history.Count >= 2 * o.HistoryLimit) history.RemoveRange(0, history.Count - o.HistoryLimit);
            onUpdate?.Invoke(metrics);
            if (dp.Rank == 0 && o.CheckpointDirectory is { } dir && o.CheckpointEvery > 0 && metrics.Update % o.CheckpointEvery == 0)
                SaveCheckpoint(dir, metrics.Update, globalConsumed, updates, dropped);
        }
        // The last state, finished or stopped (Ctrl-C, SIGTERM, pre-emption): a run can always continue from here.
        if (dp.Rank == 0 && o.CheckpointDirectory is { } last && history.Count > 0) SaveCheckpoint(last, history[^1].Update, globalConsumed, updates, dropped);
        if (o.HistoryLimit > 0 && history.Count > o.HistoryLimit) history.RemoveRange(0, history.Count - o.HistoryLimit);
        return new ImpalaResult(policy, history, episodes.StepsToThreshold, episodes.SecondsToThreshold, episodes.MeanReturn20)
        {
            FinalMeanReturn100 = episodes.MeanReturn100,
            Stopped = globalConsumed < o.TotalTimesteps,
        };

        void SaveCheckpoint(string dir, long update, long steps, long optimizerUpdates, long droppedStale) =>
            TrainingCheckpoint.Save(dir, update, steps, policy, adam, rng, new Dictionary<string, string>
            {
                ["optimizer_updates"] = optimizerUpdates.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["dropped_stale"] = droppedStale.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["algorithm"] = o.Impact ? "impact" : "impala",
                ["return_count"] = learner.Returns.Count.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                ["observation_count"] = learner.Observations.Count.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            }, o.KeepCheckpoints);
    }

    /// <summary>One optimizer step's loss terms (means over the batch's transitions).</summary>
    internal readonly record struct StepStats(double PolicyLoss, double ValueLoss, double Entropy, double RhoClipped, double GradNorm, double UpdateKl);

    /// <summary>The learner's step: buffers sized on first use and reused.</summary>
    private sealed class Learner(PolicySpec spec, ImpalaOptions o)
    {
        private float[] _obs = [], _boot = [], _final = [], _logits = [], _targetLogits = [];
        private float[] _mu = [], _pi = [], _rewards = [], _values = [], _next = [], _discounts = [], _vs = [], _pg = [], _rho = [];
        private float[] _dHead = [], _dValue = [], _bootValues = [], _finalValues = [];
        private GradientBuckets? _buckets;
        private bool[] _ends = [], _valid = [];
        private int[] _actions = [], _finalIndex = [];
        private float[] _continuous = [];
        private float[] _logStd = [];

        // Lays the batch's rollouts side by side as one (T, N) rollout, N the sum of their sub-envs.
        // fresh: a batch seen for the first time (IMPACT's replays are not), whose observations update the statistics.
        public StepStats Step(ActorCritic policy, ActorCritic? target, Adam adam, RolloutBatch[] batch, bool fresh = true)
        {
            int T = batch[0].Steps, m = spec.ObservationSize, k = spec.ActionSize, N = batch.Sum(b => b.NumEnvs), TN = T * N;
            Grow(TN, N, m, k);
            int finals = 0, col = 0;
            foreach (var b in batch)
            {
                int n = b.NumEnvs;
                for (int t = 0; t < T; t++)
                    for (int i = 0; i < n; i++)
                    {
                        int src = t * n + i, dst = t * N + col + i;
                        b.CopyObservations(src, 1, _obs.AsSpan(dst * m, m)); // images widen to floats here, at the policy's input
                        _mu[dst] = b.LogProbs[src];
                        double r = b.Rewards[src];
                        _rewards[dst] = (float)(o.ClipRewards ? Math.Clamp(r, -1, 1) : r);
                        bool term = b.Terminated[src], done = term || b.Truncated[src];
                        _discounts[dst] = term ? 0f : (float)o.Gamma;
                        _ends[dst] = done;
                        _valid[dst] = b.IsTransition(t, i);
                        if (spec.Continuous) b.ContinuousActions.AsSpan(src * k, k).CopyTo(_continuous.AsSpan(dst * k, k));
                        else _actions[dst] = b.DiscreteActions[src];
                        if (b.HasFinalObservation[src])
                        {
                            b.CopyFinalObservations(src, 1, _final.AsSpan(finals * m, m));
                            _finalIndex[dst] = finals++; // its value bootstraps the truncation (SameStep autoreset)
                        }
                        else _finalIndex[dst] = -1;
                    }
                b.CopyObservations(T * n, n, _boot.AsSpan(col * m, n * m));
                col += n;
            }

            var dp = o.Collective ?? SingleCollective.Instance;
            if (o.NormalizeObservations) NormalizeObservations(policy, TN, m, fresh, dp);

            // ---- forward passes: values of the bootstrap row and the final observations (no gradient) ----
            policy.Value(_boot.AsSpan(0, N * m), N, _bootValues);
            if (finals > 0)
            {
                if (_finalValues.Length < finals) _finalValues = new float[finals * 2];
                policy.Value(_final.AsSpan(0, finals * m), finals, _finalValues);
            }
            // ---- the target policy's log-probs (IMPACT), then the learner's forward passes that backward uses ----
            if (target is not null)
            {
                var th = target.ForwardActor(_obs.AsSpan(0, TN * m), TN);
                th[..(TN * k)].CopyTo(_targetLogits);
            }
            policy.Forward(_obs.AsSpan(0, TN * m), TN, out var head, out var values);
            values[..TN].CopyTo(_values);
            if (o.NormalizeReturns)
            {
                // The critic predicts scaled returns (policy.Value above unscaled the bootstrap and final values); V-trace
                // needs them unscaled, the critic's loss its own output. Before the first scale, both are the same.
                values[..TN].CopyTo(_rawValues);
                if (policy.ValueScale is var (scaleMean, scaleStd))
                    for (int j = 0; j < TN; j++) _values[j] = (float)(scaleMean + scaleStd * _rawValues[j]);
            }
            head[..(TN * k)].CopyTo(_logits);
            if (spec.Continuous) policy.LogStd.CopyTo(_logStd);
            for (int j = 0; j < TN; j++)
            {
                _pi[j] = LogProb(_logits.AsSpan(j * k, k), policy.LogStd, j);
                int t = j / N, i = j % N;
                _next[j] = _finalIndex[j] >= 0 ? _finalValues[_finalIndex[j]] : t + 1 < T ? _values[j + N] : _bootValues[i];
            }

            // ---- V-trace targets against the learner (IMPALA) or the target network (IMPACT) ----
            var vtracePi = _pi;
            if (target is not null)
            {
                vtracePi = _targetPi ??= new float[_pi.Length];
                if (vtracePi.Length < TN) vtracePi = _targetPi = new float[TN];
                for (int j = 0; j < TN; j++) vtracePi[j] = LogProb(_targetLogits.AsSpan(j * k, k), target.LogStd, j);
            }
            VTrace.Compute(_mu, vtracePi, _rewards, _values, _next, _discounts, _ends, T, N, o.RhoBar, o.CBar, o.Lambda, o.PgRhoBar, _vs, _pg, _rho);

            // ---- losses: policy gradient (or IMPACT's clipped surrogate), baseline, entropy; means over transitions ----
            policy.Store.ZeroGrad();
            Array.Clear(_dHead, 0, TN * k);
            int count = 0;
            for (int j = 0; j < TN; j++) if (_valid[j]) count++;
            if (count == 0 && dp.WorldSize == 1) return default; // a rank of a world still takes part in the all-reduce
            double retMean = 0, retStd = 1;
            if (o.NormalizeReturns)
            {
                // The running statistics of the V-trace targets, this batch's included, scale the critic's next target.
                Span<double> moments = [0, 0, count]; // sum, sum of squares, count: every rank's, so all ranks keep the same scale
                for (int j = 0; j < TN; j++) if (_valid[j]) { moments[0] += _vs[j]; moments[1] += (double)_vs[j] * _vs[j]; }
                if (dp.WorldSize > 1) dp.AllReduce(moments, ReduceOp.Sum);
                double n = Math.Max(moments[2], 1), bm = moments[0] / n;
                Returns.UpdateFromMoments(bm, Math.Max(0, moments[1] / n - bm * bm), moments[2]);
                retMean = Returns.Mean[0];
                retStd = Math.Sqrt(Returns.Var[0] + 1e-8);
                policy.ValueScale = (retMean, retStd);
            }
            if (o.NormalizeAdvantages && count > 1) NormalizeValid(_pg.AsSpan(0, TN), _valid.AsSpan(0, TN), count);
            double pgLoss = 0, vLoss = 0, entropy = 0, clipped = 0;
            for (int j = 0; j < TN; j++)
            {
                _dValue[j] = 0;
                if (!_valid[j]) continue;
                double adv = _pg[j], dLogProb;
                if (target is null)
                {
                    pgLoss += -adv * _pi[j];
                    dLogProb = -adv / count;
                }
                else
                {
                    // IMPACT: r = clip(π_target/μ, 0, ρ̄_t) · π_θ/π_target; loss max(−A·r, −A·clip(r, 1±ε)).
                    double isRatio = Math.Min(o.TargetRatioClip, Math.Exp((double)vtracePi[j] - _mu[j]));
                    double ratio = isRatio * Math.Exp((double)_pi[j] - vtracePi[j]);
                    double l1 = -adv * ratio, l2 = -adv * Math.Clamp(ratio, 1 - o.ClipCoef, 1 + o.ClipCoef);
                    pgLoss += Math.Max(l1, l2);
                    bool outside = Math.Abs(ratio - 1) > o.ClipCoef;
                    dLogProb = (l1 >= l2 || !outside ? -adv * ratio : 0) / count;
                }
                if (_rho[j] < Math.Exp((double)vtracePi[j] - _mu[j]) - 1e-7) clipped++;
                double e1 = o.NormalizeReturns ? _rawValues[j] - (_vs[j] - retMean) / retStd : _values[j] - _vs[j];
                vLoss += 0.5 * e1 * e1;
                _dValue[j] = (float)(o.BaselineCost * e1 / count);
                var row = _logits.AsSpan(j * k, k);
                if (spec.Continuous)
                {
                    entropy += DiagGaussian.Entropy(policy.LogStd);
                    DiagGaussian.Backward(row, policy.LogStd, _continuous.AsSpan(j * k, k), (float)dLogProb, (float)(-o.EntropyCost / count), _dHead.AsSpan(j * k, k), policy.LogStdGrad);
                }
                else
                {
                    entropy += Categorical.Entropy(row);
                    Categorical.Backward(row, _actions[j], (float)dLogProb, (float)(-o.EntropyCost / count), _dHead.AsSpan(j * k, k));
                }
            }
            DataParallel.BackwardAndAverage(dp, policy, _dHead.AsSpan(0, TN * k), _dValue.AsSpan(0, TN), o.GradientBucketSize, ref _buckets);
            double gradNorm = Adam.ClipGradNorm(policy.Store.Grads, o.MaxGradNorm);
            if (o.MaxUpdateKl > 0)
            {
                if (_before.Length != policy.Store.Values.Length) _before = new float[policy.Store.Values.Length];
                policy.Store.Values.CopyTo(_before, 0);
            }
            adam.Step(policy.Store.Values, policy.Store.Grads);
            double updateKl = UpdateKl(policy, TN, m, k);
            if (o.MaxUpdateKl > 0)
            {
                // Every rank decides on the same (mean) KL, so all take the same step.
                Span<double> klMean = [updateKl];
                if (dp.WorldSize > 1) dp.AllReduce(klMean, ReduceOp.Mean);
                if (klMean[0] > o.MaxUpdateKl)
                {
                    float shrink = (float)Math.Sqrt(o.MaxUpdateKl / klMean[0]);
                    foreach (var p in policy.Store.Parameters)
                    {
                        if (!p.Name.StartsWith("actor", StringComparison.Ordinal)) continue; // the critic keeps its whole step
                        var now = p.Values;
                        var was = _before.AsSpan(p.Offset, p.Length);
                        for (int i = 0; i < now.Length; i++) now[i] = was[i] + (now[i] - was[i]) * shrink;
                    }
                    updateKl = UpdateKl(policy, TN, m, k);
                }
            }
            count = Math.Max(count, 1);
            return new StepStats(pgLoss / count, vLoss / count, entropy / count, clipped / count, gradNorm, updateKl);
        }

        private float[] _before = [];

        private float[]? _targetPi;
        private float[] _rawValues = [];

        /// <summary>Running statistics of the V-trace targets (<see cref="ImpalaOptions.NormalizeReturns"/>); checkpoints carry them.</summary>
        public ClusterEnv.Wrappers.RunningMeanStd Returns { get; } = new(1);

        /// <summary>Running statistics of the raw observations (<see cref="ImpalaOptions.NormalizeObservations"/>); checkpoints carry them.</summary>
        public ClusterEnv.Wrappers.RunningMeanStd Observations { get; } = new(spec.ObservationSize);

        private double[] _obsMoments = [];

        // A fresh batch's observations (every rank's) move the statistics, and the policy gets the new snapshot; then the
        // batch's observations are normalised in place for the direct Actor/Critic passes (Value normalises its own input).
        private void NormalizeObservations(ActorCritic policy, int TN, int m, bool fresh, ICollective dp)
        {
            if (fresh || policy.Normalizer is null)
            {
                if (_obsMoments.Length != 2 * m + 1) _obsMoments = new double[2 * m + 1];
                Array.Clear(_obsMoments);
                for (int j = 0; j < TN; j++)
                {
                    if (!_valid[j]) continue;
                    var row = _obs.AsSpan(j * m, m);
                    for (int c = 0; c < m; c++) { _obsMoments[c] += row[c]; _obsMoments[m + c] += (double)row[c] * row[c]; }
                    _obsMoments[2 * m]++;
                }
                if (dp.WorldSize > 1) dp.AllReduce(_obsMoments, ReduceOp.Sum);
                double n = _obsMoments[2 * m];
                if (n > 0)
                {
                    var mean = _obsMoments.AsSpan(0, m);
                    var var = _obsMoments.AsSpan(m, m);
                    for (int c = 0; c < m; c++) { mean[c] /= n; var[c] = Math.Max(0, var[c] / n - mean[c] * mean[c]); }
                    Observations.UpdateFromMoments(mean, var, n);
                }
                policy.Normalizer = ObservationNormalizer.From(Observations, o.ObservationClip);
            }
            policy.Normalizer!.Normalize(_obs.AsSpan(0, TN * m), _obs);
        }

        // Mean KL(π before ‖ π after) of this step over the batch's transitions: how far one optimizer step moved the policy.
        private double UpdateKl(ActorCritic policy, int TN, int m, int k)
        {
            var after = policy.ForwardActor(_obs.AsSpan(0, TN * m), TN);
            double kl = 0;
            int count = 0;
            for (int j = 0; j < TN; j++)
            {
                if (!_valid[j]) continue;
                count++;
                kl += spec.Continuous
                    ? DiagGaussian.Kl(_logits.AsSpan(j * k, k), _logStd, after.Slice(j * k, k), policy.LogStd)
                    : Categorical.Kl(_logits.AsSpan(j * k, k), after.Slice(j * k, k));
            }
            return count > 0 ? kl / count : 0;
        }

        // Advantages scaled to mean 0 and standard deviation 1 over the batch's transitions (as PPO's minibatches).
        private static void NormalizeValid(Span<float> adv, ReadOnlySpan<bool> valid, int count)
        {
            double sum = 0, sumSq = 0;
            for (int j = 0; j < adv.Length; j++) if (valid[j]) { sum += adv[j]; sumSq += (double)adv[j] * adv[j]; }
            double mean = sum / count, std = Math.Sqrt(Math.Max(0, (sumSq - sum * mean) / (count - 1)));
            double scale = 1 / (std + 1e-8);
            for (int j = 0; j < adv.Length; j++) if (valid[j]) adv[j] = (float)((adv[j] - mean) * scale);
        }

        private float LogProb(ReadOnlySpan<float> row, ReadOnlySpan<float> logStd, int j) =>
            spec.Continuous ? DiagGaussian.LogProb(row, logStd, _continuous.AsSpan(j * spec.ActionSize, spec.ActionSize)) : Categorical.LogProb(row, _actions[j]);

        private void Grow(int TN, int N, int m, int k)
        {
            if (_mu.Length >= TN && _bootValues.Length >= N) return;
            _obs = new float[TN * m];
            _final = new float[TN * m];
            _boot = new float[N * m];
            _logits = new float[TN * k];
            _targetLogits = new float[TN * k];
            _dHead = new float[TN * k];
            _mu = new float[TN]; _pi = new float[TN]; _rewards = new float[TN]; _values = new float[TN]; _rawValues = new float[TN]; _next = new float[TN];
            _discounts = new float[TN]; _vs = new float[TN]; _pg = new float[TN]; _rho = new float[TN]; _dValue = new float[TN];
            _ends = new bool[TN]; _valid = new bool[TN];
            _actions = new int[TN];
            _finalIndex = new int[TN];
            _continuous = spec.Continuous ? new float[TN * k] : [];
            _logStd = new float[k];
            _bootValues = new float[N];
            _finalValues = new float[16];
        }
    }

    // Policy lag per sub-env sample, in buckets 0, 1, 2–3, 4–7, 8–15, 16+.
    private sealed class LagHistogram
    {
        private readonly long[] _buckets = new long[6];
        private long _count;
        private double _sum;
        public ulong Max { get; private set; }
        public double Mean => _count > 0 ? _sum / _count : 0;

        public void Add(ulong lag)
        {
            _buckets[lag == 0 ? 0 : Math.Min(5, 1 + (int)Math.Log2(lag))]++;
            _count++;
            _sum += lag;
            if (lag > Max) Max = lag;
        }

        public double[] Fractions() => _buckets.Select(b => _count > 0 ? (double)b / _count : 0).ToArray();

        public void Reset()
        {
            Array.Clear(_buckets);
            _count = 0;
            _sum = 0;
            Max = 0;
        }
    }
}
