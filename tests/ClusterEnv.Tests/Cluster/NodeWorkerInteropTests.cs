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
    public void NodeWorker_SendsImageFrames_AsBytes()
    {
        // Two Node workers with the same seeds, one observing the four floats and one 8×16 frames drawn from them
        // (examples/node-worker: --frames): the frames arrive as a uint8 Box's bytes, equal to the drawing of the floats.
        const int h = 8, w = 16;
        int portA = TestCluster.FreePort(), portB = TestCluster.FreePort();
        // Each worker starts just before its hub (a Node worker that finds no hub exits with 1).
        using var floats = StartNode(portA, "--num-envs", "2", "--worker-id", "node-floats", "--token", "js-token");
        Process? images = null;
        try
        {
            ClusterVecEnv Open(int port) => new(new ClusterOptions
            {
                EnvId = "CartPole-v1", NumEnvs = 2, NumWorkers = 1, LocalWorkers = false,
                Hub = new HubOptions { Port = port, Token = "js-token", SharedMemory = false }, ConnectTimeout = TimeSpan.FromSeconds(60), StepTimeout = TimeSpan.FromSeconds(30),
            });
            using var a = Open(portA);
            images = StartNode(portB, "--num-envs", "2", "--worker-id", "node-frames", "--token", "js-token", "--frames", $"{h}x{w}");
            using var b = Open(portB);
            Assert.That(b.SingleObservationSpace, Is.EqualTo(new ClusterEnv.Spaces.Box(0f, 255f, [1, h, w], ClusterEnv.Spaces.DType.UInt8)));
            Assert.That(b.ObservationDType, Is.EqualTo(ClusterEnv.Spaces.DType.UInt8));
            var sa = a.Reset(seed: 5).Observations;
            b.Reset(seed: 5);
            var seen = new HashSet<string>();
            for (int t = 0; t <= 60; t++)
            {
                for (int i = 0; i < 2; i++)
                    Assert.That(b.ObservationBytes.Slice(i * h * w, h * w).ToArray(), Is.EqualTo(Frame(sa[i * 4], sa[i * 4 + 2], h, w)), $"step {t}, env {i}");
                if (t == 60) break;
                var actions = new[] { t % 4 == 0 ? 0 : 1, t % 2 };
                sa = a.Step(actions).Observations;
                b.Step(actions);
                seen.Add(Convert.ToHexString(b.ObservationBytes));
            }
            Assert.That(seen, Has.Count.GreaterThan(3), "the frames change as the carts move and the poles tilt");
        }
        finally
        {
            if (!floats.WaitForExit(10_000)) floats.Kill();
            if (images is not null && !images.WaitForExit(10_000)) images.Kill();
        }
        using (images) Assert.That(images!.ExitCode, Is.Zero, images.StandardError.ReadToEnd());
    }

    // The frame examples/node-worker draws for --frames, from the float32 observation.
    private static byte[] Frame(float x, float theta, int h, int w)
    {
        var f = new byte[h * w];
        int cx = Math.Clamp((int)Math.Floor(((double)x + 2.4) / 4.8 * w), 0, w - 1);
        for (int c = Math.Max(0, cx - 1); c <= Math.Min(w - 1, cx + 1); c++) f[(h - 1) * w + c] = 255;
        int tip = Math.Clamp(cx + (int)Math.Floor((double)theta / 0.2095 * w / 4 + 0.5), 0, w - 1); // JavaScript's Math.round
        f[tip] = 128;
        return f;
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
