using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Common;
using ClusterEnv.Vector;

namespace ClusterEnv.Tests.Cluster;

/// <summary>
/// A worker written in Python with stock grpcio (examples/python-worker) serves envs to the C# hub. Needs Debian's
/// python3-grpcio, python3-grpc-tools and python3-numpy (.ci/run installs them); skipped where they are missing.
/// </summary>
[NonParallelizable]
public class PythonWorkerInteropTests
{
    private static string Python()
    {
        string python = Environment.GetEnvironmentVariable("CLUSTERENV_PYTHON") ?? (File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
        try
        {
            using var p = Process.Start(new ProcessStartInfo(python, ["-c", "import grpc, grpc_tools, numpy"]) { RedirectStandardError = true })!;
            p.WaitForExit(30_000);
            if (p.ExitCode == 0) return python;
        }
        catch (System.ComponentModel.Win32Exception) { }
        Assert.Ignore($"{python} lacks grpcio/grpc_tools/numpy; install python3-grpcio python3-grpc-tools python3-numpy (apt) to run the interop tests.");
        return null!;
    }

    private static (ClusterVecEnv Env, Process Worker) Start(int numEnvs, AutoresetMode mode, params string[] extra) =>
        Start("CartPole-v1", numEnvs, mode, standin: false, extra);

    // standin: Gymnasium is the project's stand-in module (tests/python/gymnasium_standin), so the worker serves
    // gymnasium.make(envId) through its SyncVectorEnv.
    private static (ClusterVecEnv Env, Process Worker) Start(string envId, int numEnvs, AutoresetMode mode, bool standin, params string[] extra)
    {
        string python = Python();
        int port = TestCluster.FreePort();
        var psi = new ProcessStartInfo(python) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { Path.Combine(TestCluster.RepoRoot, "examples", "python-worker", "worker.py"), "--hub", $"http://127.0.0.1:{port}",
                     "--env", envId, "--num-envs", numEnvs.ToString(), "--worker-id", "py0" }.Concat(standin ? ["--gymnasium"] : []).Concat(extra))
            psi.ArgumentList.Add(a);
        psi.Environment["CLUSTERENV_TOKEN"] = "py-token";
        if (standin) psi.Environment["PYTHONPATH"] = StandinPath + Path.PathSeparator + Path.Combine(TestCluster.RepoRoot, "tests", "python", "user_envs");
        var worker = Process.Start(psi)!;
        try
        {
            var env = new ClusterVecEnv(new ClusterOptions
            {
                EnvId = envId, NumEnvs = numEnvs, NumWorkers = 1, LocalWorkers = false, AutoresetMode = mode,
                Hub = new HubOptions { Port = port, Token = "py-token" }, ConnectTimeout = TimeSpan.FromSeconds(60), StepTimeout = TimeSpan.FromSeconds(30),
            });
            return (env, worker);
        }
        catch (Exception e)
        {
            worker.Kill();
            throw new AssertionException($"The Python worker did not register: {e.Message}\n{worker.StandardError.ReadToEnd()}");
        }
    }

    [Test]
    public void PythonWorker_AnswersGetAttrSetAttrAndCall_WithGymnasiumsNames_AndItsSpec()
    {
        var (env, worker) = Start(3, AutoresetMode.NextStep);
        using (env)
        {
            Assert.That(env.GetAttr("gravity"), Is.EqualTo(new object?[] { 9.8, 9.8, 9.8 }));
            env.SetAttr("length", new object?[] { 0.5, 1.0, 2.0 });
            Assert.That(env.GetAttr("length"), Is.EqualTo(new object?[] { 0.5, 1.0, 2.0 }));
            Assert.That(env.Call("max_episode_steps"), Has.All.EqualTo(500L), "call on a non-callable returns the attribute");
            var ex = Assert.Throws<SubEnvException>(() => env.GetAttr("no_such_thing"))!;
            Assert.That(ex.ErrorType, Is.EqualTo("AttributeError"));
            Assert.That(ex.Message, Does.Contain("no_such_thing"));
            env.Reset(seed: 1);
            env.Step([0, 1, 0]);
        }
        worker.WaitForExit(10_000);
    }

    [Test]
    public void PythonWorker_ServesCartPole_WithGymnasiumSemantics_ToTheCSharpLearner()
    {
        var (env, worker) = Start(4, AutoresetMode.NextStep);
        using (env)
        {
            Assert.That(env.SingleObservationSpace, Is.EqualTo(ClusterEnv.Envs.Gym.Make("CartPole-v1").ObservationSpace));
            var obs = env.Reset(seed: 0).Observations.ToArray();
            Assert.That(obs, Has.All.InRange(-0.05f, 0.05f));
            var rng = new Rng(1);
            var actions = new int[4];
            var pending = new bool[4];
            int episodes = 0;
            for (int t = 0; t < 400; t++)
            {
                for (int i = 0; i < 4; i++) actions[i] = rng.NextInt(2);
                var r = env.Step(actions);
                for (int i = 0; i < 4; i++)
                {
                    var row = r.Observations.AsSpan(i * 4, 4);
                    if (pending[i])
                    {
                        Assert.That(r.Rewards[i], Is.Zero, "the autoreset step reports reward 0");
                        Assert.That(row.ToArray(), Has.All.InRange(-0.05f, 0.05f), "the autoreset step returns a fresh start");
                    }
                    else
                    {
                        Assert.That(r.Rewards[i], Is.EqualTo(1.0));
                        // The Python physics matches ours: one step from the previous observation lands within float32 rounding.
                        var expected = CartPoleStep(obs.AsSpan(i * 4, 4), actions[i]);
                        for (int k = 0; k < 4; k++) Assert.That(row[k], Is.EqualTo(expected[k]).Within(2e-4), $"t={t} env={i} component {k}");
                        if (r.Terminated[i])
                            Assert.That(Math.Abs(row[0]) > 2.4f || Math.Abs(row[2]) > 0.2094395f, Is.True, "terminated only past a threshold");
                    }
                    if (r.Info.TryGetEpisode(i, out var ep))
                    {
                        episodes++;
                        Assert.That(ep.Return, Is.EqualTo(ep.Length), "CartPole's return equals its length");
                    }
                    pending[i] = r.Terminated[i] || r.Truncated[i];
                }
                obs = r.Observations.ToArray();
            }
            Assert.That(episodes, Is.GreaterThan(10));
        }
        Assert.That(worker.WaitForExit(10_000), Is.True, "the Python worker exits when the hub closes");
        Assert.That(worker.ExitCode, Is.Zero, worker.StandardError.ReadToEnd());
    }

    [Test]
    public void PythonException_ReachesTheLearner_AsSubEnvException_WithTheTraceback()
    {
        var (env, worker) = Start(2, AutoresetMode.NextStep, "--raise-after", "3");
        using (env)
        {
            env.Reset(seed: 0);
            env.Step(new int[2]);
            env.Step(new int[2]);
            var ex = Assert.Throws<SubEnvException>(() => env.Step(new int[2]))!;
            Assert.Multiple(() =>
            {
                Assert.That(ex.WorkerId, Is.EqualTo("py0"));
                Assert.That(ex.EnvIndex, Is.EqualTo(0));
                Assert.That(ex.ErrorType, Is.EqualTo("RuntimeError"));
                Assert.That(ex.ErrorMessage, Does.Contain("failed at step 3"));
                Assert.That(ex.ErrorStackTrace, Does.Contain("worker.py").And.Contain("Traceback"));
            });
            env.Reset(seed: 1);
            Assert.DoesNotThrow(() => env.Step(new int[2]));
        }
        worker.WaitForExit(10_000);
    }

    // CLUSTERENV_GYMNASIUM_PATH runs these tests against another Gymnasium (e.g. a real release's source on PYTHONPATH).
    private static string StandinPath => Environment.GetEnvironmentVariable("CLUSTERENV_GYMNASIUM_PATH") ?? Path.Combine(TestCluster.RepoRoot, "tests", "python", "gymnasium_standin");

    [Test]
    public void GymnasiumWorker_Discrete_MatchesTheCSharpCartPole_StepForStep_FromTheSameSeeds()
    {
        var (env, worker) = Start("CartPole-v1", 3, AutoresetMode.SameStep, standin: true);
        using var local = ClusterEnv.Envs.Gym.MakeVec("CartPole-v1", 3, autoresetMode: AutoresetMode.SameStep);
        using (env)
        {
            Assert.That(env.SingleObservationSpace, Is.EqualTo(local.SingleObservationSpace));
            Assert.That(env.SingleActionSpace, Is.EqualTo(local.SingleActionSpace));
            Assert.That(env.Reset(seed: 5).Observations.ToArray(), Is.EqualTo(local.Reset(seed: 5).Observations.ToArray()),
                "NumPy's PCG64 on both sides: the same seeds give the same start states");
            var rng = new Rng(3);
            var actions = new int[3];
            int finals = 0;
            for (int t = 0; t < 300; t++)
            {
                for (int i = 0; i < 3; i++) actions[i] = rng.NextInt(2);
                var a = env.Step(actions);
                var b = local.Step(actions);
                Assert.That(a.Observations.ToArray(), Is.EqualTo(b.Observations.ToArray()), $"step {t}");
                Assert.That(a.Terminated.ToArray(), Is.EqualTo(b.Terminated.ToArray()), $"step {t}");
                for (int i = 0; i < 3; i++)
                {
                    if (!b.Info.HasFinalObservation[i]) continue;
                    finals++;
                    Assert.That(a.Info.HasFinalObservation[i], Is.True, $"step {t} env {i}: SameStep's final observation");
                    Assert.That(a.Info.FinalObservations.AsSpan(i * 4, 4).ToArray(), Is.EqualTo(b.Info.FinalObservations.AsSpan(i * 4, 4).ToArray()));
                }
            }
            Assert.That(finals, Is.GreaterThan(5));
        }
        Assert.That(worker.WaitForExit(10_000), Is.True);
        Assert.That(worker.ExitCode, Is.Zero, worker.StandardError.ReadToEnd());
    }

    [Test]
    public void GymnasiumWorker_Continuous_TakesFloatActions_AndTruncatesAtItsTimeLimit()
    {
        var (env, worker) = Start("Pendulum-v1", 2, AutoresetMode.NextStep, standin: true);
        using (env)
        {
            var pendulum = ClusterEnv.Envs.Gym.Make("Pendulum-v1");
            Assert.That(env.SingleActionSpace, Is.EqualTo(pendulum.ActionSpace));
            var start = new float[3];
            pendulum.Reset(start, seed: 11);
            Assert.That(env.Reset(seed: 11).Observations.AsSpan(0, 3).ToArray(), Is.EqualTo(start), "Gymnasium's start state for seed 11");
            float[] torque = [2f, -2f];
            int truncatedAt = -1;
            for (int t = 0; t < 200 && truncatedAt < 0; t++)
            {
                var r = env.Step(torque);
                Assert.That(r.Rewards[0], Is.LessThanOrEqualTo(0));
                if (r.Truncated[0]) truncatedAt = t;
            }
            Assert.That(truncatedAt, Is.EqualTo(199), "200 steps, then the registered TimeLimit truncates");
        }
        Assert.That(worker.WaitForExit(10_000), Is.True);
    }

    [Test]
    public void GymnasiumWorker_ServesAnUnregisteredModuleClass_AndAStepErrorNamesItsSubEnv()
    {
        var (env, worker) = Start("user_envs:Flaky", 2, AutoresetMode.NextStep, standin: true, "--max-episode-steps", "30");
        using (env)
        {
            Assert.That(env.SingleObservationSpace, Is.EqualTo(new ClusterEnv.Spaces.Box(0.0, 1.0, [1], ClusterEnv.Spaces.DType.Float64)), "a float64 Box keeps its dtype");
            Assert.That(env.Spec?.MaxEpisodeSteps, Is.EqualTo(30), "an unregistered class has no spec of its own: the worker's time limit");
            env.Reset(new long?[] { 100, 102 });
            Assert.DoesNotThrow(() => env.Step([1, 1]));
            env.Reset(new long?[] { 100, 101 });
            var ex = Assert.Throws<SubEnvException>(() => env.Step([1, 1]))!;
            Assert.Multiple(() =>
            {
                Assert.That(ex.EnvIndex, Is.EqualTo(1), "the sub-env that raised");
                Assert.That(ex.ErrorType, Is.EqualTo("RuntimeError"));
                Assert.That(ex.ErrorMessage, Does.Contain("seed 101"));
                Assert.That(ex.ErrorStackTrace, Does.Contain("Traceback").And.Contain("user_envs.py"));
            });
            env.Reset(new long?[] { 100, 102 });
            Assert.DoesNotThrow(() => env.Step([1, 1]), "the worker keeps serving");
        }
        Assert.That(worker.WaitForExit(10_000), Is.True);
    }

    [Test]
    public void TheTrainExample_TrainsOnAnEnvOnlyPythonWorkersServe()
    {
        string python = Python();
        string dir = Path.Combine(Path.GetTempPath(), $"clusterenv-pytrain-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "token"), "py-train\n");
        int port = TestCluster.FreePort();
        var train = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "Train.dll"), "--algo", "ppo", "--env", "user_envs:Corridor", "--workers-external", "1",
                     "--port", port.ToString(), "--token-file", Path.Combine(dir, "token"), "--total-steps", "2048", "--out", Path.Combine(dir, "run") })
            train.ArgumentList.Add(a);
        using var learner = Process.Start(train)!;
        var stdout = learner.StandardOutput.ReadToEndAsync();
        var stderr = learner.StandardError.ReadToEndAsync();
        var psi = new ProcessStartInfo(python) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { Path.Combine(TestCluster.RepoRoot, "examples", "python-worker", "worker.py"), "--hub", $"http://127.0.0.1:{port}",
                     "--env", "user_envs:Corridor", "--num-envs", "4", "--max-episode-steps", "40", "--gymnasium", "--token-file", Path.Combine(dir, "token") })
            psi.ArgumentList.Add(a);
        psi.Environment["PYTHONPATH"] = StandinPath + Path.PathSeparator + Path.Combine(TestCluster.RepoRoot, "tests", "python", "user_envs");
        using var worker = Process.Start(psi)!;
        var workerErr = worker.StandardError.ReadToEndAsync();
        try
        {
            Assert.That(learner.WaitForExit(120_000), Is.True, "training ends");
            Assert.That(learner.ExitCode, Is.Zero, stderr.Result + stdout.Result + workerErr.Result);
            Assert.That(stdout.Result, Does.Contain("user_envs:Corridor is served by the workers: observations Box(0, 1, (1,), float64), actions Discrete(2), max episode steps 40"));
            Assert.That(stdout.Result, Does.Contain("Done: 2,048 env steps"));
            Assert.That(File.Exists(Path.Combine(dir, "run", "policy.cepolicy")), Is.True);
            Assert.That(worker.WaitForExit(20_000), Is.True, "the worker ends with the learner");
        }
        finally
        {
            if (!worker.HasExited) worker.Kill(entireProcessTree: true);
            if (!learner.HasExited) learner.Kill(entireProcessTree: true);
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void GymnasiumWorker_ImageObservations_TravelAsBytes_AndArriveAsTheirValues()
    {
        var (env, worker) = Start("user_envs:Frames", 2, AutoresetMode.NextStep, standin: true);
        using (env)
        {
            Assert.That(env.SingleObservationSpace, Is.EqualTo(new ClusterEnv.Spaces.Box(0f, 255f, [2, 8, 8], ClusterEnv.Spaces.DType.UInt8)));
            var obs = env.Reset(seed: 0).Observations;
            for (int t = 1; t <= 3; t++)
            {
                obs = env.Step([1, 1]).Observations;
                for (int i = 0; i < 2; i++)
                {
                    var row = obs.AsSpan(i * 128, 128);
                    Assert.That(row[64..].ToArray(), Has.All.EqualTo((float)(32 * t % 256)), $"channel 1 of sub-env {i} at step {t}");
                    Assert.That(row[..64].ToArray().Count(v => v == 255f), Is.EqualTo(8), "one lit column of 8 pixels");
                    Assert.That(row[..64].ToArray().Count(v => v == 7f), Is.EqualTo(56));
                }
            }
        }
        Assert.That(worker.WaitForExit(10_000), Is.True);
    }

    [Test]
    public void GymnasiumWorker_DictObservations_MultiDiscreteActions_InfoAndSpec_ArriveInCSharp()
    {
        var (env, worker) = Start("StandinDict-v0", 3, AutoresetMode.NextStep, standin: true);
        using (env)
        {
            var dict = (ClusterEnv.Spaces.DictSpace)env.SingleObservationSpace;
            Assert.That(dict.Keys, Is.EqualTo(new[] { "goal", "position", "sensors" }), "Gymnasium's sorted keys, in order");
            Assert.That(dict["position"].Shape, Is.EqualTo(new[] { 2, 2 }), "the Box keeps its shape");
            Assert.That(env.ObservationSize, Is.EqualTo(1 + 4 + 3));
            Assert.That(env.SingleActionSpace, Is.EqualTo(new ClusterEnv.Spaces.MultiDiscrete([3, 3])));
            Assert.That(env.Spec?.MaxEpisodeSteps, Is.EqualTo(50), "the spec comes from the worker: the C# registry does not know the id");
            var reset = env.Reset(seed: 2);
            Assert.That(reset.Info.TryGetStacked("distance", out var d0, out var m0), Is.True);
            Assert.That(m0, Has.All.True);
            var obs = reset.Observations.ToArray();
            Assert.That(obs.Where((_, k) => k % 8 == 0), Has.All.InRange(0f, 3f), "goal: a Discrete(4) value");
            for (int i = 0; i < 3; i++)
                Assert.That((double)d0[i]!, Is.EqualTo(Enumerable.Range(1, 4).Sum(k => Math.Abs((double)obs[i * 8 + k]))).Within(1e-5), "distance = |position|₁");
            var r = env.Step([2, 2, 0, 0, 1, 1]);
            Assert.That(r.Info.TryGetStacked("moves", out var moves, out var mm), Is.True);
            Assert.That(mm, Has.All.True);
            Assert.That((double[])moves[0]!, Is.EqualTo(new[] { 1.0, 4.0 }), "moves = [t, sum(action)] for env 0");
            Assert.That((double[])moves[1]!, Is.EqualTo(new[] { 1.0, 0.0 }));
            Assert.Throws<ArgumentOutOfRangeException>(() => env.Step([3, 0, 0, 0, 0, 0]), "MultiDiscrete([3, 3]) bounds are checked before sending");
        }
        Assert.That(worker.WaitForExit(10_000), Is.True);
    }

    [Test]
    public void PythonWorker_WithoutAHub_SaysSo_AndLeavesNoTempFolder()
    {
        string python = Python();
        var before = Directory.GetDirectories(Path.GetTempPath(), "clusterenv-proto-*").ToHashSet();
        var psi = new ProcessStartInfo(python) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { Path.Combine(TestCluster.RepoRoot, "examples", "python-worker", "worker.py"), "--hub", $"http://127.0.0.1:{TestCluster.FreePort()}", "--connect-timeout", "1" })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        Assert.That(p.WaitForExit(60_000), Is.True);
        Assert.That(p.ExitCode, Is.EqualTo(2), err);
        Assert.That(err, Does.Contain("no hub answered").And.Contain("--connect-timeout"));
        Assert.That(Directory.GetDirectories(Path.GetTempPath(), "clusterenv-proto-*").Where(d => !before.Contains(d)), Is.Empty);
    }

    // CartPole-v1's equations in float64 from a float32 observation.
    private static float[] CartPoleStep(ReadOnlySpan<float> o, int action)
    {
        double x = o[0], xDot = o[1], theta = o[2], thetaDot = o[3];
        double force = action == 1 ? 10.0 : -10.0, cos = Math.Cos(theta), sin = Math.Sin(theta);
        double temp = (force + 0.05 * thetaDot * thetaDot * sin) / 1.1;
        double thetaAcc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos * cos / 1.1));
        double xAcc = temp - 0.05 * thetaAcc * cos / 1.1;
        return [(float)(x + 0.02 * xDot), (float)(xDot + 0.02 * xAcc), (float)(theta + 0.02 * thetaDot), (float)(thetaDot + 0.02 * thetaAcc)];
    }

    [Test]
    public void StockGrpcio_SeesTheHubServing_AndListsItsServices_ThroughHealthAndReflection()
    {
        string python = Python();
        var (env, _) = TestCluster.InProcess("CartPole-v1", [1]);
        using (env)
        {
            var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { Path.Combine(TestCluster.RepoRoot, "examples", "python-worker", "check_hub.py"), $"127.0.0.1:{env.Hub.Url.Port}" })
                psi.ArgumentList.Add(a);
            using var check = Process.Start(psi)!;
            string output = check.StandardOutput.ReadToEnd();
            string errors = check.StandardError.ReadToEnd();
            Assert.That(check.WaitForExit(60_000), Is.True);
            Assert.That(check.ExitCode, Is.Zero, output + errors);
            using var json = System.Text.Json.JsonDocument.Parse(output);
            Assert.That(json.RootElement.GetProperty("health").GetString(), Is.EqualTo("SERVING"));
            Assert.That(json.RootElement.GetProperty("worker_hub_health").GetString(), Is.EqualTo("SERVING"));
            var services = json.RootElement.GetProperty("services").EnumerateArray().Select(e => e.GetString()).ToArray();
            Assert.That(services, Does.Contain("clusterenv.v1.WorkerHub").And.Contain("grpc.health.v1.Health").And.Contain("grpc.reflection.v1alpha.ServerReflection"));
        }
    }
}
