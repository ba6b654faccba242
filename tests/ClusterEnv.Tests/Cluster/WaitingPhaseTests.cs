using System.Collections.Concurrent;
using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Worker;
using Grpc.Core;

namespace ClusterEnv.Tests.Cluster;

public class WaitingPhaseTests
{
    [Test]
    public void WithPortZero_TheHubWritesItsUrlFirst_WorkersFindIt_AndEachStepOfTheWaitIsSaid()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"clusterenv-url-{Guid.NewGuid():N}");
        string urlFile = Path.Combine(dir, "hub.url");
        var lines = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        // The "job script": waits for the URL file, then starts two workers and one with a wrong token.
        var script = Task.Run(async () =>
        {
            while (!File.Exists(urlFile)) await Task.Delay(20, stop.Token);
            var hub = new Uri(File.ReadAllText(urlFile).Trim());
            var rogue = new WorkerService(new WorkerOptions { Hub = hub, EnvId = "CartPole-v1", WorkerId = "rogue", Token = "wrong" });
            try { await rogue.RunAsync(stop.Token); } catch (RpcException) { }
            var workers = new[] { "a", "b" }.Select(id => Task.Run(async () =>
            {
                await using var w = new WorkerService(new WorkerOptions { Hub = hub, EnvId = "CartPole-v1", NumEnvs = 2, WorkerId = id, Token = "t" });
                await w.RunAsync(stop.Token);
            })).ToArray();
            await Task.WhenAll(workers);
        });
        try
        {
            using var env = new ClusterVecEnv(new ClusterOptions
            {
                EnvId = "CartPole-v1", NumWorkers = 2, LocalWorkers = false, Hub = new HubOptions { Port = 0, Token = "t" },
                HubUrlFile = urlFile, Progress = lines.Enqueue, ConnectTimeout = TimeSpan.FromSeconds(30),
            });
            Assert.That(File.ReadAllText(urlFile).Trim(), Is.EqualTo(env.Hub.Url.ToString().TrimEnd('/')));
            Assert.That(env.Hub.Url.Port, Is.Not.EqualTo(0));
            Assert.That(env.NumEnvs, Is.EqualTo(4));
            var said = lines.ToArray();
            Assert.That(said[0], Does.StartWith($"hub listening at {env.Hub.Url}").And.Contain("2 worker(s) of CartPole-v1"));
            Assert.That(said, Has.Some.Contains("refused worker 'rogue'").And.Some.Contains("Unauthenticated"));
            Assert.That(said, Has.Some.Contains("worker 'a' registered").And.Some.Contains("of 2"));
            Assert.That(said.Last(), Does.Contain("2 of 2"));
            Assert.That(Directory.GetFiles(dir), Has.Length.EqualTo(1), "no temporary file is left beside the URL");
        }
        finally
        {
            stop.Cancel();
            try { script.Wait(TimeSpan.FromSeconds(10)); } catch (AggregateException) { }
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void AWorkerThatRegistersAndDiesBeforeTheOthersCome_IsNamedAtOnce_NotAfterTheTimeout()
    {
        int port = TestCluster.FreePort();
        var hub = new Uri($"http://127.0.0.1:{port}");
        using var kill = new CancellationTokenSource();
        var early = Task.Run(async () =>
        {
            await using var w = new WorkerService(new WorkerOptions { Hub = hub, EnvId = "CartPole-v1", WorkerId = "early", Token = "t", ConnectTimeout = TimeSpan.FromSeconds(20) });
            await w.RunAsync(kill.Token);
        });
        var lines = new ConcurrentQueue<string>();
        var killer = Task.Run(async () =>
        {
            while (!lines.Any(l => l.Contains("'early' registered"))) await Task.Delay(10);
            kill.Cancel(); // the worker's process "dies" after registering; the second worker never comes
        });
        var sw = Stopwatch.StartNew();
        var ex = Assert.Throws<WorkerLostException>(() => new ClusterVecEnv(new ClusterOptions
        {
            EnvId = "CartPole-v1", NumWorkers = 2, LocalWorkers = false, Hub = new HubOptions { Port = port, Token = "t" },
            Progress = lines.Enqueue, ConnectTimeout = TimeSpan.FromSeconds(60),
        }))!;
        Assert.That(ex.WorkerId, Is.EqualTo("early"));
        Assert.That(ex.Message, Does.Contain("registered and then its stream ended"));
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "named well before the 60 s ConnectTimeout");
        killer.Wait(TimeSpan.FromSeconds(5));
    }
}
