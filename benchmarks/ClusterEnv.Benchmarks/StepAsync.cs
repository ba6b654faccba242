using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using ClusterEnv.Cluster;
using ClusterEnv.CommandLine;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Worker;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// First-ready stepping (<see cref="ClusterVecEnv.Send(ReadOnlySpan{int}, ReadOnlySpan{int})"/> /
/// <see cref="ClusterVecEnv.Recv(int)"/>) against lockstep <see cref="ClusterVecEnv.Step(ReadOnlySpan{int})"/> on the
/// same workers, one of which is made slower: its sub-envs cost <c>--slow-factor</c> times the step time of the others.
/// The env is CartPole with a sleep per step (an env whose cost is not this machine's CPU: a simulator elsewhere, a
/// robot), so the 2 cores here do not cap the workers. The workers run in this process (each with its own env
/// arguments), over the hub's gRPC or shared-memory transport. One JSON line per batch size.
/// </summary>
public static class StepAsync
{
    private const string DelayedId = "Bench/DelayedCartPole-v0";

    public static Command Command()
    {
        var workers = Cli.Option("--workers", "workers (the last one is the slow one)", 4).AtLeast(2);
        var envs = Cli.Option("--envs-per-worker", "sub-envs per worker", 2).AtLeast(1);
        var stepMs = Cli.Option("--step-ms", "milliseconds each sub-env step sleeps on the fast workers (whole milliseconds: Thread.Sleep's resolution)", 1.0)
            .Check(ms => ms >= 1 && ms == Math.Floor(ms) ? null : $"--step-ms ({ms}) must be a whole number of milliseconds, at least 1 (a sleep rounds shorter ones down).");
        var slow = Cli.Option("--slow-factor", "how many times slower the slow worker's sub-envs are", 4.0).Positive();
        var batches = Cli.List<int>("--batch-size", "Recv batch sizes (0: one worker's sub-envs)", "0");
        var seconds = Cli.Option("--seconds", "seconds per measurement", 3.0).Positive();
        var transport = Cli.Option("--transport", "grpc or shm", "grpc").Check(t => t is "grpc" or "shm" ? null : "--transport takes grpc or shm.");
        var command = new Command("step-async", "first-ready Send/Recv vs lockstep Step on the same workers, one of them slowed down")
        {
            workers, envs, stepMs, slow, batches, seconds, transport,
        };
        command.SetAction(p => Run(p.GetValue(workers), p.GetValue(envs), p.GetValue(stepMs), p.GetValue(slow), p.GetValue(batches)!, p.GetValue(seconds), p.GetValue(transport) == "shm"));
        return command;
    }

    private static void Run(int workers, int perWorker, double stepMs, double slowFactor, int[] batches, double seconds, bool shm)
    {
        if (!Gym.Ids.Contains(DelayedId))
            Gym.Register(DelayedId, kw => new Delayed(Gym.Make("CartPole-v1"), Convert.ToDouble(kw!["ms"], CultureInfo.InvariantCulture)));
        ThreadPool.GetMinThreads(out int minWorker, out int minIo);
        ThreadPool.SetMinThreads(Math.Max(minWorker, 4 * workers), minIo); // the sleeping envs block pool threads
        int n = workers * perWorker;
        int port;
        using (var l = new TcpListener(IPAddress.Loopback, 0))
        {
            l.Start();
            port = ((IPEndPoint)l.LocalEndpoint).Port;
        }
        var hub = new Uri($"http://127.0.0.1:{port}");
        using var stop = new CancellationTokenSource();
        var tasks = Enumerable.Range(0, workers).Select(i => Task.Run(async () =>
        {
            double ms = i == workers - 1 ? stepMs * slowFactor : stepMs;
            await using var w = new WorkerService(new WorkerOptions
            {
                Hub = hub, EnvId = DelayedId, NumEnvs = perWorker, WorkerId = $"w{i}", ConnectTimeout = TimeSpan.FromSeconds(30),
                EnvArgs = new Dictionary<string, string> { ["ms"] = ms.ToString(CultureInfo.InvariantCulture) },
            });
            await w.RunAsync(stop.Token);
        })).ToArray();
        using (var envs = new ClusterVecEnv(new ClusterOptions
               {
                   EnvId = DelayedId, NumEnvs = n, NumWorkers = workers, LocalWorkers = false,
                   Hub = new HubOptions { Port = port, SharedMemory = shm }, ConnectTimeout = TimeSpan.FromSeconds(30),
               }))
        {
            var rng = new Rng(0);
            var actions = new int[n];
            envs.Reset(seed: 0);
            double lockstep = Lockstep(envs, rng, actions, seconds);
            foreach (int b in batches)
            {
                int batch = b <= 0 ? perWorker : b;
                envs.Reset(seed: 0);
                double firstReady = FirstReady(envs, rng, actions, batch, seconds);
                // Sleep-bound ideal: lockstep waits for the slow worker every step; first-ready returns each worker as it is ready.
                double ideal = ((workers - 1) * slowFactor + 1) / workers;
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    bench = "step-async",
                    transport = shm ? "shm" : "grpc",
                    workers,
                    envs_per_worker = perWorker,
                    step_ms = stepMs,
                    slow_factor = slowFactor,
                    batch_size = batch,
                    lockstep_env_steps_per_sec = Math.Round(lockstep),
                    first_ready_env_steps_per_sec = Math.Round(firstReady),
                    first_ready_over_lockstep = Math.Round(firstReady / lockstep, 2),
                    ideal_ratio_if_batch_is_one_worker = Math.Round(ideal, 2),
                }));
            }
        }
        stop.Cancel();
        Task.WaitAll(tasks, TimeSpan.FromSeconds(10));
    }

    private static double Lockstep(ClusterVecEnv envs, Rng rng, int[] actions, double seconds)
    {
        for (int t = 0; t < 20; t++) envs.Step(Random(rng, actions));
        long steps = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            envs.Step(Random(rng, actions));
            steps += actions.Length;
        }
        return steps / sw.Elapsed.TotalSeconds;
    }

    private static double FirstReady(ClusterVecEnv envs, Rng rng, int[] actions, int batch, double seconds)
    {
        var ids = Enumerable.Range(0, actions.Length).ToArray();
        envs.Send(Random(rng, actions), ids);
        for (int t = 0; t < 20; t++)
        {
            var r = envs.Recv(batch);
            envs.Send(Random(rng, actions.AsSpan(0, r.Count)), r.EnvIds.AsSpan(0, r.Count));
        }
        long steps = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            var r = envs.Recv(batch);
            steps += r.Count;
            envs.Send(Random(rng, actions.AsSpan(0, r.Count)), r.EnvIds.AsSpan(0, r.Count));
        }
        double rate = steps / sw.Elapsed.TotalSeconds;
        while (envs.EnvsInFlight > 0) envs.Recv(actions.Length);
        return rate;
    }

    private static Span<int> Random(Rng rng, Span<int> actions)
    {
        for (int i = 0; i < actions.Length; i++) actions[i] = rng.NextInt(2);
        return actions;
    }

    /// <summary>An env that sleeps <c>ms</c> per step: its cost is wall time, not this machine's CPU.</summary>
    private sealed class Delayed(IEnv env, double ms) : ClusterEnv.Wrappers.EnvWrapper(env)
    {
        private readonly TimeSpan _delay = TimeSpan.FromMilliseconds(ms);

        public override StepResult Step(EnvAction action, Span<float> observation)
        {
            Thread.Sleep(_delay);
            return Env.Step(action, observation);
        }
    }
}
