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
        var set = Cli.Option("--set", "override one learner option, Name=Value (ImpalaOptions or PpoOptions property, e.g. --set EntropyCost=0.02); repeatable", Array.Empty<string>());
        var floor = Cli.Option<double?>("--floor", "after a run first reaches the threshold, count the updates whose mean-20 return is below this (default: threshold − 15% of |threshold|, 403.75 on CartPole)");
        var command = new Command("train", "a learner per seed: steps and seconds to the registry threshold, final mean-20 return, SPS")
        {
            algo, env, seeds, mode, workers, totalSteps, numEnvs, sync, untilThreshold, set, floor,
        };
        command.SetAction(p => Run(p.GetValue(algo)!, p.GetValue(env)!, p.GetValue(seeds)!, p.GetValue(mode)!, p.GetValue(workers), p.GetValue(totalSteps),
            p.GetValue(numEnvs), SyncStrategy.Parse(p.GetValue(sync)!), p.GetValue(untilThreshold), p.GetValue(set)!, p.GetValue(floor)));
        return command;
    }

    private static void Run(string algo, string envId, int[] seeds, string mode, int workers, long? totalSteps, int? numEnvsOption, SyncStrategy sync, bool untilThreshold, string[] sets, double? floorOption)
    {
        if (algo == "ppo-workers" && mode == "local") throw new ArgumentException("ppo-workers acts on workers: use --mode cluster.");
        foreach (var m in mode == "both" ? new[] { "local", "cluster" } : [mode])
        foreach (int seed in seeds)
        {
            var r = TrainRun.Execute(new TrainRun.Spec(algo, envId, m, seed, workers, totalSteps, numEnvsOption, sync, sets, floorOption, untilThreshold));
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "train", algo, env = envId, seed, mode = m, num_envs = r.NumEnvs, workers = r.Workers,
                sync = r.Sync,
                threshold = r.Threshold,
                steps_to_threshold = r.StepsToThreshold,
                seconds_to_threshold = r.SecondsToThreshold is double s ? Math.Round(s, 2) : (double?)null,
                final_mean_return_20 = Json(r.FinalMeanReturn20),
                final_mean_return_100 = Json(r.FinalMeanReturn100),
                env_steps = r.EnvSteps,
                seconds = Math.Round(r.WallSeconds, 2),
                sps = Math.Round(r.Sps),
                overrides = sets.Length > 0 ? string.Join(' ', sets) : null,
                floor = Json(r.Hold.Floor, 2),
                updates_after_threshold = r.Hold.After,
                updates_below_floor_after_threshold = r.Hold.Below,
                min_mean_return_20_after_threshold = r.Hold.After > 0 ? Math.Round(r.Hold.Min, 1) : (double?)null,
                min_entropy = Json(r.MinEntropy, 4),
            }));
        }
    }

    /// <summary>A number for a JSON line: rounded, or null where it is not finite (no episode yet; no threshold registered).</summary>
    public static double? Json(double v, int digits = 1) => double.IsFinite(v) ? Math.Round(v, digits) : null;
}

/// <summary>
/// One training run as the benchmarks measure it: the learner (PPO acting itself, PPO on lockstep workers, IMPALA or
/// IMPACT) on the env, locally (the learner's own vector env) or through a <see cref="ClusterVecEnv"/> with local
/// workers, with the learner's defaults for the env's action space unless overridden.
/// </summary>
public static class TrainRun
{
    /// <param name="Algo">ppo, ppo-workers, impala or impact.</param>
    /// <param name="EnvId">Registry id.</param>
    /// <param name="Mode">local or cluster.</param>
    /// <param name="Seed">The learner's seed.</param>
    /// <param name="Workers">Worker processes in cluster mode (at most one per env).</param>
    /// <param name="TotalSteps">Env steps; null: the learner's default.</param>
    /// <param name="NumEnvs">Envs in total; null: PPO 4 (1 for continuous actions), IMPALA 16.</param>
    /// <param name="Sync">APS strategy of learners acting on workers.</param>
    /// <param name="Sets">Option overrides, Name=Value.</param>
    /// <param name="Floor">The hold statistics' floor; null: threshold − 15% of |threshold|.</param>
    /// <param name="UntilThreshold">Stop once the mean-20 return reaches the threshold.</param>
    public sealed record Spec(string Algo, string EnvId, string Mode, int Seed, int Workers, long? TotalSteps, int? NumEnvs, SyncStrategy Sync,
        string[] Sets, double? Floor = null, bool UntilThreshold = false);

    /// <summary>What one run measured; <see cref="Curve"/> has a point per update or iteration.</summary>
    public sealed record Result(int NumEnvs, int Workers, string? Sync, double? Threshold, long? StepsToThreshold, double? SecondsToThreshold,
        double FinalMeanReturn20, double FinalMeanReturn100, long EnvSteps, double WallSeconds, double Sps, HoldTracker Hold,
        IReadOnlyList<(long Step, double Seconds, double MeanReturn20)> Curve, double MinEntropy = double.NaN);

    public static Result Execute(Spec spec)
    {
        var (algo, envId, m, seed) = (spec.Algo, spec.EnvId, spec.Mode, spec.Seed);
        bool continuous = Gym.Make(envId).ActionSpace is Box;
        bool impala = algo is "impala" or "impact";
        int numEnvs = spec.NumEnvs ?? (impala ? 16 : continuous ? 1 : 4);
        int workers = Math.Min(spec.Workers, numEnvs);
        if (algo == "ppo-workers" && m == "local") throw new ArgumentException("ppo-workers acts on workers: use --mode cluster.");
        using IVectorEnv envs = m == "local"
            ? Gym.MakeVec(envId, numEnvs, wrap: e => new RecordEpisodeStatistics(e))
            : new ClusterVecEnv(new ClusterOptions { EnvId = envId, NumEnvs = numEnvs, NumWorkers = workers });
        using var stop = new CancellationTokenSource();
        double threshold = envs.Spec?.RewardThreshold ?? double.PositiveInfinity;
        var hold = new HoldTracker(threshold, spec.Floor ?? threshold - 0.15 * Math.Abs(threshold));
        var curve = new List<(long, double, double)>();
        double minEntropy = double.PositiveInfinity; // the lowest policy entropy of any update: a collapse to one action shows as ~0
        void Observe(long step, double seconds, double mean20, double entropy)
        {
            if (double.IsFinite(entropy)) minEntropy = Math.Min(minEntropy, entropy);
            curve.Add((step, seconds, mean20));
            hold.Add(mean20);
            if (spec.UntilThreshold && mean20 >= threshold) stop.Cancel();
        }
        (long? Steps, double? Seconds, double Final, double Final100, long EnvSteps, double WallSeconds, double Sps) r;
        if (impala)
        {
            var o = (continuous ? ImpalaOptions.ContinuousDefaults : new ImpalaOptions()) with { Seed = seed };
            if (algo == "impact") o = o.AsImpact();
            if (spec.TotalSteps is long ts) o = o with { TotalTimesteps = ts };
            o = OptionOverrides.Apply(o, spec.Sets);
            void OnUpdate(ImpalaMetrics x) => Observe(x.GlobalStep, x.Seconds, x.MeanReturn20, x.Entropy);
            var res = envs is ClusterVecEnv c ? Impala.Train(c, o, spec.Sync, OnUpdate, cancellationToken: stop.Token) : Impala.Train(envs, o, OnUpdate, stop.Token);
            var last = res.History[^1];
            r = (res.StepsToThreshold, res.SecondsToThreshold, res.FinalMeanReturn20, res.FinalMeanReturn100, last.GlobalStep, last.Seconds, last.Sps);
        }
        else
        {
            var o = (continuous ? PpoOptions.ContinuousDefaults : new PpoOptions()) with { Seed = seed };
            if (spec.TotalSteps is long ts) o = o with { TotalTimesteps = ts };
            o = OptionOverrides.Apply(o, spec.Sets);
            void OnIteration(PpoMetrics x) => Observe(x.GlobalStep, x.Seconds, x.MeanReturn20, x.Entropy);
            var res = algo == "ppo-workers" ? Ppo.TrainOnWorkers((ClusterVecEnv)envs, o, spec.Sync, OnIteration, stop.Token) : Ppo.Train(envs, o, OnIteration, stop.Token);
            var last = res.History[^1];
            r = (res.StepsToThreshold, res.SecondsToThreshold, res.FinalMeanReturn20, res.FinalMeanReturn100, last.GlobalStep, last.Seconds, last.Sps);
        }
        return new Result(numEnvs, m == "local" ? 0 : workers, algo is "ppo" || m == "local" ? null : spec.Sync.ToString(), envs.Spec?.RewardThreshold,
            r.Steps, r.Seconds, r.Final, r.Final100, r.EnvSteps, r.WallSeconds, r.Sps, hold, curve, minEntropy);
    }

    /// <summary>Whether a run keeps what it learned: after the mean-20 return first reaches the threshold, how many updates fall below the floor, and the lowest value.</summary>
    public sealed class HoldTracker(double threshold, double floor)
    {
        public double Floor => floor;
        public int After { get; private set; }
        public int Below { get; private set; }
        public double Min { get; private set; } = double.PositiveInfinity;
        private bool _reached;

        public void Add(double meanReturn20)
        {
            if (double.IsNaN(meanReturn20)) return;
            if (!_reached) { _reached = meanReturn20 >= threshold; return; }
            After++;
            if (meanReturn20 < floor) Below++;
            Min = Math.Min(Min, meanReturn20);
        }
    }
}

/// <summary><c>--set Name=Value</c>: a learner option changed by name, for sweeps, with a clear error for an unknown name or a bad value.</summary>
public static class OptionOverrides
{
    public static T Apply<T>(T options, IEnumerable<string> sets) where T : class
    {
        foreach (var set in sets)
        {
            int eq = set.IndexOf('=');
            var settable = typeof(T).GetProperties().Where(p => p.CanWrite && IsSimple(p.PropertyType)).Select(p => p.Name).Order().ToArray();
            if (eq <= 0) throw new ArgumentException($"--set '{set}' must be Name=Value; {typeof(T).Name} has {string.Join(", ", settable)}.");
            string name = set[..eq], text = set[(eq + 1)..];
            var property = typeof(T).GetProperty(name);
            if (property is null || !property.CanWrite || !IsSimple(property.PropertyType))
                throw new ArgumentException($"--set {name}: {typeof(T).Name} has no such option; it has {string.Join(", ", settable)}.");
            var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            object value;
            try { value = Convert.ChangeType(text, type, System.Globalization.CultureInfo.InvariantCulture); }
            catch (Exception e) when (e is FormatException or InvalidCastException or OverflowException)
            {
                throw new ArgumentException($"--set {name}={text}: not a {type.Name} ({e.Message}).");
            }
            var copy = (T)typeof(T).GetMethod("<Clone>$")!.Invoke(options, null)!; // a record's `with {}`
            property.SetValue(copy, value);
            options = copy;
        }
        return options;
    }

    private static bool IsSimple(Type t) => (Nullable.GetUnderlyingType(t) ?? t).IsPrimitive;
}
