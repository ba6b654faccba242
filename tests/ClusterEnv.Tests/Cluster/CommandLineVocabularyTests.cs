using System.Diagnostics;
using System.Text.RegularExpressions;

namespace ClusterEnv.Tests.Cluster;

/// <summary>
/// Every program (examples, worker, each benchmark command) names the same things the same way: --env for env ids
/// (a comma-separated list where several are taken), --num-envs for sub-envs in total, --envs-per-worker for sub-envs per
/// worker, --total-steps for env steps in total, --seeds for a list of seeds. Read from each program's --help.
/// </summary>
public class CommandLineVocabularyTests
{
    private static readonly string[] Retired = ["--envs", "--steps", "--seed-count", "--n-envs", "--num-steps-total"];

    private static string Help(string dll, params string[] command)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(dll);
        foreach (var c in command) psi.ArgumentList.Add(c);
        psi.ArgumentList.Add("--help");
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        Assert.That(p.WaitForExit(60_000), Is.True);
        Assert.That(p.ExitCode, Is.Zero, $"{Path.GetFileName(dll)} {string.Join(' ', command)} --help: {p.StandardError.ReadToEnd()}");
        return output;
    }

    private static IEnumerable<string> Flags(string help) =>
        Regex.Matches(help, @"(?m)^\s+(?:-\S+, )*(--[a-z0-9-]+)").Select(m => m.Groups[1].Value);

    [Test]
    public void EveryProgram_UsesTheSharedFlagNames_AndShowsTheRealDefaults()
    {
        string bench = Path.Combine(TestCluster.RepoRoot, "benchmarks", "ClusterEnv.Benchmarks", "bin", "Release", "net10.0", "ClusterEnv.Benchmarks.dll");
        if (!File.Exists(bench)) Assert.Ignore($"{bench} is not built (build the solution in Release).");
        var helps = new Dictionary<string, string>
        {
            ["Train"] = Help(Path.Combine(AppContext.BaseDirectory, "Train.dll")),
            ["Rollout"] = Help(Path.Combine(AppContext.BaseDirectory, "Rollout.dll")),
            ["ClusterEnv.Worker"] = Help(Path.Combine(AppContext.BaseDirectory, "ClusterEnv.Worker.dll")),
        };
        var commands = Regex.Matches(Help(bench).Split("Commands:")[1], @"(?m)^\s{2}([a-z][a-z-]+)\s").Select(m => m.Groups[1].Value).ToArray();
        Assert.That(commands, Has.Length.GreaterThanOrEqualTo(15).And.Contains("step-remote").And.Contains("suite"));
        foreach (var c in commands) helps[$"benchmark {c}"] = Help(bench, c);

        foreach (var (program, help) in helps)
        {
            var flags = Flags(help).ToArray();
            Assert.That(flags, Is.Not.Empty, program);
            Assert.That(flags.Intersect(Retired), Is.Empty, $"{program} uses a retired flag name");
            foreach (var f in flags)
                Assert.That(f, Does.Match("^--[a-z0-9]+(-[a-z0-9]+)*$"), $"{program}: {f} is not kebab-case");
        }
        // Every program that trains or steps for a number of env steps calls it --total-steps; --seeds is a list.
        foreach (var p in new[] { "Train", "Rollout", "benchmark train", "benchmark aps-sweep", "benchmark async-throughput" })
            Assert.That(Flags(helps[p]), Does.Contain("--total-steps"), p);
        foreach (var p in new[] { "benchmark train", "benchmark suite", "benchmark aps-sweep", "benchmark nigt-experiment" })
            Assert.That(helps[p], Does.Match(@"--seeds <[^>]+>\s+seeds"), p);
        // The main job's --num-envs shows the defaults each algorithm really uses, not one number.
        Assert.That(helps["Train"], Does.Match(@"--num-envs <num-envs>\s+parallel envs in total \(default: PPO 4, or 1 for continuous actions, as CleanRL; IMPALA/IMPACT 16\)"));
        Assert.That(helps["Train"], Does.Not.Match(@"--num-envs[^\n]*\[default:"));
    }
}
