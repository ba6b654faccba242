using ClusterEnv.Transport;
using System.Diagnostics;
using ClusterEnv.Cluster;

namespace ClusterEnv.Tests.Cluster;

/// <summary>
/// A worker written in Node.js with the stock @grpc/grpc-js (examples/node-worker) registers with a C# hub, is stepped
/// by a ClusterVecEnv with Gymnasium's semantics, and is refused with a clear status for a wrong token. Needs node and
/// the two npm packages (.ci/run installs them and sets CLUSTERENV_NODE_MODULES); skipped where they are missing.
/// </summary>
[NonParallelizable]
[Category("Process")]
public class NodeWorkerInteropTests
{
    private static Process StartNode(int port, params string[] args)
    {
        string? modules = Environment.GetEnvironmentVariable("CLUSTERENV_NODE_MODULES");
        if (string.IsNullOrEmpty(modules) || !Directory.Exists(Path.Combine(modules, "@grpc", "grpc-js")))
            Assert.Ignore("Set CLUSTERENV_NODE_MODULES to a node_modules folder with @grpc/grpc-js and @grpc/proto-loader (npm install them) to run the Node interop tests.");
        var psi = new ProcessStartInfo("node") { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.Environment["NODE_PATH"] = modules;
        foreach (var a in new[] { Path.Combine(TestCluster.RepoRoot, "examples", "node-worker", "worker.js"), "--hub", $"127.0.0.1:{port}" }.Concat(args))
            psi.ArgumentList.Add(a);
        try { return Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception) { Assert.Ignore("node is not on PATH."); return null!; }
    }

    [Test]
    public void NodeWorker_IsSteppedByAClusterVecEnv_WithNextStepAutoreset()
    {
        int port = TestCluster.FreePort();
        using var node = StartNode(port, "--num-envs", "3", "--worker-id", "node0", "--token", "js-token");
        try
        {
            using var env = new ClusterVecEnv(new ClusterOptions
            {
                EnvId = "CartPole-v1", NumEnvs = 3, NumWorkers = 1, LocalWorkers = false,
                Hub = new HubOptions { Port = port, Token = "js-token" }, ConnectTimeout = TimeSpan.FromSeconds(60), StepTimeout = TimeSpan.FromSeconds(30),
            });
            Assert.That(env.Workers.Single().WorkerId, Is.EqualTo("node0"));
            var first = env.Reset(seed: 0).Observations.ToArray();
            Assert.That(first.All(v => Math.Abs(v) <= 0.05f), Is.True, "CartPole starts within ±0.05");
            var actions = new int[3];
            bool[] ended = new bool[3];
            int episodes = 0;
            for (int t = 0; t < 300; t++)
            {
                for (int i = 0; i < 3; i++) actions[i] = t % 3 == 0 ? 1 : 0;
                var r = env.Step(actions);
                for (int i = 0; i < 3; i++)
                {
                    // NextStep: the step after an episode ends resets that sub-env and reports reward 0, no flags.
                    Assert.That(r.Rewards[i], Is.EqualTo(ended[i] ? 0.0 : 1.0), $"step {t}, env {i}");
                    if (ended[i]) Assert.That(r.Terminated[i] || r.Truncated[i], Is.False);
                    ended[i] = r.Terminated[i] || r.Truncated[i];
                    if (r.Terminated[i]) episodes++;
                }
            }
            Assert.That(episodes, Is.GreaterThan(3), "a biased policy topples the pole many times in 300 steps");
        }
        finally
        {
            if (!node.WaitForExit(10_000)) node.Kill();
        }
        Assert.That(node.ExitCode, Is.Zero, "the node worker exits 0 when the hub closes: " + node.StandardError.ReadToEnd());
    }

    [Test]
    public async Task NodeWorker_WithAWrongToken_IsRefusedWithUnauthenticated()
    {
        await using var hub = await ClusterHub.StartAsync(new HubOptions { Token = "right" });
        hub.SetAdmission(_ => null);
        using var node = StartNode(hub.Url.Port, "--worker-id", "node-bad", "--token", "wrong");
        string stderr = await node.StandardError.ReadToEndAsync();
        Assert.That(node.WaitForExit(30_000), Is.True);
        Assert.That(node.ExitCode, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("UNAUTHENTICATED").And.Contain("token does not match"));
        Assert.That(hub.Refusals.Single().WorkerId, Is.EqualTo("node-bad"));
    }
}
