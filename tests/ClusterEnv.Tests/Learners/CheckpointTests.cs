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
            var ex = Assert.Throws<CheckpointException>(() => TrainingCheckpoint.Load(Path.Combine(dir, "nothing-here")))!;
            Assert.That(ex.Message, Does.Contain("nothing-here' does not exist"));
            Directory.CreateDirectory(Path.Combine(dir, "empty"));
            ex = Assert.Throws<CheckpointException>(() => TrainingCheckpoint.Load(Path.Combine(dir, "empty")))!;
            Assert.That(ex.Message, Does.Contain("No checkpoint in"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // Each way a checkpoint is found damaged: cut short, modified, a file missing, or (with a manifest that matches)
    // values no run writes. The newest is reported by folder and fault, and the next older one is loaded.
    [TestCase("truncate policy.cepolicy", "policy.cepolicy has 100 bytes; the manifest says")]
    [TestCase("flip policy.cepolicy", "policy.cepolicy does not match its SHA-256")]
    [TestCase("truncate optimizer.bin", "optimizer.bin has 100 bytes; the manifest says")]
    [TestCase("truncate state.json", "state.json has 100 bytes; the manifest says")]
    [TestCase("delete optimizer.bin", "optimizer.bin is missing")]
    [TestCase("delete manifest.json", "manifest.json is missing")]
    [TestCase("truncate manifest.json", "is damaged:")]
    [TestCase("resign global_step", "state.json's global_step (-999999999) is negative")]
    [TestCase("resign nan-moments", "optimizer.bin holds a non-finite moment")]
    [TestCase("resign negative-second-moment", "optimizer.bin holds a negative second moment")]
    [TestCase("resign counter", "state.json's counter dropped_stale ('-3') is not a count")]
    public void ADamagedNewestCheckpoint_IsReportedByName_AndTheNextOlderOneIsLoaded(string damage, string fault)
    {
        string dir = Directory.CreateTempSubdirectory("clusterenv-ckpt-").FullName;
        try
        {
            var policy = new ActorCritic(Spec, seed: 1);
            var adam = new ClusterEnv.Nn.Adam(policy.Store.Count, 1e-3);
            var rng = new ClusterEnv.Common.Rng(3);
            TrainingCheckpoint.Save(dir, 1, 100, policy, adam, rng, new Dictionary<string, string> { ["dropped_stale"] = "0" });
            string newest = TrainingCheckpoint.Save(dir, 2, 200, policy, adam, rng, new Dictionary<string, string> { ["dropped_stale"] = "0" });
            Damage(newest, damage);
            var said = new List<string>();
            var loaded = TrainingCheckpoint.Load(dir, said.Add);
            Assert.That(loaded.Update, Is.EqualTo(1), "the next older checkpoint");
            Assert.That(said, Has.Count.EqualTo(1));
            Assert.That(said[0], Does.Contain($"Checkpoint '{newest}' is damaged").And.Contain(fault).And.Contain("Trying the next older checkpoint"));
            var named = Assert.Throws<CheckpointException>(() => TrainingCheckpoint.Load(newest))!;
            Assert.That(named.Message, Does.Contain(fault), "a checkpoint named itself is not swapped for another");
            Damage(TrainingCheckpoint.List(dir)[0], "truncate policy.cepolicy");
            var none = Assert.Throws<CheckpointException>(() => TrainingCheckpoint.Load(dir))!;
            Assert.That(none.Message, Does.Contain("Every checkpoint in").And.Contain(fault).And.Contain("checkpoint-00000001"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // "truncate F" cuts F to 100 bytes, "flip F" changes one byte, "delete F" removes it; "resign X" writes a bad value
    // and a manifest that matches it, so only the range checks can tell.
    internal static void Damage(string folder, string damage)
    {
        var (how, what) = (damage.Split(' ')[0], damage.Split(' ')[1]);
        string file = Path.Combine(folder, what);
        switch (how)
        {
            case "truncate":
                using (var f = File.Open(file, FileMode.Open)) f.SetLength(100);
                return;
            case "flip":
                var bytes = File.ReadAllBytes(file);
                bytes[bytes.Length / 2] ^= 0x10;
                File.WriteAllBytes(file, bytes);
                return;
            case "delete":
                File.Delete(file);
                return;
        }
        string state = Path.Combine(folder, "state.json"), optimizer = Path.Combine(folder, "optimizer.bin");
        switch (what)
        {
            case "global_step":
                File.WriteAllText(state, File.ReadAllText(state).Replace("\"global_step\":200", "\"global_step\":-999999999", StringComparison.Ordinal));
                break;
            case "counter":
                File.WriteAllText(state, File.ReadAllText(state).Replace("\"dropped_stale\":\"0\"", "\"dropped_stale\":\"-3\"", StringComparison.Ordinal));
                break;
            case "nan-moments":
            case "negative-second-moment":
                var moments = File.ReadAllBytes(optimizer);
                BitConverter.TryWriteBytes(moments.AsSpan(moments.Length - 4), what == "nan-moments" ? float.NaN : -1f);
                File.WriteAllBytes(optimizer, moments);
                break;
        }
        var manifest = new Dictionary<string, object>
        {
            ["format"] = 2,
            ["files"] = new[] { "policy.cepolicy", "optimizer.bin", "state.json" }.ToDictionary(n => n, n => (object)new Dictionary<string, object>
            {
                ["bytes"] = new FileInfo(Path.Combine(folder, n)).Length,
                ["sha256"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(folder, n)))),
            }),
        };
        File.WriteAllText(Path.Combine(folder, "manifest.json"), System.Text.Json.JsonSerializer.Serialize(manifest));
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
