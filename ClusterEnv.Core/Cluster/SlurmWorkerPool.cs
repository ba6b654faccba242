// Over 400 lines on purpose: the whole Slurm launcher (sbatch and srun modes, the per-task files, replacement jobs,
// scancel) in one place, since every part reads the same job layout; the shell side is scripts/slurm/worker-task.sh.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace ClusterEnv.Cluster;

/// <summary>How a <see cref="SlurmWorkerPool"/> asks Slurm for its workers.</summary>
public enum SlurmLaunchMode
{
    /// <summary><see cref="Srun"/> inside an allocation (SLURM_JOB_ID is set), else <see cref="Sbatch"/>.</summary>
    Auto,
    /// <summary>Submit a batch job whose one step runs the workers (the learner may run anywhere that can submit).</summary>
    Sbatch,
    /// <summary>Run the workers as a job step of the allocation this learner runs in.</summary>
    Srun,
}

/// <summary>What a <see cref="SlurmWorkerPool"/> asks Slurm for. Each setting maps to the sbatch/srun flag of the same name.</summary>
public sealed record SlurmOptions
{
    /// <summary>sbatch/srun or automatic (srun inside an allocation).</summary>
    public SlurmLaunchMode Mode { get; init; } = SlurmLaunchMode.Auto;

    /// <summary>--job-name.</summary>
    public string JobName { get; init; } = "clusterenv-workers";

    /// <summary>--partition (null: the cluster's default).</summary>
    public string? Partition { get; init; }

    /// <summary>--nodes (null: as many as Slurm picks for the tasks).</summary>
    public int? Nodes { get; init; }

    /// <summary>--cpus-per-task of each worker.</summary>
    public int CpusPerTask { get; init; } = 1;

    /// <summary>--time (e.g. "01:00:00"; null: the partition's default).</summary>
    public string? Time { get; init; }

    /// <summary>More sbatch/srun flags, passed as they are (e.g. "--account=rl", "--mem-per-cpu=2G").</summary>
    public IReadOnlyList<string> ExtraArgs { get; init; } = [];

    /// <summary>
    /// Folder for the job script, each worker's stderr, pid and exit code: it must be visible from the worker nodes
    /// (a shared file system). Default: <c>clusterenv-slurm/&lt;time&gt;-&lt;pid&gt;</c> under the current directory.
    /// </summary>
    public string? WorkDir { get; init; }

    /// <summary>ClusterEnv.Worker (.dll or executable); default as for a local pool (next to this application, or CLUSTERENV_WORKER).</summary>
    public string? WorkerPath { get; init; }

    /// <summary>Throws naming the first invalid setting.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Mode)) throw new ArgumentOutOfRangeException(nameof(Mode), Mode, "Use Auto, Sbatch or Srun.");
        if (string.IsNullOrWhiteSpace(JobName) || JobName.Any(char.IsWhiteSpace))
            throw new ArgumentException($"SlurmOptions.JobName '{JobName}' must be one word (it becomes --job-name).");
        if (Nodes is < 1) throw new ArgumentOutOfRangeException(nameof(Nodes), Nodes, "SlurmOptions.Nodes must be at least 1, or null to let Slurm choose.");
        if (CpusPerTask < 1) throw new ArgumentOutOfRangeException(nameof(CpusPerTask), CpusPerTask, "SlurmOptions.CpusPerTask must be at least 1.");
    }
}

/// <summary>
/// Starts the workers through Slurm: one job step of N tasks (worker ids <c>worker-NNN</c> from SLURM_PROCID), as a
/// batch job (sbatch) or, inside an allocation, as a step of it (srun). The hub's token travels in the environment Slurm
/// exports to the tasks (never on a command line or in a file). Each task records its pid, stderr and exit code in
/// <see cref="SlurmOptions.WorkDir"/>, so a worker that dies is named with its exit code and last lines. A lost worker
/// is replaced by a one-task job (or step) under the same id. Disposing cancels every job and step it started.
/// </summary>
public sealed class SlurmWorkerPool : IWorkerLauncher
{
    private readonly SlurmOptions _options;
    private readonly Lock _lock = new();
    private readonly List<string> _jobs = [];            // sbatch job ids, the first one and each replacement's
    private readonly List<Process> _steps = [];          // srun processes (Srun mode)
    private readonly Dictionary<int, (int Generation, string? Job, Process? Step)> _current = []; // worker index → who runs it now
    private WorkerLaunch? _launch;
    private string[] _ids = [];
    private bool _srun;
    private long _lastPoll;
    private Dictionary<string, string> _jobStates = [];
    private bool _disposed;

    /// <summary>A pool that will ask Slurm for workers as <paramref name="options"/> say.</summary>
    public SlurmWorkerPool(SlurmOptions? options = null)
    {
        _options = options ?? new SlurmOptions();
        _options.Validate();
        WorkDir = Path.GetFullPath(_options.WorkDir ?? Path.Combine(Environment.CurrentDirectory, "clusterenv-slurm",
            $"{DateTime.Now:yyyyMMdd-HHmmss}-{Environment.ProcessId}"));
    }

    /// <summary>The folder with the job script and each worker's stderr (<c>worker-NNN.G.err</c>), pid and exit code.</summary>
    public string WorkDir { get; }

    /// <summary>The Slurm job ids this pool submitted (Sbatch mode), the first one first.</summary>
    public IReadOnlyList<string> JobIds
    {
        get { lock (_lock) return [.. _jobs]; }
    }

    /// <inheritdoc />
    public string Description
    {
        get
        {
            lock (_lock)
                return _srun ? $"Slurm step of {_ids.Length} worker task{(_ids.Length == 1 ? "" : "s")} (srun in job {Environment.GetEnvironmentVariable("SLURM_JOB_ID")})"
                    : $"Slurm job {(_jobs.Count == 0 ? "(not submitted)" : string.Join("+", _jobs))} of {_ids.Length} worker task{(_ids.Length == 1 ? "" : "s")}";
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<string> WorkerIds => _ids;

    /// <summary>A file of worker <paramref name="index"/>'s generation <paramref name="generation"/>, by <paramref name="kind"/>: "pid" (the worker process), "err" (its stderr), "exit" (its exit code), "where" (host, job, step).</summary>
    public string FileOf(int index, int generation, string kind) => Path.Combine(WorkDir, $"worker-{index:D3}.{generation}.{kind}");

    /// <inheritdoc />
    public void Start(WorkerLaunch launch)
    {
        ArgumentNullException.ThrowIfNull(launch);
        if (_launch is not null) throw new InvalidOperationException("This pool has already started its workers.");
        _launch = launch;
        int n = launch.EnvsPerWorker.Count;
        _ids = Enumerable.Range(0, n).Select(i => $"worker-{i:D3}").ToArray();
        _srun = _options.Mode == SlurmLaunchMode.Srun ||
                (_options.Mode == SlurmLaunchMode.Auto && !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("SLURM_JOB_ID")));
        Directory.CreateDirectory(WorkDir);
        SetAsideEarlierFiles();
        WriteTaskScript(launch);
        if (_srun)
        {
            var step = StartStep(n, null);
            for (int i = 0; i < n; i++) _current[i] = (0, null, step);
        }
        else
        {
            string job = Submit(n, null);
            for (int i = 0; i < n; i++) _current[i] = (0, job, null);
        }
    }

    // The script every task runs: index and generation from its arguments (a replacement) or SLURM_PROCID (the step).
    private void WriteTaskScript(WorkerLaunch launch)
    {
        var (fileName, prefixArgs) = LocalWorkerPool.LocateWorker(_options.WorkerPath);
        var args = new List<string>(prefixArgs) { "--hub", launch.Hub.ToString().TrimEnd('/'), "--env", launch.EnvId };
        foreach (var asm in launch.Assemblies) args.AddRange(["--assembly", Path.GetFullPath(asm)]);
        foreach (var (k, v) in launch.EnvArgs) args.AddRange(["--env-arg", $"{k}={v}"]);
        if (launch.Pixels is { } pixels) args.AddRange(["--pixels", pixels.ToString()]);
        var sb = new StringBuilder();
        sb.Append("#!/bin/bash\n");
        sb.Append("# Written by ClusterEnv's SlurmWorkerPool: runs worker number $1 (default: SLURM_PROCID), generation $2 (default 0).\n");
        sb.Append("i=${1:-${SLURM_PROCID:?not started by srun}}; g=${2:-0}\n");
        sb.Append("counts=(").Append(string.Join(' ', launch.EnvsPerWorker)).Append(")\n");
        sb.Append("id=$(printf 'worker-%03d' \"$i\"); f=").Append(Quote(WorkDir)).Append("/$id.$g\n");
        sb.Append("echo \"$(hostname) ${SLURM_JOB_ID:-} ${SLURM_STEP_ID:-}\" > \"$f.where\"\n");
        sb.Append("export DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 TERM=dumb\n");
        // A subshell that records its pid and becomes the worker (exec), so the pid file names the worker itself;
        // this shell stays to record the exit code. Both are the step's processes, so scancel reaches both.
        sb.Append("( echo $BASHPID > \"$f.pid\"; exec ").Append(Quote(fileName));
        foreach (var a in args) sb.Append(' ').Append(Quote(a));
        sb.Append(" --num-envs \"${counts[$i]}\" --worker-id \"$id\" 2>> \"$f.err\" )\n");
        sb.Append("rc=$?; echo $rc > \"$f.exit.tmp\"; mv \"$f.exit.tmp\" \"$f.exit\"; exit $rc\n");
        File.WriteAllText(TaskScript, sb.ToString());
    }

    // A folder used before (a resumed run, a requeued job) holds the workers' files of that start: an old exit file would
    // read as the new worker's death. They are moved into earlier-N/ (kept for reading, never mixed with this start's).
    private void SetAsideEarlierFiles()
    {
        var stale = Directory.GetFiles(WorkDir, "worker-*.*").Where(f => !f.EndsWith(".sh", StringComparison.Ordinal)).ToArray();
        if (stale.Length == 0) return;
        string aside;
        int n = 1;
        while (Directory.Exists(aside = Path.Combine(WorkDir, $"earlier-{n}"))) n++;
        Directory.CreateDirectory(aside);
        foreach (var f in stale) File.Move(f, Path.Combine(aside, Path.GetFileName(f)));
    }

    private string TaskScript => Path.Combine(WorkDir, "worker-task.sh");

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private List<string> CommonFlags(int tasks)
    {
        var flags = new List<string> { $"--job-name={_options.JobName}", $"--ntasks={tasks}", $"--cpus-per-task={_options.CpusPerTask}" };
        if (_options.Partition is not null) flags.Add($"--partition={_options.Partition}");
        if (_options.Nodes is int nodes && tasks > 1) flags.Add($"--nodes={Math.Min(nodes, tasks)}");
        if (_options.Time is not null) flags.Add($"--time={_options.Time}");
        flags.AddRange(_options.ExtraArgs);
        return flags;
    }

    // Sbatch: one job whose single step runs the tasks; a replacement is a one-task job for worker `index`.
    private string Submit(int tasks, (int Index, int Generation)? replacement)
    {
        var flags = CommonFlags(tasks);
        string tag = replacement is { } r ? $"worker-{r.Index:D3}.{r.Generation}" : "workers";
        flags.Add("--parsable");
        flags.Add($"--output={Path.Combine(WorkDir, tag + ".job-%j.out")}");
        string step = replacement is { } rr
            ? $"srun --ntasks=1 bash {Quote(TaskScript)} {rr.Index} {rr.Generation}"
            : $"srun --kill-on-bad-exit=0 --ntasks={tasks} bash {Quote(TaskScript)}";
        flags.Add("--wrap");
        flags.Add(step);
        var (code, stdout, stderr) = RunSlurm("sbatch", flags, withToken: true);
        if (code != 0)
            throw new InvalidOperationException($"sbatch refused the worker job (exit {code}): {stderr.Trim()} — check SlurmOptions (partition, time, extra flags) against `sinfo`.");
        string job = stdout.Trim().Split(';')[0];
        if (job.Length == 0) throw new InvalidOperationException($"sbatch printed no job id (stdout '{stdout.Trim()}', stderr '{stderr.Trim()}').");
        lock (_lock) _jobs.Add(job);
        return job;
    }

    // Srun: a step of this allocation, run as a child process (it lives as long as its tasks).
    private Process StartStep(int tasks, (int Index, int Generation)? replacement)
    {
        var psi = new ProcessStartInfo(FindTool("srun")) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var f in CommonFlags(tasks)) psi.ArgumentList.Add(f);
        psi.ArgumentList.Add("--overlap"); // share the allocation's CPUs with the learner's own step
        if (replacement is null) psi.ArgumentList.Add("--kill-on-bad-exit=0");
        psi.ArgumentList.Add("bash");
        psi.ArgumentList.Add(TaskScript);
        if (replacement is { } r)
        {
            psi.ArgumentList.Add(r.Index.ToString(CultureInfo.InvariantCulture));
            psi.ArgumentList.Add(r.Generation.ToString(CultureInfo.InvariantCulture));
        }
        if (!string.IsNullOrEmpty(_launch!.Token)) psi.Environment["CLUSTERENV_TOKEN"] = _launch.Token;
        var p = Process.Start(psi) ?? throw new InvalidOperationException("Could not start srun.");
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        lock (_lock) _steps.Add(p);
        return p;
    }

    /// <inheritdoc />
    public bool Replace(string workerId)
    {
        if (_launch is null || _disposed) return false;
        int index = Array.IndexOf(_ids, workerId);
        if (index < 0) return false;
        (int Generation, string? Job, Process? Step) old;
        lock (_lock) old = _current[index];
        KillWorker(index, old.Generation);
        int g = old.Generation + 1;
        if (_srun)
        {
            var step = StartStep(1, (index, g));
            lock (_lock) _current[index] = (g, null, step);
        }
        else
        {
            string job = Submit(1, (index, g));
            lock (_lock) _current[index] = (g, job, null);
        }
        return true;
    }

    // A lost worker may still be alive (frozen, cut off): end its process so that it cannot come back under the same id.
    private void KillWorker(int index, int generation)
    {
        try
        {
            string pidFile = FileOf(index, generation, "pid");
            if (!File.Exists(pidFile) || !File.Exists(FileOf(index, generation, "where"))) return;
            var where = File.ReadAllText(FileOf(index, generation, "where")).Split(' ');
            if (where[0] != System.Net.Dns.GetHostName()) return; // on another node: its job's end or scancel takes it
            // Only while it has not exited, and only the process that still runs this worker (pids are reused).
            if (ExitCode(index, generation) is null && int.TryParse(File.ReadAllText(pidFile).Trim(), out int pid) &&
                File.Exists($"/proc/{pid}/cmdline") && File.ReadAllText($"/proc/{pid}/cmdline").Contains(_ids[index], StringComparison.Ordinal))
                Kill(pid, 9);
        }
        catch (IOException) { }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <inheritdoc />
    public void ThrowIfAnyExited()
    {
        if (_launch is null) return;
        for (int i = 0; i < _ids.Length; i++)
        {
            var cur = Current(i);
            if (ExitCode(i, cur.Generation) is int code)
                throw new WorkerLostException(_ids[i], $"the worker task exited with code {code} before registering", Describe(_ids[i]));
            if (cur.Step is { HasExited: true } step)
                throw new WorkerLostException(_ids[i], $"its srun step ended (exit {step.ExitCode}) before the worker registered", Describe(_ids[i]));
            if (cur.Job is { } job && JobState(job) is { } state && state is not ("PENDING" or "CONFIGURING" or "RUNNING"))
                throw new WorkerLostException(_ids[i], $"its Slurm job {job} {(state == "ENDED" ? "ended (cancelled, failed or out of time)" : "is " + state)} and the worker never registered", Describe(_ids[i]));
        }
    }

    private int? ExitCode(int index, int generation)
    {
        string f = FileOf(index, generation, "exit");
        return File.Exists(f) && int.TryParse(File.ReadAllText(f).Trim(), out int code) ? code : null;
    }

    // The state of a job, from squeue (polled at most once a second); "ENDED" once squeue no longer lists it.
    private string? JobState(string job)
    {
        long now = Stopwatch.GetTimestamp();
        if (Stopwatch.GetElapsedTime(_lastPoll, now) >= TimeSpan.FromSeconds(1))
        {
            string[] jobs;
            lock (_lock) jobs = [.. _jobs];
            var (code, stdout, _) = RunSlurm("squeue", ["-h", "-o", "%i %T", "-j", string.Join(',', jobs)], withToken: false);
            var states = new Dictionary<string, string>();
            foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = line.Trim().Split(' ', 2);
                if (parts.Length == 2) states[parts[0]] = parts[1];
            }
            // squeue fails for job ids it no longer knows; a job it does not list has ended.
            foreach (var j in jobs) if (!states.ContainsKey(j)) states[j] = code == 0 || jobs.Length == 1 ? "ENDED" : "UNKNOWN";
            _jobStates = states;
            _lastPoll = now;
        }
        return _jobStates.TryGetValue(job, out var s) && s != "UNKNOWN" ? s : null;
    }

    /// <inheritdoc />
    public string? Describe(string workerId)
    {
        int index = Array.IndexOf(_ids, workerId);
        (int Generation, string? Job, Process? Step) cur;
        lock (_lock)
            if (index < 0 || !_current.TryGetValue(index, out cur)) return null;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"Slurm {(cur.Job is null ? "step" : "job " + cur.Job)}, generation {cur.Generation}");
        if (File.Exists(FileOf(index, cur.Generation, "where")))
            sb.Append(", on ").Append(File.ReadAllText(FileOf(index, cur.Generation, "where")).Split(' ')[0]);
        if (ExitCode(index, cur.Generation) is int code) sb.Append(CultureInfo.InvariantCulture, $", exit code {code}");
        string err = FileOf(index, cur.Generation, "err");
        if (File.Exists(err))
        {
            var lines = File.ReadLines(err).TakeLast(20).ToArray();
            if (lines.Length > 0) sb.Append("; worker stderr (last lines, ").Append(err).Append("):").Append(Environment.NewLine).Append("  ").Append(string.Join(Environment.NewLine + "  ", lines));
        }
        return sb.ToString();
    }

    /// <summary>Waits up to <paramref name="timeout"/> for every worker to record its exit, then cancels the jobs and steps still running.</summary>
    public void Stop(TimeSpan timeout)
    {
        if (_launch is null) return;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout && Enumerable.Range(0, _ids.Length).Any(i => ExitCode(i, Current(i).Generation) is null && !Gone(i)))
            Thread.Sleep(50);
        Cancel();
    }

    // Whether worker i's current job or step is already over (scancelled, killed) without an exit file.
    private bool Gone(int i)
    {
        var cur = Current(i);
        if (cur.Step is { } p) return p.HasExited;
        return cur.Job is { } job && JobState(job) is "ENDED" or "CANCELLED" or "FAILED" or "COMPLETED" or "TIMEOUT" or "NODE_FAIL" or "OUT_OF_MEMORY";
    }

    private (int Generation, string? Job, Process? Step) Current(int i)
    {
        lock (_lock) return _current[i];
    }

    private void Cancel()
    {
        string[] jobs;
        Process[] steps;
        lock (_lock)
        {
            jobs = [.. _jobs];
            steps = [.. _steps];
        }
        if (jobs.Length > 0) RunSlurm("scancel", jobs, withToken: false);
        foreach (var p in steps)
        {
            try
            {
                if (p.HasExited) continue;
                Kill(p.Id, 15); // srun passes SIGTERM to its tasks and ends the step
                if (!p.WaitForExit(10_000)) p.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException) { }
        }
        // Nothing of ours may outlive the pool: wait (up to KillWait and a margin) until squeue lists none of the jobs running.
        var sw = Stopwatch.StartNew();
        while (jobs.Length > 0 && sw.Elapsed < TimeSpan.FromSeconds(15))
        {
            var (_, stdout, _) = RunSlurm("squeue", ["-h", "-o", "%T", "-j", string.Join(',', jobs)], withToken: false);
            if (!stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Any(s => s.Trim() is "RUNNING" or "PENDING" or "CONFIGURING")) break;
            Thread.Sleep(100);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_launch is not null) Cancel();
        lock (_lock)
        {
            foreach (var p in _steps) p.Dispose();
            _steps.Clear();
        }
    }

    /// <summary>Whether the Slurm client commands (sbatch, srun, squeue, scancel) are on PATH.</summary>
    public static bool IsAvailable => TryFindTool("sbatch") is not null && TryFindTool("squeue") is not null;

    private static string? TryFindTool(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string p = Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    private static string FindTool(string name) => TryFindTool(name) ?? throw new FileNotFoundException(
        $"'{name}' is not on PATH: SlurmWorkerPool needs the Slurm client commands (sbatch, srun, squeue, scancel). " +
        "Run on a Slurm login or compute node, load the Slurm module, or use a local pool / external workers instead.", name);

    private (int Code, string Stdout, string Stderr) RunSlurm(string tool, IEnumerable<string> args, bool withToken)
    {
        var psi = new ProcessStartInfo(FindTool(tool)) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // sbatch exports the submitting environment to the job (--export=ALL): this is how the token reaches the tasks.
        if (withToken && !string.IsNullOrEmpty(_launch?.Token)) psi.Environment["CLUSTERENV_TOKEN"] = _launch.Token;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {tool}.");
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(30_000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} did not answer within 30 s; is slurmctld reachable (`sinfo`)?");
        }
        return (p.ExitCode, stdout, stderr.Result);
    }
}
