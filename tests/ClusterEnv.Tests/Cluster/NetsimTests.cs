using System.Diagnostics;
using System.Text.Json;

namespace ClusterEnv.Tests.Cluster;

/// <summary>
/// scripts/netsim: simulated hosts (network namespaces) joined by emulated links. Root only (CI runs as root); the
/// tests skip elsewhere, saying why. Each uses its own namespace prefix and tears it down, also when it fails.
/// </summary>
[NonParallelizable]
public class NetsimTests
{
    private static string Script(string name) => Path.Combine(TestCluster.RepoRoot, "scripts", "netsim", name);

    [SetUp]
    public void RequireRoot()
    {
        if (Environment.UserName != "root" && Environment.GetEnvironmentVariable("USER") != "root" && !IsRoot())
            Assert.Ignore("scripts/netsim makes network namespaces, which needs root.");
        if (!File.Exists("/dev/net/tun")) Assert.Ignore("/dev/net/tun is missing: this kernel has no TUN devices for the emulated links.");
    }

    private static bool IsRoot() => File.ReadAllText("/proc/self/status").Split('\n').FirstOrDefault(l => l.StartsWith("Uid:"))?.Split('\t')[1] == "0";

    private static (int Code, string Out, string Err) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.That(p.WaitForExit(TimeSpan.FromMinutes(3)), Is.True, $"{file} {string.Join(' ', args)} did not finish in 3 minutes");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private static string[] Namespaces(string prefix) =>
        Run("ip", "netns", "list").Out.Split('\n').Select(l => l.Split(' ')[0]).Where(n => n.StartsWith(prefix + "-", StringComparison.Ordinal)).ToArray();

    [Test]
    public void Links_AddTheirRoundTripAndCapTheirRate_AndDownRemovesEverything()
    {
        try
        {
            var up = Run("bash", Script("netsim.sh"), "up", "--name", "nt1", "--workers", "2", "--rtt-ms", "20", "--rate-mbit", "40");
            Assert.That(up.Code, Is.Zero, up.Err);
            Assert.That(Namespaces("nt1"), Is.EquivalentTo(new[] { "nt1-learner", "nt1-w1", "nt1-w2" }));

            var ping = Run("bash", Script("netsim.sh"), "ping", "--name", "nt1");
            Assert.That(ping.Code, Is.Zero, ping.Err);
            var links = ping.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
            Assert.That(links, Has.Length.EqualTo(2), ping.Out);
            foreach (var l in links)
                Assert.That(l.GetProperty("rtt_min_ms").GetDouble(), Is.InRange(20.0, 30.0), ping.Out);

            // A bulk transfer from worker host 1 runs at the link's rate, not loopback's.
            using var echo = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", "nt1-learner", "python3", Script("rtt.py"), "serve", "47999"]))!;
            try
            {
                Thread.Sleep(500);
                var bulk = Run("ip", "netns", "exec", "nt1-w1", "python3", Script("rtt.py"), "bulk", "10.78.1.1", "47999", "6");
                Assert.That(bulk.Code, Is.Zero, bulk.Err);
                double mbit = JsonDocument.Parse(bulk.Out).RootElement.GetProperty("mbit_per_sec").GetDouble();
                Assert.That(mbit, Is.InRange(20.0, 41.0), bulk.Out);

                // Worker host 1 has a route to its own link only: worker 2's side of the learner is unreachable.
                var other = Run("ip", "netns", "exec", "nt1-w1", "python3", Script("rtt.py"), "measure", "10.78.2.1", "47999", "1");
                Assert.That(other.Code, Is.Not.Zero, other.Out);
            }
            finally { echo.Kill(true); }
        }
        finally
        {
            var down = Run("bash", Script("netsim.sh"), "down", "--name", "nt1");
            Assert.That(down.Code, Is.Zero, down.Err);
        }
        Assert.That(Namespaces("nt1"), Is.Empty);
        Assert.That(Directory.Exists("/run/clusterenv-netsim/nt1"), Is.False);
    }

    [Test]
    public void BadSettings_AreRefusedByName()
    {
        var r = Run("bash", Script("netsim.sh"), "up", "--name", "nt2", "--workers", "0");
        Assert.That(r.Code, Is.EqualTo(2));
        Assert.That(r.Err, Does.Contain("--workers '0'"));
        r = Run("bash", Script("netsim.sh"), "up", "--name", "nt2", "--workers", "1", "--loss", "1.5");
        Assert.That(r.Code, Is.EqualTo(2));
        Assert.That(r.Err, Does.Contain("--loss '1.5'"));
        Assert.That(Namespaces("nt2"), Is.Empty, "a failed setup tears itself down");
        r = Run("bash", Script("netsim.sh"), "worker", "3", "--name", "nt2", "true");
        Assert.That((r.Code, r.Err.Contains("no worker host 3")), Is.EqualTo((2, true)), r.Err);
    }

    [Test]
    public void ScaleOut_TrainsAcrossTheSimulatedNetwork_AndReportsAJsonLine()
    {
        string output = Path.Combine(Path.GetTempPath(), $"scale-out-{Guid.NewGuid():N}.jsonl");
        try
        {
            var r = Run("bash", Script("scale-out.sh"), "--workers", "2", "--rtt", "10", "--rate", "100", "--modes", "impala central",
                "--sync", "0.05", "--steps", "6000", "--envs-per-worker", "4", "--out", output);
            Assert.That(r.Code, Is.Zero, r.Err);
            var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
            Assert.That(lines.Select(l => l.GetProperty("mode").GetString()), Is.EqualTo(new[] { "impala", "central" }));
            foreach (var l in lines)
            {
                Assert.That(l.GetProperty("rtt_measured_ms").GetDouble(), Is.InRange(10.0, 20.0));
                Assert.That(l.GetProperty("steps").GetInt32(), Is.GreaterThanOrEqualTo(4096));
                Assert.That(l.GetProperty("link_bytes_to_learner").GetInt64(), Is.GreaterThan(0), "the run's traffic crossed the emulated links");
            }
            Assert.That(lines[0].GetProperty("pushes").GetInt32(), Is.GreaterThan(0), "IMPALA pushed weights to its workers");
            // Lockstep stepping waits a round trip per step: 8 envs at >= 10 ms cannot exceed 800 env-steps/s.
            Assert.That(lines[1].GetProperty("env_steps_per_sec").GetDouble(), Is.LessThan(800));
            Assert.That(Namespaces("so"), Is.Empty);
        }
        finally { File.Delete(output); }
    }
}
