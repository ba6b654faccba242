using System.Net;
using System.Net.Sockets;
using ClusterEnv.Cluster;
using ClusterEnv.Vector;
using ClusterEnv.Worker;

namespace ClusterEnv.Tests.Cluster;

/// <summary>Starts a <see cref="ClusterVecEnv"/> whose workers run in this process (as tasks), for fast, debuggable tests.</summary>
internal static class TestCluster
{
    /// <summary>The repository's root (where ClusterEnv.sln is), for scripts and examples the tests run.</summary>
    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "ClusterEnv.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new DirectoryNotFoundException("ClusterEnv.sln not found above the test directory.");
        }
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>Splits <paramref name="numEnvs"/> over up to two workers.</summary>
    public static int[] Split(int numEnvs, int maxWorkers = 2)
    {
        int w = Math.Min(maxWorkers, numEnvs);
        return Enumerable.Range(0, w).Select(i => numEnvs / w + (i < numEnvs % w ? 1 : 0)).ToArray();
    }

    /// <summary>A vector env over in-process workers, plus the worker tasks (which end when it closes).</summary>
    public static (ClusterVecEnv Env, Task[] Workers) InProcess(string envId, int[] envsPerWorker, AutoresetMode mode = AutoresetMode.NextStep,
        bool recordStatistics = true, TimeSpan? stepTimeout = null, string? token = "test-token", CancellationToken workerCancel = default,
        Func<int, Dictionary<string, string>>? envArgs = null, int? expectWorkers = null, TimeSpan? connectTimeout = null,
        Func<ClusterOptions, ClusterOptions>? configure = null, ClusterEnv.Wrappers.PixelObservations? pixels = null)
    {
        int port = FreePort();
        var hub = new Uri($"http://127.0.0.1:{port}");
        var workers = envsPerWorker.Select((n, i) => Task.Run(async () =>
        {
            await using var w = new WorkerService(new WorkerOptions { Hub = hub, EnvId = envId, NumEnvs = n, WorkerId = $"w{i}", Token = token, ConnectTimeout = TimeSpan.FromSeconds(20), EnvArgs = envArgs?.Invoke(i) ?? [], Pixels = pixels });
            await w.RunAsync(workerCancel);
        })).ToArray();
        var options = new ClusterOptions
        {
            EnvId = envId,
            NumEnvs = expectWorkers is null ? envsPerWorker.Sum() : 0,
            NumWorkers = expectWorkers ?? envsPerWorker.Length,
            LocalWorkers = false,
            AutoresetMode = mode,
            RecordEpisodeStatistics = recordStatistics,
            Hub = new HubOptions { Port = port, Token = token },
            ConnectTimeout = connectTimeout ?? TimeSpan.FromSeconds(20),
            StepTimeout = stepTimeout ?? TimeSpan.FromSeconds(20),
        };
        var env = new ClusterVecEnv(configure is null ? options : configure(options));
        return (env, workers);
    }
}
