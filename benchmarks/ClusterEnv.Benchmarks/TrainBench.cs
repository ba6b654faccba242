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
    public static void Run(BenchOptions o)
    {
        string envId = o.Get("env", "CartPole-v1");
        var seeds = o.GetInts("seeds", "1,2,3,4,5");
        string mode = o.Get("mode", "local");
        int workers = (int)o.Get("workers", 2);
        bool continuous = Gym.Make(envId).ActionSpace is Box;
        var options = continuous ? PpoOptions.ContinuousDefaults : new PpoOptions();
        if (o.Get("total-steps", "") is { Length: > 0 } ts) options = options with { TotalTimesteps = long.Parse(ts) };
        int numEnvs = (int)o.Get("num-envs", continuous ? 1 : 4);
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
