using ClusterEnv.Learners.Checkpoints;
using ClusterEnv.Learners.Impala;
using ClusterEnv.Policies;
using ClusterEnv.Rollouts;

namespace ClusterEnv.Tests.Learners;

public class CheckpointTests
{
    private static readonly PolicySpec Spec = PolicySpec.For(new ClusterEnv.Spaces.Box(-1, 1, [4]), new ClusterEnv.Spaces.Discrete(2));

    [TestCase(false)]
    [TestCase(true)]
    public void AResumedRun_ContinuesBitForBit_WhereTheUninterruptedOneWent_ImpactApproximately(bool impact)
    {
        string dir = Directory.CreateTempSubdirectory("clusterenv-ckpt-").FullName;
        try
        {
            var o = new ImpalaOptions { Seed = 5, UnrollLength = 10, TotalTimesteps = 10 * 4 * 12, CheckpointEvery = 0 };
            if (impact) o = o.AsImpact() with { ReplayBufferSize = 3 };
            // The uninterrupted run: 12 updates.
            var straight = Impala.Run(new ScriptedSource(0), new ActorCritic(Spec, seed: 1), null, o, double.PositiveInfinity);
            // Stopped after 7 updates (its final checkpoint), then resumed for the rest with the same data that follows.
            using (var stop = new CancellationTokenSource())
                Impala.Run(new ScriptedSource(0), new ActorCritic(Spec, seed: 1), null, o with { CheckpointDirectory = dir }, double.PositiveInfinity,
                    m => { if (m.Update == 7) stop.Cancel(); }, stop.Token);
            var checkpoint = TrainingCheckpoint.Load(dir);
            Assert.That(checkpoint.Update, Is.EqualTo(7));
            Assert.That(checkpoint.GlobalStep, Is.EqualTo(7 * 40));
            var resumed = Impala.Run(new ScriptedSource(7), new ActorCritic(Spec, seed: 99), null, o with { ResumeFrom = dir }, double.PositiveInfinity, resume: checkpoint);
            Assert.That(resumed.History.Select(h => h.Update), Is.EqualTo(Enumerable.Range(8, 5)));
            Assert.That(resumed.History[^1].GlobalStep, Is.EqualTo(straight.History[^1].GlobalStep));
            if (!impact)
                Assert.That(resumed.Policy.Parameters, Is.EqualTo(straight.Policy.Parameters), "weights, optimizer moments and counters all continued exactly");
            else
            {
                // IMPACT resumes with an empty replay buffer (its batches are not saved), so it only stays close.
                var diff = resumed.Policy.Parameters.Zip(straight.Policy.Parameters, (a, b) => Math.Abs(a - b)).Max();
                Assert.That(diff, Is.GreaterThan(0).And.LessThan(0.05));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Checkpoints_AreWrittenWhole_KeepTheNewest_AndAMissingOneIsNamed()
    {
        string dir = Directory.CreateTempSubdirectory("clusterenv-ckpt-").FullName;
        try
        {
            var policy = new ActorCritic(Spec, seed: 1) { Normalizer = new ObservationNormalizer([1, 2, 3, 4], [1, 1, 2, 2], 5) };
            var adam = new ClusterEnv.Nn.Adam(policy.Store.Count, 1e-3);
            var rng = new ClusterEnv.Common.Rng(3);
            for (int u = 1; u <= 5; u++) TrainingCheckpoint.Save(dir, u, u * 100, policy, adam, rng, keep: 2);
            Directory.CreateDirectory(Path.Combine(dir, "checkpoint-00000009.tmp123")); // a write that was cut short
            Assert.That(TrainingCheckpoint.List(dir).Select(Path.GetFileName), Is.EqualTo(new[] { "checkpoint-00000004", "checkpoint-00000005" }));
            var loaded = TrainingCheckpoint.Load(dir);
            Assert.That(loaded.Update, Is.EqualTo(5));
            Assert.That(loaded.Policy.Normalizer!.Mean, Is.EqualTo(new float[] { 1, 2, 3, 4 }));
            Assert.That(loaded.RngState, Is.EqualTo(rng.State));
            var ex = Assert.Throws<FileNotFoundException>(() => TrainingCheckpoint.Load(Path.Combine(dir, "nothing-here")))!;
            Assert.That(ex.Message, Does.Contain("No checkpoint in"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // Rollouts that depend only on their number in the stream, so a second source can start where the first stopped.
    private sealed class ScriptedSource(int first) : IRolloutSource
    {
        private int _next = first;
        public string Description => "scripted";
        public int Steps => 10;
        public long QueueDepth => 0;

        public int Take(int max, List<RolloutBatch> into, CancellationToken cancellationToken = default)
        {
            var rng = new ClusterEnv.Common.Rng(1000 + _next++);
            var b = new RolloutBatch(Steps, 4, 4, false, 1, 2) { WorkerId = "w" };
            for (int j = 0; j < b.Observations.Length; j++) b.Observations[j] = (float)rng.Uniform(-1, 1);
            for (int j = 0; j < b.LogProbs.Length; j++)
            {
                b.DiscreteActions[j] = rng.NextInt(2);
                b.LogProbs[j] = MathF.Log(0.5f);
                b.Rewards[j] = rng.Uniform(0, 1);
                b.Terminated[j] = rng.Uniform(0, 1) < 0.05;
            }
            into.Add(b);
            return 1;
        }

        public void Return(RolloutBatch rollout) { }
        public void Dispose() { }
    }
}
