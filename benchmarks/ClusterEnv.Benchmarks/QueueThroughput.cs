using System.CommandLine;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using ClusterEnv.Cluster;
using ClusterEnv.CommandLine;
using ClusterEnv.Learners.Queues;
using ClusterEnv.Policies;
using ClusterEnv.Rollouts;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// Streaming workers through each trajectory queue, the same workers and policy in one run: env steps per second the
/// learner can take (it takes and gives back, no learning, so the queue is on the critical path). Redis is the one at
/// --redis, else CLUSTERENV_REDIS, else a redis-server this command starts from PATH. One JSON line per queue.
/// </summary>
public static class QueueThroughput
{
    public static Command Command()
    {
        var queues = Cli.List<string>("--queue", "queues to measure: memory, redis", "memory,redis");
        var workers = Cli.Option("--workers", "worker processes", 2).AtLeast(1);
        var envs = Cli.Option("--envs-per-worker", "sub-envs per worker", 64).AtLeast(1);
        var steps = Cli.Option("--rollout-length", "rollout length T (steps per sub-env)", 20).AtLeast(1);
        var seconds = Cli.Option("--seconds", "seconds per queue", 5.0).Positive();
        var redis = Cli.Option<string?>("--redis", "Redis endpoint host:port (default: CLUSTERENV_REDIS, or a redis-server started here)");
        var command = new Command("queue-throughput", "env steps/s through the in-memory and the Redis trajectory queue, same streaming workers")
        {
            queues, workers, envs, steps, seconds, redis,
        };
        command.SetAction(p => Run(p.GetValue(queues)!, p.GetValue(workers), p.GetValue(envs), p.GetValue(steps), p.GetValue(seconds), p.GetValue(redis)));
        return command;
    }

    private static void Run(string[] queues, int workers, int envsPerWorker, int steps, double seconds, string? redisEndpoint)
    {
        Process? ownRedis = null;
        try
        {
            foreach (var kind in queues)
            {
                ITrajectoryQueue queue;
                if (kind == "memory") queue = new InMemoryTrajectoryQueue(workers * 2);
                else if (kind == "redis")
                {
                    redisEndpoint ??= Environment.GetEnvironmentVariable("CLUSTERENV_REDIS");
                    if (redisEndpoint is null) (ownRedis, redisEndpoint) = StartRedis();
                    var rq = new RedisTrajectoryQueue(redisEndpoint, $"clusterenv-bench:{Environment.ProcessId}");
                    rq.Clear();
                    queue = rq;
                }
                else throw new ArgumentException($"Unknown queue '{kind}'; use memory or redis.");
                using var cluster = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = workers * envsPerWorker, NumWorkers = workers });
                var spec = PolicySpec.For(cluster.SingleObservationSpace, cluster.SingleActionSpace);
                var policy = new ActorCritic(spec, seed: 1);
                cluster.Reset(seed: 1);
                for (int w = 0; w < workers; w++) cluster.Policies.Push(w, 1, spec, policy.Parameters);
                cluster.Policies.WaitForAcks();
                using (queue)
                using (var source = new StreamingRolloutSource(cluster, steps, credit: 2, queue))
                {
                    var taken = new List<RolloutBatch>();
                    // Warm up, then measure.
                    var clock = Stopwatch.StartNew();
                    while (clock.Elapsed.TotalSeconds < 1) { taken.Clear(); source.Take(4, taken); foreach (var b in taken) source.Return(b); }
                    long envSteps = 0;
                    clock.Restart();
                    while (clock.Elapsed.TotalSeconds < seconds)
                    {
                        taken.Clear();
                        source.Take(4, taken);
                        foreach (var b in taken)
                        {
                            envSteps += (long)b.Steps * b.NumEnvs;
                            source.Return(b);
                        }
                    }
                    double elapsed = clock.Elapsed.TotalSeconds;
                    source.Stop();
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        bench = "queue-throughput", queue = kind, description = queue.Description, workers, envs_per_worker = envsPerWorker, rollout_steps = steps,
                        env_steps_per_sec = Math.Round(envSteps / elapsed), rollouts_per_sec = Math.Round(envSteps / elapsed / (steps * envsPerWorker), 1),
                    }));
                }
            }
        }
        finally
        {
            if (ownRedis is { HasExited: false }) ownRedis.Kill();
        }
    }

    private static (Process, string) StartRedis()
    {
        int port;
        using (var l = new TcpListener(System.Net.IPAddress.Loopback, 0)) { l.Start(); port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port; }
        var psi = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--bind", "127.0.0.1", "--port", port.ToString(), "--save", "", "--appendonly", "no" }) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException("No Redis: pass --redis host:port, set CLUSTERENV_REDIS, or install redis-server.", e); }
        p.OutputDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        for (int i = 0; i < 200; i++)
        {
            try { using var c = new TcpClient("127.0.0.1", port); return (p, $"127.0.0.1:{port}"); }
            catch (SocketException) { Thread.Sleep(25); }
        }
        p.Kill();
        throw new InvalidOperationException($"redis-server did not listen on 127.0.0.1:{port} within 5 s.");
    }
}
