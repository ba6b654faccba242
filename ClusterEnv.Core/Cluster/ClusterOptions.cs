using ClusterEnv.Vector;

namespace ClusterEnv.Cluster;

/// <summary>
/// Everything a <see cref="ClusterVecEnv"/> needs, with defaults that run a local worker pool on this machine.
/// Validated once when the vector env is created.
/// </summary>
public sealed record ClusterOptions
{
    /// <summary>Registry id of the env every worker hosts (e.g. "CartPole-v1"); workers hosting another id are refused.</summary>
    public required string EnvId { get; init; }

    /// <summary>Total sub-envs. A local pool splits them over its workers; with external workers, 0 accepts whatever they bring, any other value is checked.</summary>
    public int NumEnvs { get; init; }

    /// <summary>Workers to wait for. 0 picks min(processor count, NumEnvs) for a local pool, 1 for external workers.</summary>
    public int NumWorkers { get; init; }

    /// <summary>Start the workers as local processes (<see cref="LocalWorkerPool"/>). False waits for workers started elsewhere (scripts/launch-workers.sh, Slurm). Ignored when <see cref="Launcher"/> is set.</summary>
    public bool LocalWorkers { get; init; } = true;

    /// <summary>
    /// Who starts the workers (null: a <see cref="LocalWorkerPool"/> when <see cref="LocalWorkers"/>, else
    /// <see cref="ExternalWorkers"/>). The vector env starts it once its hub listens and stops it when it closes.
    /// Set <see cref="NumWorkers"/> with it.
    /// </summary>
    public IWorkerLauncher? Launcher { get; init; }

    /// <summary>Gymnasium's autoreset mode, applied by every worker.</summary>
    public AutoresetMode AutoresetMode { get; init; } = AutoresetMode.NextStep;

    /// <summary>Wrap each sub-env in RecordEpisodeStatistics, so episode returns and lengths reach the learner.</summary>
    public bool RecordEpisodeStatistics { get; init; } = true;

    /// <summary>Where the hub listens, its token and limits. A local pool gets a fresh random token when none is set.</summary>
    public HubOptions Hub { get; init; } = new();

    /// <summary>How long to wait for all workers to register.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Deadline of one Reset or Step round trip; a worker that misses it is reported by name.</summary>
    public TimeSpan StepTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Ends the wait for workers early (e.g. Ctrl-C while waiting for external workers): the constructor stops what it started and throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken ConnectCancellation { get; init; }

    /// <summary>How long Close waits for workers to acknowledge before it ends their streams.</summary>
    public TimeSpan CloseTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Assemblies that register the user's own envs: each worker the vector env launches loads them and runs their
    /// <see cref="Envs.IEnvRegistrar"/> classes. When empty, the application's entry assembly is passed if it has a
    /// public <see cref="Envs.IEnvRegistrar"/>, so envs registered in the user's own program reach local workers with no
    /// configuration.
    /// </summary>
    public IReadOnlyList<string> WorkerAssemblies { get; init; } = [];

    /// <summary><see cref="WorkerAssemblies"/>, or the entry assembly when it has registrars and none are given.</summary>
    internal IReadOnlyList<string> EffectiveWorkerAssemblies()
    {
        if (WorkerAssemblies.Count > 0) return WorkerAssemblies;
        var entry = System.Reflection.Assembly.GetEntryAssembly();
        if (entry is null || string.IsNullOrEmpty(entry.Location)) return [];
        try
        {
            bool hasRegistrar = entry.GetExportedTypes().Any(t =>
                typeof(Envs.IEnvRegistrar).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false });
            return hasRegistrar ? [entry.Location] : [];
        }
        catch (Exception e) when (e is System.Reflection.ReflectionTypeLoadException or FileNotFoundException or FileLoadException)
        {
            return [];
        }
    }

    /// <summary>Local pool: constructor arguments for the env (<c>Gym.Make(EnvId, kwargs)</c>), as strings.</summary>
    public IReadOnlyDictionary<string, string> EnvArgs { get; init; } = new Dictionary<string, string>();

    /// <summary>Launched workers (local pool, Slurm): observe rendered, gray, resized and stacked frames instead of the env's state (<see cref="Wrappers.PixelObservations"/>); null: the env's own observations.</summary>
    public Wrappers.PixelObservations? Pixels { get; init; }

    /// <summary>Local pool: path of ClusterEnv.Worker (.dll or executable); by default found next to this application or in CLUSTERENV_WORKER.</summary>
    public string? WorkerPath { get; init; }

    /// <summary>
    /// Where the hub and the vector env log (registrations, refusals with their reason and peer, lost and hung
    /// workers); nothing is logged when null. E.g. <c>LoggerFactory.Create(b =&gt; b.AddSimpleConsole())</c>.
    /// </summary>
    public Microsoft.Extensions.Logging.ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>
    /// A file to write the hub's URL to (nothing secret: not the token) as soon as it listens, before waiting for the
    /// workers: with <c>Hub.Port = 0</c> this is how a job script learns where its workers must dial. Written whole
    /// (a temporary file, then a rename), so a reader never sees half a URL.
    /// </summary>
    public string? HubUrlFile { get; init; }

    /// <summary>
    /// Lines for a person watching the waiting phase: where the hub listens, each worker that registers (k of N, its
    /// address), each worker refused and why. Called from the hub's threads; keep it quick (e.g. Console.Error.WriteLine).
    /// </summary>
    public Action<string>? Progress { get; init; }

    /// <summary>
    /// A lost worker is replaced instead of ending the run: the launcher starts a new process under the same id (an
    /// external worker may also re-register under it), and it takes over the same sub-env slots with a fresh reset.
    /// While rollouts stream, it gets the newest policy at once and streams again; the learner keeps consuming from the
    /// others meanwhile. A lockstep Step or Reset waits for the replacement (up to <see cref="ReplaceTimeout"/>, then a
    /// <see cref="WorkerLostException"/> names the worker); the Step reports the lost worker's sub-envs truncated, with
    /// reward 0 and the replacement's first observation. A lockstep rollout collection asks the replacement (fresh seeds,
    /// newest policy) for the lost worker's rows. Needs a launcher that can replace (<see cref="LocalWorkerPool"/>, <see cref="SlurmWorkerPool"/>) or workers that re-dial.
    /// </summary>
    public bool ReplaceLostWorkers { get; init; }

    /// <summary>Most replacements in one vector env's life; the next loss ends the run.</summary>
    public int MaxReplacements { get; init; } = 10;

    /// <summary>How long a lost worker's replacement may take to register before the loss ends the run.</summary>
    public TimeSpan ReplaceTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Number of workers after defaults.</summary>
    public int EffectiveNumWorkers => NumWorkers > 0 ? NumWorkers
        : (Launcher is null ? LocalWorkers : Launcher is not ExternalWorkers) ? Math.Max(1, Math.Min(Environment.ProcessorCount, NumEnvs)) : 1;

    /// <summary>Throws naming the first invalid setting and how to fix it.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(EnvId)) throw new ArgumentException("ClusterOptions.EnvId is empty; name a registered env such as \"CartPole-v1\".");
        if (NumEnvs < 0) throw new ArgumentOutOfRangeException(nameof(NumEnvs), NumEnvs, "NumEnvs must be positive (or 0 with external workers to accept what they bring).");
        if (NumWorkers < 0) throw new ArgumentOutOfRangeException(nameof(NumWorkers), NumWorkers, "NumWorkers must be positive, or 0 for the default.");
        if (LocalWorkers && NumEnvs == 0) throw new ArgumentException("A local worker pool needs NumEnvs > 0 (the total number of sub-envs to split over the workers).");
        if (LocalWorkers && EffectiveNumWorkers > NumEnvs)
            throw new ArgumentException($"NumWorkers ({EffectiveNumWorkers}) is larger than NumEnvs ({NumEnvs}); every worker needs at least one env.");
        if (!Enum.IsDefined(AutoresetMode)) throw new ArgumentOutOfRangeException(nameof(AutoresetMode), AutoresetMode, "Use NextStep, SameStep or Disabled.");
        if (ConnectTimeout <= TimeSpan.Zero || StepTimeout <= TimeSpan.Zero || CloseTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(StepTimeout), "ConnectTimeout, StepTimeout and CloseTimeout must be positive.");
        ArgumentNullException.ThrowIfNull(Hub);
        Hub.Validate();
    }
}
