using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ClusterEnv.CommandLine;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;
using ClusterEnv.Sync;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// The learning results table: PPO, IMPALA and IMPACT on the bundled envs, locally and through the cluster, several
/// seeds each, with the defaults a user gets. Writes runs.csv, curves.csv, table.md (final return over the last 100
/// episodes, mean ± std over seeds; seeds that reached the threshold; median steps and seconds to it; published
/// figures beside ours with their sources) and one SVG per env (mean-20 return against env steps, a band across seeds).
/// </summary>
public static class LearningSuite
{
    private static readonly string[] AllEnvs = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"];

    /// <summary>A published result: whose, the figure, and where it comes from.</summary>
    private sealed record Published(string Env, string Who, string Figure, string Source);

    // Looked up on 2026-12-05. CleanRL: docs/rl-algorithms/ppo.md (vwxyzjn/cleanrl, commit 7a96de2), ppo.py with its
    // defaults for 500k steps, episodic return during training, mean ± std over seeds. rl-baselines3-zoo: benchmark.md
    // (DLR-RM/rl-baselines3-zoo, commit 0088472), tuned hyperparameters, one trained agent evaluated deterministically,
    // ± is the std over evaluation episodes, not over seeds.
    private static readonly Published[] PublishedResults =
    [
        new("CartPole-v1", "CleanRL ppo.py", "490.04 ± 6.12 (500k steps)", "CleanRL docs, ppo.md"),
        new("Acrobot-v1", "CleanRL ppo.py", "−86.36 ± 1.32 (500k steps)", "CleanRL docs, ppo.md"),
        new("MountainCar-v0", "CleanRL ppo.py", "−200.00 ± 0.00 (500k steps)", "CleanRL docs, ppo.md"),
        new("CartPole-v1", "rl-zoo PPO (tuned)", "500.0 ± 0.0 (100k steps)", "rl-baselines3-zoo benchmark.md"),
        new("Acrobot-v1", "rl-zoo PPO (tuned)", "−73.5 ± 18.2 (1M steps)", "rl-baselines3-zoo benchmark.md"),
        new("MountainCar-v0", "rl-zoo PPO (tuned)", "−110.4 ± 19.5 (1M steps)", "rl-baselines3-zoo benchmark.md"),
        new("MountainCarContinuous-v0", "rl-zoo PPO (tuned, gSDE)", "88.3 ± 2.6 (20k steps)", "rl-baselines3-zoo benchmark.md"),
        new("Pendulum-v1", "rl-zoo PPO (tuned, gSDE)", "−172.2 ± 104.2 (100k steps)", "rl-baselines3-zoo benchmark.md"),
    ];

    /// <summary>One finished run as runs.csv stores it.</summary>
    private sealed record Row(string Algo, string Env, string Mode, int Seed, int NumEnvs, int Workers, string Sync, double Final100, double Final20,
        long? StepsToThreshold, double? SecondsToThreshold, long EnvSteps, double Seconds, double Sps);

    public static Command Command()
    {
        var algos = Cli.List<string>("--algos", "learners: ppo (the learner acts locally; PPO on lockstep workers through the cluster), impala, impact", "ppo,impala,impact")
            .Check(a => a.FirstOrDefault(x => x is not ("ppo" or "impala" or "impact")) is { } bad ? $"--algos: '{bad}' is not ppo, impala or impact." : null);
        var envs = Cli.List<string>("--env", "registry ids (one or more, comma-separated)", string.Join(',', AllEnvs))
            .Check(e => e.FirstOrDefault(id => !Gym.Ids.Contains(id)) is { } bad ? $"--env: unknown env '{bad}'. Registered: {string.Join(", ", Gym.Ids)}." : null);
        var modes = Cli.List<string>("--modes", "local, cluster or both", "local,cluster")
            .Check(m => m.FirstOrDefault(x => x is not ("local" or "cluster")) is { } bad ? $"--modes: '{bad}' is not local or cluster." : null);
        var seeds = Cli.List<int>("--seeds", "seeds, one run each", "1,2,3,4,5");
        var workers = Cli.Option("--workers", "worker processes in cluster mode", 2).AtLeast(1);
        var sync = Cli.Option("--sync", "APS strategy of IMPALA and IMPACT on workers (PPO on workers always syncs: it is on-policy)", "0.05:8");
        var scale = Cli.Option("--scale", "multiply every step budget (PPO 500k discrete / 1M continuous, IMPALA and IMPACT 1M) by this, e.g. 0.1 for a quick look", 1.0)
            .Positive();
        var output = Cli.Option("--out", "folder for runs.csv, curves.csv, table.md and the SVG charts", Path.Combine("runs", "learning-suite"));
        var from = Cli.Option("--from-csv", "rebuild table.md and the charts from the runs.csv and curves.csv already in --out, running nothing", false);
        var command = new Command("suite", "PPO, IMPALA and IMPACT on the bundled envs, local and cluster, several seeds: runs.csv, curves.csv, table.md with published figures, SVG curves")
        {
            algos, envs, modes, seeds, workers, sync, scale, output, from,
        };
        command.SetAction(p =>
        {
            string outDir = p.GetValue(output)!;
            if (p.GetValue(from)) { Report(outDir, ReadRows(outDir), ReadCurves(outDir)); return; }
            Run(p.GetValue(algos)!, p.GetValue(envs)!, p.GetValue(modes)!, p.GetValue(seeds)!, p.GetValue(workers), SyncStrategy.Parse(p.GetValue(sync)!), p.GetValue(scale), outDir);
        });
        return command;
    }

    private static void Run(string[] algos, string[] envIds, string[] modes, int[] seeds, int workers, SyncStrategy sync, double scale, string outDir)
    {
        Directory.CreateDirectory(outDir);
        var rows = new List<Row>();
        var curves = new Dictionary<(string Algo, string Env, string Mode, int Seed), IReadOnlyList<(long Step, double Seconds, double MeanReturn20)>>();
        foreach (var envId in envIds)
        foreach (var algo in algos)
        foreach (var mode in modes)
        foreach (int seed in seeds)
        {
            bool continuous = Gym.Make(envId).ActionSpace is Box;
            long budget = (long)Math.Round((algo == "ppo" ? continuous ? 1_000_000 : 500_000 : 1_000_000) * scale);
            string learner = algo == "ppo" && mode == "cluster" ? "ppo-workers" : algo;
            var strategy = algo == "ppo" ? SyncStrategy.Parse("always") : sync;
            Console.Error.WriteLine($"suite: {envId} {algo} {mode} seed {seed} ({budget:N0} steps)");
            var r = TrainRun.Execute(new TrainRun.Spec(learner, envId, mode, seed, workers, budget, null, strategy, []));
            var row = new Row(algo, envId, mode, seed, r.NumEnvs, r.Workers, r.Sync ?? "", r.FinalMeanReturn100, r.FinalMeanReturn20, r.StepsToThreshold, r.SecondsToThreshold,
                r.EnvSteps, r.WallSeconds, r.Sps);
            rows.Add(row);
            curves[(algo, envId, mode, seed)] = r.Curve;
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "suite", algo, env = envId, mode, seed, num_envs = r.NumEnvs, workers = r.Workers, sync = r.Sync, threshold = r.Threshold,
                final_mean_return_100 = TrainBench.Json(r.FinalMeanReturn100), final_mean_return_20 = TrainBench.Json(r.FinalMeanReturn20),
                steps_to_threshold = r.StepsToThreshold, seconds_to_threshold = r.SecondsToThreshold is double s ? Math.Round(s, 2) : (double?)null,
                env_steps = r.EnvSteps, seconds = Math.Round(r.WallSeconds, 2), sps = Math.Round(r.Sps),
            }));
            // Written after every run: an interrupted suite keeps what it measured (--from-csv rebuilds the report).
            WriteRows(outDir, rows);
            WriteCurves(outDir, curves);
        }
        Report(outDir, rows, curves.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<(long, double, double)>)kv.Value));
    }

    private static string F(double v) => double.IsFinite(v) ? v.ToString("0.###", CultureInfo.InvariantCulture) : "";

    private static void WriteRows(string outDir, List<Row> rows) =>
        File.WriteAllLines(Path.Combine(outDir, "runs.csv"), ["algo,env,mode,seed,num_envs,workers,sync,final_mean_return_100,final_mean_return_20,steps_to_threshold,seconds_to_threshold,env_steps,seconds,sps",
            .. rows.Select(r => string.Join(",", r.Algo, r.Env, r.Mode, r.Seed, r.NumEnvs, r.Workers, r.Sync, F(r.Final100), F(r.Final20),
                r.StepsToThreshold?.ToString(CultureInfo.InvariantCulture) ?? "", r.SecondsToThreshold is double s ? F(s) : "", r.EnvSteps, F(r.Seconds), F(r.Sps)))]);

    private static void WriteCurves(string outDir, Dictionary<(string Algo, string Env, string Mode, int Seed), IReadOnlyList<(long Step, double Seconds, double MeanReturn20)>> curves) =>
        File.WriteAllLines(Path.Combine(outDir, "curves.csv"), ["algo,env,mode,seed,global_step,seconds,mean_return_20",
            .. curves.SelectMany(kv => Curves.Thin(kv.Value, p => p.Step).Select(p => $"{kv.Key.Algo},{kv.Key.Env},{kv.Key.Mode},{kv.Key.Seed},{p.Step},{F(p.Seconds)},{F(p.MeanReturn20)}"))]);

    private static string[] DataLines(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist: run the suite with this --out first, or point --out at a folder that has runs.csv and curves.csv.", path);
        return File.ReadAllLines(path).Skip(1).Where(l => l.Length > 0).ToArray();
    }

    private static double D(string s) => s.Length == 0 ? double.NaN : double.Parse(s, CultureInfo.InvariantCulture);

    private static List<Row> ReadRows(string outDir) => DataLines(Path.Combine(outDir, "runs.csv")).Select(l => l.Split(',')).Select(c =>
        new Row(c[0], c[1], c[2], int.Parse(c[3], CultureInfo.InvariantCulture), int.Parse(c[4], CultureInfo.InvariantCulture), int.Parse(c[5], CultureInfo.InvariantCulture), c[6],
            D(c[7]), D(c[8]), c[9].Length == 0 ? null : long.Parse(c[9], CultureInfo.InvariantCulture), c[10].Length == 0 ? null : D(c[10]),
            long.Parse(c[11], CultureInfo.InvariantCulture), D(c[12]), D(c[13]))).ToList();

    private static Dictionary<(string, string, string, int), IReadOnlyList<(long, double, double)>> ReadCurves(string outDir) =>
        DataLines(Path.Combine(outDir, "curves.csv")).Select(l => l.Split(','))
            .GroupBy(c => (c[0], c[1], c[2], int.Parse(c[3], CultureInfo.InvariantCulture)))
            .ToDictionary(g => g.Key, g => (IReadOnlyList<(long, double, double)>)g.Select(c => (long.Parse(c[4], CultureInfo.InvariantCulture), D(c[5]), D(c[6]))).ToArray());

    private static string Median(IEnumerable<double> values, Func<double, string> format)
    {
        var v = values.Order().ToArray();
        return v.Length == 0 ? "–" : format(v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2);
    }

    private static string Plural(int n, string noun) => $"{n} {noun}{(n == 1 ? "" : "s")}";

    private static string Label(string algo, string mode) =>
        $"{algo.ToUpperInvariant()}, {(mode == "local" ? "local" : algo == "ppo" ? "cluster (workers act)" : "cluster")}";

    private static void Report(string outDir, List<Row> rows, Dictionary<(string Algo, string Env, string Mode, int Seed), IReadOnlyList<(long Step, double Seconds, double MeanReturn20)>> curves)
    {
        var table = new StringBuilder();
        table.AppendLine("| env | learner | final return, last 100 episodes (mean ± std over seeds) | reached threshold | median steps to threshold | median seconds to threshold | median env steps/s |");
        table.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var env in rows.Select(r => r.Env).Distinct())
        {
            double? threshold = Gym.Ids.Contains(env) ? Gym.Spec(env).RewardThreshold : null;
            foreach (var g in rows.Where(r => r.Env == env).GroupBy(r => (r.Algo, r.Mode)))
            {
                var finals = g.Select(r => r.Final100).Where(double.IsFinite).ToArray();
                double mean = finals.DefaultIfEmpty(double.NaN).Average();
                double std = finals.Length > 1 ? Math.Sqrt(finals.Sum(x => (x - mean) * (x - mean)) / (finals.Length - 1)) : 0;
                var reached = g.Where(r => r.StepsToThreshold is not null).ToArray();
                table.AppendLine(CultureInfo.InvariantCulture,
                    $"| {env} | {Label(g.Key.Algo, g.Key.Mode)} ({Plural(g.First().NumEnvs, "env")}{(g.First().Workers > 0 ? $", {Plural(g.First().Workers, "worker")}" : "")}{(g.First().Sync.Length > 0 ? $", sync {g.First().Sync}" : "")}) | " +
                    $"{mean:F1} ± {std:F1} ({finals.Length} seeds, {g.Max(r => r.EnvSteps) / 1e6:0.##}M steps) | " +
                    $"{(threshold is double t ? $"{reached.Length}/{g.Count()} (≥ {t:0.#})" : "no threshold")} | " +
                    $"{Median(reached.Select(r => (double)r.StepsToThreshold!.Value), v => v.ToString("N0", CultureInfo.InvariantCulture))} | " +
                    $"{Median(reached.Select(r => r.SecondsToThreshold ?? double.NaN).Where(double.IsFinite), v => v.ToString("F1", CultureInfo.InvariantCulture))} | " +
                    $"{Median(g.Select(r => r.Sps), v => v.ToString("N0", CultureInfo.InvariantCulture))} |");
            }
            foreach (var p in PublishedResults.Where(p => p.Env == env))
                table.AppendLine($"| {env} | *published:* {p.Who} | {p.Figure} | | | | *{p.Source}* |");
        }
        File.WriteAllText(Path.Combine(outDir, "table.md"), table.ToString());
        Console.Error.WriteLine(table);

        foreach (var env in rows.Select(r => r.Env).Distinct())
        {
            var series = rows.Where(r => r.Env == env).Select(r => (r.Algo, r.Mode)).Distinct().Select(k => Curves.Band(Label(k.Algo, k.Mode),
                curves.Where(c => c.Key.Env == env && c.Key.Algo == k.Algo && c.Key.Mode == k.Mode)
                    .Select(c => (IReadOnlyList<(double, double)>)c.Value.Select(p => ((double)p.Step, p.MeanReturn20)).ToArray()).ToArray())).ToArray();
            int n = rows.Where(r => r.Env == env).Select(r => r.Seed).Distinct().Count();
            File.WriteAllText(Path.Combine(outDir, $"return-vs-steps-{env}.svg"), SvgChart.Lines(
                $"{env}: mean return of the last 20 episodes, mean of {n} seeds (band: lowest to highest seed)", "env steps", "return (mean of last 20 episodes)", series));
        }
        Console.Error.WriteLine($"Wrote runs.csv, curves.csv, table.md and return-vs-steps-<env>.svg in {outDir}.");
    }
}
