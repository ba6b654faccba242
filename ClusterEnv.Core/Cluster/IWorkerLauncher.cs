namespace ClusterEnv.Cluster;

/// <summary>What a launcher is asked to start: where the workers dial, which env, how many sub-envs each, and how they prove who they are.</summary>
/// <param name="Hub">The URL the workers dial.</param>
/// <param name="EnvId">The registry id every worker hosts.</param>
/// <param name="EnvsPerWorker">Sub-envs of each worker, one entry per worker.</param>
/// <param name="Token">The hub's token: launchers pass it in the workers' environment (CLUSTERENV_TOKEN), never on a command line.</param>
/// <param name="Assemblies">Assemblies that register the user's own envs.</param>
/// <param name="EnvArgs">Constructor arguments for the env, as strings.</param>
/// <param name="Pixels">When set, the workers observe rendered frames through these wrappers instead of the env's state.</param>
public sealed record WorkerLaunch(Uri Hub, string EnvId, IReadOnlyList<int> EnvsPerWorker, string? Token,
    IReadOnlyList<string> Assemblies, IReadOnlyDictionary<string, string> EnvArgs, Wrappers.PixelObservations? Pixels = null);

/// <summary>
/// What a vector env needs from whoever starts its workers: start them once the hub listens, say which ids to expect,
/// notice the ones that died, describe one for an error message, start a replacement for a lost one, and stop them
/// all. The vector env owns its launcher and stops it when it closes. Implementations: <see cref="LocalWorkerPool"/>
/// (processes on this machine, the default) and <see cref="ExternalWorkers"/> (started by someone else).
/// </summary>
public interface IWorkerLauncher : IDisposable
{
    /// <summary>What it is, for messages ("local pool of 2 worker processes", "external workers").</summary>
    string Description { get; }

    /// <summary>The ids of the workers it started (empty when it does not know them).</summary>
    IReadOnlyList<string> WorkerIds { get; }

    /// <summary>Starts the workers; returns once they are on their way (registration is the vector env's wait).</summary>
    void Start(WorkerLaunch launch);

    /// <summary>Throws <see cref="WorkerLostException"/> for a worker it knows to be dead (exited, failed), with what it knows.</summary>
    void ThrowIfAnyExited();

    /// <summary>What it knows of worker <paramref name="workerId"/>'s process (exit code, last stderr lines), or null.</summary>
    string? Describe(string workerId);

    /// <summary>Starts a replacement for lost worker <paramref name="workerId"/> (same id, same envs). False when this launcher cannot.</summary>
    bool Replace(string workerId);

    /// <summary>Waits up to <paramref name="timeout"/> for the workers to exit on their own, then stops the rest.</summary>
    void Stop(TimeSpan timeout);
}

/// <summary>Workers started by someone else (scripts/launch-workers.sh, a Slurm job, another machine): nothing to start, stop or replace here.</summary>
public sealed class ExternalWorkers : IWorkerLauncher
{
    /// <inheritdoc />
    public string Description => "external workers";

    /// <inheritdoc />
    public IReadOnlyList<string> WorkerIds => [];

    /// <inheritdoc />
    public void Start(WorkerLaunch launch) { }

    /// <inheritdoc />
    public void ThrowIfAnyExited() { }

    /// <inheritdoc />
    public string? Describe(string workerId) => null;

    /// <inheritdoc />
    public bool Replace(string workerId) => false;

    /// <inheritdoc />
    public void Stop(TimeSpan timeout) { }

    /// <inheritdoc />
    public void Dispose() { }
}
