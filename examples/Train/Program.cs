// IMPACT (the default), IMPALA or PPO (CleanRL's details) on a vector env. By default the envs run in a local pool of
// worker processes behind a ClusterVecEnv (IMPALA and IMPACT have the workers act and stream rollouts, with Adaptive
// Policy Synchronization deciding when they get new weights; PPO steps them from the learner); --local runs the same
// training on in-process envs. Writes a metrics CSV, TensorBoard events and a checkpoint.
// Ctrl-C or SIGTERM stops after the current update and still writes the checkpoint (exit code 130 / 143); a second
// signal stops at once. A lost or hung worker ends the run with its name and exit code 1.
// Usage: dotnet run -c Release --project examples/Train -- [--algo impact|impala|ppo] [--env CartPole-v1] [--seed 1]
//        [--num-envs 16] [--workers 2] [--total-steps 1000000] [--sync 0.05:8] [--local] [--out runs/NAME]   (--help lists them)
// --algo ppo --sync τ trains PPO on worker rollouts behind Adaptive Policy Synchronization (the paper's configuration).
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using ClusterEnv.Cluster;
using System.CommandLine;
using ClusterEnv.CommandLine;
using ClusterEnv.Envs;
using ClusterEnv.Learners.Checkpoints;
using ClusterEnv.Learners.Impala;
using ClusterEnv.Learners.Metrics;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Spaces;
using ClusterEnv.Sync;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;
using Microsoft.Extensions.Logging;

var algoOption = Cli.Option<string?>("--algo", "impact or impala (the workers act and stream rollouts), or ppo (the learner steps the envs) (default: impact)")
    .Check(a => a is null or "ppo" or "impala" or "impact" ? null : $"--algo '{a}' must be ppo, impala or impact.");
var syncOption = Cli.Option("--sync", "when workers that act get new weights (always, never, every:N, a KL threshold τ, or τ:maxLag); IMPALA/IMPACT always act on the workers, PPO does when --sync is given (APS, the paper's configuration)", "0.05:8")
    .Check(t => { try { SyncStrategy.Parse(t); return null; } catch (FormatException e) { return e.Message; } });
var envOption = Cli.Option("--env", "id of the env: one registered here (bundled, or by --worker-assembly), or, without --local, one only the workers serve (e.g. a Python worker's Gymnasium id or module:Class; its spaces and spec come from the workers)", "CartPole-v1");
var workerAssemblyOption = Cli.Option("--worker-assembly", "a .dll with IEnvRegistrar classes that register your own C# envs: loaded here and by every local or Slurm worker (repeatable)", Array.Empty<string>());
var seedOption = Cli.Option("--seed", "random seed (envs, initialisation, sampling)", 1);
var numEnvsOption = Cli.Option<int?>("--num-envs", "parallel envs in total (default: PPO 4, or 1 for continuous actions, as CleanRL; IMPALA/IMPACT 16)");
var workersOption = Cli.Option("--workers", "worker processes of the local pool", 2);
var totalStepsOption = Cli.Option<long?>("--total-steps", "env steps to train for (default: PPO 500,000, or 1,000,000 for continuous actions; IMPALA/IMPACT 1,000,000)")
    .Check(n => n is null or > 0 ? null : $"--total-steps ({n}) must be at least 1.");
var localOption = Cli.Option("--local", "train on an in-process SyncVectorEnv instead of a cluster", false);
var externalOption = Cli.Option("--workers-external", "wait for this many workers started elsewhere (scripts/launch-workers.sh, Slurm) instead of starting a local pool; 0: local pool", 0);
var hostOption = Cli.Option("--host", "address the hub listens on: 127.0.0.1 (this machine), 0.0.0.0 (all interfaces, for other nodes) or an IP", "127.0.0.1");
var portOption = Cli.Option("--port", "the hub's port (0: a free one; see --hub-url-file)", 0)
    .Check(p => p is >= 0 and <= 65535 ? null : $"--port ({p}) must be 0 (a free port) or 1-65535.");
var tokenFileOption = Cli.Option<string?>("--token-file", "file holding the token external workers must present (the same file their --token-file reads)");
var tlsCertOption = Cli.Option<string?>("--tls-cert", "with --workers-external: serve the hub over TLS with this PKCS#12 (.pfx) certificate and key; workers dial https://");
var tlsPasswordFileOption = Cli.Option<string?>("--tls-password-file", "file holding --tls-cert's password");
var allowAnyWorkerOption = Cli.Option("--allow-any-worker", "with --host other than loopback and no --token-file: accept any worker that dials (an open door; only on a network you trust)", false);
var urlFileOption = Cli.Option<string?>("--hub-url-file", "write the hub's URL here once it listens (launch-workers.sh --hub-url-file reads it)");
var connectTimeoutOption = Cli.Option("--connect-timeout", "seconds to wait for all workers to register", 60.0)
    .Check(t => t > 0 && double.IsFinite(t) ? null : $"--connect-timeout ({t}) must be a positive number of seconds.");
var checkpointEveryOption = Cli.Option("--checkpoint-every", "write a checkpoint (RUN/checkpoints) every N updates (PPO: iterations), and always at the end (0: only at the end)", 500)
    .Check(n => n >= 0 ? null : $"--checkpoint-every ({n}) must be 0 (only at the end) or more.");
var resumeOption = Cli.Option<string?>("--resume", "continue a run from its newest whole checkpoint (a run folder, its checkpoints/ folder, or one checkpoint-N folder); the run's folder is --out unless given");
var maxRestartsOption = Cli.Option("--max-restarts", "run the learner under a supervisor that restarts it from the newest checkpoint when it crashes, up to N times (0: no supervisor)", 0)
    .Check(n => n >= 0 ? null : $"--max-restarts ({n}) must be 0 (no supervisor) or more.");
var batchRolloutsOption = Cli.Option<int?>("--batch-rollouts", "IMPALA/IMPACT: rollouts per update (default 1: one worker's rollout of its envs)")
    .Check(n => n is null or >= 1 ? null : $"--batch-rollouts ({n}) must be at least 1.");
var maxCreditOption = Cli.Option<int?>("--max-credit", "IMPALA/IMPACT on workers: the most rollouts a worker may hold in flight; its window starts at 2 and widens while the learner waits for rollouts and the worker for credit (a long round trip), so a long round trip does not starve the learner (default 32)")
    .Check(n => n is null or >= 2 ? null : $"--max-credit ({n}) must be at least 2 (the starting window).");
var maxPolicyLagOption = Cli.Option<int?>("--max-policy-lag", "IMPALA/IMPACT: drop rollouts acted by a policy more than N versions older than the learner's, and push a worker that falls N-1 behind whatever --sync says (default: 50, or none under a plain KL threshold such as --sync 0.1, whose KL already bounds how stale the acting policy is; 0: no limit)")
    .Check(n => n is null or >= 0 ? null : $"--max-policy-lag ({n}) must be 0 (no limit) or more.");
var transportOption = Cli.Option("--transport", "how workers talk to the hub: auto (workers on this machine move to a shared-memory channel after registering; the rest use gRPC) or grpc (every worker over gRPC)", "auto")
    .Check(t => t is "auto" or "grpc" ? null : $"--transport '{t}' must be auto or grpc.");
var firstReadyOption = Cli.Option<int?>("--first-ready", "IMPALA/IMPACT on workers: the learner acts (central inference) and steps the workers first-ready, acting each round on the first workers to answer with at least N sub-envs (0: half of them), so a slow worker holds up only its own; without it the workers act")
    .Check(n => n is null or >= 0 ? null : $"--first-ready ({n}) must be 0 (half the sub-envs) or a number of sub-envs.");
var pixelsOption = Cli.Option("--pixels", "learn from pixels: the envs render (rgb_array) and the policy sees the frames, gray, resized and stacked (--pixel-shape), through a CNN (--encoder)", false);
var pixelShapeOption = Cli.Option("--pixel-shape", "with --pixels: HEIGHTxWIDTHxSTACK of the observed frames", "84x84x4");
var encoderOption = Cli.Option<string?>("--encoder", "the CNN torso for image observations: small (the 2013 DQN network) or nature (the Nature DQN network); default small with --pixels")
    .Check(e => e is null or "small" or "nature" ? null : $"--encoder '{e}' must be small or nature.");
var lrOption = Cli.Option<double?>("--lr", "learning rate (default: PPO 2.5e-4 or 3e-4 continuous, IMPALA 1e-3, IMPACT 7e-4; IMPALA and IMPACT 3e-4 with --pixels)")
    .Check(v => v is null || (v > 0 && double.IsFinite(v.Value)) ? null : $"--lr ({v}) must be a positive number.");
var logEveryOption = Cli.Option("--log-every", "seconds between points in metrics.csv and the TensorBoard events (0: every update; the last update is always written)", 0.5)
    .Check(t => t >= 0 && double.IsFinite(t) ? null : $"--log-every ({t}) must be 0 (every update) or a positive number of seconds.");
var slurmOption = Cli.Option("--slurm", "start the --workers workers through Slurm (srun inside an allocation, else sbatch) instead of a local pool", false);
var slurmPartitionOption = Cli.Option<string?>("--slurm-partition", "Slurm: --partition for the workers");
var slurmTimeOption = Cli.Option<string?>("--slurm-time", "Slurm: --time for the worker job (e.g. 01:00:00)");
var slurmCpusOption = Cli.Option("--slurm-cpus-per-task", "Slurm: --cpus-per-task of each worker", 1)
    .Check(n => n >= 1 ? null : $"--slurm-cpus-per-task ({n}) must be at least 1.");
var slurmNodesOption = Cli.Option<int?>("--slurm-nodes", "Slurm: --nodes for the worker job");
var slurmModeOption = Cli.Option("--slurm-mode", "Slurm: auto (srun inside an allocation, else sbatch), sbatch or srun", "auto")
    .Check(m => m is "auto" or "sbatch" or "srun" ? null : $"--slurm-mode '{m}' must be auto, sbatch or srun.");
var slurmArgOption = Cli.Option("--slurm-arg", "Slurm: one more sbatch/srun flag, as it is (repeatable, e.g. --slurm-arg=--account=rl)", Array.Empty<string>());
var distributedOption = Cli.Option("--distributed", "data-parallel learners: one rank per process started by `mpirun -np N` or `srun --mpi=pmix -n N`, each with its own workers; gradients are all-reduced over MPI", false);
var bucketsOption = Cli.Option("--gradient-buckets", "--distributed: all-reduce gradients in buckets of up to this many floats while backward runs (as PyTorch DDP; pays across nodes); 0: one all-reduce after backward", 0)
    .Check(v => v >= 0 ? null : "--gradient-buckets must be >= 0 (0: one all-reduce after backward).");
var deviceOption = Cli.Option<string?>("--device", "PPO: where the update runs: cuda or cuda:N (an NVIDIA GPU: networks, gradients and Adam in device memory), cpu-kernels (the same kernels on ILGPU's CPU accelerator, for checking); default: this project's CPU engine");
var evaluateOption = Cli.Option<string?>("--evaluate", "instead of training: play a trained policy (a run folder, a checkpoint folder or a .cepolicy file) for --episodes episodes, deterministic and sampled, and write RUN/evaluation.json");
var episodesOption = Cli.Option("--episodes", "with --evaluate: episodes per mode", 100)
    .Check(n => n >= 1 ? null : $"--episodes ({n}) must be at least 1.");
var outOption = Cli.Option<string?>("--out", "run folder for config.json, metrics.csv, TensorBoard events, checkpoints and summary.txt (default runs/ENV__ALGO__SEED__UNIXTIME, or the --resume run's folder)");
var root = new RootCommand("IMPACT (default), IMPALA or PPO (CleanRL's details) through ClusterVecEnv with a local worker pool, or locally with --local.")
{
    algoOption, envOption, workerAssemblyOption, seedOption, numEnvsOption, workersOption, totalStepsOption, syncOption, localOption, outOption,
    externalOption, hostOption, portOption, tokenFileOption, tlsCertOption, tlsPasswordFileOption, allowAnyWorkerOption, urlFileOption, connectTimeoutOption, checkpointEveryOption, resumeOption, logEveryOption, maxRestartsOption, batchRolloutsOption, maxCreditOption, maxPolicyLagOption, firstReadyOption, transportOption, lrOption, pixelsOption, pixelShapeOption, encoderOption,
    evaluateOption, episodesOption, distributedOption, bucketsOption, deviceOption, slurmOption, slurmPartitionOption, slurmTimeOption, slurmCpusOption, slurmNodesOption, slurmModeOption, slurmArgOption,
};
if (Cli.Parse(root, args, out var parsed) is int exit) return exit;
if (parsed.GetValue(evaluateOption) is { } evaluateRun)
    return Evaluate.Run(evaluateRun, parsed.GetResult(envOption) is { Implicit: false } ? parsed.GetValue(envOption) : null,
        parsed.GetValue(episodesOption), parsed.GetValue(seedOption), parsed.GetValue(outOption) is { } o ? Path.Combine(o, "evaluation.json") : null);
string envId = parsed.GetValue(envOption)!;
string[] workerAssemblies = parsed.GetValue(workerAssemblyOption) ?? [];
foreach (var assembly in workerAssemblies)
{
    try
    {
        Gym.LoadRegistrars(assembly);
    }
    catch (Exception e) when (e is IOException or ArgumentException or BadImageFormatException or System.Reflection.TargetInvocationException)
    {
        Console.Error.WriteLine($"--worker-assembly {assembly}: {e.Message}");
        return Cli.UsageError;
    }
}
int seed = parsed.GetValue(seedOption), numEnvs = parsed.GetValue(numEnvsOption) ?? 4, workers = parsed.GetValue(workersOption);
long? totalSteps = parsed.GetValue(totalStepsOption);
bool local = parsed.GetValue(localOption);
string? outDir = parsed.GetValue(outOption);
// IMPACT by default: on CartPole through the workers IMPALA's policy collapsed to one action in 4 runs in 20 (more
// on a loaded machine), IMPACT's in none (docs/results/learning); from pixels IMPALA's collapsed in 4 of 4, IMPACT's
// did not (docs/results/pixels).
string algo = parsed.GetValue(algoOption) ?? "impact";
int external = parsed.GetValue(externalOption);
// An env this process does not know: the workers serve it and describe it (spaces, spec) when they register.
bool workerOnlyEnv = !Gym.Ids.Contains(envId);
if (workerOnlyEnv && parsed.GetValue(localOption))
{
    Console.Error.WriteLine($"Unknown env '{envId}' for --local. Registered here: {string.Join(", ", Gym.Ids)}. " +
                            "Register your C# env with --worker-assembly, or drop --local to train on workers that serve it (e.g. Python workers with --workers-external).");
    return Cli.UsageError;
}
string? tokenFile = parsed.GetValue(tokenFileOption);
bool slurm = parsed.GetValue(slurmOption);
if (external < 0 || (external > 0 && local) || (slurm && (local || external > 0)))
{
    Console.Error.WriteLine(external < 0 ? $"--workers-external ({external}) must be 0 or more."
        : slurm ? "--slurm starts its own workers; it cannot be combined with --local or --workers-external." : "--workers-external and --local cannot be combined.");
    return Cli.UsageError;
}
if (slurm && !SlurmWorkerPool.IsAvailable)
{
    Console.Error.WriteLine("--slurm needs the Slurm client commands (sbatch, squeue) on PATH; run it on a Slurm node or load the Slurm module.");
    return Cli.UsageError;
}
var hubHost = new HubOptions { Host = parsed.GetValue(hostOption)!, AllowAnyWorker = parsed.GetValue(allowAnyWorkerOption) };
if (external > 0 && tokenFile is null && !hubHost.IsLoopback && !hubHost.AllowAnyWorker)
{
    Console.Error.WriteLine($"--host {hubHost.Host} lets other machines reach the hub, and --workers-external has no --token-file: any process that reaches the port could join and feed the learner. " +
                            "Give --token-file FILE (the same file the workers read), or --allow-any-worker on a network you trust.");
    return Cli.UsageError;
}
string? token = null;
if (tokenFile is not null && (token = Cli.ReadSecret(tokenFile, "--token-file")) is null) return Cli.UsageError;
string? tlsCert = parsed.GetValue(tlsCertOption), tlsPassword = null;
if (tlsCert is not null)
{
    // Checked here, before anything starts: the file exists, opens with its password, and holds a private key.
    if (external == 0)
    {
        Console.Error.WriteLine("--tls-cert serves the hub over TLS for --workers-external workers (started with --hub https://... and a certificate they trust, or --insecure); the local pool and Slurm workers dial the hub over loopback or the cluster network without it.");
        return Cli.UsageError;
    }
    if (parsed.GetValue(tlsPasswordFileOption) is { } pwFile && (tlsPassword = Cli.ReadSecret(pwFile, "--tls-password-file")) is null) return Cli.UsageError;
    try
    {
        using var certificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(tlsCert, tlsPassword);
        if (!certificate.HasPrivateKey) throw new System.Security.Cryptography.CryptographicException("it holds no private key");
    }
    catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException)
    {
        Console.Error.WriteLine($"--tls-cert '{tlsCert}' cannot be used: {e.Message}. Give a PKCS#12 (.pfx) file with the hub's certificate and private key (and --tls-password-file if it has a password).");
        return Cli.UsageError;
    }
}
var sync = SyncStrategy.Parse(parsed.GetValue(syncOption)!);
bool impala = algo != "ppo";
// PPO with --sync: the workers act with their own copy of the policy and APS decides when they get new weights.
bool ppoOnWorkers = !impala && !local && parsed.GetResult(syncOption) is not (null or { Implicit: true });
if (ppoOnWorkers && (parsed.GetValue(deviceOption) is not null || parsed.GetValue(distributedOption)))
{
    Console.Error.WriteLine("--algo ppo --sync trains on worker rollouts with the CPU engine in one process; drop --device and --distributed, or drop --sync to step the envs from the learner.");
    return Cli.UsageError;
}
int? firstReady = parsed.GetValue(firstReadyOption);
if (firstReady is not null && (!impala || local))
{
    Console.Error.WriteLine($"--first-ready steps the workers of a cluster for IMPALA/IMPACT; {(local ? "drop --local" : "use --algo impala or impact")}, or drop --first-ready.");
    return Cli.UsageError;
}
if (numEnvs < 1 || workers < 1)
{
    Console.Error.WriteLine($"--num-envs ({numEnvs}) and --workers ({workers}) must be at least 1.");
    return Cli.UsageError;
}

string? device = parsed.GetValue(deviceOption);
if (device is not null && impala)
{
    Console.Error.WriteLine($"--device {device}: the GPU learner runs PPO's update; add --algo ppo (IMPALA/IMPACT run on the CPU engine).");
    return Cli.UsageError;
}
if (device is not null)
{
    try
    {
        using var probe = ClusterEnv.Learners.Gpu.GpuDevice.Open(device == "cpu-kernels" ? "cpu" : device); // fail before any worker starts
        Console.WriteLine($"PPO updates on {probe.Name}.");
    }
    catch (Exception e) when (e is ClusterEnv.Learners.Gpu.GpuUnavailableException or ArgumentException)
    {
        Console.Error.WriteLine($"--device {device}: {e.Message}");
        return Cli.UsageError;
    }
}
// --pixels: every env (the workers', --local's and the probes here) observes its rendered frames through the same wrappers.
ClusterEnv.Wrappers.PixelObservations? pixels = null;
if (parsed.GetValue(pixelsOption))
{
    try { pixels = ClusterEnv.Wrappers.PixelObservations.Parse(parsed.GetValue(pixelShapeOption)!); }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"--pixel-shape: {e.Message}");
        return Cli.UsageError;
    }
    string? refusal = workerOnlyEnv ? $"--pixels renders the envs on C# workers; {envId} is served by other workers, which cannot render for it. Render in your own env instead."
        : device is not null ? "--pixels trains a CNN, which the GPU engine (--device) does not run yet; drop --device."
        : external > 0 ? "--pixels wraps the envs of the workers this run starts; with --workers-external, start them with --pixels " + pixels + " yourself and drop --pixels here."
        : null;
    if (refusal is null)
    {
        try { pixels.Make(envId).Dispose(); }
        catch (ArgumentException e) { refusal = $"--pixels: {envId} cannot be observed as pixels: {e.Message}"; }
    }
    if (refusal is not null)
    {
        Console.Error.WriteLine(refusal);
        return Cli.UsageError;
    }
}
string? encoder = parsed.GetValue(encoderOption) ?? (pixels is not null ? "small" : null);
if (encoder is not null && pixels is null)
{
    Console.Error.WriteLine("--encoder is the CNN for image observations; add --pixels (or drop --encoder).");
    return Cli.UsageError;
}
IEnv MakeProbe() => pixels?.Make(envId) ?? Gym.Make(envId);
// A worker-only env's action space is known once the workers register: PPO's defaults are chosen again then.
bool continuous = !workerOnlyEnv && Gym.Make(envId).ActionSpace is Box;
PpoOptions PpoDefaults(bool continuousActions)
{
    var o = (continuousActions ? PpoOptions.ContinuousDefaults : new PpoOptions()) with { Seed = seed, Device = device, CheckpointEvery = parsed.GetValue(checkpointEveryOption) };
    if (encoder is not null) o = o with { Encoder = encoder, Hidden = [], NormalizeObservations = false };
    if (totalSteps is long ts) o = o with { TotalTimesteps = ts };
    if (parsed.GetValue(lrOption) is double ppoLr) o = o with { LearningRate = ppoLr };
    return o;
}
var options = PpoDefaults(continuous);
int[] PolicyHidden() => encoder is not null ? [] : impala ? new ImpalaOptions().Hidden : options.Hidden;
bool numEnvsGiven = parsed.GetValue(numEnvsOption) is not null;
if (!numEnvsGiven) numEnvs = impala ? 16 : continuous ? 1 : numEnvs; // CleanRL's continuous default: 1 env × 2048 steps
if (firstReady > numEnvs)
{
    Console.Error.WriteLine($"--first-ready {firstReady} is more sub-envs than the run has (--num-envs {numEnvs}); use at most {numEnvs}, or 0 for half.");
    return Cli.UsageError;
}

// A checkpoint to resume from is found and checked whole before anything starts: a damaged newest one is named and the
// next older one used; none usable, or one for another env, is a usage error (exit 2) with the reason.
string? resumeFrom = parsed.GetValue(resumeOption);
TrainingCheckpoint? resume = null;
if (resumeFrom is not null)
{
    try
    {
        resume = TrainingCheckpoint.Load(resumeFrom, damaged => Console.Error.WriteLine(damaged));
    }
    catch (CheckpointException e)
    {
        Console.Error.WriteLine($"--resume {resumeFrom}: {e.Message}");
        return Cli.UsageError;
    }
    if (resume.Counters.TryGetValue("algorithm", out var writtenBy) && writtenBy != algo)
    {
        Console.Error.WriteLine($"--resume {resumeFrom}: {resume.Folder} was written by {writtenBy}; resume it with --algo {writtenBy} (its optimizer state belongs to that algorithm).");
        return Cli.UsageError;
    }
    // (A worker-only env's spaces are checked by the learner once the workers describe them.)
    ClusterEnv.Policies.PolicySpec? expected = null;
    if (!workerOnlyEnv)
    {
        using var probe = MakeProbe();
        expected = ClusterEnv.Policies.PolicySpec.Of(probe.ObservationSpace, probe.ActionSpace, PolicyHidden(), encoder);
    }
    if (expected is not null && !resume.Policy.Spec.Equals(expected))
    {
        Console.Error.WriteLine($"--resume {resumeFrom}: {resume.Folder} holds a policy for observations of {resume.Policy.Spec.ObservationSize} and actions {resume.Policy.Spec.ToJson()}, not for {envId}. Resume with the --env the run was trained on.");
        return Cli.UsageError;
    }
    outDir ??= RunFolder.OfResume(resumeFrom);
}
outDir ??= RunFolder.DefaultPath(envId, algo, seed);

int maxRestarts = parsed.GetValue(maxRestartsOption);
if (maxRestarts > 0 && Environment.GetEnvironmentVariable(Supervisor.PidVariable) is null)
{
    if (parsed.GetValue(distributedOption))
    {
        Console.Error.WriteLine("--max-restarts restarts a single learner from its checkpoints; drop it for --distributed runs (restart those with their launcher).");
        return Cli.UsageError;
    }
    return Supervisor.Run(args, maxRestarts, outDir); // the learner runs as its child, with these options and --out fixed
}

// From here on a signal stops the run cleanly: whatever has started is stopped and the policy and summary are written.
using var stop = new CancellationTokenSource();
int signalExitCode = 0;
long firstSignalAt = 0;
void OnSignal(PosixSignalContext context)
{
    // One signal can arrive twice within moments (Ctrl-C reaches a supervisor, which passes it on; a launcher signals
    // every process of a job): counted once. A second one later is the user insisting.
    if (stop.IsCancellationRequested && Stopwatch.GetElapsedTime(firstSignalAt) < TimeSpan.FromSeconds(1)) { context.Cancel = true; return; }
    if (stop.IsCancellationRequested) return; // the second signal: the default action, which ends the process now
    firstSignalAt = Stopwatch.GetTimestamp();
    context.Cancel = true;
    signalExitCode = context.Signal == PosixSignal.SIGTERM ? 143 : context.Signal == PosixSignal.SIGINT ? 130 : 138;
    string name = context.Signal switch { PosixSignal.SIGINT => "SIGINT", PosixSignal.SIGTERM => "SIGTERM", _ => "SIGUSR1" };
    Console.Error.WriteLine($"{name}: stopping after this update and writing the checkpoint (send it again to stop at once).");
    stop.Cancel();
}
using var onSigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var onSigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
// SIGUSR1 (10 on Linux) is what Slurm sends before pre-empting a job (--signal=USR1@T): stop, checkpoint, exit.
using var onSigusr1 = OperatingSystem.IsLinux() ? PosixSignalRegistration.Create((PosixSignal)10, OnSignal) : null;
Supervisor.WatchSupervisor(() =>
{
    if (stop.IsCancellationRequested) return;
    signalExitCode = 143;
    stop.Cancel();
});

// Data-parallel: every rank trains the same model on its own envs; rank 0 alone prints, logs and writes checkpoints.
using ClusterEnv.Learners.Distributed.ICollective collective = parsed.GetValue(distributedOption)
    ? ClusterEnv.Learners.Distributed.Collectives.ForContext(ClusterEnv.Learners.Distributed.DistributedContext.FromEnvironment())
    : ClusterEnv.Learners.Distributed.SingleCollective.Instance;
string? rankScratch = null;
if (collective.WorldSize > 1)
{
    options = options with { Collective = collective, GradientBucketSize = parsed.GetValue(bucketsOption) };
    if (collective.Rank == 0)
        Console.WriteLine($"Data-parallel over {collective.WorldSize} ranks ({collective.Backend}); each rank has its own {(local ? "envs" : "workers")}, gradients are averaged every step.");
    else
    {
        Console.SetOut(TextWriter.Null); // the others stay quiet (errors still go to stderr) and write nothing that lasts
        rankScratch = outDir = Path.Combine(Path.GetTempPath(), $"clusterenv-rank{collective.Rank}-{Environment.ProcessId}");
    }
}
else if (parsed.GetValue(distributedOption))
    Console.WriteLine("--distributed, but no launcher set a world larger than 1 (OMPI_COMM_WORLD_SIZE, SLURM_NTASKS, WORLD_SIZE): training as a world of 1.");
Directory.CreateDirectory(outDir);
options = options with { CheckpointDirectory = Path.Combine(outDir, "checkpoints") }; // PPO, as IMPALA's below
if (collective.Rank == 0)
    RunFolder.WriteConfig(outDir, root, parsed, args, new Dictionary<string, object?>
    {
        ["algo"] = algo, ["num_envs"] = numEnvs, ["total_steps"] = impala ? totalSteps ?? 1_000_000 : options.TotalTimesteps, ["out"] = Path.GetFullPath(outDir),
        ["workers_act"] = impala || ppoOnWorkers, ["resume_from"] = resume?.Folder, ["world_size"] = collective.WorldSize,
    });


ClusterVecEnv? cluster = null; // set once the workers are up: summary.txt reports its losses on every exit path
try
{
    return Run();
}
catch (OperationCanceledException) when (signalExitCode != 0 && cluster is null)
{
    Console.Error.WriteLine("Stopped while waiting for the workers.");
    return StoppedBeforeTheFirstUpdate(SaveStartingPolicy());
}
catch (Exception e) when (e is WorkerLostException or WorkerTimeoutException or WorkerException or SubEnvException or PolicyRejectedException or ClusterEnv.Rollouts.TrajectoryQueueException or ClusterEnv.Learners.Distributed.CollectiveException or ArgumentException)
{
    if (signalExitCode != 0 && cluster is null)
    {
        // The signal that stops the run also reached a local worker still being started (in the moment between its
        // fork and its own session) before training began: a stop, not a failure. The starting policy is the result.
        Console.Error.WriteLine($"Stopped while the workers were starting ({e.Message}).");
        return StoppedBeforeTheFirstUpdate(SaveStartingPolicy());
    }
    // The cluster failed under the learner: say which worker and why, and exit non-zero instead of crashing.
    Console.Error.WriteLine($"Training stopped: {e.Message}");
    WriteSummary($"failed: {e.Message}");
    return 1;
}
finally
{
    if (rankScratch is not null) try { Directory.Delete(rankScratch, recursive: true); } catch (IOException) { }
}

int Run()
{
    // The hub's warnings and errors (refused, lost or hung workers) on stderr; registrations are Information.
    // Plain text when stderr is a file or a pipe (a batch log, mpirun): no colour escapes.
    using var warnings = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            if (Console.IsErrorRedirected) o.ColorBehavior = Microsoft.Extensions.Logging.Console.LoggerColorBehavior.Disabled;
        })
        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
    // The one line that differs between a local vector env and a cluster of worker processes:
    using IVectorEnv envs = local
        ? pixels is null ? Gym.MakeVec(envId, numEnvs, wrap: e => new RecordEpisodeStatistics(e))
            : new SyncVectorEnv(Enumerable.Range(0, numEnvs).Select(_ => (Func<IEnv>)(() => new RecordEpisodeStatistics(pixels.Make(envId)))))
        : new ClusterVecEnv(new ClusterOptions
        {
            EnvId = envId,
            Pixels = pixels,
            WorkerAssemblies = workerAssemblies,
            // External workers bring their own envs: take whatever they host.
            NumEnvs = external > 0 ? 0 : numEnvs,
            NumWorkers = external > 0 ? external : Math.Min(workers, numEnvs),
            LocalWorkers = external == 0,
            Launcher = slurm ? new SlurmWorkerPool(new SlurmOptions
            {
                Mode = parsed.GetValue(slurmModeOption) switch { "sbatch" => SlurmLaunchMode.Sbatch, "srun" => SlurmLaunchMode.Srun, _ => SlurmLaunchMode.Auto },
                Partition = parsed.GetValue(slurmPartitionOption), Time = parsed.GetValue(slurmTimeOption),
                CpusPerTask = parsed.GetValue(slurmCpusOption), Nodes = parsed.GetValue(slurmNodesOption),
                ExtraArgs = parsed.GetValue(slurmArgOption) ?? [], WorkDir = Path.GetFullPath(Path.Combine(outDir, "slurm")),
            }) : null,
            Hub = new HubOptions
            {
                Host = hubHost.Host, Port = parsed.GetValue(portOption), AllowAnyWorker = hubHost.AllowAnyWorker,
                Token = token, CertificatePath = tlsCert, CertificatePassword = tlsPassword, SharedMemory = parsed.GetValue(transportOption) == "auto",
            },
            HubUrlFile = parsed.GetValue(urlFileOption),
            ConnectTimeout = TimeSpan.FromSeconds(parsed.GetValue(connectTimeoutOption)),
            ConnectCancellation = stop.Token, // Ctrl-C while waiting for workers stops at once
            Progress = external > 0 || slurm ? line => Console.Error.WriteLine($"[hub] {line}") : null,
            // Learners whose workers act carry on when a worker is lost: the pool (or the worker's own script) replaces it.
            ReplaceLostWorkers = impala || ppoOnWorkers,
            LoggerFactory = warnings,
        });

    cluster = envs as ClusterVecEnv;
    if (workerOnlyEnv)
    {
        Console.WriteLine($"{envId} is served by the workers: observations {envs.SingleObservationSpace}, actions {envs.SingleActionSpace}, " +
                          $"max episode steps {envs.Spec?.MaxEpisodeSteps?.ToString(CultureInfo.InvariantCulture) ?? "none"}, reward threshold {envs.Spec?.RewardThreshold?.ToString(CultureInfo.InvariantCulture) ?? "none"}.");
        if (envs.SingleActionSpace is Box) options = PpoDefaults(true) with { Collective = options.Collective, GradientBucketSize = options.GradientBucketSize, CheckpointDirectory = options.CheckpointDirectory };
    }
    if (impala) return RunImpala(envs);
    Console.WriteLine($"PPO on {envs} | {options.TotalTimesteps:N0} steps | {numEnvs} envs × {options.NumSteps} steps per rollout | " +
                      $"{(ppoOnWorkers ? $"workers act, sync {sync}" : "the learner steps the envs")} | seed {seed}");
    // metrics.csv and TensorBoard events (`tensorboard --logdir runs`), at most one point per --log-every
    using var metrics = RunFolder.Metrics(outDir, parsed.GetValue(logEveryOption), append: resume is not null, () => cluster);
    var progress = ConsoleProgress.ForStandardOutput();    // one line in place on a terminal, a line every 5 s in a log
    void OnIteration(PpoMetrics m)
    {
        metrics.Record(m.Scalars(), m.GlobalStep);
        progress.Report(m.GlobalStep, options.TotalTimesteps, m.Sps, $"mean-20 {m.MeanReturn20:F1}  policy loss {m.PolicyLoss:F3}  " +
                                                                       $"value loss {m.ValueLoss:F3}  entropy {m.Entropy:F3}  approx-KL {m.ApproxKl:F4}" +
                                                                       (ppoOnWorkers ? $"  pushes {m.TotalPushes}  lag {m.MeanPolicyLag:F1}" : ""));
    }
    if (resume is not null) Console.WriteLine($"Resuming from {resume.Folder} (iteration {resume.Update:N0}, {resume.GlobalStep:N0} env steps)");
    var result = ppoOnWorkers ? Ppo.TrainOnWorkers((ClusterVecEnv)envs, options, sync, OnIteration, stop.Token, resume) : Ppo.Train(envs, options, OnIteration, stop.Token, resume);
    progress.Complete();

    string checkpoint = Path.Combine(outDir, "policy.cepolicy");
    var metadata = new Dictionary<string, string> { ["env"] = envId, ["seed"] = seed.ToString(CultureInfo.InvariantCulture), ["algorithm"] = "ppo" };
    if (pixels is not null) metadata["pixels"] = pixels.ToString();
    if (result.ObservationStatistics is { } rms) // the policy expects observations normalised with these statistics
    {
        metadata["obs_mean"] = string.Join(",", rms.Mean.ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        metadata["obs_var"] = string.Join(",", rms.Var.ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        metadata["obs_clip"] = options.ObservationClip.ToString(CultureInfo.InvariantCulture);
    }
    result.Policy.Save(checkpoint, metadata);
    // The same policy for ONNX runtimes: PPO's observation statistics become part of the graph.
    if (result.ObservationStatistics is { } stats && result.Policy.Normalizer is null)
        result.Policy.Normalizer = ClusterEnv.Policies.ObservationNormalizer.From(stats, options.ObservationClip);
    WriteOnnx(result.Policy, metadata);
    Console.WriteLine();
    if (result.History.Count == 0) return StoppedBeforeTheFirstUpdate(checkpoint);
    var last = result.History[^1];
    Console.WriteLine($"{(result.Stopped ? "Stopped" : "Done")}: {last.GlobalStep:N0} env steps in {last.Seconds:F1} s ({last.Sps:N0} SPS). Mean return of the last 20 episodes: {result.FinalMeanReturn20:F1}.");
    Console.WriteLine(result.StepsToThreshold is long s
        ? $"Reached the {envId} threshold ({envs.Spec?.RewardThreshold}) after {s:N0} steps, {result.SecondsToThreshold:F1} s."
        : $"Did not reach the {envId} threshold ({envs.Spec?.RewardThreshold?.ToString() ?? "none"}).");
    if (WriteSummary($"{(result.Stopped ? "stopped" : "done")}: {last.GlobalStep} env steps") is { } lost) Console.WriteLine(lost);
    metrics.Flush();
    Console.WriteLine($"Metrics: {metrics.CsvPath} ({metrics.Points} points) and {metrics.EventsPath}   Checkpoint: {checkpoint}");
    SayInSync(result.History.Count);
    return result.Stopped ? signalExitCode : 0;
}

// summary.txt: how the run ended, and (workers started) what was lost and replaced. Written on every exit path; returns
// the workers line for the console.
string? WriteSummary(string outcome, params string[] more) => collective.Rank == 0 ? RunFolder.WriteSummary(outDir, outcome, cluster, more) : null;

// The policy a run starts from (the resumed one, or a fresh one of the run's seed), saved as the run's policy. A worker-only
// env stopped before its workers described it has no spaces to build one from: null.
string? SaveStartingPolicy()
{
    using var probe = workerOnlyEnv ? null : MakeProbe();
    (Space Obs, Space Act)? spaces = probe is not null ? (probe.ObservationSpace, probe.ActionSpace)
        : cluster is not null ? (cluster.SingleObservationSpace, cluster.SingleActionSpace) : null;
    if (resume is null && spaces is null) return null;
    var policy = resume?.Policy ?? new ClusterEnv.Policies.ActorCritic(
        ClusterEnv.Policies.PolicySpec.Of(spaces!.Value.Obs, spaces.Value.Act, PolicyHidden(), encoder), seed);
    string path = Path.Combine(outDir, "policy.cepolicy");
    var metadata = new Dictionary<string, string> { ["env"] = envId, ["seed"] = seed.ToString(CultureInfo.InvariantCulture), ["algorithm"] = algo };
    if (pixels is not null) metadata["pixels"] = pixels.ToString();
    policy.Save(path, metadata);
    return path;
}

// RUN/policy.onnx: the final policy for ONNX runtimes (observations in; logits or means, the action and the value out).
void WriteOnnx(ClusterEnv.Policies.ActorCritic policy, IReadOnlyDictionary<string, string> metadata)
{
    if (collective.Rank == 0) ClusterEnv.Policies.OnnxExport.Write(policy, Path.Combine(outDir, "policy.onnx"), metadata);
}

// A stop that came before this run's first update (during start-up): the policy as it started, and the summary, all the same.
int StoppedBeforeTheFirstUpdate(string? checkpoint)
{
    Console.WriteLine(checkpoint is null
        ? "Stopped before the first update of this run, before the workers described the env: no policy was written."
        : $"Stopped before the first update of this run. Policy (as it started): {checkpoint}");
    if (WriteSummary("stopped: before the first update") is { } workersLine) Console.WriteLine(workersLine);
    return signalExitCode;
}

void SayInSync(int updates)
{
    if (collective.WorldSize > 1)
        Console.WriteLine($"Weights identical on all {collective.WorldSize} ranks after each of the {updates} updates (compared by hash after every update).");
}

// IMPALA / IMPACT: on a ClusterVecEnv the workers act with their own copy of the policy and stream rollouts; locally the
// learner acts. Same outputs as PPO: metrics.csv, TensorBoard events, a checkpoint, the threshold line.
int RunImpala(IVectorEnv envs)
{
    var o = (encoder is not null ? ImpalaOptions.ImageDefaults(encoder) : ImpalaOptions.DefaultsFor(envs.SingleActionSpace)) with
    {
        Seed = seed, TotalTimesteps = totalSteps ?? 1_000_000,
        CheckpointDirectory = Path.Combine(outDir, "checkpoints"), CheckpointEvery = parsed.GetValue(checkpointEveryOption),
        HistoryLimit = 10_000, // every update is in metrics.csv; memory stays flat on long runs
        ResumeFrom = resume?.Folder,
    };
    if (algo == "impact") o = o.AsImpact();
    if (parsed.GetValue(batchRolloutsOption) is int batchRollouts) o = o with { BatchSize = batchRollouts };
    if (parsed.GetValue(maxCreditOption) is int maxCredit) o = o with { MaxCredit = maxCredit };
    if (parsed.GetValue(maxPolicyLagOption) is int maxLag) o = o with { MaxPolicyLag = maxLag };
    if (parsed.GetValue(lrOption) is double impalaLr) o = o with { LearningRate = impalaLr };
    if (collective.WorldSize > 1) o = o with { Collective = collective, GradientBucketSize = parsed.GetValue(bucketsOption) };
    if (resume is not null) Console.WriteLine($"Resuming from {resume.Folder} (update {resume.Update:N0}, {resume.GlobalStep:N0} env steps)");
    Console.WriteLine($"{algo.ToUpperInvariant()} on {envs} | {o.TotalTimesteps:N0} steps | rollouts of {o.UnrollLength} steps | " +
                      $"{(envs is not ClusterVecEnv ? "the learner acts" : firstReady is int b ? $"the learner acts, workers stepped first-ready (batch {(b == 0 ? envs.NumEnvs / 2 : b)})" : $"workers act, sync {sync}")} | seed {seed}");
    // A resumed run continues its metrics (the natural resubmit is --resume R --out R): append, never truncate.
    using var metrics = RunFolder.Metrics(outDir, parsed.GetValue(logEveryOption), append: resume is not null, () => cluster);
    var progress = ConsoleProgress.ForStandardOutput();
    long droppedStale = 0;
    void OnUpdate(ImpalaMetrics m)
    {
        droppedStale = m.DroppedStale;
        metrics.Record(m.Scalars(), m.GlobalStep);
        progress.Report(m.GlobalStep, o.TotalTimesteps, m.Sps, $"mean-20 {m.MeanReturn20:F1}  pushes {m.TotalPushes}  lag {m.MeanPolicyLag:F1}  " +
                                                              $"busy {m.BusyFraction:P0}  queue {m.QueueDepth}");
    }
    var result = envs is not ClusterVecEnv onWorkers ? Impala.Train(envs, o, OnUpdate, stop.Token, resume)
        : firstReady is int batch ? Impala.TrainFirstReady(onWorkers, o, batch, OnUpdate, stop.Token, resume)
        : Impala.Train(onWorkers, o, sync, OnUpdate, cancellationToken: stop.Token, resume: resume);
    progress.Complete();
    string checkpoint = Path.Combine(outDir, "policy.cepolicy");
    var impalaMetadata = new Dictionary<string, string> { ["env"] = envId, ["seed"] = seed.ToString(CultureInfo.InvariantCulture), ["algorithm"] = algo };
    if (pixels is not null) impalaMetadata["pixels"] = pixels.ToString();
    result.Policy.Save(checkpoint, impalaMetadata);
    WriteOnnx(result.Policy, impalaMetadata);
    Console.WriteLine();
    if (result.History.Count == 0) return StoppedBeforeTheFirstUpdate(checkpoint);
    var last = result.History[^1];
    Console.WriteLine($"{(result.Stopped ? "Stopped" : "Done")}: {last.GlobalStep:N0} env steps in {last.Seconds:F1} s ({last.Sps:N0} SPS, learner busy {last.BusyFraction:P0}, " +
                      $"{last.TotalPushes} pushes). Mean return of the last 20 episodes: {result.FinalMeanReturn20:F1}.");
    Console.WriteLine(result.StepsToThreshold is long s
        ? $"Reached the {envId} threshold ({envs.Spec?.RewardThreshold}) after {s:N0} steps, {result.SecondsToThreshold:F1} s."
        : $"Did not reach the {envId} threshold ({envs.Spec?.RewardThreshold?.ToString() ?? "none"}).");
    if (WriteSummary($"{(result.Stopped ? "stopped" : "done")}: {last.GlobalStep} env steps", $"stale rollouts dropped {droppedStale}") is { } replaced) Console.WriteLine(replaced);
    metrics.Flush();
    Console.WriteLine($"Metrics: {metrics.CsvPath} ({metrics.Points} points) and {metrics.EventsPath}   Checkpoint: {checkpoint}");
    SayInSync(result.History.Count);
    return result.Stopped ? signalExitCode : 0;
}
