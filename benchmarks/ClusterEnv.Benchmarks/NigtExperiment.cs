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
/// runs.csv, table.md and a bar chart in --out, and one JSON line per run. By default time is work on a simulated
/// clock (<see cref="NigtTrainer.Simulate"/>: a gradient of s env steps on a worker k× slower takes s·k units), so the
/// machine's load cannot change the experiment; --clock wall runs the workers as threads against the wall clock.
/// </summary>
public static class NigtExperiment
{
    public static Command Command()
    {
        var seeds = Cli.List<int>("--seeds", "seeds, one run each per aggregator and scenario", "1,2,3,4,5");
        var workers = Cli.Option("--workers", "gradient workers", 4).AtLeast(1);
        var slowdown = Cli.Option("--slowdown", "how much slower the last worker is", 4.0);
        var threshold = Cli.Option("--threshold", "mean return of the last 20 episodes that counts as reached (CartPole-v1's registered threshold)", 475.0);
        var clock = Cli.Option("--clock", "work: a simulated clock where a worker's time is its env steps × its slowdown (deterministic, load-independent); wall: threads and seconds", "work")
            .Check(c => c is "work" or "wall" ? null : $"--clock '{c}' must be work or wall.");
        var limit = Cli.Option("--limit", "when a run counts as not reached: work units (env steps of a full-speed worker) with --clock work, seconds with --clock wall (default 3M units or 60 s)", (double?)null);
        var scenarios = Cli.List<string>("--scenarios", "slow (one slow worker) and/or hetero (one slow worker, half the workers with observations scaled 3x)", "slow,hetero");
        var aggregators = Cli.List<string>("--aggregators", "sync, rennala, malenia", "sync,rennala,malenia");
        var lr = Cli.Option("--lr", "NIGT step length η", 0.05);
        var outDir = Cli.Option("--out", "folder for runs.csv, table.md and the chart", "runs/nigt-experiment");
        var command = new Command("nigt-experiment", "time to a return threshold: synchronous averaging vs Rennala NIGT vs Malenia NIGT, with a slow worker and heterogeneous envs")
        {
            seeds, workers, slowdown, threshold, clock, limit, scenarios, aggregators, lr, outDir,
        };
        command.SetAction(p =>
        {
            bool work = p.GetValue(clock) == "work";
            Run(p.GetValue(seeds)!, p.GetValue(workers), p.GetValue(slowdown), p.GetValue(threshold), work, p.GetValue(limit) ?? (work ? 3_000_000 : 60),
                p.GetValue(scenarios)!, p.GetValue(aggregators)!, p.GetValue(lr), p.GetValue(outDir)!);
        });
        return command;
    }

    private static void Run(int[] seeds, int workers, double slowdown, double threshold, bool work, double limit, string[] scenarios, string[] aggregators, double lr, string outDir)
    {
        if (!(limit > 0)) throw new ArgumentException($"--limit {limit}: must be positive.");
        if (!(slowdown >= 1)) throw new ArgumentException($"--slowdown {slowdown}: must be >= 1 (how many times slower the last worker is).");
        foreach (var a in aggregators)
            if (a is not ("sync" or "rennala" or "malenia")) throw new ArgumentException($"--aggregators: '{a}' is not sync, rennala or malenia.");
        foreach (var s in scenarios)
            if (s is not ("slow" or "hetero")) throw new ArgumentException($"--scenarios: '{s}' is not slow or hetero.");
        Directory.CreateDirectory(outDir);
        var csv = new StringBuilder("scenario,aggregator,seed,clock,time_to_threshold,steps_to_threshold,nigt_steps,gradients,stale_discarded,final_mean_return_20,wall_seconds\n");
        var rows = new List<(string Scenario, string Aggregator, NigtResult Result, double? Time)>();
        foreach (var scenario in scenarios)
            foreach (int seed in seeds)
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
                    var options = new NigtOptions { Seed = seed, Threshold = threshold, TimeLimit = TimeSpan.FromSeconds(work ? 3600 : limit), LearningRate = lr };
                    var r = work ? NigtTrainer.Simulate(team, make, options, limit) : NigtTrainer.Train(team, make, options);
                    double? time = work ? r.WorkToThreshold : r.SecondsToThreshold;
                    rows.Add((scenario, name, r, time));
                    string F(double? v) => v is double d ? d.ToString("0.###", CultureInfo.InvariantCulture) : "";
                    csv.Append(CultureInfo.InvariantCulture, $"{scenario},{name},{seed},{(work ? "work" : "wall")},{F(time)},{r.StepsToThreshold},{r.OptimizerSteps},{r.GradientsReceived},{r.GradientsDiscardedStale},{F(r.FinalMeanReturn20)},{F(r.Seconds)}\n");
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        bench = "nigt-experiment", scenario, aggregator = name, seed, workers, slowdown, threshold, clock = work ? "work" : "wall",
                        time_to_threshold = time is double st ? Math.Round(st, 2) : (double?)null, steps_to_threshold = r.StepsToThreshold, wall_seconds = Math.Round(r.Seconds, 2),
                        nigt_steps = r.OptimizerSteps, gradients = r.GradientsReceived, stale_discarded = r.GradientsDiscardedStale,
                        gradients_per_worker = r.GradientsPerWorker, final_mean_return_20 = Math.Round(r.FinalMeanReturn20, 1),
                    }));
                }
        File.WriteAllText(Path.Combine(outDir, "runs.csv"), csv.ToString());
        string unit = work ? "work units (env steps of a full-speed worker)" : "seconds";
        Func<double, string> fmt = work ? v => v.ToString("N0", CultureInfo.InvariantCulture) : v => v.ToString("0.0", CultureInfo.InvariantCulture);
        var table = new StringBuilder($"# NIGT aggregation: time to mean-20 ≥ {threshold} ({workers} workers, the last {slowdown}× slower; {seeds.Length} seeds; " +
            $"time in {unit}; runs cut at {fmt(limit)})\n\n");
        table.Append($"| scenario | aggregator | reached | median time | median env steps | median NIGT steps | stale gradients discarded |\n|---|---|---|---|---|---|---|\n");
        var medians = new Dictionary<(string, string), double>();
        foreach (var g in rows.GroupBy(r => (r.Scenario, r.Aggregator)))
        {
            var reached = g.Where(r => r.Time is not null).ToArray();
            // A run that did not reach counts as the limit, so the median does not flatter an aggregator that often fails.
            double med = Median(g.Select(r => r.Time ?? limit));
            medians[g.Key] = med;
            table.Append(CultureInfo.InvariantCulture, $"| {g.Key.Scenario} | {g.Key.Aggregator} | {reached.Length}/{g.Count()} | {fmt(med)} | " +
                $"{Median(g.Select(r => (double)(r.Result.StepsToThreshold ?? r.Result.EnvSteps))):N0} | {Median(g.Select(r => (double)r.Result.OptimizerSteps)):N0} | " +
                $"{g.Sum(r => r.Result.GradientsDiscardedStale)}/{g.Sum(r => r.Result.GradientsReceived)} |\n");
        }
        File.WriteAllText(Path.Combine(outDir, "table.md"), table.ToString());
        File.WriteAllText(Path.Combine(outDir, "time-to-threshold.svg"), SvgChart.Bars($"NIGT: median time to mean-20 ≥ {threshold}, {seeds.Length} seeds (unreached runs count as the limit)",
            $"scenario (slow: one worker {slowdown}× slower; hetero: also half the workers see observations × 3)", work ? "work units to threshold" : "seconds to threshold", scenarios,
            aggregators.Select(a => (a, (IReadOnlyList<double>)scenarios.Select(s => medians.GetValueOrDefault((s, a))).ToList())).ToList()));
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
