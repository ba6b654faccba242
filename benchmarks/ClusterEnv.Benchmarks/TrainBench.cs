using System.CommandLine;
using ClusterEnv.CommandLine;
using System.Text.Json;
using ClusterEnv.Cluster;
using ClusterEnv.Envs;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Spaces;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// PPO with CleanRL's defaults per seed, locally and/or through a <see cref="ClusterVecEnv"/> with local workers: env
/// steps and wall seconds until the mean return of the last 20 episodes first reaches the registry threshold, the
/// final mean-20 return and SPS. One JSON line per run.
/// </summary>
public static class TrainBench
{
    public static Command Command()
    {
        var env = Cli.Option("--env", "registry id of the env", "CartPole-v1")
            .Check(id => Gym.Ids.Contains(id) ? null : $"Unknown env '{id}'. Registered: {string.Join(", ", Gym.Ids)}.");
        var seeds = Cli.List<int>("--seeds", "seeds, one run each", "1,2,3,4,5");
        var mode = Cli.Option("--mode", "local (SyncVectorEnv), cluster (ClusterVecEnv with a local pool) or both", "local")
            .Check(m => m is "local" or "cluster" or "both" ? null : $"--mode '{m}' must be local, cluster or both.");
        var workers = Cli.Option("--workers", "worker processes in cluster mode", 2);
        var totalSteps = Cli.Option<long?>("--total-steps", "env steps per run (default: PpoOptions')");
        var numEnvs = Cli.Option<int?>("--num-envs", "parallel envs (default 4, or 1 for continuous actions)");
        var command = new Command("train", "PPO with CleanRL's defaults: steps and seconds to the registry threshold, final mean-20 return, SPS")
        {
            env, seeds, mode, workers, totalSteps, numEnvs,
        };
        command.SetAction(p => Run(p.GetValue(env)!, p.GetValue(seeds)!, p.GetValue(mode)!, p.GetValue(workers), p.GetValue(totalSteps), p.GetValue(numEnvs)));
        return command;
    }

    private static void Run(string envId, int[] seeds, string mode, int workers, long? totalSteps, int? numEnvsOption)
    {
        bool continuous = Gym.Make(envId).ActionSpace is Box;
        var options = continuous ? PpoOptions.ContinuousDefaults : new PpoOptions();
        if (totalSteps is long ts) options = options with { TotalTimesteps = ts };
        int numEnvs = numEnvsOption ?? (continuous ? 1 : 4);
        foreach (var m in mode == "both" ? new[] { "local", "cluster" } : [mode])
        foreach (int seed in seeds)
        {
            using IVectorEnv envs = m == "local"
                ? Gym.MakeVec(envId, numEnvs, wrap: e => new RecordEpisodeStatistics(e))
                : new ClusterVecEnv(new ClusterOptions { EnvId = envId, NumEnvs = numEnvs, NumWorkers = Math.Min(workers, numEnvs) });
            var r = Ppo.Train(envs, options with { Seed = seed });
            var last = r.History[^1];
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "train", algorithm = "ppo", env = envId, seed, mode = m, num_envs = numEnvs, workers = m == "local" ? 0 : Math.Min(workers, numEnvs),
                threshold = envs.Spec?.RewardThreshold,
                steps_to_threshold = r.StepsToThreshold,
                seconds_to_threshold = r.SecondsToThreshold is double s ? Math.Round(s, 2) : (double?)null,
                final_mean_return_20 = Math.Round(r.FinalMeanReturn20, 1),
                best_mean_return_20 = Math.Round(r.History.Where(h => !double.IsNaN(h.MeanReturn20)).Select(h => h.MeanReturn20).DefaultIfEmpty(double.NaN).Max(), 1),
                env_steps = last.GlobalStep,
                seconds = Math.Round(last.Seconds, 2),
                sps = Math.Round(last.Sps),
            }));
        }
    }
}
