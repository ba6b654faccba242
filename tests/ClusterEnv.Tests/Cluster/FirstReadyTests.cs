using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Envs;
using ClusterEnv.Vector;

namespace ClusterEnv.Tests.Cluster;

/// <summary>First-ready stepping (EnvPool's send/recv) on <see cref="ClusterVecEnv"/>: whole workers, first to answer first.</summary>
public class FirstReadyTests
{
    [OneTimeSetUp]
    public void Register() => TestEnvs.Register();

    [OneTimeTearDown]
    public void ReleaseHungEnvs() => TestEnvs.Unblock.Set();

    private static int[] AllIds(int n) => Enumerable.Range(0, n).ToArray();

    [Test]
    public void SendingEverySubEnv_AndReceivingThemAll_MatchesALocalVectorEnvStepForStep()
    {
        var (cluster, _) = TestCluster.InProcess("CartPole-v1", [2, 3]);
        using var envs = cluster;
        using var local = Gym.MakeVec("CartPole-v1", 5, wrap: e => new ClusterEnv.Wrappers.RecordEpisodeStatistics(e));
        var expected = local.Reset(seed: 7).Observations.ToArray();
        Assert.That(envs.Reset(seed: 7).Observations, Is.EqualTo(expected));
        var rng = new Random(3);
        var actions = new int[5];
        var byId = new int[5];
        int[] ids = AllIds(5);
        for (int t = 0; t < 60; t++)
        {
            // Actions in a scrambled id order: row k is sub-env ids[k].
            ids = ids.OrderBy(_ => rng.Next()).ToArray();
            for (int k = 0; k < 5; k++) actions[k] = byId[ids[k]] = rng.Next(2);
            envs.Send(actions, ids);
            Assert.That(envs.EnvsInFlight, Is.EqualTo(5));
            var want = local.Step(byId);
            var got = envs.Recv(batchSize: 5);
            Assert.That(got.Count, Is.EqualTo(5));
            Assert.That(got.WorkerCount, Is.EqualTo(2));
            Assert.That(got.EnvIds.Take(5).Order(), Is.EqualTo(AllIds(5)));
            for (int k = 0; k < 5; k++)
            {
                int id = got.EnvIds[k];
                Assert.That(got.Observations.AsSpan(k * 4, 4).ToArray(), Is.EqualTo(want.Observations.AsSpan(id * 4, 4).ToArray()), $"step {t}, sub-env {id}");
                Assert.That((got.Rewards[k], got.Terminated[k], got.Truncated[k]), Is.EqualTo((want.Rewards[id], want.Terminated[id], want.Truncated[id])));
                Assert.That(got.Info.TryGetEpisode(id, out var ep), Is.EqualTo(want.Info.TryGetEpisode(id, out var wantEp)));
                if (want.Info.TryGetEpisode(id, out _)) Assert.That((ep.Return, ep.Length), Is.EqualTo((wantEp.Return, wantEp.Length)));
            }
            ids = got.EnvIds.Take(got.Count).ToArray();
            Assert.That(envs.EnvsInFlight, Is.Zero);
        }
        // Nothing in flight: the lockstep API is usable again and continues the same episodes.
        Assert.That(envs.Step([1, 1, 1, 1, 1]).Observations, Is.EqualTo(local.Step([1, 1, 1, 1, 1]).Observations));
    }

    [Test]
    public void ASlowWorker_HoldsUpOnlyItsOwnSubEnvs()
    {
        // Worker 1 sleeps 400 ms a step; worker 0 1 ms. With a batch of one worker, worker 0 comes back again and again.
        var (cluster, _) = TestCluster.InProcess(TestEnvs.Slow, [2, 2], envArgs: w => new() { ["ms"] = w == 1 ? "400" : "1" });
        using var envs = cluster;
        envs.Reset(seed: 0);
        envs.Send(new int[4], AllIds(4));
        int fast = 0;
        bool slowSeen = false;
        while (!slowSeen)
        {
            var r = envs.Recv(batchSize: 2);
            Assert.That(r.Count, Is.EqualTo(2), "whole workers of two sub-envs");
            Assert.That(r.WorkerCount, Is.EqualTo(1));
            if (r.WorkerIndices[0] == 1)
            {
                Assert.That(r.EnvIds.Take(2), Is.EqualTo(new[] { 2, 3 }));
                slowSeen = true;
            }
            else
            {
                Assert.That(r.EnvIds.Take(2), Is.EqualTo(new[] { 0, 1 }));
                Assert.That(r.Rewards.Take(2), Is.EqualTo(new[] { 1.0, 1.0 }));
                fast++;
                envs.Send([0, 1], r.EnvIds.AsSpan(0, 2));
            }
        }
        Assert.That(fast, Is.GreaterThanOrEqualTo(5), "the fast worker stepped many times during one slow step");
        Assert.That(envs.EnvsInFlight, Is.EqualTo(2), "the fast worker's last step is still out");
        Assert.Throws<AlreadyPendingCallException>(() => envs.Step(new int[4]));
        // Reset waits for it and drops it.
        envs.Reset(seed: 1);
        Assert.That(envs.EnvsInFlight, Is.Zero);
        Assert.That(envs.Step(new int[4]).Rewards, Is.EqualTo(new[] { 1.0, 1.0, 1.0, 1.0 }));
    }

    [Test]
    public void BadSendsAndRecvs_AreRefusedByName()
    {
        var (cluster, _) = TestCluster.InProcess("CartPole-v1", [2, 2]);
        using var envs = cluster;
        Assert.Throws<ResetNeededException>(() => envs.Send(new int[4], AllIds(4)));
        envs.Reset(seed: 0);
        Assert.That(Assert.Throws<NoAsyncCallException>(() => envs.Recv(1))!.Message, Does.Contain("Send"));
        var partial = Assert.Throws<ArgumentException>(() => envs.Send([0], [2]))!;
        Assert.That(partial.Message, Does.Contain("whole workers").And.Contain("w1").And.Contain("2..3"));
        Assert.That(Assert.Throws<ArgumentException>(() => envs.Send([0, 0], [0, 0]))!.Message, Does.Contain("twice"));
        Assert.Throws<ArgumentOutOfRangeException>(() => envs.Send([0, 0], [0, 4]));
        Assert.That(Assert.Throws<ArgumentException>(() => envs.Send([0, 0, 0], [0, 1]))!.Message, Does.Contain("3 action values for 2"));
        Assert.Throws<ArgumentOutOfRangeException>(() => envs.Send([0, 2], [0, 1]), "out of the action space");
        Assert.Throws<ArgumentOutOfRangeException>(() => envs.Recv(0));
        Assert.That(envs.EnvsInFlight, Is.Zero, "nothing was sent by a refused Send");

        envs.Send([0, 1], [1, 0]);
        Assert.That(Assert.Throws<AlreadyPendingCallException>(() => envs.Send([0, 1], [0, 1]))!.Message, Does.Contain("Recv"));
        Assert.Throws<AlreadyPendingCallException>(() => envs.Step(new int[4]));
        Assert.Throws<AlreadyPendingCallException>(() => envs.GetAttr("gravity"));
        envs.Send([1, 1], [2, 3]); // the other worker may go while the first is out
        var r = envs.Recv(batchSize: 100); // more than in flight: everything sent
        Assert.That(r.Count, Is.EqualTo(4));
        Assert.That(Assert.Throws<NoAsyncCallException>(() => envs.Recv(1))!.Message, Does.Contain("no sub-env in flight"));
    }

    [Test]
    public void ASubEnvError_IsThrownByRecv_ThenResetRecovers()
    {
        TestEnvs.ThrowsLeft = 1;
        var (cluster, _) = TestCluster.InProcess(TestEnvs.Throwing, [2, 2], envArgs: w => w == 1 ? new() { ["fail"] = "true" } : []);
        using var envs = cluster;
        envs.Reset(seed: 0);
        var ids = AllIds(4);
        envs.Send(new int[4], ids);
        envs.Recv(4);
        envs.Send(new int[4], ids);
        envs.Recv(4);
        envs.Send(new int[4], ids);
        var ex = Assert.Throws<SubEnvException>(() =>
        {
            while (true) envs.Recv(2);
        })!;
        Assert.That((ex.WorkerId, ex.EnvIndex, ex.ErrorMessage), Is.EqualTo(("w1", 2, "sensor broke")));
        Assert.Throws<ResetNeededException>(() => envs.Send(new int[4], ids));
        envs.Reset(seed: 1);
        envs.Send(new int[4], ids);
        Assert.That(envs.Recv(4).Count, Is.EqualTo(4));
    }

    [Test]
    public void AHungWorker_FailsRecvByName_AfterStepTimeout_WhileTheOtherKeepsAnswering()
    {
        TestEnvs.NewHangGate(); // an earlier fixture may have released the gate for good
        var (cluster, _) = TestCluster.InProcess(TestEnvs.Hanging, [1, 1], stepTimeout: TimeSpan.FromSeconds(1), envArgs: w => w == 0 ? new() { ["hang"] = "true" } : []);
        using var envs = cluster;
        envs.Reset(seed: 0);
        envs.Send([0, 0], [0, 1]);
        int answered = 0;
        var ex = Assert.Throws<WorkerTimeoutException>(() =>
        {
            while (true)
            {
                var r = envs.Recv(1);
                Assert.That(r.EnvIds[0], Is.EqualTo(1), "only the healthy worker answers");
                answered++;
                envs.Send([0], [1]);
            }
        })!;
        Assert.That(answered, Is.GreaterThan(0));
        Assert.That(ex.WorkerIds, Is.EqualTo(new[] { "w0" }));
        Assert.That(ex.Message, Does.Contain("Recv").And.Contain("StepTimeout"));
        Assert.Throws<InvalidOperationException>(() => envs.Reset(seed: 0), "unusable after a hung worker");
    }
}

/// <summary>A worker process killed during first-ready stepping is replaced; its sub-envs come back truncated.</summary>
[NonParallelizable]
public class FirstReadyElasticTests
{
    [TestCase(false)]
    [TestCase(true)]
    public void AWorkerKilledWhileStepping_IsReplaced_AndItsSubEnvsComeBackTruncated(bool sharedMemory)
    {
        using var envs = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 4, NumWorkers = 2, ReplaceLostWorkers = true, Hub = new HubOptions { SharedMemory = sharedMemory } });
        envs.Reset(seed: 3);
        envs.Send(new int[4], [0, 1, 2, 3]);
        var victim = envs.Pool!.ProcessOf("worker-001")!;
        var killer = Task.Run(async () => { await Task.Delay(200); victim.Kill(); });
        bool seen = false;
        var sw = Stopwatch.StartNew();
        while (!seen && sw.Elapsed < TimeSpan.FromMinutes(2))
        {
            var r = envs.Recv(batchSize: 2);
            for (int k = 0; k < r.Count; k++)
            {
                if (r.EnvIds[k] < 2 || envs.Elastic.WorkersReplaced == 0 || !r.Truncated[k] || r.Rewards[k] != 0) continue;
                seen = true;
            }
            envs.Send(new int[r.Count], r.EnvIds.AsSpan(0, r.Count));
        }
        killer.Wait();
        Assert.That(seen, Is.True, "the lost worker's sub-envs came back truncated with reward 0");
        Assert.That(envs.Elastic.Generation(1), Is.EqualTo(1));
        // The replacement steps on: it answers again (worker 0 may answer many times first: the replacement is a
        // fresh process still compiling its step path, and first-ready returns whoever is ready).
        var workers = new HashSet<int>();
        sw.Restart();
        while (workers.Count < 2 && sw.Elapsed < TimeSpan.FromMinutes(1))
        {
            var r = envs.Recv(batchSize: 2);
            for (int w = 0; w < r.WorkerCount; w++) workers.Add(r.WorkerIndices[w]);
            envs.Send(new int[r.Count], r.EnvIds.AsSpan(0, r.Count));
        }
        Assert.That(workers, Is.EquivalentTo(new[] { 0, 1 }));
    }
}
