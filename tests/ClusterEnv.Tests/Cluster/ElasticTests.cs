using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Learners.Impala;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Sync;

namespace ClusterEnv.Tests.Cluster;

[NonParallelizable]
public class ElasticTests
{
    // sharedMemory: the workers talk to the hub through shared-memory channels (HubOptions.SharedMemory); the gRPC
    // stream that remains tells the loss, and the replacement gets a channel of its own.
    [TestCase(false)]
    [TestCase(true)]
    public void AKilledLocalWorker_IsReplaced_AndStreamingTrainingCarriesOn(bool sharedMemory)
    {
        using var env = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 8, NumWorkers = 2, ReplaceLostWorkers = true, Hub = new HubOptions { SharedMemory = sharedMemory } });
        var firstPid = env.Pool!.ProcessOf("worker-001")!.Id;
        bool killed = false;
        long streamedAtReplacement = -1;
        int updatesAfter = 0;
        using var stop = new CancellationTokenSource();
        // The run ends once the replacement has streamed for a while, not at a fixed budget: the surviving worker alone
        // can finish any budget before a new process registers on a loaded machine.
        var r = Impala.Train(env, new ImpalaOptions { Seed = 3, TotalTimesteps = 20_000_000 }, SyncStrategy.Always, m =>
        {
            if (!killed && m.Update == 30)
            {
                killed = true;
                env.Pool!.ProcessOf("worker-001")!.Kill(); // a crash: no goodbye
            }
            if (env.Elastic.WorkersReplaced == 1 && streamedAtReplacement < 0) streamedAtReplacement = env.Rollouts.StreamedRollouts[1];
            if (streamedAtReplacement >= 0 && env.Rollouts.StreamedRollouts[1] > streamedAtReplacement && ++updatesAfter >= 20) stop.Cancel();
        }, cancellationToken: stop.Token);
        Assert.That(killed, Is.True);
        Assert.That(r.Stopped, Is.True, "stopped by the test after the replacement streamed, within the budget");
        TestContext.Out.WriteLine($"replaced in {env.Elastic.ReplaceSeconds.Single():F2} s; {r.History[^1].GlobalStep} steps; final mean-20 {r.FinalMeanReturn20:F1}");
        Assert.That(env.Elastic.WorkersLost, Is.EqualTo(1));
        Assert.That(env.Elastic.WorkersReplaced, Is.EqualTo(1));
        Assert.That(env.Elastic.ReplaceSeconds.Single(), Is.LessThan(30), "replaced and streaming again (a bound on failure, not a measured target)");
        Assert.That(env.Elastic.Generation(1), Is.EqualTo(1));
        Assert.That(env.Pool!.ProcessOf("worker-001")!.Id, Is.Not.EqualTo(firstPid));
        Assert.That(env.Rollouts.StreamedRollouts[1], Is.GreaterThan(streamedAtReplacement), "the replacement streamed and training learned from it");
    }

    [Test]
    public void WithoutReplacement_ALostWorkerStillEndsTheRunByName()
    {
        using var env = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 4, NumWorkers = 2 });
        var ex = Assert.Throws<WorkerLostException>(() => Impala.Train(env, new ImpalaOptions { Seed = 3, TotalTimesteps = 2_000_000 }, SyncStrategy.Always, m =>
        {
            if (m.Update == 5) env.Pool!.ProcessOf("worker-000")!.Kill();
        }))!;
        Assert.That(ex.WorkerId, Is.EqualTo("worker-000"));
    }
}

[NonParallelizable]
public class LockstepElasticTests
{
    [TestCase(false)]
    [TestCase(true)]
    public void ALocalWorkerKilledBetweenSteps_IsReplaced_ItsEnvsReportTruncated_AndSteppingGoesOn(bool sharedMemory)
    {
        using var env = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 4, NumWorkers = 2, ReplaceLostWorkers = true, Hub = new HubOptions { SharedMemory = sharedMemory } });
        env.Reset(seed: 1);
        int[] actions = [0, 1, 0, 1];
        for (int t = 0; t < 5; t++) env.Step(actions);
        var victim = env.Pool!.ProcessOf("worker-001")!;
        victim.Kill();
        victim.WaitForExit();
        int interruptedAt = -1;
        for (int t = 0; t < 400 && interruptedAt < 0; t++)
        {
            var r = env.Step(actions);
            if (r.Truncated[2] && r.Truncated[3] && r.Rewards[2] == 0 && r.Rewards[3] == 0) interruptedAt = t;
            if (interruptedAt < 0) Assert.That(env.Elastic.Generation(1), Is.EqualTo(0), "the replacement is reported the step it takes over");
        }
        Assert.That(interruptedAt, Is.GreaterThanOrEqualTo(0), "the lost worker's envs reported their episodes cut short");
        Assert.That(env.Elastic.WorkersLost, Is.EqualTo(1));
        Assert.That(env.Elastic.WorkersReplaced, Is.EqualTo(1));
        Assert.That(env.Elastic.Generation(1), Is.EqualTo(1));
        // The replacement steps like any worker: its observations move and episodes run to their end.
        var before = env.Step(actions).Observations.ToArray();
        var after = env.Step(actions).Observations;
        Assert.That(after.AsSpan(2 * 4, 8).ToArray(), Is.Not.EqualTo(before.AsSpan(2 * 4, 8).ToArray()));
        TestContext.Out.WriteLine($"replaced in {env.Elastic.ReplaceSeconds.Single():F2} s");
    }

    [Test]
    public void AGradientWorkerKilledMidRequest_IsReplaced_AndItsSlotIsAskedAgain()
    {
        using var env = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 2, NumWorkers = 2, ReplaceLostWorkers = true });
        var spec = ClusterEnv.Policies.PolicySpec.For(env.SingleObservationSpace, env.SingleActionSpace, [8]);
        var point = new ClusterEnv.Policies.ActorCritic(spec, 1).Parameters.ToArray();
        var settings = new ClusterEnv.Policies.GradientSettings(Episodes: 4000, Horizon: 500); // long enough to be killed mid-request
        var quick = settings with { Episodes = 1 };
        env.Gradients.Request(0, 1, spec, point, quick);
        env.Gradients.Request(1, 1, spec, point, settings);
        env.Pool!.ProcessOf("worker-001")!.Kill();
        GradientReply? replaced = null, fromZero = null;
        var deadline = Stopwatch.StartNew();
        while ((replaced is null || fromZero is null) && deadline.Elapsed < TimeSpan.FromMinutes(2))
        {
            if (!env.Gradients.Take(TimeSpan.FromMilliseconds(200), out var g)) continue;
            if (g.WorkerIndex == 1) replaced = g;
            else fromZero = g;
        }
        Assert.That(fromZero?.Gradient, Has.Length.EqualTo(point.Length), "the other worker answered meanwhile");
        Assert.That(replaced, Is.Not.Null, "the lost worker's slot was reported");
        Assert.That(replaced!.Replaced, Is.True);
        Assert.That(replaced.Gradient, Is.Empty);
        Assert.That(env.Elastic.Generation(1), Is.EqualTo(1));
        env.Gradients.Request(1, 2, spec, point, quick);
        Assert.That(env.Gradients.Take(TimeSpan.FromMinutes(1), out var again), Is.True);
        Assert.That((again.WorkerIndex, again.Version, again.Replaced, again.Error), Is.EqualTo((1, 2UL, false, (string?)null)), "the replacement computes gradients");
        Assert.That(env.Gradients.Outstanding, Is.Zero);
    }

    [Test]
    public void AWorkerLostDuringAStep_IsReplacedWithinThatStep()
    {
        using var env = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 4, NumWorkers = 2, ReplaceLostWorkers = true });
        env.Reset(seed: 2);
        var victim = env.Pool!.ProcessOf("worker-000")!;
        int[] actions = [1, 1, 1, 1];
        // Kill it while steps are in flight; whichever step meets the loss waits for the replacement and reports it.
        var killer = Task.Run(async () => { await Task.Delay(300); victim.Kill(); });
        bool seen = false;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!seen && clock.Elapsed < TimeSpan.FromMinutes(1)) // by time, not steps: over shared memory 5,000 steps take 0.1 s
        {
            var r = env.Step(actions);
            seen = env.Elastic.WorkersReplaced == 1;
            if (seen) Assert.That(r.Truncated[0] && r.Truncated[1] && r.Rewards[0] == 0, Is.True, "reported in the step that waited for it");
        }
        killer.Wait();
        Assert.That(seen, Is.True);
        env.Step(actions);
    }

    [Test]
    public void PpoOnWorkers_AWorkerKilledMidRun_IsReplaced_ItsReplacementSuppliesItsRows_AndTrainingFinishesItsBudget()
    {
        using var env = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 4, NumWorkers = 2, ReplaceLostWorkers = true });
        bool killed = false;
        var options = new PpoOptions { Seed = 1, TotalTimesteps = 8 * 4 * 128 };
        var r = Ppo.TrainOnWorkers(env, options, SyncStrategy.KlThreshold(0.01, 4), m =>
        {
            if (killed || m.Iteration != 3) return;
            killed = true;
            env.Pool!.ProcessOf("worker-001")!.Kill(); // a crash before or during the next collection
        });
        Assert.That(killed, Is.True);
        Assert.That(r.History, Has.Count.EqualTo(8), "every iteration ran");
        Assert.That(env.Elastic.WorkersLost, Is.EqualTo(1));
        Assert.That(env.Elastic.WorkersReplaced, Is.EqualTo(1));
        Assert.That(env.Elastic.Generation(1), Is.EqualTo(1));
        Assert.That(env.Policies.States[1].ActiveVersion, Is.GreaterThan(0UL), "the replacement acts with a pushed policy");
        Assert.That(r.History[^1].GlobalStep, Is.EqualTo(8 * 4 * 128));
    }

    [Test]
    public void ALostExternalWorker_ThatNobodyReplaces_FailsTheNextStep_ByName_AfterReplaceTimeout()
    {
        int port = TestCluster.FreePort();
        var hub = new Uri($"http://127.0.0.1:{port}");
        using var stopA = new CancellationTokenSource();
        using var stopB = new CancellationTokenSource();
        var a = Task.Run(() => new ClusterEnv.Worker.WorkerService(new ClusterEnv.Worker.WorkerOptions { Hub = hub, EnvId = "CartPole-v1", NumEnvs = 2, WorkerId = "a" }).RunAsync(stopA.Token));
        var b = Task.Run(() => new ClusterEnv.Worker.WorkerService(new ClusterEnv.Worker.WorkerOptions { Hub = hub, EnvId = "CartPole-v1", NumEnvs = 2, WorkerId = "b" }).RunAsync(stopB.Token));
        using var env = new ClusterVecEnv(new ClusterOptions
        {
            EnvId = "CartPole-v1", NumWorkers = 2, LocalWorkers = false, Hub = new HubOptions { Port = port }, ConnectTimeout = TimeSpan.FromSeconds(30),
            ReplaceLostWorkers = true, ReplaceTimeout = TimeSpan.FromSeconds(1),
        });
        env.Reset(seed: 3);
        env.Step([0, 0, 0, 0]);
        stopB.Cancel();
        try { b.Wait(TimeSpan.FromSeconds(10)); } catch (AggregateException) { }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var ex = Assert.Throws<WorkerLostException>(() =>
        {
            for (int t = 0; t < 100_000; t++) env.Step([0, 0, 0, 0]);
        })!;
        Assert.That(ex.WorkerId, Is.EqualTo("b"));
        Assert.That(ex.Message, Does.Contain("no replacement registered within 1 s"));
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)));
        stopA.Cancel();
    }
}
