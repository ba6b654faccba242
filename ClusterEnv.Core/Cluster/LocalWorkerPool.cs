using System.Diagnostics;
using System.Globalization;

namespace ClusterEnv.Cluster;

/// <summary>
/// Starts ClusterEnv.Worker processes on this machine, pointed at a hub, and owns their lifetime: disposing the pool
/// waits for them to exit and kills any that do not. Each worker also watches this process and exits if it dies, so
/// no worker outlives its learner. The last lines a worker wrote to stderr are kept for error messages.
/// </summary>
public sealed class LocalWorkerPool : IWorkerLauncher
{
    /// <summary>Environment variable naming the worker (.dll or executable) when it is not next to the application.</summary>
    public const string WorkerPathVariable = "CLUSTERENV_WORKER";

    private readonly List<(string Id, Process Process, Queue<string> Stderr)> _workers = [];

    private readonly string? _workerPath;
    private WorkerLaunch? _launch;

    /// <summary>A pool that will start ClusterEnv.Worker from <paramref name="workerPath"/> (default: next to this application, or CLUSTERENV_WORKER).</summary>
    public LocalWorkerPool(string? workerPath = null) => _workerPath = workerPath;

    /// <summary>The ids of the workers, in start order.</summary>
    public IReadOnlyList<string> WorkerIds
    {
        get { lock (_workers) return _workers.Select(w => w.Id).ToArray(); }
    }

    /// <inheritdoc />
    public string Description
    {
        get { lock (_workers) return $"local pool of {_workers.Count} worker process{(_workers.Count == 1 ? "" : "es")}"; }
    }

    /// <inheritdoc />
    public void Start(WorkerLaunch launch)
    {
        ArgumentNullException.ThrowIfNull(launch);
        if (_launch is not null) throw new InvalidOperationException("This pool has already started its workers.");
        _launch = launch;
        try
        {
            for (int w = 0; w < launch.EnvsPerWorker.Count; w++) StartWorker($"worker-{w:D3}", launch.EnvsPerWorker[w]);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public bool Replace(string workerId)
    {
        if (_launch is null) return false;
        int index;
        lock (_workers) index = _workers.FindIndex(w => w.Id == workerId);
        if (index < 0) return false;
        var old = _workers[index];
        try { if (!old.Process.HasExited) old.Process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
        int envs = _launch.EnvsPerWorker[int.Parse(workerId.AsSpan(workerId.LastIndexOf('-') + 1), CultureInfo.InvariantCulture)];
        StartWorker(workerId, envs, index);
        old.Process.Dispose();
        return true;
    }

    /// <summary>
    /// Starts one worker per entry of <paramref name="envsPerWorker"/> (ids <c>worker-000</c>, <c>worker-001</c>, ...).
    /// The token travels in the worker's environment (CLUSTERENV_TOKEN), not on its command line.
    /// </summary>
    public static LocalWorkerPool Start(Uri hubUrl, string envId, IReadOnlyList<int> envsPerWorker, string? token,
        IReadOnlyList<string>? assemblies = null, IReadOnlyDictionary<string, string>? envArgs = null, string? workerPath = null)
    {
        ArgumentNullException.ThrowIfNull(hubUrl);
        ArgumentNullException.ThrowIfNull(envsPerWorker);
        var pool = new LocalWorkerPool(workerPath);
        pool.Start(new WorkerLaunch(hubUrl, envId, envsPerWorker, token, assemblies ?? [], envArgs ?? new Dictionary<string, string>()));
        return pool;
    }

    // Starts one worker process; at <paramref name="replacing"/> it takes the place of a lost one with the same id.
    private void StartWorker(string id, int numEnvs, int replacing = -1)
    {
        var launch = _launch!;
        var (fileName, prefixArgs) = LocateWorker(_workerPath);
        // Each worker in a session of its own (setsid execs in place, so the pid is the worker's): a terminal's Ctrl-C,
        // `timeout` or `kill -- -PGID` signals the learner's whole process group, and workers in it would die under
        // the learner while it stops, losing its final policy. Outside the group they end when the learner says
        // goodbye, or when it is gone (--parent-pid).
        var psi = new ProcessStartInfo(Setsid ?? fileName)
        {
            UseShellExecute = false,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        if (Setsid is not null) psi.ArgumentList.Add(fileName);
        foreach (var a in prefixArgs) psi.ArgumentList.Add(a);
        AddArgs(psi, "--hub", launch.Hub.ToString().TrimEnd('/'), "--env", launch.EnvId, "--num-envs", numEnvs.ToString(CultureInfo.InvariantCulture),
            "--worker-id", id, "--parent-pid", Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        foreach (var asm in launch.Assemblies) AddArgs(psi, "--assembly", Path.GetFullPath(asm));
        foreach (var (k, v) in launch.EnvArgs) AddArgs(psi, "--env-arg", $"{k}={v}");
        if (launch.Pixels is { } pixels) AddArgs(psi, "--pixels", pixels.ToString());
        if (!string.IsNullOrEmpty(launch.Token)) psi.Environment["CLUSTERENV_TOKEN"] = launch.Token;
        // A worker has one socket and does its work in the socket's completion: run it inline on the epoll thread
        // instead of hopping to the thread pool (tens of µs per step on a busy 2-core box).
        psi.Environment["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"] = "1";
        var stderr = new Queue<string>();
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stderr)
            {
                stderr.Enqueue(e.Data);
                if (stderr.Count > 40) stderr.Dequeue();
            }
        };
        process.OutputDataReceived += (_, _) => { };
        if (!process.Start()) throw new InvalidOperationException($"Could not start worker process '{fileName}'.");
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        lock (_workers)
        {
            if (replacing >= 0) _workers[replacing] = (id, process, stderr);
            else _workers.Add((id, process, stderr));
        }
    }

    // util-linux's setsid (Debian's essential util-linux ships it), where there is one.
    private static readonly string? Setsid = OperatingSystem.IsLinux() ? new[] { "/usr/bin/setsid", "/bin/setsid" }.FirstOrDefault(File.Exists) : null;

    private static void AddArgs(ProcessStartInfo psi, params string[] args)
    {
        foreach (var a in args) psi.ArgumentList.Add(a);
    }

    /// <summary>Throws <see cref="WorkerLostException"/> if a worker process has exited (with its last stderr lines).</summary>
    public void ThrowIfAnyExited()
    {
        foreach (var (id, p, _) in Snapshot())
            if (p.HasExited)
                throw new WorkerLostException(id, $"the worker process exited with code {p.ExitCode} before registering", Describe(id));
    }

    /// <summary>The last lines worker <paramref name="workerId"/> wrote to stderr, or null.</summary>
    public string? Describe(string workerId)
    {
        foreach (var (id, _, stderr) in Snapshot())
        {
            if (id != workerId) continue;
            lock (stderr)
                return stderr.Count == 0 ? null : "worker stderr (last lines):" + Environment.NewLine + "  " + string.Join(Environment.NewLine + "  ", stderr);
        }
        return null;
    }

    /// <summary>The process of worker <paramref name="workerId"/> (for tests and diagnostics).</summary>
    public Process? ProcessOf(string workerId) => Snapshot().FirstOrDefault(w => w.Id == workerId).Process;

    private (string Id, Process Process, Queue<string> Stderr)[] Snapshot()
    {
        lock (_workers) return [.. _workers];
    }

    /// <summary>Waits up to <paramref name="timeout"/> for the workers to exit on their own, then kills the rest.</summary>
    public void Stop(TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        foreach (var (_, p, _) in Snapshot())
        {
            try
            {
                var left = timeout - deadline.Elapsed;
                if (left < TimeSpan.Zero || !p.WaitForExit(left)) p.Kill(entireProcessTree: true);
                p.WaitForExit(2000);
            }
            catch (InvalidOperationException) { } // never started or already reaped
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Stop(TimeSpan.FromSeconds(5));
        foreach (var (_, p, _) in Snapshot()) p.Dispose();
        lock (_workers) _workers.Clear();
    }

    /// <summary>Folder, next to the application, into which the ClusterEnv.Core package copies the worker.</summary>
    public const string PackagedWorkerFolder = "clusterenv-worker";

    /// <summary>
    /// Finds the worker: an explicit path, CLUSTERENV_WORKER, ClusterEnv.Worker.dll next to this application (a project
    /// reference to ClusterEnv.Worker), or clusterenv-worker/ClusterEnv.Worker.dll (where the ClusterEnv.Core package
    /// puts it).
    /// </summary>
    internal static (string FileName, string[] PrefixArgs) LocateWorker(string? workerPath)
    {
        string? path = workerPath ?? Environment.GetEnvironmentVariable(WorkerPathVariable);
        if (string.IsNullOrEmpty(path))
        {
            string beside = Path.Combine(AppContext.BaseDirectory, "ClusterEnv.Worker.dll");
            string packaged = Path.Combine(AppContext.BaseDirectory, PackagedWorkerFolder, "ClusterEnv.Worker.dll");
            path = File.Exists(beside) ? beside
                : File.Exists(packaged) ? packaged
                : throw new FileNotFoundException(
                    $"ClusterEnv.Worker was found neither next to this application ({beside}) nor in {packaged}. The ClusterEnv.Core " +
                    "package copies it there when the app is built or published (dotnet build, not just the .dll copied elsewhere); " +
                    $"in a source tree, reference the ClusterEnv.Worker project; or set {WorkerPathVariable} or ClusterOptions.WorkerPath to its .dll.", beside);
        }
        if (!File.Exists(path))
            throw new FileNotFoundException($"The worker '{path}' does not exist; point ClusterOptions.WorkerPath or {WorkerPathVariable} at ClusterEnv.Worker.dll.", path);
        if (!path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)) return (path, []);
        return (DotnetHost(), [path]);
    }

    private static string DotnetHost()
    {
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        var fromSdk = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk)) return fromSdk;
        var root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (!string.IsNullOrEmpty(root) && File.Exists(Path.Combine(root, "dotnet"))) return Path.Combine(root, "dotnet");
        return "dotnet";
    }
}
