using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ClusterEnv.CommandLine;
using ClusterEnv.Envs;
using ClusterEnv.Learners.Nigt;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// Why Rennala and Malenia NIGT exist: gradient workers of different speeds (one 4× slower) on CartPole, and
/// heterogeneous environments (half the workers read the state through a different sensor: observations scaled 3×),
/// trained by NIGT with synchronous averaging, Rennala's rule and Malenia's rule. Time and env steps to a mean return;
/// runs.csv, table.md and a bar chart in --out, and one JSON line per run.
/// </summary>
public static class NigtExperiment
{
    public static Command Command()
    {
        var seeds = Cli.Option("--seeds", "seeds per aggregator and scenario", 3);
        var workers = Cli.Option("--workers", "gradient workers", 4).AtLeast(1);
        var slowdown = Cli.Option("--slowdown", "how much slower the last worker is", 4.0);
        var threshold = Cli.Option("--threshold", "mean return of the last 20 episodes that counts as reached", 195.0);
        var limit = Cli.Option("--time-limit", "seconds before a run counts as not reached", 60.0);
        var scenarios = Cli.List<string>("--scenarios", "slow (one slow worker) and/or hetero (one slow worker, half the workers with observations scaled 3x)", "slow,hetero");
        var aggregators = Cli.List<string>("--aggregators", "sync, rennala, malenia", "sync,rennala,malenia");
        var lr = Cli.Option("--lr", "NIGT step length η", 0.05);
        var outDir = Cli.Option("--out", "folder for runs.csv, table.md and the chart", "runs/nigt-experiment");
        var command = new Command("nigt-experiment", "time to a return threshold: synchronous averaging vs Rennala NIGT vs Malenia NIGT, with a slow worker and heterogeneous envs")
        {
            seeds, workers, slowdown, threshold, limit, scenarios, aggregators, lr, outDir,
        };
        command.SetAction(p => Run(p.GetValue(seeds), p.GetValue(workers), p.GetValue(slowdown), p.GetValue(threshold), p.GetValue(limit),
            p.GetValue(scenarios)!, p.GetValue(aggregators)!, p.GetValue(lr), p.GetValue(outDir)!));
        return command;
    }

    private static void Run(int seeds, int workers, double slowdown, double threshold, double limit, string[] scenarios, string[] aggregators, double lr, string outDir)
    {
        foreach (var a in aggregators)
            if (a is not ("sync" or "rennala" or "malenia")) throw new ArgumentException($"--aggregators: '{a}' is not sync, rennala or malenia.");
        foreach (var s in scenarios)
            if (s is not ("slow" or "hetero")) throw new ArgumentException($"--scenarios: '{s}' is not slow or hetero.");
        Directory.CreateDirectory(outDir);
        var csv = new StringBuilder("scenario,aggregator,seed,seconds_to_threshold,steps_to_threshold,nigt_steps,gradients,stale_discarded,final_mean_return_20\n");
        var rows = new List<(string Scenario, string Aggregator, NigtResult Result)>();
        foreach (var scenario in scenarios)
            for (int seed = 1; seed <= seeds; seed++)
                foreach (var name in aggregators)
                {
                    var team = Enumerable.Range(0, workers).Select(i => new NigtWorker(() => MakeEnv(scenario, i, workers),
                        i == workers - 1 ? slowdown : 1)).ToArray();
                    Func<int, int, GradientAggregator> make = name switch
                    {
                        "sync" => (n, size) => new SynchronousAggregator(n, size),
                        "rennala" => (n, size) => new RennalaAggregator(n, size, batch: n),
                        _ => (n, size) => new MaleniaAggregator(n, size, s: n),
                    };
                    var r = NigtTrainer.Train(team, make, new NigtOptions { Seed = seed, Threshold = threshold, TimeLimit = TimeSpan.FromSeconds(limit), LearningRate = lr });
                    rows.Add((scenario, name, r));
                    string F(double? v) => v is double d ? d.ToString("0.###", CultureInfo.InvariantCulture) : "";
                    csv.Append(CultureInfo.InvariantCulture, $"{scenario},{name},{seed},{F(r.SecondsToThreshold)},{r.StepsToThreshold},{r.OptimizerSteps},{r.GradientsReceived},{r.GradientsDiscardedStale},{F(r.FinalMeanReturn20)}\n");
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        bench = "nigt-experiment", scenario, aggregator = name, seed, workers, slowdown, threshold,
                        seconds_to_threshold = r.SecondsToThreshold is double st ? Math.Round(st, 2) : (double?)null, steps_to_threshold = r.StepsToThreshold,
                        nigt_steps = r.OptimizerSteps, gradients = r.GradientsReceived, stale_discarded = r.GradientsDiscardedStale,
                        gradients_per_worker = r.GradientsPerWorker, final_mean_return_20 = Math.Round(r.FinalMeanReturn20, 1),
                    }));
                }
        File.WriteAllText(Path.Combine(outDir, "runs.csv"), csv.ToString());
        var table = new StringBuilder($"# NIGT aggregation: time to mean-20 ≥ {threshold} ({workers} workers, the last {slowdown}× slower; {seeds} seeds; runs cut at {limit} s)\n\n");
        table.Append("| scenario | aggregator | reached | median seconds | median env steps | median NIGT steps | stale gradients discarded |\n|---|---|---|---|---|---|---|\n");
        var medians = new Dictionary<(string, string), double>();
        foreach (var g in rows.GroupBy(r => (r.Scenario, r.Aggregator)))
        {
            var reached = g.Where(r => r.Result.SecondsToThreshold is not null).ToArray();
            // A run that did not reach counts as the time limit, so the median does not flatter an aggregator that often fails.
            double med = Median(g.Select(r => r.Result.SecondsToThreshold ?? limit));
            medians[g.Key] = med;
            table.Append(CultureInfo.InvariantCulture, $"| {g.Key.Scenario} | {g.Key.Aggregator} | {reached.Length}/{g.Count()} | {med:0.0} | " +
                $"{Median(g.Select(r => (double)(r.Result.StepsToThreshold ?? r.Result.EnvSteps))):N0} | {Median(g.Select(r => (double)r.Result.OptimizerSteps)):N0} | " +
                $"{g.Sum(r => r.Result.GradientsDiscardedStale)}/{g.Sum(r => r.Result.GradientsReceived)} |\n");
        }
        File.WriteAllText(Path.Combine(outDir, "table.md"), table.ToString());
        File.WriteAllText(Path.Combine(outDir, "seconds-to-threshold.svg"), SvgChart.Bars($"NIGT: median seconds to mean-20 ≥ {threshold} (unreached runs count {limit} s)",
            "scenario", "seconds", scenarios, aggregators.Select(a => (a, (IReadOnlyList<double>)scenarios.Select(s => medians.GetValueOrDefault((s, a))).ToList())).ToList()));
        Console.Error.WriteLine(table.ToString());
    }

    private static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    // hetero: the second half of the workers read the state through another sensor (every observation scaled 3×): a
    // different MDP per worker that one policy can still solve. (Negating the observations, the paper's "inverted
    // state inputs", makes CartPole unsolvable by one policy: it mirrors the state, so the right action flips.)
    private static IEnv MakeEnv(string scenario, int worker, int workers)
    {
        var env = Gym.Make("CartPole-v1");
        if (scenario != "hetero" || worker < workers / 2) return env;
        return new TransformObservation(env, (input, output) =>
        {
            for (int i = 0; i < input.Length; i++) output[i] = 3 * input[i];
        }, new ClusterEnv.Spaces.Box(-float.MaxValue, float.MaxValue, [4]));
    }
}
