using System.CommandLine;
using ClusterEnv.CommandLine;
using System.Globalization;
using System.Text;
using ClusterEnv.Cluster;
using ClusterEnv.Learners.Metrics;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Sync;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// The APS threshold sweep: PPO on worker rollouts for every (env, strategy, seed), through a local worker pool.
/// Writes runs.csv (one row per run), curves.csv (mean-20 return, at most 200 points per run), a table on the console, SVG plots
/// (return vs env steps per strategy, one per env; pushes per strategy) and a TensorBoard event file per run.
/// </summary>
public static class ApsSweep
{
    private sealed record RunRecord(string Env, string Strategy, int Seed, int Pushes, long Bytes, double Final, long? StepsToThreshold, double Sps, double MeanLag,
        List<(long Step, double Mean20)> Curve, double MaxLag = double.NaN);

    public static Command Command()
    {
        var envs = Cli.List<string>("--env", "registry ids of the envs (one or more, comma-separated)", "CartPole-v1,Acrobot-v1");
        var taus = Cli.List<string>("--taus", "strategies: always, never, every:N or a KL threshold τ", "always,0.001,0.01,0.05,0.1,never")
            .Check(ts => ts.FirstOrDefault(t => !IsStrategy(t)) is { } bad ? $"--taus: '{bad}' is not a strategy (always, never, every:N or a number)." : null);
        var seeds = Cli.List<int>("--seeds", "seeds, one run each", "1,2,3");
        var workers = Cli.Option("--workers", "worker processes", 2).AtLeast(1);
        var numEnvs = Cli.Option("--num-envs", "sub-envs in total", 4);
        var totalSteps = Cli.Option("--total-steps", "env steps per run", 500_000L);
        var output = Cli.Option("--out", "folder for runs.csv, curves.csv, table.md, the SVG plots and TensorBoard events", Path.Combine("runs", "aps-sweep"));
        var algo = Cli.Option("--algo", "ppo (lockstep workers) or impala / impact (streaming workers)", "ppo")
            .Check(a => a is "ppo" or "impala" or "impact" ? null : $"--algo '{a}' must be ppo, impala or impact.");
        var command = new Command("aps-sweep", "a learner on worker rollouts per APS strategy: runs.csv, curves.csv, table.md, SVG plots, TensorBoard events")
        {
            envs, taus, seeds, workers, numEnvs, totalSteps, output, algo,
        };
        command.SetAction(p => Run(p.GetValue(envs)!, p.GetValue(taus)!.Select(SyncStrategy.Parse).ToArray(), p.GetValue(seeds)!,
            p.GetValue(workers), p.GetValue(numEnvs), p.GetValue(totalSteps), p.GetValue(output)!, p.GetValue(algo)!));
        return command;
    }

    private static bool IsStrategy(string text)
    {
        try { SyncStrategy.Parse(text); return true; }
        catch (FormatException) { return false; }
    }

    private static void Run(string[] envIds, SyncStrategy[] strategies, int[] seeds, int workers, int numEnvs, long totalSteps, string outDir, string algo)
    {
        Directory.CreateDirectory(outDir);

        var runs = new List<RunRecord>();
        foreach (var envId in envIds)
        foreach (var strategy in strategies)
        foreach (int seed in seeds)
        {
            using var envs = new ClusterVecEnv(new ClusterOptions { EnvId = envId, NumEnvs = numEnvs, NumWorkers = workers });
            var curve = new List<(long, double)>();
            // Each run also gets a TensorBoard event file: tensorboard --logdir <out>/tensorboard compares the strategies.
            using var tensorBoard = new TensorBoardWriter(Path.Combine(outDir, "tensorboard", $"{envId}-{strategy}-seed{seed}"));
            var progress = ConsoleProgress.ForStandardError();
            RunRecord run;
            if (algo == "ppo")
            {
                var r = Ppo.TrainOnWorkers(envs, new PpoOptions { Seed = seed, TotalTimesteps = totalSteps }, strategy, m =>
                {
                    curve.Add((m.GlobalStep, m.MeanReturn20));
                    tensorBoard.AddScalars(m.Scalars(), m.GlobalStep);
                    progress.Report(m.GlobalStep, totalSteps, m.Sps, $"{envId} {strategy} seed {seed}  mean-20 {m.MeanReturn20:F1}  pushes {m.TotalPushes}  lag {m.MeanPolicyLag:F1}");
                });
                var last = r.History[^1];
                run = new RunRecord(envId, strategy.ToString(), seed, last.TotalPushes, last.BytesPushed, r.FinalMeanReturn20, r.StepsToThreshold, last.Sps,
                    r.History.Average(h => h.MeanPolicyLag), curve, r.History.Max(h => h.MeanPolicyLag));
            }
            else
            {
                var o = new Learners.Impala.ImpalaOptions { Seed = seed, TotalTimesteps = totalSteps };
                var r = Learners.Impala.Impala.Train(envs, algo == "impact" ? o.AsImpact() : o, strategy, m =>
                {
                    curve.Add((m.GlobalStep, m.MeanReturn20));
                    tensorBoard.AddScalars(m.Scalars(), m.GlobalStep);
                    progress.Report(m.GlobalStep, totalSteps, m.Sps, $"{envId} {strategy} seed {seed}  mean-20 {m.MeanReturn20:F1}  pushes {m.TotalPushes}  lag {m.MeanPolicyLag:F1}");
                });
                var last = r.History[^1];
                run = new RunRecord(envId, strategy.ToString(), seed, last.TotalPushes, last.BytesPushed, r.FinalMeanReturn20, r.StepsToThreshold, last.Sps,
                    r.History.Average(h => h.MeanPolicyLag), curve, r.History.Max(h => (double)h.MaxPolicyLag));
            }
            progress.Complete();
            runs.Add(run);
            Console.Error.WriteLine($"  {envId} {strategy} seed {seed}: pushes {run.Pushes}, {run.Bytes / 1e6:F2} MB, final {run.Final:F1}, to threshold {run.StepsToThreshold?.ToString(CultureInfo.InvariantCulture) ?? "-"}, {run.Sps:F0} SPS");
        }

        File.WriteAllLines(Path.Combine(outDir, "runs.csv"), ["algo,env,strategy,seed,pushes,bytes_pushed,final_mean_return_20,steps_to_threshold,sps,mean_policy_lag,max_policy_lag",
            .. runs.Select(r => string.Join(",", algo, r.Env, r.Strategy, r.Seed, r.Pushes, r.Bytes, F(r.Final), r.StepsToThreshold?.ToString(CultureInfo.InvariantCulture) ?? "", F(r.Sps), F(r.MeanLag), F(r.MaxLag)))]);
        File.WriteAllLines(Path.Combine(outDir, "curves.csv"), ["env,strategy,seed,global_step,mean_return_20",
            .. runs.SelectMany(r => Curves.Thin(r.Curve, c => c.Step).Select(c => $"{r.Env},{r.Strategy},{r.Seed},{c.Step},{F(c.Mean20)}"))]);

        // The table: per env and strategy, means over seeds (median for steps to threshold, over the seeds that got there).
        var table = new StringBuilder();
        table.AppendLine("| env | strategy | pushes | MB pushed | pushes vs always | final mean-20 | steps to threshold (median) | reached | mean policy lag | max policy lag |");
        table.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var envId in envIds)
        {
            double alwaysPushes = runs.Where(r => r.Env == envId && r.Strategy == "always").Select(r => (double)r.Pushes).DefaultIfEmpty(double.NaN).Average();
            foreach (var s in strategies.Select(x => x.ToString()))
            {
                var g = runs.Where(r => r.Env == envId && r.Strategy == s).ToArray();
                var reached = g.Where(r => r.StepsToThreshold is not null).Select(r => (double)r.StepsToThreshold!.Value).Order().ToArray();
                double pushes = g.Average(r => r.Pushes);
                table.AppendLine(CultureInfo.InvariantCulture, $"| {envId} | {s} | {pushes:F0} | {g.Average(r => r.Bytes) / 1e6:F2} | {(double.IsNaN(alwaysPushes) || s == "always" ? "-" : $"{alwaysPushes / pushes:F1}× fewer")} | " +
                    $"{g.Average(r => r.Final):F1} (min {g.Min(r => r.Final):F1}) | {(reached.Length > 0 ? reached[reached.Length / 2].ToString("N0", CultureInfo.InvariantCulture) : "-")} | {reached.Length}/{g.Length} | {g.Average(r => r.MeanLag):F1} | {g.Max(r => r.MaxLag):F0} |");
            }
        }
        Console.WriteLine(table);
        File.WriteAllText(Path.Combine(outDir, "table.md"), table.ToString());

        foreach (var envId in envIds)
        {
            var series = strategies.Select(s => s.ToString()).Select(s => Curves.Band(s == "always" || s == "never" ? s : $"τ = {s}",
                runs.Where(r => r.Env == envId && r.Strategy == s).Select(r => (IReadOnlyList<(double, double)>)r.Curve.Select(c => ((double)c.Step, c.Mean20)).ToArray()).ToArray())).ToArray();
            File.WriteAllText(Path.Combine(outDir, $"return-vs-steps-{envId}.svg"),
                SvgChart.Lines($"{(algo == "ppo" ? "PPO" : algo.ToUpperInvariant())} on worker rollouts, {envId}: mean of {seeds.Length} seed{(seeds.Length == 1 ? "" : "s")} (band: lowest to highest seed)", "env steps", "return (mean of last 20 episodes)", series));
        }
        var cats = strategies.Select(s => s.ToString()).ToArray();
        File.WriteAllText(Path.Combine(outDir, "pushes-vs-strategy.svg"), SvgChart.Bars($"Weight pushes per run, mean of {seeds.Length} seeds (log scale)", "sync strategy (always, never or KL threshold τ)", "pushes per run",
            cats, envIds.Select(e => (e, (IReadOnlyList<double>)cats.Select(c => runs.Where(r => r.Env == e && r.Strategy == c).Average(r => (double)r.Pushes)).ToArray())).ToArray(), logY: true));
        Console.WriteLine($"Wrote {Path.Combine(outDir, "runs.csv")}, curves.csv, table.md and the SVG plots in {outDir}.");
    }

    private static string F(double v) => v.ToString("0.####", CultureInfo.InvariantCulture);
}
