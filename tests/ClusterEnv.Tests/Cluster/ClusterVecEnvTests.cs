using ClusterEnv.Cluster;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Vector;

namespace ClusterEnv.Tests.Cluster;

/// <summary>What is specific to the cluster proxy: async stepping, layout, allocation, options.</summary>
public class ClusterVecEnvTests
{
    [Test]
    public void StepAsyncThenStepWait_GivesWhatStepGives_AndMisuseIsNamed()
    {
        var (a, _) = TestCluster.InProcess("CartPole-v1", [2, 3]);
        var (b, _) = TestCluster.InProcess("CartPole-v1", [2, 3]);
        using (a)
        using (b)
        {
            Assert.Throws<NoAsyncCallException>(() => a.StepWait());
            a.Reset(seed: 5);
            b.Reset(seed: 5);
            var actions = new int[5];
            var rng = new Rng(3);
            for (int t = 0; t < 50; t++)
            {
                for (int i = 0; i < 5; i++) actions[i] = rng.NextInt(2);
                a.StepAsync(actions);
                Assert.Throws<AlreadyPendingCallException>(() => a.StepAsync(actions));
                Assert.Throws<AlreadyPendingCallException>(() => a.Reset());
                var ra = a.StepWait();
                var rb = b.Step(actions);
                Assert.That(ra.Observations, Is.EqualTo(rb.Observations));
                Assert.That(ra.Terminated, Is.EqualTo(rb.Terminated));
            }
        }
    }

    [Test]
    public void SubEnvs_AreOrderedWorkerByWorker_ByWorkerId()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [3, 1, 2]);
        using (env)
        {
            Assert.That(env.Workers, Is.EqualTo(new[] { ("w0", 0, 3), ("w1", 3, 1), ("w2", 4, 2) }));
            Assert.That(env.NumEnvs, Is.EqualTo(6));
            // Seeds follow the global index: sub-env 4 (worker w2's first) starts like a single env seeded 10 + 4.
            var obs = env.Reset(seed: 10).Observations;
            var single = Gym.Make("CartPole-v1").Reset(seed: 14).Observation;
            Assert.That(obs.AsSpan(4 * 4, 4).ToArray(), Is.EqualTo(single));
        }
    }

    [Test]
    public void Step_OnTheLearnerThread_AllocatesNothingInSteadyState()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [32, 32]);
        using (env)
        {
            env.Reset(seed: 0);
            var actions = new int[64];
            var rng = new Rng(0);
            void Run(int steps)
            {
                for (int t = 0; t < steps; t++)
                {
                    for (int i = 0; i < actions.Length; i++) actions[i] = rng.NextInt(2);
                    env.Step(actions);
                }
            }
            Run(1500);
            long before = GC.GetAllocatedBytesForCurrentThread();
            Run(2000);
            // Any per-step allocation would be at least 24 B x 2000 steps; a lazily created pool segment is not per step.
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.That(allocated, Is.LessThan(2000), $"{allocated} bytes over 2000 steps");
        }
    }

    [Test]
    public void Options_AreValidatedWithTheFix()
    {
        Assert.That(() => new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1" }), Throws.ArgumentException.With.Message.Contains("NumEnvs"));
        Assert.That(() => new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 2, NumWorkers = 3 }), Throws.ArgumentException.With.Message.Contains("larger than NumEnvs"));
        Assert.That(() => new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 1, Hub = new HubOptions { Port = 70000 } }), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 1, WorkerPath = "/nonexistent/ClusterEnv.Worker.dll" }),
            Throws.InstanceOf<FileNotFoundException>().With.Message.Contains("WorkerPath"));
    }

    [Test]
    public void LocalPool_WorkerThatCannotStart_FailsFastWithItsStderr()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var ex = Assert.Throws<WorkerLostException>(() => new ClusterVecEnv(new ClusterOptions { EnvId = "NoSuchEnv-v0", NumEnvs = 1 }))!;
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)));
        Assert.That(ex.Message, Does.Contain("NoSuchEnv-v0").And.Contain("exited with code"));
    }
}

/// <summary>scripts/launch-workers.sh starts a manual pool that a ClusterVecEnv with external workers accepts.</summary>
[NonParallelizable]
public class LaunchScriptTests
{
    [Test]
    public void LaunchWorkersScript_StartsAPool_ThatExitsCleanlyWhenTheLearnerCloses()
    {
        string root = TestCluster.RepoRoot;
        int port = TestCluster.FreePort();
        var token = Path.GetTempFileName();
        File.WriteAllText(token, "script-token\n");
        var psi = new System.Diagnostics.ProcessStartInfo("bash") { RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(root, "scripts", "launch-workers.sh"), "--hub", $"http://127.0.0.1:{port}", "--count", "2",
                     "--env", "Acrobot-v1", "--envs-per-worker", "3", "--token-file", token, "--prefix", "node7",
                     "--worker", Path.Combine(AppContext.BaseDirectory, "ClusterEnv.Worker.dll") })
            psi.ArgumentList.Add(a);
        using var script = System.Diagnostics.Process.Start(psi)!;
        using (var envs = new ClusterVecEnv(new ClusterOptions
               {
                   EnvId = "Acrobot-v1", NumEnvs = 6, NumWorkers = 2, LocalWorkers = false,
                   Hub = new HubOptions { Port = port, Token = "script-token" }, ConnectTimeout = TimeSpan.FromSeconds(60),
               }))
        {
            Assert.That(envs.Workers.Select(w => w.WorkerId), Is.EqualTo(new[] { "node7-000", "node7-001" }));
            envs.Reset(seed: 0);
            Assert.DoesNotThrow(() => envs.Step(new int[6]));
        }
        Assert.That(script.WaitForExit(20_000), Is.True, "the script ends when its workers do");
        Assert.That(script.ExitCode, Is.Zero, script.StandardError.ReadToEnd());
        File.Delete(token);
    }

    [Test]
    public void TheTrainExample_TrainsOnExternalWorkers_FoundThroughTheUrlFile_WithSlurmStyleIds()
    {
        string root = TestCluster.RepoRoot;
        string dir = Path.Combine(Path.GetTempPath(), $"clusterenv-ext-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "token"), "ext-token\n");
        string urlFile = Path.Combine(dir, "hub.url");
        var train = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "Train.dll"), "--workers-external", "2", "--port", "0", "--hub-url-file", urlFile,
                     "--token-file", Path.Combine(dir, "token"), "--total-steps", "4000", "--out", Path.Combine(dir, "run") })
            train.ArgumentList.Add(a);
        using var learner = System.Diagnostics.Process.Start(train)!;
        var stderr = learner.StandardError.ReadToEndAsync();
        var stdout = learner.StandardOutput.ReadToEndAsync();
        // Two "srun tasks" of one launch each: without SLURM_PROCID in the id they would collide.
        var scripts = Enumerable.Range(0, 2).Select(procid =>
        {
            var psi = new System.Diagnostics.ProcessStartInfo("bash") { RedirectStandardError = true };
            foreach (var a in new[] { Path.Combine(root, "scripts", "launch-workers.sh"), "--hub-url-file", urlFile, "--count", "1", "--env", "CartPole-v1",
                         "--envs-per-worker", "2", "--token-file", Path.Combine(dir, "token"), "--worker", Path.Combine(AppContext.BaseDirectory, "ClusterEnv.Worker.dll") })
                psi.ArgumentList.Add(a);
            psi.Environment["SLURM_PROCID"] = procid.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return System.Diagnostics.Process.Start(psi)!;
        }).ToArray();
        try
        {
            Assert.That(learner.WaitForExit(120_000), Is.True, "training ends");
            Assert.That(learner.ExitCode, Is.Zero, stderr.Result + stdout.Result);
            Assert.That(stdout.Result, Does.Contain("Done:"));
            Assert.That(stderr.Result, Does.Contain("[hub] hub listening at").And.Contain("-p0-000' registered").And.Contain("-p1-000' registered").And.Contain("2 of 2"));
            foreach (var s in scripts)
            {
                Assert.That(s.WaitForExit(20_000), Is.True, "each launch ends when its worker does");
                Assert.That(s.ExitCode, Is.Zero, s.StandardError.ReadToEnd());
            }
        }
        finally
        {
            foreach (var s in scripts) { if (!s.HasExited) s.Kill(entireProcessTree: true); s.Dispose(); }
            if (!learner.HasExited) learner.Kill(entireProcessTree: true);
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void TheTrainExample_TrainsTheUsersOwnCSharpEnv_FromAWorkerAssembly_AndRefusesAnUnknownEnvForLocal()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"clusterenv-asm-{Guid.NewGuid():N}");
        (int Code, string Out, string Err) RunTrain(params string[] args)
        {
            var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Train.dll"));
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = System.Diagnostics.Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            string output = p.StandardOutput.ReadToEnd();
            Assert.That(p.WaitForExit(120_000), Is.True);
            return (p.ExitCode, output, err.Result);
        }
        try
        {
            // The workers load the test assembly too (--worker-assembly reaches them), so the env is made on both sides.
            var (code, output, err) = RunTrain("--algo", "ppo", "--env", WorkerOnlyEnvs.Id, "--worker-assembly", typeof(WorkerOnlyEnvs).Assembly.Location,
                "--total-steps", "2048", "--out", Path.Combine(dir, "run"));
            Assert.That(code, Is.Zero, err + output);
            Assert.That(output, Does.Contain("Done: 2,048 env steps"));
            (code, _, err) = RunTrain("--env", "NoSuchEnv-v9", "--local");
            Assert.That(code, Is.EqualTo(2));
            Assert.That(err, Does.Contain("Unknown env 'NoSuchEnv-v9' for --local").And.Contain("--worker-assembly"));
            (code, _, err) = RunTrain("--env", "CartPole-v1", "--worker-assembly", Path.Combine(dir, "missing.dll"));
            Assert.That(code, Is.EqualTo(2));
            Assert.That(err, Does.Contain("missing.dll").And.Contain("does not exist"));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
