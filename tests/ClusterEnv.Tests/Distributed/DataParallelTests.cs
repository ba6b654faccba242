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
}
