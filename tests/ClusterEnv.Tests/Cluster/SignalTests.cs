using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ClusterEnv.Tests.Cluster;

/// <summary>
/// Ctrl-C and SIGTERM reach a process that holds a ClusterVecEnv (the hub's web host must not swallow them), and its
/// workers follow it. Runs the examples as child processes and signals them the way a terminal or Slurm would.
/// </summary>
[NonParallelizable]
[Category("Process")]
public class SignalTests
{
    private const int Sigint = 2, Sigterm = 15, Sigusr1 = 10; // SIGUSR1: Slurm's pre-emption warning (--signal=USR1@T)

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    [Test]
    public void Train_OnSigintSigtermOrSigusr1_StopsWithinTwoSeconds_WritesItsCheckpoint_AndItsWorkersExit([Values(Sigint, Sigterm, Sigusr1)] int signal)
    {
        string outDir = Directory.CreateTempSubdirectory("clusterenv-signal-").FullName;
        using var train = Start("Train.dll", "--total-steps", "50000000", "--out", outDir);
        try
        {
            WaitForLine(train, l => l.TrimStart().StartsWith("step", StringComparison.Ordinal), "a progress line (training has started)");
            var workers = ChildPids(train.Id);
            Assert.That(workers, Has.Count.EqualTo(2), "the example starts two local workers");
            SkipIfIgnored(train.Id, signal);
            var sw = Stopwatch.StartNew();
            Assert.That(kill(train.Id, signal), Is.Zero);
            Assert.That(train.WaitForExit(2_000), Is.True, $"the learner exits within 2 s of signal {signal}");
            Assert.That(train.ExitCode, Is.EqualTo(128 + signal), "the exit code says which signal stopped it");
            Assert.That(File.Exists(Path.Combine(outDir, "policy.cepolicy")), Is.True, "the checkpoint is written on the way out");
            Assert.That(ClusterEnv.Learners.Checkpoints.TrainingCheckpoint.List(Path.Combine(outDir, "checkpoints")), Is.Not.Empty, "and a checkpoint to resume from");
            AssertAllExit(workers, TimeSpan.FromSeconds(2) - sw.Elapsed + TimeSpan.FromSeconds(1));
        }
        finally
        {
            if (!train.HasExited) train.Kill(entireProcessTree: true);
            Directory.Delete(outDir, recursive: true);
        }
    }

    [Test]
    public void Train_OnASignalToItsWholeProcessGroup_AsATerminalSendsIt_StopsWithinFiveSeconds_WithItsCheckpoint_AndNoWorkerLeft(
        [Values(Sigint, Sigterm)] int signal, [Values("at start-up", "while training")] string when)
    {
        // A terminal's Ctrl-C, `timeout` or `kill -- -PGID` signals the whole foreground process group: the learner
        // runs here as the leader of a group of its own, as a shell would start it, and the group gets the signal.
        // At start-up: as soon as the run exists (its config.json), while the workers are still starting.
        string outDir = Directory.CreateTempSubdirectory("clusterenv-pgroup-").FullName;
        using var train = Start("Train.dll", newProcessGroup: true, "--workers", "2", "--num-envs", "8", "--total-steps", "50000000", "--out", outDir);
        try
        {
            if (when == "at start-up")
            {
                _ = Task.Run(() => train.StandardOutput.ReadToEnd());
                _ = Task.Run(() => train.StandardError.ReadToEnd());
                var sw = Stopwatch.StartNew();
                while (!File.Exists(Path.Combine(outDir, "config.json")) && !train.HasExited && sw.Elapsed < TimeSpan.FromSeconds(120)) Thread.Sleep(5);
                Assert.That(File.Exists(Path.Combine(outDir, "config.json")), Is.True, "the run started");
            }
            else
            {
                WaitForLine(train, l => l.TrimStart().StartsWith("step", StringComparison.Ordinal), "a progress line (training has started)");
                Assert.That(WorkersOf(train.Id), Has.Count.EqualTo(2), "the example starts two local workers");
            }
            SkipIfIgnored(train.Id, signal);
            Assert.That(kill(-train.Id, signal), Is.Zero, "the learner leads its process group");
            Assert.That(train.WaitForExit(5_000), Is.True, $"the learner exits within 5 s of signal {signal} to its group");
            Assert.That(train.ExitCode, Is.EqualTo(128 + signal), "stopped by the signal, not by lost workers (exit 1)");
            Assert.That(File.Exists(Path.Combine(outDir, "policy.cepolicy")), Is.True, "the final policy is written");
            Assert.That(File.ReadAllText(Path.Combine(outDir, "summary.txt")), Does.StartWith("stopped:"), "and the summary");
            var sw2 = Stopwatch.StartNew();
            while (WorkersOf(train.Id).Count > 0 && sw2.Elapsed < TimeSpan.FromSeconds(3)) Thread.Sleep(20);
            Assert.That(WorkersOf(train.Id), Is.Empty, "no worker is left, whether it had registered or was still starting");
        }
        finally
        {
            if (!train.HasExited) train.Kill(entireProcessTree: true);
            Directory.Delete(outDir, recursive: true);
        }
    }

    [Test]
    public void Train_WaitingForExternalWorkers_StopsAtOnceOnCtrlC_InsteadOfWaitingOutItsConnectTimeout()
    {
        string outDir = Directory.CreateTempSubdirectory("clusterenv-wait-int-").FullName;
        using var train = Start("Train.dll", newProcessGroup: true, "--workers-external", "1", "--connect-timeout", "120", "--out", outDir);
        try
        {
            var errors = new System.Text.StringBuilder();
            train.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (errors) errors.AppendLine(e.Data); };
            train.BeginErrorReadLine();
            _ = Task.Run(() => train.StandardOutput.ReadToEnd());
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(120) && !train.HasExited) { lock (errors) if (errors.ToString().Contains("waiting up to 120 s", StringComparison.Ordinal)) break; Thread.Sleep(20); }
            SkipIfIgnored(train.Id, Sigint);
            Assert.That(kill(-train.Id, Sigint), Is.Zero);
            Assert.That(train.WaitForExit(5_000), Is.True, "stopped within 5 s, not after the 120 s wait");
            Assert.That(train.ExitCode, Is.EqualTo(130));
            Assert.That(File.ReadAllText(Path.Combine(outDir, "summary.txt")), Does.StartWith("stopped: before the first update"));
        }
        finally
        {
            if (!train.HasExited) train.Kill(entireProcessTree: true);
            Directory.Delete(outDir, recursive: true);
        }
    }

    // Worker processes started for the learner with this pid (by their --parent-pid), alive (not zombies), wherever they are in the process tree.
    private static List<int> WorkersOf(int learnerPid)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                var argv = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                int at = Array.IndexOf(argv, "--parent-pid");
                if (at >= 0 && at + 1 < argv.Length && argv[at + 1] == learnerPid.ToString(System.Globalization.CultureInfo.InvariantCulture) && IsAlive(pid)) found.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return found;
    }

    [Test]
    public void Train_ResumedIntoItsOwnRunFolder_ContinuesItsMetrics_InsteadOfTruncatingThem()
    {
        string run = Directory.CreateTempSubdirectory("clusterenv-resume-").FullName;
        try
        {
            RunToEnd("Train.dll", "--total-steps", "40000", "--checkpoint-every", "10", "--log-every", "0", "--out", run);
            var first = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
            Assert.That(first.Length, Is.GreaterThan(2), "a header and some updates");
            RunToEnd("Train.dll", "--total-steps", "80000", "--checkpoint-every", "10", "--log-every", "0", "--resume", run); // its folder is the run's
            var both = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
            Assert.That(both.Take(first.Length), Is.EqualTo(first), "the first run's rows are kept as they were");
            Assert.That(both.Length, Is.GreaterThan(first.Length), "the resumed run's rows follow them");
            Assert.That(both.Count(l => l == first[0]), Is.EqualTo(1), "one header");
        }
        finally
        {
            Directory.Delete(run, recursive: true);
        }
    }

    [Test]
    public void Train_UnderASupervisor_ALearnerKilledOutright_IsRestartedFromItsNewestCheckpoint_AndTheRunFinishes()
    {
        string run = Directory.CreateTempSubdirectory("clusterenv-supervised-").FullName;
        using var supervisor = Start("Train.dll", "--max-restarts", "1", "--total-steps", "2000000", "--checkpoint-every", "20", "--out", run);
        try
        {
            var stderr = new System.Text.StringBuilder();
            supervisor.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
            supervisor.BeginErrorReadLine();
            var output = new System.Text.StringBuilder();
            supervisor.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
            supervisor.BeginOutputReadLine();
            var sw = Stopwatch.StartNew();
            while (ClusterEnv.Learners.Checkpoints.TrainingCheckpoint.List(Path.Combine(run, "checkpoints")).Count == 0 && sw.Elapsed < TimeSpan.FromSeconds(120)) Thread.Sleep(50);
            var learners = ChildPids(supervisor.Id);
            Assert.That(learners, Has.Count.EqualTo(1), "the supervisor runs one learner");
            int rowsBefore = File.ReadAllLines(Path.Combine(run, "metrics.csv")).Length;
            Assert.That(kill(learners[0], 9), Is.Zero, "SIGKILL: a crash no handler sees");
            Assert.That(supervisor.WaitForExit(180_000), Is.True, "the restarted learner finishes");
            supervisor.WaitForExit();
            lock (stderr) lock (output)
            {
                Assert.That(supervisor.ExitCode, Is.Zero, stderr.ToString());
                Assert.That(stderr.ToString(), Does.Contain("The learner exited with code 137; restart 1 of 1 from the newest checkpoint"));
                Assert.That(output.ToString(), Does.Contain($"Resuming from {Path.Combine(run, "checkpoints", "checkpoint-")}"));
            }
            Assert.That(File.ReadAllText(Path.Combine(run, "summary.txt")), Does.StartWith("done: 2000000 env steps"));
            var rows = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
            Assert.That(rows.Length, Is.GreaterThan(rowsBefore), "the restarted learner continues the run's metrics, and the killed one's points were on disk");
            Assert.That(rows.Count(r => r.StartsWith("update,", StringComparison.Ordinal)), Is.EqualTo(1));
        }
        finally
        {
            if (!supervisor.HasExited) supervisor.Kill(entireProcessTree: true);
            Directory.Delete(run, recursive: true);
        }
    }

    [Test]
    public void Train_UnderASupervisor_OnCtrlCToTheWholeGroup_StopsOnce_WithItsCheckpoint_AndIsNotRestarted()
    {
        string run = Directory.CreateTempSubdirectory("clusterenv-supervised-int-").FullName;
        using var supervisor = Start("Train.dll", newProcessGroup: true, "--max-restarts", "3", "--total-steps", "50000000", "--out", run);
        try
        {
            WaitForLine(supervisor, l => l.TrimStart().StartsWith("step", StringComparison.Ordinal), "a progress line (training has started)");
            var learner = ChildPids(supervisor.Id);
            Assert.That(learner, Has.Count.EqualTo(1));
            SkipIfIgnored(learner[0], Sigint);
            Assert.That(kill(-supervisor.Id, Sigint), Is.Zero, "the group: the supervisor and its learner both get it, as from a terminal");
            Assert.That(supervisor.WaitForExit(5_000), Is.True, "stopped within 5 s, not restarted");
            Assert.That(supervisor.ExitCode, Is.EqualTo(130));
            Assert.That(File.ReadAllText(Path.Combine(run, "summary.txt")), Does.StartWith("stopped:"), "one signal, counted once: a clean stop with its summary");
            Assert.That(File.Exists(Path.Combine(run, "policy.cepolicy")), Is.True);
        }
        finally
        {
            if (!supervisor.HasExited) supervisor.Kill(entireProcessTree: true);
            Directory.Delete(run, recursive: true);
        }
    }

    [TestCase("missing")]
    [TestCase("every checkpoint damaged")]
    [TestCase("another env")]
    [TestCase("ppo")]
    public void Train_ResumingFromNothingUsable_ExitsTwo_WithTheReason_BeforeStartingAnything(string what)
    {
        string run = Directory.CreateTempSubdirectory("clusterenv-resume-bad-").FullName;
        try
        {
            if (what != "missing") RunToEnd("Train.dll", "--total-steps", "20000", "--checkpoint-every", "5", "--out", run);
            if (what == "every checkpoint damaged")
                foreach (var c in ClusterEnv.Learners.Checkpoints.TrainingCheckpoint.List(Path.Combine(run, "checkpoints")))
                    Learners.CheckpointTests.Damage(c, "truncate optimizer.bin");
            string[] args = what switch
            {
                "missing" => ["--resume", Path.Combine(run, "nope")],
                "another env" => ["--resume", run, "--env", "Acrobot-v1"],
                "ppo" => ["--resume", run, "--algo", "ppo"],
                _ => ["--resume", run],
            };
            using var p = Start("Train.dll", args);
            var output = p.StandardOutput.ReadToEndAsync();
            var errors = p.StandardError.ReadToEndAsync();
            Assert.That(p.WaitForExit(60_000), Is.True, "bounds a failure only");
            Assert.That(p.ExitCode, Is.EqualTo(2), errors.Result);
            Assert.That(errors.Result, Does.Contain(what switch
            {
                "missing" => "nope' does not exist",
                "another env" => "not for Acrobot-v1",
                "ppo" => "was written by impact; resume it with --algo impact",
                _ => "Every checkpoint in",
            }).And.Not.Contain("   at "), "the reason, and no stack trace");
            Assert.That(output.Result, Does.Not.Contain("step"), "nothing started");
        }
        finally
        {
            Directory.Delete(run, recursive: true);
        }
    }

    [Test]
    public void Train_ResumingARunWhoseNewestCheckpointIsDamaged_SaysSo_AndResumesFromTheNextOlderOne()
    {
        string run = Directory.CreateTempSubdirectory("clusterenv-resume-older-").FullName;
        try
        {
            RunToEnd("Train.dll", "--total-steps", "20000", "--checkpoint-every", "5", "--out", run);
            var checkpoints = ClusterEnv.Learners.Checkpoints.TrainingCheckpoint.List(Path.Combine(run, "checkpoints"));
            Assert.That(checkpoints, Has.Count.GreaterThanOrEqualTo(2));
            Learners.CheckpointTests.Damage(checkpoints[^1], "flip policy.cepolicy");
            using var p = Start("Train.dll", "--total-steps", "40000", "--resume", run);
            var output = p.StandardOutput.ReadToEndAsync();
            var errors = p.StandardError.ReadToEndAsync();
            Assert.That(p.WaitForExit(120_000), Is.True, "bounds a failure only");
            Assert.That(p.ExitCode, Is.Zero, errors.Result);
            Assert.That(errors.Result, Does.Contain($"Checkpoint '{checkpoints[^1]}' is damaged: policy.cepolicy does not match its SHA-256").And.Contain("Trying the next older checkpoint"));
            Assert.That(output.Result, Does.Contain($"Resuming from {checkpoints[^2]}"));
        }
        finally
        {
            Directory.Delete(run, recursive: true);
        }
    }

    [TestCase("--total-steps", "-5", "--total-steps (-5) must be at least 1")]
    [TestCase("--port", "70000", "--port (70000) must be 0 (a free port) or 1-65535")]
    [TestCase("--checkpoint-every", "-1", "--checkpoint-every (-1) must be 0")]
    [TestCase("--total-steps", "abc", "'--total-steps' as a whole number")]
    [TestCase("--batch-rollouts", "0", "--batch-rollouts (0) must be at least 1")]
    [TestCase("--lr", "-1", "--lr (-1) must be a positive number")]
    public void Train_RefusesABadValue_WithExitCodeTwo_AndTheReason_BeforeStartingAnything(string flag, string value, string reason)
    {
        using var p = Start("Train.dll", flag, value);
        var output = p.StandardOutput.ReadToEndAsync();
        var errors = p.StandardError.ReadToEndAsync();
        Assert.That(p.WaitForExit(60_000), Is.True, "bounds a failure only");
        Assert.That(p.ExitCode, Is.EqualTo(2), errors.Result);
        Assert.That(errors.Result, Does.Contain(reason).And.Contain("--help"));
        Assert.That(output.Result, Does.Not.Contain("hub listening").And.Not.Contain("step"), "nothing started");
    }

    [TestCase("--encoder|nature", "add --pixels")]
    [TestCase("--encoder|huge", "--encoder 'huge' must be small or nature")]
    [TestCase("--pixels|--pixel-shape|84x84", "HEIGHTxWIDTHxSTACK")]
    [TestCase("--pixels|--workers-external|1", "start them with --pixels 84x84x4")]
    public void Train_RefusesPixelSettingsThatCannotWork_WithExitCodeTwo(string args, string reason)
    {
        using var p = Start("Train.dll", args.Split('|'));
        var output = p.StandardOutput.ReadToEndAsync();
        var errors = p.StandardError.ReadToEndAsync();
        Assert.That(p.WaitForExit(60_000), Is.True, "bounds a failure only");
        Assert.That(p.ExitCode, Is.EqualTo(2), errors.Result);
        Assert.That(errors.Result, Does.Contain(reason));
        Assert.That(output.Result, Does.Not.Contain("hub listening").And.Not.Contain("step"), "nothing started");
    }

    [Test]
    public void Train_WithExternalWorkersOnAnOpenAddressAndNoToken_RefusesToStart_WithExitCodeTwo()
    {
        using var p = Start("Train.dll", "--workers-external", "1", "--host", "0.0.0.0");
        var output = p.StandardOutput.ReadToEndAsync();
        var errors = p.StandardError.ReadToEndAsync();
        Assert.That(p.WaitForExit(60_000), Is.True, "bounds a failure only");
        Assert.That(p.ExitCode, Is.EqualTo(2), errors.Result);
        Assert.That(errors.Result, Does.Contain("--token-file").And.Contain("--allow-any-worker"));
        Assert.That(output.Result, Does.Not.Contain("hub listening"), "no hub was started");
    }

    [TestCase("no external workers", "--tls-cert serves the hub over TLS for --workers-external workers")]
    [TestCase("not a certificate", "cannot be used")]
    [TestCase("token readable by others", "is readable by other users")]
    public void Train_ChecksItsTlsCertificateAndToken_BeforeStartingAnything(string what, string reason)
    {
        string dir = Directory.CreateTempSubdirectory("clusterenv-tls-").FullName;
        try
        {
            string junk = Path.Combine(dir, "hub.pfx"), token = Path.Combine(dir, "token");
            File.WriteAllText(junk, "not a PKCS#12 file");
            File.WriteAllText(token, "secret");
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(token, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            string[] args = what switch
            {
                "no external workers" => ["--tls-cert", junk],
                "not a certificate" => ["--workers-external", "1", "--tls-cert", junk, "--token-file", token],
                _ => ["--workers-external", "1", "--token-file", token, "--tls-cert", junk],
            };
            using var p = Start("Train.dll", args);
            var output = p.StandardOutput.ReadToEndAsync();
            var errors = p.StandardError.ReadToEndAsync();
            Assert.That(p.WaitForExit(60_000), Is.True, "bounds a failure only");
            Assert.That(p.ExitCode, Is.EqualTo(2), errors.Result);
            Assert.That(errors.Result, Does.Contain(reason));
            Assert.That(output.Result, Does.Not.Contain("hub listening"), "no hub was started");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Worker_WithAnUnknownEnv_ExitsTwo_AsItsHelpSays_NamingTheRegisteredIds()
    {
        using var p = Start("ClusterEnv.Worker.dll", "--hub", "http://127.0.0.1:9", "--env", "Nope-v0");
        var errors = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        Assert.That(p.WaitForExit(60_000), Is.True, "bounds a failure only");
        Assert.That(p.ExitCode, Is.EqualTo(2), errors.Result);
        Assert.That(errors.Result, Does.Contain("No env registered with id 'Nope-v0'").And.Contain("CartPole-v1"));
    }

    [Test]
    public void Train_Evaluate_PlaysTheTrainedPolicy_DeterministicAndSampled_AndWritesJson_OrNamesWhatIsWrong()
    {
        string run = Directory.CreateTempSubdirectory("clusterenv-evaluate-").FullName;
        try
        {
            RunToEnd("Train.dll", "--local", "--total-steps", "30000", "--out", run);
            using (var p = Start("Train.dll", "--evaluate", run, "--episodes", "7", "--seed", "11"))
            {
                var output = p.StandardOutput.ReadToEndAsync();
                var errors = p.StandardError.ReadToEndAsync();
                Assert.That(p.WaitForExit(120_000), Is.True, "bounds a failure only");
                Assert.That(p.ExitCode, Is.Zero, $"{output.Result}\n{errors.Result}");
                Assert.That(output.Result, Does.Contain("deterministic").And.Contain("stochastic").And.Contain("±"));
            }
            using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "evaluation.json")));
            var root = json.RootElement;
            Assert.That(root.GetProperty("env").GetString(), Is.EqualTo("CartPole-v1"), "the env comes from the policy's metadata");
            Assert.That(root.GetProperty("first_seed").GetInt32(), Is.EqualTo(11));
            foreach (var mode in new[] { "deterministic", "stochastic" })
            {
                var returns = root.GetProperty(mode).GetProperty("returns").EnumerateArray().Select(e => e.GetDouble()).ToArray();
                Assert.That(returns, Has.Length.EqualTo(7));
                Assert.That(returns, Is.All.InRange(1.0, 500.0), "CartPole pays 1 per step, 500 at most");
                Assert.That(root.GetProperty(mode).GetProperty("mean").GetDouble(), Is.EqualTo(returns.Average()).Within(1e-9));
            }
            using (var p = Start("Train.dll", "--evaluate", run, "--env", "Pendulum-v1"))
            {
                var errors = p.StandardError.ReadToEndAsync();
                _ = p.StandardOutput.ReadToEndAsync();
                Assert.That(p.WaitForExit(60_000), Is.True, "bounds a failure only");
                Assert.That(p.ExitCode, Is.EqualTo(2));
                Assert.That(errors.Result, Does.Contain("Pendulum-v1 does not fit it").And.Contain("--env"));
            }
        }
        finally
        {
            Directory.Delete(run, recursive: true);
        }
    }

    private static void RunToEnd(string dll, params string[] args)
    {
        using var p = Start(dll, args);
        var output = p.StandardOutput.ReadToEndAsync();
        var errors = p.StandardError.ReadToEndAsync();
        Assert.That(p.WaitForExit(120_000), Is.True, "bounds a failure only");
        Assert.That(p.ExitCode, Is.Zero, $"{output.Result}\n{errors.Result}");
    }

    [Test]
    public void Train_WhenAWorkerIsKilledWhileStreaming_ReplacesIt_AndFinishes()
    {
        string outDir = Directory.CreateTempSubdirectory("clusterenv-replace-").FullName;
        using var train = Start("Train.dll", "--total-steps", "300000", "--out", outDir);
        try
        {
            var stderr = new System.Text.StringBuilder();
            train.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
            WaitForLine(train, l => l.TrimStart().StartsWith("step", StringComparison.Ordinal), "a progress line (training has started)", drainStderr: false);
            train.BeginErrorReadLine();
            var workers = ChildPids(train.Id);
            Assert.That(workers, Has.Count.EqualTo(2));
            Process.GetProcessById(workers[1]).Kill();
            Assert.That(train.WaitForExit(120_000), Is.True, "the run finishes");
            train.WaitForExit();
            lock (stderr) Assert.That(train.ExitCode, Is.Zero, stderr.ToString());
            Assert.That(File.ReadAllText(Path.Combine(outDir, "summary.txt")), Does.Contain("workers lost 1, replaced 1"));
        }
        finally
        {
            if (!train.HasExited) train.Kill(entireProcessTree: true);
            Directory.Delete(outDir, recursive: true);
        }
    }

    [Test]
    public void Train_WhenAWorkerIsKilledInLockstepPpo_EndsWithItsNameAndExitCodeOne_NotACrash()
    {
        string outDir = Directory.CreateTempSubdirectory("clusterenv-lost-").FullName;
        using var train = Start("Train.dll", "--algo", "ppo", "--total-steps", "50000000", "--out", outDir);
        try
        {
            var stderr = new System.Text.StringBuilder();
            train.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
            WaitForLine(train, l => l.TrimStart().StartsWith("step", StringComparison.Ordinal), "a progress line (training has started)", drainStderr: false);
            train.BeginErrorReadLine();
            var workers = ChildPids(train.Id);
            Assert.That(workers, Has.Count.EqualTo(2));
            Process.GetProcessById(workers[1]).Kill();
            Assert.That(train.WaitForExit(30_000), Is.True, "the learner ends instead of waiting");
            train.WaitForExit(); // flush the redirected stderr
            Assert.That(train.ExitCode, Is.EqualTo(1), "a clean error exit, not SIGABRT (134) from an unhandled exception");
            lock (stderr) Assert.That(stderr.ToString(), Does.Contain("Training stopped: Lost worker 'worker-00").And.Not.Contain("Unhandled exception"));
            Assert.That(File.ReadAllText(Path.Combine(outDir, "summary.txt")), Does.StartWith("failed: Lost worker 'worker-00").And.Contain("workers lost 1, replaced 0"),
                "the summary is written on the failure path too");
        }
        finally
        {
            if (!train.HasExited) train.Kill(entireProcessTree: true);
            Directory.Delete(outDir, recursive: true);
        }
    }

    [Test]
    public void AProgramWithoutHandlers_DiesOfTheSignal_AndItsWorkersFollow([Values(Sigint, Sigterm)] int signal)
    {
        using var rollout = Start("Rollout.dll", "--total-steps", "2000000000");
        try
        {
            WaitForLine(rollout, l => l.Contains("steps", StringComparison.Ordinal), "a progress line (stepping has started)");
            var workers = ChildPids(rollout.Id);
            Assert.That(workers, Has.Count.EqualTo(2));
            SkipIfIgnored(rollout.Id, signal);
            Assert.That(kill(rollout.Id, signal), Is.Zero);
            Assert.That(rollout.WaitForExit(2_000), Is.True, $"a process holding a ClusterVecEnv ends on signal {signal} as any process does");
            AssertAllExit(workers, TimeSpan.FromSeconds(3));
        }
        finally
        {
            if (!rollout.HasExited) rollout.Kill(entireProcessTree: true);
        }
    }

    private static Process Start(string dll, params string[] args) => Start(dll, newProcessGroup: false, args);

    // newProcessGroup: the child leads a session and process group of its own (setsid execs in place, so its pid is the group's id).
    private static Process Start(string dll, bool newProcessGroup, params string[] args)
    {
        if (newProcessGroup && !File.Exists("/usr/bin/setsid")) Assert.Ignore("util-linux's setsid is not installed, so no process group can be made here.");
        var psi = new ProcessStartInfo(newProcessGroup ? "/usr/bin/setsid" : "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (newProcessGroup) psi.ArgumentList.Add("dotnet");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, dll));
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    private static void WaitForLine(Process p, Func<string, bool> match, string what, bool drainStderr = true)
    {
        var seen = new System.Text.StringBuilder();
        var reading = Task.Run(() =>
        {
            while (p.StandardOutput.ReadLine() is { } line)
            {
                seen.AppendLine(line);
                if (match(line)) return true;
            }
            return false;
        });
        // Generous: this only bounds a failure (the process never starts), never a measured time.
        if (!reading.Wait(TimeSpan.FromSeconds(120)) || !reading.Result)
            Assert.Fail($"The child never printed {what}. Output:\n{seen}");
        _ = Task.Run(() => p.StandardOutput.ReadToEnd()); // keep draining so the child never blocks on a full pipe
        if (drainStderr) _ = Task.Run(() => p.StandardError.ReadToEnd());
    }

    // A job started in the background of a non-interactive shell inherits SIGINT as ignored; no program can see it then.
    private static void SkipIfIgnored(int pid, int signal)
    {
        var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        if (line is null) return;
        ulong mask = Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16);
        if ((mask & (1UL << (signal - 1))) != 0)
            Assert.Ignore($"Signal {signal} is ignored by this test run's parent (a background job of a shell), so the child inherits it ignored.");
    }

    private static List<int> ChildPids(int pid)
    {
        var children = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int candidate)) continue;
            try
            {
                // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so parse after the last ')'.
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) == pid) children.Add(candidate);
            }
            catch (IOException) { } // the process ended while we looked
            catch (UnauthorizedAccessException) { }
        }
        return children;
    }

    private static void AssertAllExit(List<int> pids, TimeSpan within)
    {
        var sw = Stopwatch.StartNew();
        while (pids.Any(IsAlive) && sw.Elapsed < within) Thread.Sleep(20);
        Assert.That(pids.Where(IsAlive), Is.Empty, $"every worker exits within {within.TotalSeconds:0.#} s of its learner");
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            // A zombie (exited, not yet reaped by its dead parent's init) counts as gone.
            var state = File.ReadAllText($"/proc/{pid}/stat");
            return state[(state.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException) { return false; }
    }
}
