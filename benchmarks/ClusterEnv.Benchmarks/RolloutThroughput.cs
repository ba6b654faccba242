using System.CommandLine;
using ClusterEnv.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ClusterEnv.Cluster;
using ClusterEnv.Common;
using ClusterEnv.Policies;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// Worker-side rollouts (one round trip per T steps) against central inference (the learner runs the policy and
/// calls Step every step), same workers and envs, over plain loopback and through a relay that adds a round-trip
/// delay. Also measures policy pushes: bytes per push and push latency (send to acknowledgement).
/// </summary>
public static class RolloutThroughput
{
    public static Command Command()
    {
        var env = Cli.Option("--env", "registry id of the env", "CartPole-v1");
        var workers = Cli.Option("--workers", "worker processes", 2).AtLeast(1);
        var envs = Cli.Option("--envs-per-worker", "sub-envs per worker", 64).AtLeast(1);
        var steps = Cli.Option("--rollout-length", "rollout length T (steps per sub-env)", 128).AtLeast(1);
        var seconds = Cli.Option("--seconds", "seconds per configuration", 3.0).Positive();
        var rtt = Cli.List<double>("--rtt-ms", "round-trip delays added by a relay, in ms", "0,0.5");
        var command = new Command("rollout-throughput", "worker-side rollouts vs central inference stepping, with an added round-trip delay; push bytes and latency")
        {
            env, workers, envs, steps, seconds, rtt,
        };
        command.SetAction(p =>
        {
            foreach (double rttMs in p.GetValue(rtt)!)
                Measure(p.GetValue(env)!, p.GetValue(workers), p.GetValue(envs), p.GetValue(steps), p.GetValue(seconds), rttMs);
        });
        return command;
    }

    private static void Measure(string envId, int workers, int perWorker, int T, double seconds, double rttMs)
    {
        int n = workers * perWorker;
        int port = FreePort();
        using var relay = rttMs > 0 ? new DelayRelay(new IPEndPoint(IPAddress.Loopback, port), TimeSpan.FromMilliseconds(rttMs / 2)) : null;
        var dial = new Uri($"http://127.0.0.1:{relay?.Port ?? port}");
        using var pool = LocalWorkerPool.Start(dial, envId, Enumerable.Repeat(perWorker, workers).ToArray(), "bench");
        using var envs = new ClusterVecEnv(new ClusterOptions
        {
            EnvId = envId, NumEnvs = n, NumWorkers = workers, LocalWorkers = false, Hub = new HubOptions { Port = port, Token = "bench" },
        });
        var spec = PolicySpec.For(envs.SingleObservationSpace, envs.SingleActionSpace);
        var policy = new ActorCritic(spec, seed: 1);
        var rng = new Rng(1);
        envs.Reset(seed: 0);

        // Central inference: the learner acts on the batch, then one Step per env step.
        var obs = new float[n * envs.ObservationSize];
        var actions = new int[n];
        var logProbs = new float[n];
        var values = new float[n];
        envs.Reset(seed: 0).Observations.CopyTo(obs, 0);
        long centralSteps = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            policy.Act(obs, n, rng, actions, default, logProbs, values);
            envs.Step(actions).Observations.CopyTo(obs, 0);
            centralSteps += n;
        }
        double central = centralSteps / sw.Elapsed.TotalSeconds;

        // Policy pushes: bytes and latency to acknowledgement, every worker.
        var latencies = new List<double>();
        long bytes = 0;
        for (ulong v = 1; v <= 20; v++)
        {
            for (int w = 0; w < workers; w++) bytes = envs.Policies.Push(w, v, spec, policy.Parameters);
            envs.Policies.WaitForAcks();
            latencies.AddRange(envs.Policies.States.Select(p => p.LastPushLatencyMs));
        }

        // Worker-side rollouts of T steps.
        envs.Rollouts.Collect(T);
        long workerSteps = 0;
        sw.Restart();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            envs.Rollouts.Collect(T);
            workerSteps += (long)T * n;
        }
        double worker = workerSteps / sw.Elapsed.TotalSeconds;
        latencies.Sort();
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "rollout-throughput", env = envId, workers, envs_per_worker = perWorker, rollout_steps = T, added_rtt_ms = rttMs,
            central_env_steps_per_sec = Math.Round(central), worker_rollout_env_steps_per_sec = Math.Round(worker),
            ratio = Math.Round(worker / central, 2),
            push_bytes = bytes, push_latency_ms_p50 = Math.Round(latencies[latencies.Count / 2], 3), push_latency_ms_max = Math.Round(latencies[^1], 3),
            policy_parameters = policy.Store.Count,
        }));
    }

    private static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
