using System.CommandLine;
using ClusterEnv.CommandLine;
using System.Text.Json;
using ClusterEnv.Cluster;
using ClusterEnv.Envs;
using ClusterEnv.Learners.Impala;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Spaces;
using ClusterEnv.Sync;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// One learner per seed, locally and/or through a <see cref="ClusterVecEnv"/> with local workers: env steps and wall
/// seconds until the mean return of the last 20 episodes first reaches the registry threshold, the final mean-20
/// return and SPS. Learners: PPO (the learner acts, CleanRL's defaults), PPO on lockstep workers, IMPALA and IMPACT
/// (streaming workers in cluster mode). One JSON line per run.
/// </summary>
public static class TrainBench
{
    public static Command Command()
    {
        var algo = Cli.Option("--algo", "ppo, ppo-workers, impala or impact", "ppo")
            .Check(a => a is "ppo" or "ppo-workers" or "impala" or "impact" ? null : $"--algo '{a}' must be ppo, ppo-workers, impala or impact.");
        var env = Cli.Option("--env", "registry id of the env", "CartPole-v1")
            .Check(id => Gym.Ids.Contains(id) ? null : $"Unknown env '{id}'. Registered: {string.Join(", ", Gym.Ids)}.");
        var seeds = Cli.List<int>("--seeds", "seeds, one run each", "1,2,3");
        var mode = Cli.Option("--mode", "local (the learner's own envs), cluster (ClusterVecEnv with a local pool) or both", "local")
            .Check(m => m is "local" or "cluster" or "both" ? null : $"--mode '{m}' must be local, cluster or both.");
        var workers = Cli.Option("--workers", "worker processes in cluster mode", 2).AtLeast(1);
        var totalSteps = Cli.Option<long?>("--total-steps", "env steps per run (default: the learner's options)");
        var numEnvs = Cli.Option<int?>("--num-envs", "envs in total (default: PPO 4, or 1 for continuous actions; IMPALA 16)");
        var sync = Cli.Option("--sync", "APS strategy for worker-side acting: always, never, every:N, τ or τ:maxLag", "always");
        var untilThreshold = Cli.Option("--until-threshold", "stop each run once it reaches the threshold (faster; final_mean_return_20 is then the value at the threshold)", false);
        var command = new Command("train", "a learner per seed: steps and seconds to the registry threshold, final mean-20 return, SPS")
        {
            algo, env, seeds, mode, workers, totalSteps, numEnvs, sync, untilThreshold,
        };
        command.SetAction(p => Run(p.GetValue(algo)!, p.GetValue(env)!, p.GetValue(seeds)!, p.GetValue(mode)!, p.GetValue(workers), p.GetValue(totalSteps),
            p.GetValue(numEnvs), SyncStrategy.Parse(p.GetValue(sync)!), p.GetValue(untilThreshold)));
        return command;
    }

    private static void Run(string algo, string envId, int[] seeds, string mode, int workers, long? totalSteps, int? numEnvsOption, SyncStrategy sync, bool untilThreshold)
    {
        bool continuous = Gym.Make(envId).ActionSpace is Box;
        bool impala = algo is "impala" or "impact";
        int numEnvs = numEnvsOption ?? (impala ? 16 : continuous ? 1 : 4);
        foreach (var m in mode == "both" ? new[] { "local", "cluster" } : [mode])
        foreach (int seed in seeds)
        {
            if (algo == "ppo-workers" && m == "local") throw new ArgumentException("ppo-workers acts on workers: use --mode cluster.");
            using IVectorEnv envs = m == "local"
                ? Gym.MakeVec(envId, numEnvs, wrap: e => new RecordEpisodeStatistics(e))
                : new ClusterVecEnv(new ClusterOptions { EnvId = envId, NumEnvs = numEnvs, NumWorkers = Math.Min(workers, numEnvs) });
            using var stop = new CancellationTokenSource();
            (long? Steps, double? Seconds, double Final, long EnvSteps, double WallSeconds, double Sps) r;
            if (impala)
            {
                var o = new ImpalaOptions { Seed = seed };
                if (algo == "impact") o = o.AsImpact();
                if (totalSteps is long ts) o = o with { TotalTimesteps = ts };
                void OnUpdate(ImpalaMetrics x) { if (untilThreshold && x.MeanReturn20 >= (envs.Spec?.RewardThreshold ?? double.PositiveInfinity)) stop.Cancel(); }
                var res = envs is ClusterVecEnv c ? Impala.Train(c, o, sync, OnUpdate, cancellationToken: stop.Token) : Impala.Train(envs, o, OnUpdate, stop.Token);
                var last = res.History[^1];
                r = (res.StepsToThreshold, res.SecondsToThreshold, res.FinalMeanReturn20, last.GlobalStep, last.Seconds, last.Sps);
            }
            else
            {
                var o = (continuous ? PpoOptions.ContinuousDefaults : new PpoOptions()) with { Seed = seed };
                if (totalSteps is long ts) o = o with { TotalTimesteps = ts };
                void OnIteration(PpoMetrics x) { if (untilThreshold && x.MeanReturn20 >= (envs.Spec?.RewardThreshold ?? double.PositiveInfinity)) stop.Cancel(); }
                var res = algo == "ppo-workers" ? Ppo.TrainOnWorkers((ClusterVecEnv)envs, o, sync, OnIteration, stop.Token) : Ppo.Train(envs, o, OnIteration, stop.Token);
                var last = res.History[^1];
                r = (res.StepsToThreshold, res.SecondsToThreshold, res.FinalMeanReturn20, last.GlobalStep, last.Seconds, last.Sps);
            }
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "train", algo, env = envId, seed, mode = m, num_envs = numEnvs, workers = m == "local" ? 0 : Math.Min(workers, numEnvs),
                sync = algo is "ppo" || m == "local" ? null : sync.ToString(),
                threshold = envs.Spec?.RewardThreshold,
                steps_to_threshold = r.Steps,
                seconds_to_threshold = r.Seconds is double s ? Math.Round(s, 2) : (double?)null,
                final_mean_return_20 = Math.Round(r.Final, 1),
                env_steps = r.EnvSteps,
                seconds = Math.Round(r.WallSeconds, 2),
                sps = Math.Round(r.Sps),
            }));
        }
    }
}
