using ClusterEnv.Transport;
using System.Collections.Concurrent;
using System.Diagnostics;
using ClusterEnv.Cluster;

namespace ClusterEnv.Tests.Cluster;

public class LauncherTests
{
    [Test]
    public async Task ALocalPool_ReplacesALostWorker_WithAFreshProcessUnderTheSameId()
    {
        await using var hub = await ClusterHub.StartAsync(new HubOptions { Token = "t" });
        var registered = new ConcurrentQueue<(string Id, int Pid)>();
        hub.SetAdmission(w => { registered.Enqueue((w.Id, w.Registration.Pid)); return null; });
        using var pool = new LocalWorkerPool();
        pool.Start(new WorkerLaunch(hub.Url, "CartPole-v1", [2], "t", [], new Dictionary<string, string>()));
        Assert.That(pool.WorkerIds, Is.EqualTo(new[] { "worker-000" }));
        Assert.That(pool.Description, Is.EqualTo("local pool of 1 worker process"));
        Wait(() => registered.Count == 1, "the first worker registers");
        int firstPid = registered.First().Pid;

        Assert.That(pool.Replace("worker-000"), Is.True);
        Assert.That(pool.Replace("worker-042"), Is.False, "an id it never started");
        Wait(() => registered.Count == 2, "the replacement registers");
        var second = registered.Last();
        Assert.That(second.Id, Is.EqualTo("worker-000"));
        Assert.That(second.Pid, Is.Not.EqualTo(firstPid));
        Assert.That(Process.GetProcesses().Any(p => p.Id == firstPid && !p.HasExited), Is.False, "the lost one is gone");
        Assert.That(pool.ProcessOf("worker-000")!.Id, Is.EqualTo(second.Pid));
    }

    [Test]
    public void AVectorEnv_StartsTheLauncherItIsGiven_AndStopsIt()
    {
        var launcher = new RecordingLauncher();
        var workers = new List<Task>();
        int port = TestCluster.FreePort();
        launcher.OnStart = launch => workers.Add(Task.Run(async () =>
        {
            await using var w = new Worker.WorkerService(new Worker.WorkerOptions { Hub = launch.Hub, EnvId = launch.EnvId, NumEnvs = launch.EnvsPerWorker[0], WorkerId = "rec-0", Token = launch.Token });
            await w.RunAsync();
        }));
        using (var env = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 3, NumWorkers = 1, Launcher = launcher, Hub = new HubOptions { Port = port } }))
        {
            Assert.That(launcher.Launch!.EnvsPerWorker, Is.EqualTo(new[] { 3 }));
            Assert.That(launcher.Launch.Token, Is.Not.Null.And.Not.Empty, "a launcher that starts workers gets a fresh token to hand them");
            Assert.That(env.Workers.Single().WorkerId, Is.EqualTo("rec-0"));
            env.Reset(seed: 0);
        }
        Assert.That(launcher.Stopped, Is.True);
        Assert.That(launcher.Disposed, Is.True);
    }

    private sealed class RecordingLauncher : IWorkerLauncher
    {
        public Action<WorkerLaunch>? OnStart;
        public WorkerLaunch? Launch;
        public bool Stopped, Disposed;
        public string Description => "recording";
        public IReadOnlyList<string> WorkerIds => ["rec-0"];
        public void Start(WorkerLaunch launch) { Launch = launch; OnStart?.Invoke(launch); }
        public void ThrowIfAnyExited() { }
        public string? Describe(string workerId) => null;
        public bool Replace(string workerId) => false;
        public void Stop(TimeSpan timeout) => Stopped = true;
        public void Dispose() => Disposed = true;
    }

    private static void Wait(Func<bool> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(60)) Assert.Fail($"Timed out waiting until {what}.");
            Thread.Sleep(20);
        }
    }
}
