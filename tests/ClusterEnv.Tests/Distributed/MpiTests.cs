using System.Diagnostics;
using ClusterEnv.Tests.Cluster;

namespace ClusterEnv.Tests.Distributed;

/// <summary>
/// Data-parallel training through real Open MPI: examples/Train --distributed under <c>mpirun -np 2</c>. Ignored, with
/// the reason, where mpirun is not installed (CI installs openmpi-bin with its Slurm cluster).
/// </summary>
[NonParallelizable]
public class MpiTests
{
    private string _train = "";

    [SetUp]
    public void RequireMpirun()
    {
        if (!File.Exists("/usr/bin/mpirun") && !(Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, "mpirun"))))
            Assert.Ignore("mpirun is not installed (Debian: apt-get install openmpi-bin libopenmpi-dev; .ci/run installs it).");
        string config = AppContext.BaseDirectory.Contains("/bin/Debug/", StringComparison.Ordinal) ? "Debug" : "Release";
        _train = Path.Combine(TestCluster.RepoRoot, "examples", "Train", "bin", config, "net10.0", "Train.dll");
        if (!File.Exists(_train)) Assert.Fail($"{_train} is missing; build the solution (dotnet build ClusterEnv.sln -c {config}) before the tests.");
    }

    private Process Mpirun(string outDir, params string[] trainArgs)
    {
        var psi = new ProcessStartInfo("mpirun") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-np", "2", "--bind-to", "none", "dotnet", _train, "--distributed", "--out", outDir }.Concat(trainArgs)) psi.ArgumentList.Add(a);
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        psi.Environment["TERM"] = "dumb";
        foreach (var v in new[] { "SLURM_JOB_ID", "SLURM_PROCID", "SLURM_STEP_ID", "SLURM_NTASKS" }) psi.Environment.Remove(v);
        return Process.Start(psi)!;
    }

    private (int Code, string Output) RunToEnd(string outDir, params string[] trainArgs)
    {
        using var p = Mpirun(outDir, trainArgs);
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        Assert.That(p.WaitForExit(TimeSpan.FromMinutes(5)), Is.True, "mpirun finished");
        return (p.ExitCode, output + err.Result);
    }

    [Test]
    public void TwoPpoRanks_OnTheirOwnEnvs_TrainOneModel_AndOnlyRankZeroWrites()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"clusterenv-mpi-{Guid.NewGuid():N}");
        var (code, output) = RunToEnd(dir, "--local", "--algo", "ppo", "--total-steps", "8192", "--log-every", "0");
        TestContext.Out.WriteLine(output);
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("Data-parallel over 2 ranks (MPI (Open MPI"));
        Assert.That(output, Does.Contain("Weights identical on all 2 ranks after each of the 8 updates"), "2 ranks × 4 envs × 128 steps: 8 updates make 8,192 steps");
        Assert.That(output.Split("PPO on ").Length - 1, Is.EqualTo(1), "rank 1 stays quiet");
        Assert.That(File.Exists(Path.Combine(dir, "metrics.csv")) && File.Exists(Path.Combine(dir, "policy.cepolicy")), Is.True);
        Assert.That(File.ReadAllLines(Path.Combine(dir, "metrics.csv")), Has.Length.EqualTo(9), "one writer: a header and 8 updates");
        Directory.Delete(dir, recursive: true);
    }

    [Test]
    public void TwoPpoRanks_AllReducingGradientBucketsWhileBackwardRuns_TrainOneModel()
    {
        // Buckets of 1,000 floats: the 64×64 layers alone, the rest in several; MPI_Iallreduce, progressed and waited for.
        string dir = Path.Combine(Path.GetTempPath(), $"clusterenv-mpi-{Guid.NewGuid():N}");
        var (code, output) = RunToEnd(dir, "--local", "--algo", "ppo", "--total-steps", "8192", "--log-every", "0", "--gradient-buckets", "1000");
        TestContext.Out.WriteLine(output);
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("Weights identical on all 2 ranks after each of the 8 updates"));
        Directory.Delete(dir, recursive: true);
    }

    [Test]
    public void TwoImpalaRanks_EachWithItsOwnWorkers_TrainOneModel()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"clusterenv-mpi-{Guid.NewGuid():N}");
        var (code, output) = RunToEnd(dir, "--algo", "impala", "--workers", "1", "--num-envs", "4", "--total-steps", "16000");
        TestContext.Out.WriteLine(output);
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(output, Does.Contain("each rank has its own workers"));
        Assert.That(output, Does.Match("Weights identical on all 2 ranks after each of the [0-9]+ updates"));
        Assert.That(Directory.GetDirectories(Path.Combine(dir, "checkpoints")), Is.Not.Empty, "rank 0 wrote the checkpoint");
        Directory.Delete(dir, recursive: true);
    }

    [Test]
    public void ARankThatDies_EndsTheJobWithItsName_InsteadOfHangingTheOthers()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"clusterenv-mpi-{Guid.NewGuid():N}");
        using var p = Mpirun(dir, "--local", "--algo", "ppo", "--total-steps", "50000000");
        var err = p.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        var output = Task.Run(() =>
        {
            while (p.StandardOutput.ReadLine() is { } line) lock (lines) lines.Add(line);
        });
        // Rank 1: the Train process whose environment says OMPI_COMM_WORLD_RANK=1 and whose command line names our folder.
        int victim = 0;
        var sw = Stopwatch.StartNew();
        while (victim == 0 && sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            Thread.Sleep(200);
            foreach (var proc in Directory.GetDirectories("/proc").Select(Path.GetFileName).Where(n => n!.All(char.IsDigit)))
            {
                try
                {
                    if (!File.ReadAllText($"/proc/{proc}/cmdline").Contains(dir, StringComparison.Ordinal)) continue;
                    if (File.ReadAllText($"/proc/{proc}/environ").Split('\0').Contains("OMPI_COMM_WORLD_RANK=1")) victim = int.Parse(proc!);
                }
                catch (IOException) { }
                catch (UnauthorizedAccessException) { }
            }
        }
        Assert.That(victim, Is.Not.Zero, "rank 1 started");
        Thread.Sleep(3000); // well into training
        Process.GetProcessById(victim).Kill();
        sw.Restart();
        bool exited = p.WaitForExit(TimeSpan.FromSeconds(60));
        if (!exited) p.Kill(entireProcessTree: true);
        output.Wait(TimeSpan.FromSeconds(10));
        string all = string.Join('\n', lines) + err.Result;
        TestContext.Out.WriteLine($"mpirun exited {sw.Elapsed.TotalSeconds:F1} s after rank 1 was killed:\n{all[^System.Math.Min(all.Length, 1500)..]}");
        Assert.That(exited, Is.True, "the surviving rank does not hang");
        Assert.That(p.ExitCode, Is.Not.Zero);
        Assert.That(all, Does.Contain("rank 1").IgnoreCase.And.Contain("signal 9").IgnoreCase);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }
}
