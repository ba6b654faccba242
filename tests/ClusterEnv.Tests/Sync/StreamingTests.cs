using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Policies;
using ClusterEnv.Rollouts;
using ClusterEnv.Sync;
using ClusterEnv.Tests.Cluster;

namespace ClusterEnv.Tests.Sync;

public class StreamingTests
{
    [OneTimeSetUp]
    public void RegisterTestEnvs() => TestEnvs.Register();

    private static (ClusterVecEnv Env, PolicySpec Spec, ActorCritic Policy) Start(int[] envs, string envId = "CartPole-v1", Func<int, Dictionary<string, string>>? envArgs = null,
        TimeSpan? stepTimeout = null)
    {
        var (env, _) = TestCluster.InProcess(envId, envs, envArgs: envArgs, stepTimeout: stepTimeout);
        var spec = PolicySpec.For(env.SingleObservationSpace, env.SingleActionSpace);
        var policy = new ActorCritic(spec, seed: 1);
        env.Reset(seed: 0);
        for (int w = 0; w < envs.Length; w++) env.Policies.Push(w, 1, spec, policy.Parameters);
        return (env, spec, policy);
    }

    [Test]
    public void Credit_BoundsTheRolloutsInFlight_AndTakingOneGrantsTheNext()
    {
        var (env, _, _) = Start([2, 3]);
        using (env)
        {
            var queue = new InMemoryTrajectoryQueue(64);
            using var source = new StreamingRolloutSource(env, steps: 4, credit: 2, queue: queue);
            // Nobody takes: each worker sends exactly its credit and then waits.
            var sw = Stopwatch.StartNew();
            while (queue.Count < 4 && sw.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(5);
            Thread.Sleep(300); // time enough for a fifth rollout if credit did not hold the workers back
            Assert.That(queue.Count, Is.EqualTo(4));
            Assert.That(env.Rollouts.StreamedRollouts, Is.EqualTo(new long[] { 2, 2 }));

            var got = new List<RolloutBatch>();
            while (got.Count < 10) source.Take(10, got);
            Assert.That(got.Select(b => b.WorkerId).Distinct().Order(), Is.EqualTo(new[] { "w0", "w1" }));
            Assert.That(got.Where(b => b.WorkerId == "w1").Select(b => b.NumEnvs), Is.All.EqualTo(3));
            // Each worker's rollouts come in order and continue the same episodes.
            foreach (var id in new[] { "w0", "w1" })
            {
                var mine = got.Where(b => b.WorkerId == id).ToArray();
                Assert.That(mine.Select(b => b.Index), Is.EqualTo(Enumerable.Range(0, mine.Length).Select(i => (long)i)));
                for (int j = 1; j < mine.Length; j++)
                {
                    var prev = mine[j - 1];
                    int n = prev.NumEnvs, m = prev.ObservationSize;
                    Assert.That(mine[j].Observations.AsSpan(0, n * m).ToArray(), Is.EqualTo(prev.Observations.AsSpan(prev.Steps * n * m, n * m).ToArray()));
                }
            }
            var sent = source.Stop();
            Assert.That(sent.Sum() - got.Count, Is.EqualTo(queue.Count), "every rollout sent was either taken or is still queued: none lost, none twice");
            Assert.That(sent.Sum() - got.Count, Is.LessThanOrEqualTo(4), "at most credit × workers were left in flight");
        }
    }

    [Test]
    public void CreditWindow_WidensWhileTheLearnerWaits_AndNarrowsWhenRolloutsPileUp()
    {
        // One worker, rollouts of at least 4 steps × 2 envs × 5 ms: a learner that takes at once waits for the next.
        var (env, _, _) = Start([2], TestEnvs.Slow);
        using (env)
        {
            var queue = new InMemoryTrajectoryQueue(64);
            // With credit 1 the worker runs out of credit after each rollout; the threshold of 0 counts any wait for
            // it (a real run ignores waits under 100 µs as noise).
            using var source = new StreamingRolloutSource(env, steps: 4, credit: 1, queue: queue, maxCredit: 3) { CreditWaitThresholdUs = 0 };
            var got = new List<RolloutBatch>();
            var sw = Stopwatch.StartNew();
            while (source.Widenings < 1 && sw.Elapsed < TimeSpan.FromSeconds(30)) source.Take(1, got);
            Assert.That(source.Widenings, Is.InRange(1, 2), "the learner waited while the worker waited for credit: its window grew, at most to 3");
            int window = env.Rollouts.CreditWindows[0];
            Assert.That(window, Is.InRange(2, 3));

            // Stop taking: the worker fills exactly its window, and no more.
            WaitUntilStill(queue);
            Assert.That(queue.Count, Is.EqualTo(window));
            Assert.That(env.Rollouts.StreamedRollouts.Sum() - got.Count, Is.EqualTo(window));

            // Widened to the maximum, it sends what the window allows and stops again at 3.
            while (env.Rollouts.WidenCredit("w0", maxCredit: 3)) { }
            Assert.That(env.Rollouts.WidenCredit("w0", maxCredit: 3), Is.False, "never beyond the maximum");
            WaitUntilStill(queue);
            Assert.That(queue.Count, Is.EqualTo(3));

            // A learner that takes one rollout at a time from a full queue, never finding it empty: once a whole window's
            // worth (3) has been taken since it last waited, and more wait than credit × workers (1), a taken rollout's
            // credit is kept back and the window narrows to 2; with 2 waiting, credit flows again, so it stays there.
            for (int i = 0; i < 6; i++)
            {
                WaitUntilStill(queue);
                source.Take(1, got);
            }
            WaitUntilStill(queue);
            Assert.That(env.Rollouts.CreditWindows, Is.EqualTo(new[] { 2 }));
            Assert.That(queue.Count, Is.EqualTo(2));
            var sent = source.Stop();
            Assert.That(sent.Sum() - got.Count, Is.EqualTo(queue.Count), "none lost, none twice");
        }
    }

    // Waits until the queue has not grown for half a second (each rollout takes 40 ms or more).
    private static void WaitUntilStill(InMemoryTrajectoryQueue queue)
    {
        var sw = Stopwatch.StartNew();
        long last = -1, since = 0;
        while (sw.ElapsedMilliseconds - since < 500 && sw.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (queue.Count != last) (last, since) = (queue.Count, sw.ElapsedMilliseconds);
            Thread.Sleep(10);
        }
    }

    [Test]
    public void APushMidStream_IsAppliedAtTheNextRollout_AndAcknowledged()
    {
        var (env, spec, _) = Start([2, 2]);
        using (env)
        {
            using var source = new StreamingRolloutSource(env, steps: 50, credit: 1);
            var got = new List<RolloutBatch>();
            source.Take(1, got);
            var v2 = new ActorCritic(spec, seed: 2);
            for (int w = 0; w < 2; w++) env.Policies.Push(w, 2, spec, v2.Parameters);
            // Keep taking: version 2 shows up from some rollout on, never mid-rollout, and is acknowledged.
            var sw = Stopwatch.StartNew();
            while (!(got.Count(b => b.PolicyVersion[0] == 2 && b.WorkerId == "w0") > 0 && got.Count(b => b.PolicyVersion[0] == 2 && b.WorkerId == "w1") > 0)
                   && sw.Elapsed < TimeSpan.FromSeconds(60))
                source.Take(2, got);
            foreach (var b in got) Assert.That(b.PolicyVersion.Distinct().Count(), Is.EqualTo(1), "one version per rollout");
            foreach (var id in new[] { "w0", "w1" })
            {
                var versions = got.Where(b => b.WorkerId == id).Select(b => b.PolicyVersion[0]).ToArray();
                Assert.That(versions, Is.Ordered, "once applied, the new version stays");
                Assert.That(versions.Last(), Is.EqualTo(2UL));
            }
            Assert.That(env.Policies.States.Select(p => p.ActiveVersion), Is.All.EqualTo(2UL));
            // The rollouts of version 2 are acted by version 2's weights: the behaviour log-probs match them.
            var b2 = got.Last(b => b.PolicyVersion[0] == 2);
            var head = v2.Actor.Forward(b2.Observations.AsSpan(0, b2.NumEnvs * b2.ObservationSize), b2.NumEnvs).ToArray();
            for (int i = 0; i < b2.NumEnvs; i++)
                Assert.That(b2.LogProbs[i], Is.EqualTo(ClusterEnv.Nn.Categorical.LogProb(head.AsSpan(i * 2, 2), b2.DiscreteActions[i])).Within(1e-5));
            source.Stop();
            // After the stream, the vector env steps again once reset.
            Assert.Throws<ClusterEnv.Envs.ResetNeededException>(() => env.Step(new int[4]));
            env.Reset(seed: 1);
            Assert.DoesNotThrow(() => env.Step(new int[4]));
        }
    }

    [Test]
    public void WhileStreaming_StepsAreRefusedWithTheFix()
    {
        var (env, _, _) = Start([1]);
        using (env)
        {
            using var source = new StreamingRolloutSource(env, steps: 8);
            var ex = Assert.Throws<InvalidOperationException>(() => env.Step(new int[1]))!;
            Assert.That(ex.Message, Does.Contain("stop the stream"));
        }
    }

    [Test]
    public void StreamingWithoutAPolicy_IsRefusedNamingTheWorker()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [1]);
        using (env)
        {
            env.Reset(seed: 0);
            var ex = Assert.Throws<InvalidOperationException>(() => new StreamingRolloutSource(env, steps: 8))!;
            Assert.That(ex.Message, Does.Contain("worker 'w0'").And.Contain("Policies.Push"));
        }
    }

    [Test]
    public void AWorkerLostMidStream_IsNamed_AndNoPartialRolloutReachesTheLearner()
    {
        using var cancelWorker1 = new CancellationTokenSource();
        int port = TestCluster.FreePort();
        var hub = new Uri($"http://127.0.0.1:{port}");
        // Two workers; the second one's process "dies" (its service is cancelled) mid-stream.
        var w0 = Task.Run(async () =>
        {
            await using var w = new Worker.WorkerService(new Worker.WorkerOptions { Hub = hub, EnvId = "CartPole-v1", NumEnvs = 2, WorkerId = "w0", Token = "t" });
            await w.RunAsync();
        });
        var w1 = Task.Run(async () =>
        {
            await using var w = new Worker.WorkerService(new Worker.WorkerOptions { Hub = hub, EnvId = "CartPole-v1", NumEnvs = 2, WorkerId = "w1", Token = "t" });
            await w.RunAsync(cancelWorker1.Token);
        });
        using var env = new ClusterVecEnv(new ClusterOptions
        {
            EnvId = "CartPole-v1", NumWorkers = 2, LocalWorkers = false, Hub = new HubOptions { Port = port, Token = "t" }, ConnectTimeout = TimeSpan.FromSeconds(20),
        });
        var spec = PolicySpec.For(env.SingleObservationSpace, env.SingleActionSpace);
        var policy = new ActorCritic(spec, seed: 1);
        env.Reset(seed: 0);
        for (int w = 0; w < 2; w++) env.Policies.Push(w, 1, spec, policy.Parameters);
        using var source = new StreamingRolloutSource(env, steps: 16, credit: 2);
        var got = new List<RolloutBatch>();
        source.Take(4, got);
        cancelWorker1.Cancel();
        var ex = Assert.Throws<WorkerLostException>(() =>
        {
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(60)) source.Take(4, got);
        })!;
        Assert.That(ex.WorkerId, Is.EqualTo("w1"));
        // Everything that reached the learner is whole: T steps of every sub-env, with a final observation row.
        foreach (var b in got)
        {
            Assert.That(b.Steps, Is.EqualTo(16));
            Assert.That(b.Observations.AsSpan(16 * 2 * 4, 8).ToArray(), Is.Not.All.EqualTo(0f));
        }
    }

    [Test]
    public void AWorkerHungInItsEnvMidStream_IsNamed_ByTheNoProgressDeadline()
    {
        // Test/Slow-v0 sleeps per step; with 1 s per step and a 1 s StepTimeout, the worker is silent too long.
        var (env, _, _) = Start([1], TestEnvs.Slow, envArgs: _ => new() { ["ms"] = "3000" }, stepTimeout: TimeSpan.FromSeconds(1));
        using (env)
        {
            using var source = new StreamingRolloutSource(env, steps: 4, credit: 1);
            var ex = Assert.Throws<WorkerTimeoutException>(() => source.Take(1, []))!;
            Assert.That(ex.WorkerIds, Is.EqualTo(new[] { "w0" }));
            Assert.That(ex.Message, Does.Contain("no rollout and no progress"));
        }
    }
}

public class PolicyNormalizerTests
{
    [Test]
    public void AWorkerActsWithTheObservationStatisticsShippedWithItsWeights()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [3]);
        using (env)
        {
            var spec = PolicySpec.For(env.SingleObservationSpace, env.SingleActionSpace);
            var policy = new ActorCritic(spec, seed: 4) { Normalizer = new ObservationNormalizer([0.1f, -0.2f, 0.05f, 0.3f], [0.01f, 2f, 0.04f, 3f], clip: 5) };
            env.Reset(seed: 0);
            env.Policies.Push(0, 1, spec, policy.Parameters, policy.Normalizer);
            var b = env.Rollouts.Collect(6);
            // The recorded observations are raw; the behaviour log-probs and values are those of the normalised ones.
            var raw = b.Observations.AsSpan(0, 6 * 3 * 4).ToArray();
            var norm = new float[raw.Length];
            policy.Normalizer.Normalize(raw, norm);
            var head = policy.Actor.Forward(norm, 18).ToArray();
            var values = new float[18];
            policy.Value(raw, 18, values);
            for (int j = 0; j < 18; j++)
            {
                Assert.That(b.LogProbs[j], Is.EqualTo(ClusterEnv.Nn.Categorical.LogProb(head.AsSpan(j * 2, 2), b.DiscreteActions[j])).Within(1e-5));
                Assert.That(b.Values[j], Is.EqualTo(values[j]).Within(1e-5));
            }
            var plain = new ActorCritic(spec, seed: 4);
            var plainHead = plain.Actor.Forward(raw, 18).ToArray();
            Assert.That(Enumerable.Range(0, 18).Count(j => Math.Abs(plainHead[j * 2] - head[j * 2]) > 1e-4), Is.GreaterThan(9), "the statistics made a difference");
        }
    }

    [Test]
    public void BadStatistics_AreRefusedByTheWorker_AndItKeepsItsPolicy()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [1]);
        using (env)
        {
            var spec = PolicySpec.For(env.SingleObservationSpace, env.SingleActionSpace);
            var policy = new ActorCritic(spec, seed: 4);
            env.Reset(seed: 0);
            env.Policies.Push(0, 1, spec, policy.Parameters);
            env.Policies.WaitForAcks();
            Assert.Throws<ArgumentException>(() => new ObservationNormalizer([0f, 0f], [1f, 1f], 5).Normalize(new float[3], new float[3]));
            var ex = Assert.Throws<ArgumentException>(() => env.Policies.Push(0, 2, spec, policy.Parameters, new ObservationNormalizer([0f, 0f], [1f, 1f], 5)))!;
            Assert.That(ex.Message, Does.Contain("2 elements").And.Contain("4"));
            Assert.That(env.Policies.States[0].ActiveVersion, Is.EqualTo(1UL));
        }
    }

    [Test]
    public void PpoOnWorkers_WithNormalizedObservations_Learns()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [2, 2]);
        using (env)
        {
            var r = ClusterEnv.Learners.Ppo.Ppo.TrainOnWorkers(env, new ClusterEnv.Learners.Ppo.PpoOptions { Seed = 1, TotalTimesteps = 60_000, NormalizeObservations = true },
                SyncStrategy.Always);
            Assert.That(r.ObservationStatistics, Is.Not.Null);
            Assert.That(r.Policy.Normalizer, Is.Not.Null);
            Assert.That(r.ObservationStatistics!.Count, Is.GreaterThan(50_000));
            Assert.That(r.FinalMeanReturn20, Is.GreaterThan(60), "learning happened (random is about 22)");
        }
    }
}
