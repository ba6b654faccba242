using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Learners.Impala;
using ClusterEnv.Sync;

namespace ClusterEnv.Tests.Cluster;

/// <summary>
/// The Slurm worker pool on a real Slurm (CI starts a single-node cluster with scripts/ci/slurm-up.sh). Ignored, with
/// the reason, where no Slurm answers; never silently passed.
/// </summary>
[NonParallelizable]
public class SlurmTests
{
    private string _dir = "";

    [SetUp]
    public void RequireSlurm()
    {
        if (!SlurmWorkerPool.IsAvailable) Assert.Ignore("Slurm's client commands (sbatch, squeue) are not on PATH; .ci/run starts a single-node Slurm with scripts/ci/slurm-up.sh.");
        var (code, output) = Sh("sinfo", "-h", "-o", "%T");
        if (code != 0 || output.Trim().Length == 0 || output.Contains("down", StringComparison.Ordinal) || output.Contains("drain", StringComparison.Ordinal))
            Assert.Ignore($"Slurm is installed but no node is up (sinfo: exit {code}, '{output.Trim()}'); start it with scripts/ci/slurm-up.sh.");
        _dir = Path.Combine(Path.GetTempPath(), $"clusterenv-slurm-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void Clean()
    {
        if (Directory.Exists(_dir) && TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Passed)
            Directory.Delete(_dir, recursive: true);
    }

    [Test]
    public void ASlurmPool_Trains_AndWorkersThatAreScancelledOrKilled_AreReplaced_AndNothingIsLeftRunning()
    {
        var pool = new SlurmWorkerPool(new SlurmOptions { Mode = SlurmLaunchMode.Sbatch, WorkDir = _dir, JobName = "ce-test-train" });
        var sw = Stopwatch.StartNew();
        int stage = 0, killedIndex = -1, killedGeneration = -1;
        string[] jobs;
        using (var env = new ClusterVecEnv(new ClusterOptions
        {
            EnvId = "CartPole-v1", NumEnvs = 8, NumWorkers = 2, Launcher = pool, ReplaceLostWorkers = true, Hub = new HubOptions { Token = "slurm-secret" },
        }))
        {
            double ready = sw.Elapsed.TotalSeconds;
            Assert.That(pool.JobIds, Has.Count.EqualTo(1));
            var script = File.ReadAllText(Path.Combine(_dir, "worker-task.sh"));
            Assert.That(script, Does.Not.Contain("slurm-secret"), "the token travels in the environment, never in the job script");
            double firstStep = 0;
            int replacedAt = 0;
            // Training goes on until 10 updates after the last replacement streams (the budget is only a bound on failure).
            using var done = new CancellationTokenSource();
            var r = Impala.Train(env, new ImpalaOptions { Seed = 5, TotalTimesteps = 20_000_000 }, SyncStrategy.Always, m =>
            {
                if (firstStep == 0) firstStep = sw.Elapsed.TotalSeconds;
                switch (stage)
                {
                    case 0 when m.Update == 10:
                        stage = 1;
                        Assert.That(Sh("scancel", pool.JobIds[0]).Code, Is.EqualTo(0)); // the whole step: both workers lost
                        break;
                    case 1 when env.Elastic.WorkersReplaced == 2:
                        stage = 2;
                        Assert.That(Sh("scancel", pool.JobIds[^1]).Code, Is.EqualTo(0)); // one replacement's own job
                        break;
                    case 2 when env.Elastic.WorkersReplaced == 3:
                        stage = 3;
                        // kill -9 of one worker process (a crash, the job itself lives on): its shell records exit 137.
                        killedIndex = env.Elastic.Generation(0) == 2 ? 0 : 1;
                        killedGeneration = env.Elastic.Generation(killedIndex);
                        Process.GetProcessById(int.Parse(File.ReadAllText(pool.FileOf(killedIndex, killedGeneration, "pid")).Trim())).Kill();
                        break;
                    case 3 when env.Elastic.WorkersReplaced == 4:
                        stage = 4;
                        replacedAt = m.Update;
                        break;
                    case 4 when m.Update >= replacedAt + 10:
                        done.Cancel();
                        break;
                }
            }, cancellationToken: done.Token);
            TestContext.Out.WriteLine($"registered {ready:F2} s and first update {firstStep:F2} s after start; replacements took {string.Join(", ", env.Elastic.ReplaceSeconds.Select(s => s.ToString("F2")))} s; jobs {string.Join(",", pool.JobIds)}");
            Assert.That(stage, Is.EqualTo(4));
            Assert.That(r.History[^1].Update, Is.GreaterThanOrEqualTo(replacedAt + 10), "training went on after the last replacement");
            Assert.That(env.Elastic.WorkersLost, Is.EqualTo(4));
            Assert.That(env.Elastic.WorkersReplaced, Is.EqualTo(4));
            Assert.That(pool.JobIds, Has.Count.EqualTo(5), "each replacement is a one-task job");
            Assert.That(File.ReadAllText(pool.FileOf(killedIndex, killedGeneration, "exit")).Trim(), Is.EqualTo("137"), "the killed worker's exit code is recorded");
            Assert.That(env.Elastic.Generation(killedIndex), Is.EqualTo(killedGeneration + 1));
            jobs = [.. pool.JobIds];
        }
        // Disposed: every job the pool submitted is cancelled or finished.
        var (_, states) = Sh("squeue", "-h", "-o", "%i %T", "-j", string.Join(',', jobs));
        Assert.That(states, Does.Not.Contain("RUNNING").And.Not.Contain("PENDING"), states);
    }

    [Test]
    public void AWorkerTaskThatFails_IsNamedWithItsExitCodeAndLastStderrLines_AtOnce()
    {
        var sw = Stopwatch.StartNew();
        var ex = Assert.Throws<WorkerLostException>(() => new ClusterVecEnv(new ClusterOptions
        {
            EnvId = "CartPole-v1", NumEnvs = 2, NumWorkers = 2, ConnectTimeout = TimeSpan.FromSeconds(60),
            Launcher = new SlurmWorkerPool(new SlurmOptions { Mode = SlurmLaunchMode.Sbatch, WorkDir = _dir, JobName = "ce-test-fail" }),
            EnvArgs = new Dictionary<string, string> { ["no_such_argument"] = "1" },
        }))!;
        TestContext.Out.WriteLine($"{sw.Elapsed.TotalSeconds:F2} s: {ex.Message}");
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(50)), "named when it exits, not at the end of ConnectTimeout");
        Assert.That(ex.Message, Does.Contain("exited with code").And.Contain("Slurm job").And.Contain("no_such_argument"));
    }

    [Test]
    public void AJobCancelledBeforeItsWorkersRegister_IsNamedAtOnce()
    {
        var pool = new SlurmWorkerPool(new SlurmOptions
        {
            Mode = SlurmLaunchMode.Sbatch, WorkDir = _dir, JobName = "ce-test-cancel", ExtraArgs = ["--begin=now+600"], // stays PENDING
        });
        var sw = Stopwatch.StartNew();
        var cancel = Task.Run(async () =>
        {
            while (pool.JobIds.Count == 0) await Task.Delay(50);
            await Task.Delay(1000);
            Sh("scancel", pool.JobIds[0]);
        });
        var ex = Assert.Throws<WorkerLostException>(() => new ClusterVecEnv(new ClusterOptions
        {
            EnvId = "CartPole-v1", NumEnvs = 2, NumWorkers = 2, ConnectTimeout = TimeSpan.FromSeconds(60), Launcher = pool,
        }))!;
        cancel.Wait();
        TestContext.Out.WriteLine($"{sw.Elapsed.TotalSeconds:F2} s: {ex.Message}");
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(50)));
        Assert.That(ex.Message, Does.Contain($"Slurm job {pool.JobIds[0]}").And.Contain("never registered"));
    }

    [Test]
    public void LaunchWorkersUnderSrun_GivesEachTaskItsOwnId()
    {
        string worker = Path.Combine(AppContext.BaseDirectory, "ClusterEnv.Worker.dll");
        using var env = new ClusterVecEnv(new ClusterOptions
        {
            EnvId = "CartPole-v1", NumWorkers = 2, LocalWorkers = false, ConnectTimeout = TimeSpan.FromSeconds(60),
            Launcher = new TaskLauncher(launch => ShWithToken(launch.Token, "sbatch", "--parsable", "--ntasks=2", $"--output={_dir}/launch-%j.out", "--job-name=ce-test-launch", "--wrap",
                $"srun {Path.Combine(TestCluster.RepoRoot, "scripts", "launch-workers.sh")} --hub {launch.Hub} --count 1 --env CartPole-v1 --envs-per-worker 2 --worker {worker}")),
        });
        var ids = env.Workers.Select(w => w.WorkerId).ToArray();
        Assert.That(ids, Has.Length.EqualTo(2));
        Assert.That(ids[0], Does.EndWith("-p0-000"));
        Assert.That(ids[1], Does.EndWith("-p1-000"));
        env.Reset(seed: 1);
        env.Step([0, 1, 0, 1]);
    }

    // External workers that one shell command starts (here: a Slurm job), and that end when the hub closes.
    private sealed class TaskLauncher(Func<WorkerLaunch, (int, string)> start) : IWorkerLauncher
    {
        public string Description => "test job";
        public IReadOnlyList<string> WorkerIds => [];
        public void Start(WorkerLaunch launch)
        {
            var (code, output) = start(launch);
            if (code != 0) throw new InvalidOperationException($"could not start the job: {output}");
        }
        public void ThrowIfAnyExited() { }
        public string? Describe(string workerId) => null;
        public bool Replace(string workerId) => false;
        public void Stop(TimeSpan timeout) { }
        public void Dispose() { }
    }

    private static (int Code, string Output) Sh(string tool, params string[] args) => ShWithToken(null, tool, args);

    // The token goes in the environment, which sbatch exports to the job, as a user's script would do it.
    private static (int Code, string Output) ShWithToken(string? token, string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (token is not null) psi.Environment["CLUSTERENV_TOKEN"] = token;
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output + err.Result);
    }
}
