using ClusterEnv.Common;
using ClusterEnv.Learners.Distributed;
using ClusterEnv.Learners.Impala;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Nn;
using ClusterEnv.Policies;
using ClusterEnv.Envs;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Distributed;

public class DataParallelTests
{
    private static readonly PolicySpec Spec = PolicySpec.For(new ClusterEnv.Spaces.Box(-1, 1, [4]), new ClusterEnv.Spaces.Discrete(2));

    // One PPO minibatch of n samples, made up but shaped like a rollout's.
    private sealed record Data(float[] Obs, int[] Actions, float[] LogProbs, float[] Values, float[] Advantages, float[] Returns);

    private static Data MakeData(int n)
    {
        var rng = new Rng(11);
        var policy = new ActorCritic(Spec, seed: 1);
        var obs = Enumerable.Range(0, n * 4).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var actions = new int[n];
        var logProbs = new float[n];
        var values = new float[n];
        policy.Act(obs, n, rng, actions, Span<float>.Empty, logProbs, values);
        var adv = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var ret = Enumerable.Range(0, n).Select(i => values[i] + adv[i]).ToArray();
        return new Data(obs, actions, logProbs, values, adv, ret);
    }

    private static float[] UpdateOnce(PpoOptions o, Data d, int[] indices)
    {
        var policy = new ActorCritic(Spec, seed: 1);
        var adam = new Adam(policy.Store.Count, o.LearningRate, eps: o.AdamEps);
        Ppo.Update(policy, adam, o, indices, new Rng(5), d.Obs, 4, d.Actions, [], d.LogProbs, d.Values, d.Advantages, d.Returns);
        return policy.Parameters.ToArray();
    }

    [Test]
    public void TwoRanksOnHalvesOfAMinibatch_TakeTheStepOneRankTakesOnTheWhole()
    {
        var d = MakeData(64);
        var o = new PpoOptions { NumMinibatches = 1, UpdateEpochs = 1 }; // advantages normalised, values clipped, gradients clipped: CleanRL's
        var whole = UpdateOnce(o, d, Enumerable.Range(0, 64).ToArray());
        var world = ThreadCollective.Create(2);
        var ranks = new float[2][];
        Parallel.For(0, 2, new ParallelOptions { MaxDegreeOfParallelism = 2 }, r =>
            ranks[r] = UpdateOnce(o with { Collective = world[r] }, d, Enumerable.Range(r * 32, 32).ToArray()));

        Assert.That(ranks[1], Is.EqualTo(ranks[0]), "every rank took the same step, bit for bit");
        var before = new ActorCritic(Spec, seed: 1).Parameters;
        double worst = 0;
        for (int i = 0; i < whole.Length; i++)
        {
            double step = whole[i] - before[i], diff = System.Math.Abs(ranks[0][i] - whole[i]);
            worst = System.Math.Max(worst, diff / System.Math.Max(System.Math.Abs(step), 1e-6));
        }
        TestContext.Out.WriteLine($"largest difference from the one-rank step, relative to the step: {worst:E2}");
        Assert.That(worst, Is.LessThan(1e-3), "the same update to float tolerance (only the order of sums differs)");
        Assert.That(ranks[0], Is.Not.EqualTo(UpdateOnce(o, d, Enumerable.Range(0, 32).ToArray())), "and not rank 0's own half alone");
    }

    [Test]
    public void TwoRankPpo_OnItsOwnEnvs_KeepsBitIdenticalWeightsAfterEveryIteration_AndSharesTheBudget()
    {
        var world = ThreadCollective.Create(2);
        var hashes = new List<ulong>[] { [], [] };
        var results = new PpoResult[2];
        var o = new PpoOptions { TotalTimesteps = 2 * 4 * 128 * 6, Seed = 3 };
        Parallel.For(0, 2, new ParallelOptions { MaxDegreeOfParallelism = 2 }, r =>
        {
            using var envs = Gym.MakeVec("CartPole-v1", 4, wrap: e => new RecordEpisodeStatistics(e));
            results[r] = Ppo.Train(envs, o with { Collective = world[r] });
            hashes[r].Add(System.IO.Hashing.XxHash64.HashToUInt64(System.Runtime.InteropServices.MemoryMarshal.AsBytes(results[r].Policy.Parameters.AsSpan())));
        });
        Assert.That(results[0].History, Has.Count.EqualTo(6), "6 iterations of 2 ranks × 4 envs × 128 steps make the budget");
        Assert.That(results[0].History[^1].GlobalStep, Is.EqualTo(o.TotalTimesteps));
        Assert.That(hashes[1], Is.EqualTo(hashes[0]), "the same final weights on both ranks (each iteration was checked inside Train)");
        Assert.That(results[0].Policy.Parameters, Is.Not.EqualTo(new ActorCritic(PolicySpec.For(new ClusterEnv.Spaces.Box(-1, 1, [4]), new ClusterEnv.Spaces.Discrete(2)), 3).Parameters),
            "it learned something");
    }

    [Test]
    public void RanksWhoseWeightsDiverge_AreStoppedByName()
    {
        var world = ThreadCollective.Create(2);
        var errors = new string?[2];
        Parallel.For(0, 2, new ParallelOptions { MaxDegreeOfParallelism = 2 }, r =>
        {
            try { Collectives.CheckInSync(world[r], [1f, r == 0 ? 2f : 2.5f], update: 7); }
            catch (CollectiveException e) { errors[r] = e.Message; }
        });
        Assert.That(errors[0], Is.Null);
        Assert.That(errors[1], Does.Contain("Rank 1").And.Contain("after update 7").And.Contain("differ from rank 0"));
    }

    [Test]
    public void TwoRankImpala_OnLocalEnvs_StaysInStep()
    {
        var world = ThreadCollective.Create(2);
        var results = new ImpalaResult[2];
        Parallel.For(0, 2, new ParallelOptions { MaxDegreeOfParallelism = 2 }, r =>
        {
            using var envs = Gym.MakeVec("CartPole-v1", 8, wrap: e => new RecordEpisodeStatistics(e));
            results[r] = Impala.Train(envs, new ImpalaOptions { Seed = 2, TotalTimesteps = 40_000, Collective = world[r] });
        });
        Assert.That(results[1].Policy.Parameters, Is.EqualTo(results[0].Policy.Parameters));
        Assert.That(results[0].History[^1].GlobalStep, Is.GreaterThanOrEqualTo(40_000));
        Assert.That(results[0].History[^1].GlobalStep, Is.LessThan(40_000 + 2 * 8 * 20 * new ImpalaOptions().BatchSize + 1), "both ranks' steps count toward one budget");
        Assert.That(results[1].History, Has.Count.EqualTo(results[0].History.Count));
    }

    [Test]
    public void GradientsAllReducedInBucketsWhileBackwardRuns_TakeTheStepOfOneAllReduceAfterIt_BitForBit()
    {
        var d = MakeData(64);
        var o = new PpoOptions { NumMinibatches = 2, UpdateEpochs = 2 };
        float[][] Ranks(int bucketSize)
        {
            var world = ThreadCollective.Create(2);
            var ranks = new float[2][];
            Parallel.For(0, 2, new ParallelOptions { MaxDegreeOfParallelism = 2 }, r =>
                ranks[r] = UpdateOnce(o with { Collective = world[r], GradientBucketSize = bucketSize }, d, Enumerable.Range(r * 32, 32).ToArray()));
            Assert.That(ranks[1], Is.EqualTo(ranks[0]), $"buckets of {bucketSize}: every rank took the same step");
            return ranks;
        }
        var flat = Ranks(0)[0];
        Assert.That(Ranks(GradientBuckets.DefaultCapacity)[0], Is.EqualTo(flat), "actor and critic a bucket each");
        Assert.That(Ranks(100)[0], Is.EqualTo(flat), "a bucket per layer (and the 64×64 layers alone, over the cap)");
    }

    // Records what GradientBuckets asks of the collective, in order: "start offset+length", "progress", "wait".
    private sealed class RecordingCollective : ICollective
    {
        public readonly List<string> Events = [];
        public int Rank => 0;
        public int WorldSize => 2;
        public string Backend => "recording";
        public void AllReduce(Span<float> values, ReduceOp op) => Events.Add($"allreduce {values.Length}");
        public void AllReduce(Span<double> values, ReduceOp op) => Events.Add($"allreduce {values.Length}");
        public void Broadcast(Span<float> values, int root) { }
        public void Broadcast(Span<byte> bytes, int root) { }
        public void Barrier() { }
        public void StartAllReduce(float[] buffer, int start, int length, ReduceOp op)
        {
            Assert.That(op, Is.EqualTo(ReduceOp.Mean));
            Events.Add($"start {start}+{length}");
        }
        public void ProgressAllReduces() => Events.Add("progress");
        public void WaitAllReduces() => Events.Add("wait");
        public void Dispose() { }
    }

    [Test]
    public void Buckets_StartTheActorsAllReduceBeforeTheCriticsBackward_AndCoverEveryGradientOnce()
    {
        var policy = new ActorCritic(Spec, seed: 1); // actor 4→64→64→2, then critic 4→64→64→1
        var dp = new RecordingCollective();
        var buckets = new GradientBuckets(dp, policy.Store.Grads);
        var obs = new float[8 * 4];
        policy.Forward(obs, 8, out _, out _);
        policy.Backward(new float[8 * 2], new float[8], buckets);
        buckets.Finish();
        int actor = policy.Store.Parameters.Where(p => p.Name.StartsWith("actor", StringComparison.Ordinal)).Sum(p => p.Length);
        Assert.That(dp.Events, Is.EqualTo(new[]
        {
            "progress", "progress", "progress",       // the actor's layers 2, 1, 0 come in, adjacent: one bucket
            $"start 0+{actor}",                       // the critic's last layer is not adjacent: the actor's bucket goes
            "progress", "progress", "progress",       // while the critic's layers are differentiated
            $"start {actor}+{policy.Store.Count - actor}", "wait",
        }));
        Assert.That(buckets.LastBuckets, Is.EqualTo(2));
    }

    [Test]
    public void Buckets_OfAnImagePolicyWithALogStd_CoverEveryGradientOnce_AndAForgottenRangeIsNamed()
    {
        var images = new ClusterEnv.Spaces.Box(0, 255, [1, 36, 36], ClusterEnv.Spaces.DType.UInt8);
        var spec = PolicySpec.ForImages(images, new ClusterEnv.Spaces.Box(-1, 1, [2]), "small");
        var policy = new ActorCritic(spec, seed: 1);
        var dp = new RecordingCollective();
        var buckets = new GradientBuckets(dp, policy.Store.Grads, capacity: 5_000);
        policy.Forward(new float[3 * 36 * 36], 3, out _, out _);
        policy.Backward(new float[3 * 2], new float[3], buckets);
        buckets.Finish();
        var ranges = dp.Events.Where(e => e.StartsWith("start", StringComparison.Ordinal))
            .Select(e => e[6..].Split('+')).Select(x => (Start: int.Parse(x[0]), Length: int.Parse(x[1]))).OrderBy(x => x.Start).ToArray();
        var layers = policy.Store.Parameters.GroupBy(p => p.Name.Replace(".weight", "").Replace(".bias", "")).Select(g => g.Sum(p => p.Length)).ToHashSet();
        int next = 0;
        foreach (var (start, length) in ranges)
        {
            Assert.That(start, Is.EqualTo(next), "no gap, no overlap");
            Assert.That(length <= 5_000 || layers.Contains(length), $"a bucket of {length} holds up to the cap, or one layer larger than it");
            next = start + length;
        }
        Assert.That(next, Is.EqualTo(policy.Store.Count));
        Assert.That(ranges, Has.Length.GreaterThan(4), "the encoder's big linear layer, convolutions, heads and log-std in several buckets");

        // A backward that leaves a range untold (a layer without the hook) is refused by name, not averaged in part.
        policy.Forward(new float[3 * 36 * 36], 3, out _, out _);
        Assert.That(() =>
        {
            policy.Backward(new float[3 * 2], new float[3], new PartialReady(buckets));
            buckets.Finish();
        }, Throws.InvalidOperationException.With.Message.Contains("every gradient"));
    }

    [Test]
    public void RanksThatBucketTheirGradientsDifferently_AreRefusedAtTheStart_OnEveryRank()
    {
        var world = ThreadCollective.Create(2);
        var errors = new Exception?[2];
        Parallel.For(0, 2, new ParallelOptions { MaxDegreeOfParallelism = 2 }, r =>
        {
            var weights = new float[10];
            try { DataParallel.Start(world[r], weights, 64, r == 0 ? GradientBuckets.DefaultCapacity : 0); }
            catch (Exception e) { errors[r] = e; }
        });
        foreach (var e in errors)
            Assert.That(e, Is.TypeOf<CollectiveException>().With.Message.Contains("GradientBucketSize").And.Message.Contains("same setting"));
    }

    // Passes on every range but the first.
    private sealed class PartialReady(IGradientReady inner) : IGradientReady
    {
        private bool _skipped;
        public void Ready(int offset, int length)
        {
            if (_skipped) inner.Ready(offset, length);
            _skipped = true;
        }
    }
}
