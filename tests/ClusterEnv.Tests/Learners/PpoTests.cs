using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Learners.Estimators;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Policies;
using ClusterEnv.Tests.Cluster;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Learners;

public class GaeTests
{
    // The slow formula: A_t = Σ_l (γλ)^l δ_{t+l}, summed until the episode ends or the rollout does.
    [Test]
    public void EpisodeLog_KeepsTheMeansOfTheLast20AndTheLast100Returns()
    {
        var log = new EpisodeLog(threshold: 1e9);
        Assert.That(log.MeanReturn100, Is.NaN, "no episode yet");
        for (int i = 1; i <= 5; i++) log.Add(new EpisodeStatistics(i, 10, 0.1), i * 10, i);
        Assert.That(log.MeanReturn100, Is.EqualTo(3.0), "fewer than 100: the mean of those there are");
        for (int i = 6; i <= 150; i++) log.Add(new EpisodeStatistics(i, 10, 0.1), i * 10, i);
        Assert.That(log.MeanReturn100, Is.EqualTo(100.5).Within(1e-9), "returns 51…150");
        Assert.That(log.MeanReturn20, Is.EqualTo(140.5).Within(1e-9), "returns 131…150");
    }

    [Test]
    public void Compute_MatchesTheExplicitSum_WithTerminationTruncationAndBootstrap()
    {
        int T = 7, n = 2;
        var rng = new Rng(5);
        var rewards = Enumerable.Range(0, T * n).Select(_ => (float)rng.Uniform(-1, 1)).ToArray();
        var values = Enumerable.Range(0, T * n).Select(_ => (float)rng.Uniform(-1, 1)).ToArray();
        var nextValues = Enumerable.Range(0, T * n).Select(_ => (float)rng.Uniform(-1, 1)).ToArray();
        var terminated = new bool[T * n];
        var done = new bool[T * n];
        terminated[2 * n + 0] = done[2 * n + 0] = true;  // env 0 terminates at t=2
        done[4 * n + 1] = true;                         // env 1 is truncated at t=4 (bootstraps from nextValues)
        double gamma = 0.97, lambda = 0.9;
        var adv = new float[T * n];
        var ret = new float[T * n];
        Gae.Compute(rewards, values, nextValues, terminated, done, T, n, gamma, lambda, adv, ret);
        for (int i = 0; i < n; i++)
            for (int t = 0; t < T; t++)
            {
                double sum = 0, w = 1;
                for (int u = t; u < T; u++)
                {
                    int k = u * n + i;
                    double delta = rewards[k] + gamma * (terminated[k] ? 0 : nextValues[k]) - values[k];
                    sum += w * delta;
                    if (done[k]) break;
                    w *= gamma * lambda;
                }
                Assert.That(adv[t * n + i], Is.EqualTo(sum).Within(1e-5), $"t={t} env={i}");
                Assert.That(ret[t * n + i], Is.EqualTo(sum + values[t * n + i]).Within(1e-5));
            }
    }
}

public class PolicyTests
{
    [Test]
    public void Checkpoint_CarriesTheObservationStatisticsAndValueScale_AndRefusesBadOnes()
    {
        var policy = new ActorCritic(new PolicySpec(2, false, 2, [8]), seed: 2)
        {
            Normalizer = new ObservationNormalizer([1f, -2f], [4f, 0.25f], 10f),
            ValueScale = (12.5, 3.25),
        };
        var path = Path.GetTempFileName();
        try
        {
            policy.Save(path);
            var back = ActorCritic.Load(path, out _);
            Assert.That(back.ValueScale, Is.EqualTo((12.5, 3.25)));
            Assert.That(back.Normalizer!.Mean, Is.EqualTo(new[] { 1f, -2f }));
            Assert.That(back.Normalizer.Var, Is.EqualTo(new[] { 4f, 0.25f }));
            var obs = new float[] { 0.5f, 0.5f };
            Assert.That(back.Value(obs), Is.EqualTo(policy.Value(obs)), "the same value from the same observation");
            var plain = new ActorCritic(new PolicySpec(2, false, 2, [8]), seed: 2);
            plain.Save(path, new Dictionary<string, string> { ["value_mean"] = "1", ["value_std"] = "-2" });
            Assert.That(() => ActorCritic.Load(path, out _), Throws.TypeOf<InvalidDataException>().With.Message.Contains("value scale"));
            plain.Save(path, new Dictionary<string, string> { ["obs_mean"] = "0,NaN", ["obs_var"] = "1,1", ["obs_clip"] = "5" });
            Assert.That(() => ActorCritic.Load(path, out _), Throws.TypeOf<InvalidDataException>().With.Message.Contains("observation statistics"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void Checkpoint_RoundTripsSpecParametersAndMetadata_AndRejectsCorruption()
    {
        var policy = new ActorCritic(new PolicySpec(3, true, 2, [8, 8]), seed: 4);
        policy.LogStd[1] = -0.7f;
        var path = Path.GetTempFileName();
        try
        {
            policy.Save(path, new Dictionary<string, string> { ["env"] = "Pendulum-v1" });
            var back = ActorCritic.Load(path, out var meta);
            Assert.That(back.Spec, Is.EqualTo(policy.Spec));
            Assert.That(back.Parameters, Is.EqualTo(policy.Parameters));
            Assert.That(meta["env"], Is.EqualTo("Pendulum-v1"));
            var bytes = File.ReadAllBytes(path);
            bytes[40] ^= 0x55;
            File.WriteAllBytes(path, bytes);
            Assert.That(() => ActorCritic.Load(path, out _), Throws.TypeOf<InvalidDataException>().With.Message.Contains("checksum"));
            File.WriteAllText(path, "not a checkpoint");
            Assert.That(() => ActorCritic.Load(path, out _), Throws.TypeOf<InvalidDataException>().With.Message.Contains("CEPOLICY"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void Act_OnABatch_AllocatesNothingOnceWarm()
    {
        var policy = new ActorCritic(PolicySpec.For(Gym.Make("CartPole-v1").ObservationSpace, Gym.Make("CartPole-v1").ActionSpace));
        var obs = new float[64 * 4];
        var actions = new int[64];
        var lp = new float[64];
        var v = new float[64];
        var rng = new Rng(0);
        policy.Act(obs, 64, rng, actions, default, lp, v);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 50; i++) policy.Act(obs, 64, rng, actions, default, lp, v);
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }
}

public class PpoSmokeTests
{
    [Test]
    public void Ppo_LearnsCartPole_WellBeyondRandom_InAShortRun()
    {
        using var envs = Gym.MakeVec("CartPole-v1", 4, wrap: e => new RecordEpisodeStatistics(e));
        var result = Ppo.Train(envs, new PpoOptions { TotalTimesteps = 60_000, Seed = 1 });
        var first = result.History.First(m => !double.IsNaN(m.MeanReturn20)).MeanReturn20;
        Assert.That(first, Is.LessThan(40), "a random policy scores about 20");
        Assert.That(result.FinalMeanReturn20, Is.GreaterThan(120), $"after 60k steps; history ends {result.History[^1]}");
        Assert.That(result.History.All(m => double.IsFinite(m.PolicyLoss) && double.IsFinite(m.ValueLoss)), Is.True);
    }

    [Test]
    public void Ppo_WritesCheckpointsEveryNIterations_AndOneAtTheEnd_HoldingTheFinalWeights()
    {
        string dir = Directory.CreateTempSubdirectory("clusterenv-ppo-ckpt-").FullName;
        try
        {
            using var envs = Gym.MakeVec("CartPole-v1", 4, wrap: e => new RecordEpisodeStatistics(e));
            var result = Ppo.Train(envs, new PpoOptions { TotalTimesteps = 4 * 128 * 5, Seed = 2, CheckpointDirectory = dir, CheckpointEvery = 2, KeepCheckpoints = 3 });
            Assert.That(ClusterEnv.Learners.Checkpoints.TrainingCheckpoint.List(dir).Select(Path.GetFileName),
                Is.EqualTo(new[] { "checkpoint-00000002", "checkpoint-00000004", "checkpoint-00000005" }), "iterations 2 and 4, and the last");
            var last = ClusterEnv.Learners.Checkpoints.TrainingCheckpoint.Load(dir);
            Assert.That(last.Update, Is.EqualTo(5));
            Assert.That(last.GlobalStep, Is.EqualTo(4 * 128 * 5));
            Assert.That(last.Policy.Parameters, Is.EqualTo(result.Policy.Parameters));
            Assert.That(last.Counters["algorithm"], Is.EqualTo("ppo"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestCase("CartPole-v1", 4)]
    [TestCase("Pendulum-v1", 1)] // continuous: observation and reward statistics continue with their counts
    public void Ppo_StoppedAndResumed_ContinuesItsIterationsStepsOptimizerAndStatistics(string envId, int numEnvs)
    {
        string dir = Directory.CreateTempSubdirectory("clusterenv-ppo-resume-").FullName;
        try
        {
            bool continuous = envId == "Pendulum-v1";
            var baseOptions = (continuous ? PpoOptions.ContinuousDefaults : new PpoOptions()) with { Seed = 4, CheckpointDirectory = dir, CheckpointEvery = 1 };
            int perIteration = baseOptions.NumSteps * numEnvs;
            var o = baseOptions with { TotalTimesteps = perIteration * 5 };
            using (var envs = Gym.MakeVec(envId, numEnvs, wrap: e => new RecordEpisodeStatistics(e)))
            using (var stop = new CancellationTokenSource())
                Ppo.Train(envs, o, m => { if (m.Iteration == 3) stop.Cancel(); }, stop.Token);
            var checkpoint = ClusterEnv.Learners.Checkpoints.TrainingCheckpoint.Load(dir);
            Assert.That(checkpoint.Update, Is.EqualTo(3));
            PpoResult resumed;
            using (var envs = Gym.MakeVec(envId, numEnvs, wrap: e => new RecordEpisodeStatistics(e)))
                resumed = Ppo.Train(envs, o, resume: checkpoint);
            Assert.That(resumed.History.Select(h => h.Iteration), Is.EqualTo(new[] { 4, 5 }), "it goes on from the next iteration");
            Assert.That(resumed.History.Select(h => h.GlobalStep), Is.EqualTo(new long[] { perIteration * 4, perIteration * 5 }));
            Assert.That(resumed.Stopped, Is.False);
            Assert.That(resumed.History[0].LearningRate, Is.EqualTo((1.0 - 3.0 / 5) * o.LearningRate).Within(1e-12), "the learning rate anneals on from iteration 4");
            var last = ClusterEnv.Learners.Checkpoints.TrainingCheckpoint.Load(dir);
            Assert.That(last.OptimizerSteps, Is.EqualTo(5 * o.UpdateEpochs * o.NumMinibatches), "Adam's step count continued");
            if (continuous)
            {
                Assert.That(double.Parse(last.Counters["observation_count"], System.Globalization.CultureInfo.InvariantCulture), Is.EqualTo(5.0 * perIteration).Within(0.01),
                    "the observation statistics counted all five iterations' observations");
                // Rewards of real transitions only (NextStep reset steps carry none): two more iterations' worth, less their resets.
                double before = double.Parse(checkpoint.Counters["return_count"], System.Globalization.CultureInfo.InvariantCulture);
                double after = double.Parse(last.Counters["return_count"], System.Globalization.CultureInfo.InvariantCulture);
                Assert.That(after - before, Is.InRange(2 * perIteration * 0.95, 2 * perIteration), "the reward statistics continued from their count");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Ppo_SameSeed_TrainsTheSamePolicy_OnSyncVectorEnvAndClusterVecEnv()
    {
        var options = new PpoOptions { TotalTimesteps = 4 * 128 * 3, Seed = 3 };
        using var local = Gym.MakeVec("CartPole-v1", 4, wrap: e => new RecordEpisodeStatistics(e));
        var a = Ppo.Train(local, options);
        var (cluster, _) = TestCluster.InProcess("CartPole-v1", [2, 2]);
        using (cluster)
        {
            var b = Ppo.Train(cluster, options);
            Assert.That(b.Policy.Parameters, Is.EqualTo(a.Policy.Parameters), "the same code and seed give the same weights through the cluster");
        }
    }

    [Test]
    public void Ppo_ContinuousActions_RunsAndKeepsFiniteLosses()
    {
        using var envs = Gym.MakeVec("Pendulum-v1", 1, wrap: e => new RecordEpisodeStatistics(e));
        var result = Ppo.Train(envs, PpoOptions.ContinuousDefaults with { TotalTimesteps = 2048 * 3, Seed = 1 });
        Assert.That(result.History, Has.Count.EqualTo(3));
        Assert.That(result.History.All(m => double.IsFinite(m.PolicyLoss) && double.IsFinite(m.ValueLoss) && double.IsFinite(m.Entropy)), Is.True);
        Assert.That(result.Policy.LogStd.ToArray(), Has.All.Not.EqualTo(0f), "the log-std is trained");
        Assert.That(result.ObservationStatistics, Is.Not.Null);
    }

    [Test]
    public void Ppo_BadOptions_AreNamed()
    {
        using var envs = Gym.MakeVec("CartPole-v1", 2);
        Assert.That(() => Ppo.Train(envs, new PpoOptions { NumMinibatches = 0 }), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("NumMinibatches"));
        using var disabled = Gym.MakeVec("CartPole-v1", 2, AutoresetMode.Disabled);
        Assert.That(() => Ppo.Train(disabled, new PpoOptions()), Throws.ArgumentException.With.Message.Contains("autoreset"));
    }
}
