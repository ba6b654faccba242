using System.CommandLine;
using System.Text.Json;
using ClusterEnv.Cluster;
using ClusterEnv.CommandLine;
using ClusterEnv.Envs;
using ClusterEnv.Learners.Impala;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Sync;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// Does asynchrony pay? Lockstep PPO on workers, IMPALA and IMPACT on the same number of worker processes × sub-envs
/// and the same policy size, one after another in one run: env steps consumed per second by each learner and the
/// fraction of the time its learner computed. One JSON line per learner.
/// </summary>
public static class AsyncThroughput
{
    public static Command Command()
    {
        var env = Cli.Option("--env", "registry id of the env", "CartPole-v1")
            .Check(id => Gym.Ids.Contains(id) ? null : $"Unknown env '{id}'. Registered: {string.Join(", ", Gym.Ids)}.");
        var workers = Cli.Option("--workers", "worker processes", 2).AtLeast(1);
        var envs = Cli.Option("--envs-per-worker", "sub-envs per worker", 64).AtLeast(1);
        var steps = Cli.Option("--total-steps", "env steps each learner consumes", 1_000_000L).AtLeast(1);
        var algos = Cli.List<string>("--algos", "learners, in order", "ppo-workers,impala,impact");
        var command = new Command("async-throughput", "env steps/s consumed and learner busy fraction: lockstep PPO on workers vs IMPALA vs IMPACT, same workers")
        {
            env, workers, envs, steps, algos,
        };
        command.SetAction(p => Run(p.GetValue(env)!, p.GetValue(workers), p.GetValue(envs), p.GetValue(steps), p.GetValue(algos)!));
        return command;
    }

    private static void Run(string envId, int workers, int envsPerWorker, long steps, string[] algos)
    {
        foreach (var algo in algos)
        {
            // A fresh pool per learner: each starts its policy versions at 1.
            using var cluster = new ClusterVecEnv(new ClusterOptions { EnvId = envId, NumEnvs = workers * envsPerWorker, NumWorkers = workers });
            double sps, busy;
            switch (algo)
            {
                case "ppo-workers":
                {
                    var r = Ppo.TrainOnWorkers(cluster, new PpoOptions { TotalTimesteps = steps, Seed = 1 }, SyncStrategy.Always);
                    (sps, busy) = (r.History[^1].Sps, r.History[^1].BusyFraction);
                    break;
                }
                case "impala" or "impact":
                {
                    var o = new ImpalaOptions { TotalTimesteps = steps, Seed = 1 };
                    var r = Impala.Train(cluster, algo == "impact" ? o.AsImpact() : o, SyncStrategy.Always);
                    (sps, busy) = (r.History[^1].Sps, r.History[^1].BusyFraction);
                    break;
                }
                default:
                    throw new ArgumentException($"Unknown learner '{algo}'; use ppo-workers, impala or impact.");
            }
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "async-throughput", algo, env = envId, workers, envs_per_worker = envsPerWorker, env_steps = steps,
                env_steps_per_sec = Math.Round(sps), learner_busy_fraction = Math.Round(busy, 3),
            }));
        }
    }
}
