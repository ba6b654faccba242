using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Learners.Impala;
using ClusterEnv.Sync;

namespace ClusterEnv.Tests.Cluster;

[NonParallelizable]
public class ElasticTests
{
    [Test]
    public void AKilledLocalWorker_IsReplaced_AndStreamingTrainingCarriesOn()
    {
        using var env = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 8, NumWorkers = 2, ReplaceLostWorkers = true });
        var firstPid = env.Pool!.ProcessOf("worker-001")!.Id;
        bool killed = false;
        var generationsSeen = new HashSet<int>();
        var r = Impala.Train(env, new ImpalaOptions { Seed = 3, TotalTimesteps = 150_000 }, SyncStrategy.Always, m =>
        {
            if (!killed && m.Update == 30)
            {
                killed = true;
                env.Pool!.ProcessOf("worker-001")!.Kill(); // a crash: no goodbye
            }
            generationsSeen.Add(env.WorkerGeneration(1));
        });
        Assert.That(killed, Is.True);
        Assert.That(r.History[^1].GlobalStep, Is.GreaterThanOrEqualTo(150_000), "the run finished its budget");
        TestContext.Out.WriteLine($"replaced in {env.ReplaceSeconds.Single():F2} s; final mean-20 {r.FinalMeanReturn20:F1}");
        Assert.That(env.WorkersLost, Is.EqualTo(1));
        Assert.That(env.WorkersReplaced, Is.EqualTo(1));
        Assert.That(env.ReplaceSeconds.Single(), Is.LessThan(30), "replaced and streaming again (a bound on failure, not a measured target)");
        Assert.That(env.WorkerGeneration(1), Is.EqualTo(1));
        Assert.That(env.Pool!.ProcessOf("worker-001")!.Id, Is.Not.EqualTo(firstPid));
        Assert.That(generationsSeen, Does.Contain(1), "training went on after the replacement took over");
        Assert.That(env.StreamedRollouts[1], Is.GreaterThan(0));
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
