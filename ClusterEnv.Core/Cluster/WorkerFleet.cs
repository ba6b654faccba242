using System.Diagnostics;
using System.Security.Cryptography;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using Microsoft.Extensions.Logging;
using Grpc.Core;

namespace ClusterEnv.Cluster;

/// <summary>
/// The workers behind one vector env, as a group: it starts the hub and, when asked, the local pool; admits the workers
/// that register (the right env, the same spaces, unique ids, no more than expected, no replacements); waits for all of
/// them and, when they do not come, says who is missing and who was refused; and closes everything (a goodbye to every
/// worker, the streams, the hub, the pool).
/// </summary>
internal sealed class WorkerFleet : IDisposable
{
    private readonly ClusterOptions _options;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly List<WorkerConnection> _joined = [];
    private readonly ManualResetEventSlim _allJoined = new(false);
    private bool _closing;
    private bool _disposed;

    /// <summary>Starts the hub (and the local pool when <see cref="ClusterOptions.LocalWorkers"/>); does not wait for the workers.</summary>
    public WorkerFleet(ClusterOptions options, ILogger logger)
    {
        // Workers this process starts get a fresh random token (in their environment) unless one was set.
        bool startsWorkers = options.Launcher is null ? options.LocalWorkers : options.Launcher is not ExternalWorkers;
        if (startsWorkers && string.IsNullOrEmpty(options.Hub.Token))
            options = options with { Hub = options.Hub with { Token = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)) } };
        _options = options;
        _logger = logger;
        // Admission from the hub's first moment: a worker dialling as soon as the port opens (a replacement, an external
        // worker already retrying, a local one under load) was refused in the instant before it was set, and exited.
        Hub = ClusterHub.StartAsync(options.Hub, Admit, options.LoggerFactory, onRefused: r => Say($"refused worker {r}")).GetAwaiter().GetResult();
        try
        {
            if (options.HubUrlFile is { } file) WriteUrl(file, Hub.Url);
            Launcher = options.Launcher ?? (options.LocalWorkers ? new LocalWorkerPool(options.WorkerPath) : new ExternalWorkers());
            int numWorkers = options.EffectiveNumWorkers;
            var counts = Enumerable.Range(0, numWorkers).Select(w => options.NumEnvs / numWorkers + (w < options.NumEnvs % numWorkers ? 1 : 0)).ToArray();
            Launcher.Start(new WorkerLaunch(Hub.Url, options.EnvId, counts, options.Hub.Token, options.EffectiveWorkerAssemblies(), options.EnvArgs, options.Pixels));
            Say($"hub listening at {Hub.Url}; waiting up to {options.ConnectTimeout.TotalSeconds:0.#} s for {numWorkers} worker(s) of {options.EnvId} ({Launcher.Description})");
        }
        catch
        {
            Hub.Dispose();
            throw;
        }
    }

    private void Say(string line)
    {
        try { _options.Progress?.Invoke(line); }
        catch (Exception) { } // a progress observer must not break admission
    }

    // The URL, whole or not at all: a temporary file beside the target, then a rename.
    private static void WriteUrl(string path, Uri url)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temp = full + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(temp, url.ToString().TrimEnd('/') + "\n");
        File.Move(temp, full, overwrite: true);
    }

    /// <summary>The options, with the generated token of a local pool filled in.</summary>
    public ClusterOptions Options => _options;

    /// <summary>The hub the workers dial.</summary>
    public ClusterHub Hub { get; }

    /// <summary>Who started the workers.</summary>
    public IWorkerLauncher Launcher { get; } = new ExternalWorkers();

    /// <summary>The local pool, when the launcher is one.</summary>
    public LocalWorkerPool? Pool => Launcher as LocalWorkerPool;

    /// <summary>What is known about a worker's process (the launcher's exit code and last stderr lines), or null.</summary>
    public string? Describe(string workerId) => Launcher.Describe(workerId);

    /// <summary>Blocks until every expected worker has registered; returns them ordered by id.</summary>
    /// <exception cref="WorkerTimeoutException">Not all came within <see cref="ClusterOptions.ConnectTimeout"/>: names the registered, the missing and the refused.</exception>
    public WorkerConnection[] WaitForAll()
    {
        int numWorkers = _options.EffectiveNumWorkers;
        var sw = Stopwatch.StartNew();
        while (!_allJoined.Wait(TimeSpan.FromMilliseconds(100)))
        {
            Launcher.ThrowIfAnyExited();
            ThrowIfARegisteredWorkerDied();
            if (_options.ConnectCancellation.IsCancellationRequested)
            {
                lock (_lock) _closing = true;
                throw new OperationCanceledException($"Stopped while waiting for workers ({_joined.Count} of {numWorkers} registered).", _options.ConnectCancellation);
            }
            if (sw.Elapsed < _options.ConnectTimeout) continue;
            lock (_lock)
            {
                _closing = true;
                var have = _joined.Select(j => j.Id).ToArray();
                var missing = Launcher.WorkerIds.Except(have).ToArray();
                var refused = Hub.Refusals;
                throw new WorkerTimeoutException(
                    $"Only {have.Length} of {numWorkers} workers registered within {_options.ConnectTimeout.TotalSeconds:0.#} s " +
                    $"(registered: {(have.Length == 0 ? "none" : string.Join(", ", have))}" +
                    (missing.Length > 0 ? $"; missing: {string.Join(", ", missing)}" : "") +
                    (refused.Count > 0 ? $"; {refused.Count} refused: {string.Join("; ", refused)}" : "") +
                    $"). Workers must dial {Hub.Url} with --env {_options.EnvId}" + (string.IsNullOrEmpty(_options.Hub.Token) ? "" : " and the hub's token") + ".",
                    missing);
            }
        }
        lock (_lock) return [.. _joined.OrderBy(j => j.Id, StringComparer.Ordinal)];
    }

    // A worker that registered and whose stream then ended will not come back by itself: say so now, with why and
    // (for a local pool) its last lines of stderr, rather than at the end of the timeout as "registered".
    private void ThrowIfARegisteredWorkerDied()
    {
        WorkerConnection? dead;
        lock (_lock)
        {
            dead = _joined.FirstOrDefault(j => j.IsCompleted);
            if (dead is null) return;
            _closing = true;
        }
        throw new WorkerLostException(dead.Id, $"it registered and then its stream ended before all workers had registered ({dead.LostReason ?? "no reason recorded"})",
            Describe(dead.Id));
    }

    /// <summary>Decides on a worker that registers after all expected ones did: true when it is a replacement candidate (then a null refusal admits it).</summary>
    public delegate bool ReplacementDecision(WorkerConnection worker, out string? refusal);

    /// <summary>Set by the vector env once it runs: a worker registering under the id of a lost one may take its place.</summary>
    public ReplacementDecision? ReplacementAdmission { get; set; }

    private string? Admit(WorkerConnection w)
    {
        if (_allJoined.IsSet && !_closing && ReplacementAdmission is { } replacement && replacement(w, out string? verdict))
        {
            if (verdict is null) Say($"worker '{w.Id}' registered from {w.RemoteEndPoint} ({w.Registration.Host}, pid {w.Registration.Pid}) to replace the lost one");
            return verdict;
        }
        lock (_lock)
        {
            if (_allJoined.IsSet || _closing)
            {
                var lost = _joined.Where(j => j.IsCompleted).Select(j => j.Id).ToArray();
                var live = _joined.Where(j => !j.IsCompleted).Select(j => j.Id).ToArray();
                return lost.Length == 0
                    ? $"This vector env already has its {live.Length} workers ({string.Join(", ", live)}); worker '{w.Id}' is not needed."
                    : $"This vector env lost {string.Join(", ", lost.Select(l => $"worker '{l}'"))} and does not take replacements " +
                      $"({live.Length} live: {(live.Length == 0 ? "none" : string.Join(", ", live))}); worker '{w.Id}' cannot join. Close the vector env and create a new one.";
            }
            if (w.Registration.EnvId != _options.EnvId)
                return $"Worker '{w.Id}' hosts '{w.Registration.EnvId}' but this vector env runs '{_options.EnvId}'; start the worker with --env {_options.EnvId}.";
            if (_joined.Any(j => j.Id == w.Id))
                return $"A worker with id '{w.Id}' is already registered; give every worker a unique --worker-id.";
            if (_joined.Count > 0)
            {
                var first = _joined[0];
                if (!w.ObservationSpace.Equals(first.ObservationSpace))
                    return $"Worker '{w.Id}' has observation space {w.ObservationSpace} but '{first.Id}' has {first.ObservationSpace}; all workers must host the same env.";
                if (!w.ActionSpace.Equals(first.ActionSpace))
                    return $"Worker '{w.Id}' has action space {w.ActionSpace} but '{first.Id}' has {first.ActionSpace}; all workers must host the same env.";
            }
            else
            {
                try { ActionLayout.For(w.ActionSpace); }
                catch (NotSupportedException e) { return e.Message; }
            }
            _joined.Add(w);
            Say($"worker '{w.Id}' registered from {w.RemoteEndPoint} ({w.Registration.Host}, pid {w.Registration.Pid}, {w.NumEnvs} envs): {_joined.Count} of {_options.EffectiveNumWorkers}");
            if (_joined.Count == _options.EffectiveNumWorkers) _allJoined.Set();
            return null;
        }
    }

    /// <summary>
    /// Says goodbye to every worker (a Close command through its channel, so it follows anything already written),
    /// waits up to <see cref="ClusterOptions.CloseTimeout"/> for them to end their streams, then ends what is left and
    /// stops the hub and the pool.
    /// </summary>
    public void Close(IReadOnlyList<WorkerSlot> slots)
    {
        if (_disposed) return;
        lock (_lock) _closing = true;
        // The live ones get a goodbye; the slot is closed in the same step, so their answer is not taken for a stray reply.
        var connections = slots.Select(s => s.Close(new HubMessage { Close = new CloseCommand() })).OfType<WorkerConnection>().ToArray();
        Task.WaitAll(connections.Select(c => c.Ended).ToArray(), _options.CloseTimeout); // each ends its stream after the goodbye
        foreach (var c in connections) c.Close(StatusCode.OK, null);
        _disposed = true;
        Hub.Dispose();
        Launcher.Stop(_options.CloseTimeout);
        ClusterLog.Closed(_logger, slots.Count);
        Launcher.Dispose();
    }

    /// <summary>Stops the hub and kills the pool without a goodbye (when the vector env could not be set up).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        lock (_lock) _closing = true;
        Launcher.Dispose();
        Hub.Dispose();
    }
}
