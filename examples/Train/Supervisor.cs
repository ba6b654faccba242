using System.Diagnostics;
using System.Runtime.InteropServices;
using ClusterEnv.Learners.Checkpoints;

/// <summary>
/// <c>--max-restarts N</c>: this process becomes a supervisor (as torchrun's elastic agent) that runs the learner as a
/// child with the same options, and restarts a learner that crashed from the run's newest whole checkpoint, up to N
/// times. A learner that finished (0), was stopped by a signal (130, 143, 138) or refused its command line (2) is not
/// restarted. A signal to the supervisor is passed on to the learner once (a Ctrl-C reaches both; the learner counts
/// a signal repeated within a second once), and the supervisor exits with the learner's code.
/// </summary>
internal static class Supervisor
{
    /// <summary>Set in the learner's environment: the supervisor's pid (the learner stops, with its checkpoint, if the supervisor dies).</summary>
    public const string PidVariable = "CLUSTERENV_SUPERVISOR_PID";

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    [DllImport("libc")]
    private static extern int getppid();

    public static int Run(string[] args, int maxRestarts, string outDir)
    {
        var child = WithoutFlag(args, "--max-restarts");
        child = WithoutFlag(child, "--out");
        Process? learner = null;
        int forwarded = 0;
        void Forward(PosixSignalContext context)
        {
            context.Cancel = true; // the supervisor waits for the learner's checkpoint and exits with its code
            Interlocked.Exchange(ref forwarded, 1);
            int signal = context.Signal switch { PosixSignal.SIGINT => 2, PosixSignal.SIGTERM => 15, _ => 10 };
            if (learner is { HasExited: false } p) kill(p.Id, signal);
        }
        using var onSigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Forward);
        using var onSigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Forward);
        using var onSigusr1 = OperatingSystem.IsLinux() ? PosixSignalRegistration.Create((PosixSignal)10, Forward) : null;
        for (int attempt = 0; ; attempt++)
        {
            var run = new List<string>(child) { "--out", outDir };
            if (attempt > 0)
            {
                // Every restart continues from the newest whole checkpoint (an explicit --resume was for the first start only).
                run = WithoutFlag([.. run], "--resume").ToList();
                if (TrainingCheckpoint.List(Path.Combine(outDir, "checkpoints")).Count > 0) run.AddRange(["--resume", outDir]);
            }
            var psi = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
            if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet") psi.ArgumentList.Add(typeof(Supervisor).Assembly.Location);
            foreach (var a in run) psi.ArgumentList.Add(a);
            psi.Environment[PidVariable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
            learner = Process.Start(psi)!;
            learner.WaitForExit();
            int code = learner.ExitCode;
            learner.Dispose();
            if (code is 0 or 2 or 130 or 143 or 138 || Volatile.Read(ref forwarded) == 1) return code;
            if (attempt >= maxRestarts)
            {
                Console.Error.WriteLine($"[supervisor] The learner exited with code {code}; it was restarted {attempt} time(s), the most --max-restarts allows. Giving up.");
                return code;
            }
            Console.Error.WriteLine($"[supervisor] The learner exited with code {code}; restart {attempt + 1} of {maxRestarts} from the newest checkpoint in {outDir} in 2 s.");
            Thread.Sleep(2000);
        }
    }

    /// <summary>In a supervised learner: calls <paramref name="stop"/> once if the supervisor goes away (the learner is then an orphan no one would restart or wait for).</summary>
    public static void WatchSupervisor(Action stop)
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable(PidVariable), out int supervisor) || !OperatingSystem.IsLinux()) return;
        var thread = new Thread(() =>
        {
            while (getppid() == supervisor) Thread.Sleep(500);
            Console.Error.WriteLine("[learner] The supervisor is gone: stopping after this update and writing the checkpoint.");
            stop();
        }) { IsBackground = true, Name = "supervisor watch" };
        thread.Start();
    }

    // Drops "--flag value" and "--flag=value" from args.
    private static string[] WithoutFlag(string[] args, string flag)
    {
        var kept = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == flag) { i++; continue; }
            if (args[i].StartsWith(flag + "=", StringComparison.Ordinal)) continue;
            kept.Add(args[i]);
        }
        return [.. kept];
    }
}
