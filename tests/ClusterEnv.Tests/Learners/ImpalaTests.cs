using ClusterEnv.Envs;
using ClusterEnv.Learners.Impala;
using ClusterEnv.Policies;
using ClusterEnv.Rollouts;
using ClusterEnv.Sync;
using ClusterEnv.Tests.Cluster;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Learners;

public class ImpalaTests
{
    [TestCase(false)]
    [TestCase(true)]
    public void LocalCartPole_LearnsFarAboveRandom(bool impact)
    {
        using var envs = Gym.MakeVec("CartPole-v1", 16, wrap: e => new RecordEpisodeStatistics(e));
        var o = new ImpalaOptions { Seed = 1, TotalTimesteps = 200_000 };
        var r = Impala.Train(envs, impact ? o.AsImpact() : o);
        // A random policy averages about 22; both learners pass 150 well within this budget.
        Assert.That(r.FinalMeanReturn20, Is.GreaterThan(150));
        Assert.That(r.History[^1].GlobalStep, Is.GreaterThanOrEqualTo(200_000));
        Assert.That(r.History.Select(h => h.MeanPolicyLag), Is.All.EqualTo(0.0), "the learner acts with its own current policy");
        Assert.That(r.History.Select(h => h.PolicyVersion), Is.Ordered.And.Unique);
    }

    [Test]
    public void NormalizedReturns_TheCriticLearnsScaledTargets_ThePolicyReportsThemUnscaled_AndCheckpointsCarryTheScale()
    {
        string dir = Directory.CreateTempSubdirectory("clusterenv-retnorm-").FullName;
        try
        {
            using var envs = Gym.MakeVec("CartPole-v1", 16, wrap: e => new RecordEpisodeStatistics(e));
            var o = new ImpalaOptions { Seed = 3, TotalTimesteps = 40_000, NormalizeReturns = true, CheckpointDirectory = dir, CheckpointEvery = 0 };
            var r = Impala.Train(envs, o);
            Assert.That(r.Policy.ValueScale, Is.Not.Null);
            var (mean, std) = r.Policy.ValueScale!.Value;
            // CartPole pays +1 per step: discounted returns are positive and spread out.
            Assert.That(mean, Is.GreaterThan(1).And.LessThan(100));
            Assert.That(std, Is.GreaterThan(0.1));
            var obs = new float[] { 0.01f, -0.02f, 0.03f, 0.01f };
            float scaled = r.Policy.Critic.Forward(obs, 1)[0];
            Assert.That(r.Policy.Value(obs), Is.EqualTo(mean + std * scaled).Within(1e-3 * Math.Max(1, Math.Abs(mean))), "Value unscales the critic's output");
            Assert.That(r.History.Select(h => h.GradNorm), Is.All.GreaterThan(0.0));
            Assert.That(r.History.Select(h => h.UpdateKl), Is.All.GreaterThanOrEqualTo(0.0).And.All.LessThan(1.0));

            var checkpoint = ClusterEnv.Learners.Checkpoints.TrainingCheckpoint.Load(dir);
            Assert.That(checkpoint.Policy.ValueScale, Is.EqualTo(r.Policy.ValueScale), "the checkpoint's policy predicts on the same scale");
            Assert.That(double.Parse(checkpoint.Counters["return_count"], System.Globalization.CultureInfo.InvariantCulture), Is.GreaterThan(10_000),
                "the statistics' weight travels too, so a resumed run does not restart them");
            Assert.That(() => Impala.Train(envs, o with { TotalTimesteps = 60_000, ResumeFrom = dir, NormalizeReturns = false }),
                Throws.ArgumentException.With.Message.Contains("NormalizeReturns = True"), "a critic of scaled returns is not resumed as one of raw returns");
            var resumed = Impala.Train(envs, o with { TotalTimesteps = 60_000, ResumeFrom = dir });
            Assert.That(resumed.History[^1].GlobalStep, Is.GreaterThanOrEqualTo(60_000));
            Assert.That(resumed.Policy.ValueScale!.Value.Mean, Is.EqualTo(mean).Within(0.5 * mean), "the scale moves on from where it was, not from (0, 1)");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void NormalizedObservations_ThePolicyCarriesTheStatistics_AndCheckpointsResumeThem()
    {
        string dir = Directory.CreateTempSubdirectory("clusterenv-obsnorm-").FullName;
        try
        {
            using var envs = Gym.MakeVec("MountainCarContinuous-v0", 8, wrap: e => new RecordEpisodeStatistics(e));
            var o = new ImpalaOptions { Seed = 3, TotalTimesteps = 20_000, NormalizeObservations = true, EntropyCost = 0, CheckpointDirectory = dir, CheckpointEvery = 0 };
            var r = Impala.Train(envs, o);
            var n = r.Policy.Normalizer;
            Assert.That(n, Is.Not.Null);
            // Position lies in [−1.2, 0.6] (starts in [−0.6, −0.4]); velocity in [−0.07, 0.07]: its variance is far smaller.
            Assert.That(n!.Mean[0], Is.InRange(-1.2f, 0.6f));
            Assert.That(n.Var[1], Is.LessThan(n.Var[0] / 10).And.GreaterThan(0f));
            var checkpoint = ClusterEnv.Learners.Checkpoints.TrainingCheckpoint.Load(dir);
            double count = double.Parse(checkpoint.Counters["observation_count"], System.Globalization.CultureInfo.InvariantCulture);
            Assert.That(count, Is.InRange(19_000, 20_100), "every transition the learner took counted once");
            Assert.That(checkpoint.Policy.Normalizer!.Mean, Is.EqualTo(n.Mean));
            Assert.That(() => Impala.Train(envs, o with { TotalTimesteps = 30_000, ResumeFrom = dir, NormalizeObservations = false }),
                Throws.ArgumentException.With.Message.Contains("NormalizeObservations = True"));
            var resumed = Impala.Train(envs, o with { TotalTimesteps = 30_000, ResumeFrom = dir, CheckpointDirectory = null });
            Assert.That(resumed.Policy.Normalizer!.Var[1], Is.EqualTo(n.Var[1]).Within(0.5 * n.Var[1]), "the statistics move on from where they were, not from (0, 1)");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void OnStreamingWorkers_ItLearns_PublishesAndKeepsTheLagBounded()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [4, 4]);
        using (env)
        {
            var o = new ImpalaOptions { Seed = 2, TotalTimesteps = 120_000, MaxPolicyLag = 20 };
            var r = Impala.Train(env, o, SyncStrategy.KlThreshold(0.01, maxLag: 6));
            var last = r.History[^1];
            Assert.That(last.GlobalStep, Is.GreaterThanOrEqualTo(120_000));
            Assert.That(last.TotalPushes, Is.GreaterThanOrEqualTo(2), "the first deployment went to both workers");
            Assert.That(r.History.Max(h => h.MaxPolicyLag), Is.LessThanOrEqualTo(20UL), "nothing older than MaxPolicyLag was learned from");
            Assert.That(r.History.Sum(h => h.Episodes), Is.GreaterThan(100));
            Assert.That(r.FinalMeanReturn20, Is.GreaterThan(60), "learning happened (random is about 22)");
            // The stream was stopped cleanly: the vector env steps again after a reset.
            Assert.That(env.Rollouts.IsStreaming, Is.False);
            env.Reset(seed: 3);
            Assert.DoesNotThrow(() => env.Step(new int[8]));
        }
    }

    [Test]
    public void UnderAPlainKlThreshold_NoVersionLimit_PushesOnlyWhatTheKlAsksFor()
    {
        // τ so high that the KL never asks for a push: without a version limit the first deployment is the only push,
        // and rollouts far more than 50 versions behind are learned from, not dropped.
        var (env, _) = TestCluster.InProcess("CartPole-v1", [4, 4]);
        using (env)
        {
            var o = new ImpalaOptions { Seed = 3, TotalTimesteps = 16_000 };
            var r = Impala.Train(env, o, SyncStrategy.KlThreshold(1e9));
            var last = r.History[^1];
            Assert.That(r.History.Count, Is.GreaterThan(ImpalaOptions.DefaultMaxPolicyLag + 20), "enough updates to pass the default limit");
            Assert.That(last.TotalPushes, Is.EqualTo(2), "the first deployment to each worker, nothing after it");
            Assert.That(last.DroppedStale, Is.EqualTo(0));
            Assert.That(r.History.Max(h => h.MaxPolicyLag), Is.GreaterThan((ulong)ImpalaOptions.DefaultMaxPolicyLag), "old rollouts were learned from");
        }
        // The same strategy with the limit set: pushes by lag keep every worker within it.
        (env, _) = TestCluster.InProcess("CartPole-v1", [4, 4]);
        using (env)
        {
            var o = new ImpalaOptions { Seed = 3, TotalTimesteps = 16_000, MaxPolicyLag = 20 };
            var r = Impala.Train(env, o, SyncStrategy.KlThreshold(1e9));
            Assert.That(r.History[^1].TotalPushes, Is.GreaterThan(2), "pushed by lag");
            Assert.That(r.History.Max(h => h.MaxPolicyLag), Is.LessThanOrEqualTo(20UL));
        }
    }

    [Test]
    public void PolicyLagLimit_IsTheSettingElseNoneUnderAPlainKlThresholdElseTheDefault()
    {
        var o = new ImpalaOptions();
        Assert.That(o.PolicyLagLimit(SyncStrategy.KlThreshold(0.05)), Is.EqualTo(0));
        Assert.That(o.PolicyLagLimit(SyncStrategy.KlThreshold(0.05, maxLag: 8)), Is.EqualTo(ImpalaOptions.DefaultMaxPolicyLag));
        Assert.That(o.PolicyLagLimit(SyncStrategy.Always), Is.EqualTo(ImpalaOptions.DefaultMaxPolicyLag));
        Assert.That(o.PolicyLagLimit(SyncStrategy.Never), Is.EqualTo(ImpalaOptions.DefaultMaxPolicyLag));
        Assert.That(o.PolicyLagLimit(null), Is.EqualTo(ImpalaOptions.DefaultMaxPolicyLag), "the learner acts: the limit only guards a queue");
        Assert.That((o with { MaxPolicyLag = 7 }).PolicyLagLimit(SyncStrategy.KlThreshold(0.05)), Is.EqualTo(7));
        Assert.That((o with { MaxPolicyLag = 0 }).PolicyLagLimit(SyncStrategy.Always), Is.EqualTo(0));
    }

    [Test]
    public void RolloutsOlderThanMaxPolicyLag_AreDroppedAndCounted_AndNotConsumed()
    {
        // A source whose every other rollout was acted 5 versions behind the learner.
        var spec = PolicySpec.For(new ClusterEnv.Spaces.Box(-1, 1, [4]), new ClusterEnv.Spaces.Discrete(2));
        var policy = new ActorCritic(spec, seed: 1);
        var source = new FakeSource(spec, lagPattern: [0, 5]);
        var o = new ImpalaOptions { Seed = 1, TotalTimesteps = 20 * 4 * 10, MaxPolicyLag = 3, UnrollLength = 20 };
        var r = Impala.Run(source, policy, null, o, double.PositiveInfinity, m => source.Version = m.PolicyVersion);
        Assert.That(r.History.Count, Is.EqualTo(10), "ten rollouts within the lag limit were consumed");
        Assert.That(r.History[^1].GlobalStep, Is.EqualTo(800));
        Assert.That(r.History[^1].DroppedStale, Is.EqualTo(source.StaleServed), "every stale rollout was dropped and counted");
        Assert.That(source.StaleServed, Is.GreaterThanOrEqualTo(4), "the check saw stale rollouts");
        Assert.That(r.History.Max(h => h.MaxPolicyLag), Is.LessThanOrEqualTo(3UL), "what was learned from is at most MaxPolicyLag behind");
        Assert.That(source.Outstanding, Is.EqualTo(0), "every rollout was given back");
    }

    [Test]
    public void CancelledWhileWaitingForRollouts_ReturnsWhatWasLearned_WithoutThrowing()
    {
        var spec = PolicySpec.For(new ClusterEnv.Spaces.Box(-1, 1, [4]), new ClusterEnv.Spaces.Discrete(2));
        var policy = new ActorCritic(spec, seed: 1);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var source = new WaitingSource();
        var r = Impala.Run(source, policy, null, new ImpalaOptions { TotalTimesteps = 1_000_000 }, double.PositiveInfinity, cancellationToken: cancel.Token);
        Assert.That(r.Stopped, Is.True);
        Assert.That(r.History, Is.Empty);
        Assert.That(source.Waited, Is.True, "the cancellation arrived while the learner waited in Take");
    }

    private sealed class WaitingSource : IRolloutSource
    {
        public bool Waited { get; private set; }
        public string Description => "nothing comes";
        public int Steps => 20;
        public long QueueDepth => 0;
        public int Take(int max, List<RolloutBatch> into, CancellationToken cancellationToken = default)
        {
            Waited = true;
            Task.Delay(Timeout.Infinite, cancellationToken).GetAwaiter().GetResult(); // throws once cancelled
            return 0;
        }
        public void Return(RolloutBatch rollout) { }
        public void Dispose() { }
    }

    [Test]
    public void AsImpact_LowersOnlyImpalasDefaultRate_AndKeepsARateChosenElsewhere()
    {
        Assert.That(new ImpalaOptions().AsImpact().LearningRate, Is.EqualTo(7e-4));
        Assert.That(ImpalaOptions.ContinuousDefaults.AsImpact().LearningRate, Is.EqualTo(7e-4));
        Assert.That(ImpalaOptions.ImageDefaults().AsImpact().LearningRate, Is.EqualTo(3e-4), "the image defaults' rate");
        Assert.That(new ImpalaOptions { LearningRate = 5e-4 }.AsImpact().LearningRate, Is.EqualTo(5e-4), "the caller's rate");
        Assert.That(ImpalaOptions.ImageDefaults().AsImpact().Impact, Is.True);
    }

    [Test]
    public void BadOptions_AreNamed()
    {
        Assert.That(() => new ImpalaOptions { UnrollLength = 0 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("UnrollLength"));
        Assert.That(() => new ImpalaOptions { Lambda = 2 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("Lambda"));
        Assert.That(() => new ImpalaOptions { ReplayTimes = 0 }.AsImpact().Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("ReplayTimes"));
        Assert.That(() => new ImpalaOptions { MaxUpdateKl = -1 }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("MaxUpdateKl"));
        Assert.That(() => new ImpalaOptions { TargetUpdateKl = double.NaN }.Validate(), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("TargetUpdateKl"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void MaxUpdateKl_ShrinksEveryStepThatMovesThePolicyFurther(bool impact)
    {
        const double cap = 3e-5;
        ImpalaResult Run(double maxUpdateKl)
        {
            using var envs = Gym.MakeVec("CartPole-v1", 16, wrap: e => new RecordEpisodeStatistics(e));
            var o = new ImpalaOptions { Seed = 3, TotalTimesteps = 40_000, MaxUpdateKl = maxUpdateKl };
            return Impala.Train(envs, impact ? o.AsImpact() : o);
        }
        var free = Run(0).History.Select(h => h.UpdateKl).ToArray();
        var capped = Run(cap).History.Select(h => h.UpdateKl).ToArray();
        TestContext.Out.WriteLine($"largest update KL: free {free.Max():G3}, capped {capped.Max():G3}; free steps above the cap: {free.Count(k => k > cap)}/{free.Length}");
        Assert.That(free.Count(k => k > cap), Is.GreaterThan(free.Length / 20), "without the cap, early steps move the policy further than the cap");
        // KL is quadratic in a small step, so shrinking by √(cap/KL) lands on the cap up to the curvature's change.
        Assert.That(capped, Has.All.LessThan(cap * 1.5));
        Assert.That(capped.Count(k => k > cap * 0.5), Is.GreaterThan(0), "the capped steps are shrunk to about the cap, not to nothing");
    }

    [Test]
    public void ImageRollouts_StoredAsBytes_TrainExactlyAsTheSameValuesInFloats()
    {
        // The learner widens uint8 observations at its input: a quarter of the memory in rollouts and IMPACT's replay,
        // the same numbers in every pass, so the weights after training agree to the bit.
        var space = new ClusterEnv.Spaces.Box(0f, 255f, [2, 42, 42], ClusterEnv.Spaces.DType.UInt8);
        var spec = PolicySpec.ForImages(space, new ClusterEnv.Spaces.Discrete(2), "small");
        float[] Train(ClusterEnv.Spaces.DType storage)
        {
            var policy = new ActorCritic(spec, seed: 1);
            var source = new FakeSource(spec, [0], storage);
            var o = new ImpalaOptions { Seed = 1, TotalTimesteps = 20 * 4 * 4, UnrollLength = 20, BatchSize = 1 }.AsImpact();
            Impala.Run(source, policy, null, o, double.PositiveInfinity, m => source.Version = m.PolicyVersion);
            Assert.That(source.Served, Has.All.Matches<RolloutBatch>(b => b.ObservationType == storage));
            return policy.Parameters.ToArray();
        }
        var bytes = Train(ClusterEnv.Spaces.DType.UInt8);
        var floats = Train(ClusterEnv.Spaces.DType.Float32);
        Assert.That(bytes, Is.EqualTo(floats));
        Assert.That(bytes, Is.Not.EqualTo(new ActorCritic(spec, seed: 1).Parameters.ToArray()), "training moved the weights");
    }

    private sealed class FakeSource(PolicySpec spec, int[] lagPattern, ClusterEnv.Spaces.DType storage = ClusterEnv.Spaces.DType.Float32) : IRolloutSource
    {
        public List<RolloutBatch> Served { get; } = [];
        private readonly Common.Rng _rng = new(3);
        private int _served;
        public ulong Version { get; set; } = 1;
        public int StaleServed { get; private set; }
        public int Outstanding { get; private set; }
        public string Description => "fake";
        public int Steps => 20;
        public long QueueDepth => 0;

        public int Take(int max, List<RolloutBatch> into, CancellationToken cancellationToken = default)
        {
            var b = new RolloutBatch(Steps, 4, spec.ObservationSize, false, 1, spec.ActionSize, storage) { WorkerId = "w" };
            var obs = new float[(Steps + 1) * 4 * spec.ObservationSize];
            bool images = spec.Encoder is not null;
            for (int j = 0; j < obs.Length; j++) obs[j] = images ? _rng.NextInt(256) : (float)_rng.Uniform(-1, 1);
            b.WriteObservations(0, obs);
            Served.Add(b);
            for (int j = 0; j < b.LogProbs.Length; j++)
            {
                b.DiscreteActions[j] = _rng.NextInt(2);
                b.LogProbs[j] = MathF.Log(0.5f);
                b.Rewards[j] = 1;
            }
            int lag = lagPattern[_served++ % lagPattern.Length];
            ulong acting = Version > (ulong)lag ? Version - (ulong)lag : 0;
            if (Version - acting > 3) StaleServed++;
            Array.Fill(b.PolicyVersion, acting);
            into.Add(b);
            Outstanding++;
            return 1;
        }

        public void Return(RolloutBatch rollout) => Outstanding--;
        public void Dispose() { }
    }
}
