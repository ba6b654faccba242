namespace ClusterEnv.Cluster;

/// <summary>
/// A worker's stream ended while the vector env needed it: the process died, the network failed, the hub closed it
/// for a protocol error, or its heartbeat stopped. The vector env cannot go on without that worker's sub-envs: close
/// it and create a new one.
/// </summary>
public sealed class WorkerLostException(string workerId, string reason, string? details = null)
    : Exception($"Lost worker '{workerId}': {reason}.{(details is null ? "" : Environment.NewLine + details)}" +
                $"{Environment.NewLine}The vector env is unusable now; close it and create a new one.")
{
    /// <summary>The id the worker registered with.</summary>
    public string WorkerId { get; } = workerId;

    /// <summary>Why the worker was lost.</summary>
    public string Reason { get; } = reason;
}

/// <summary>Workers did not answer within a deadline (a hung worker, or workers that never connected).</summary>
public sealed class WorkerTimeoutException(string message, IReadOnlyList<string> workerIds) : TimeoutException(message)
{
    /// <summary>The workers that were waited for.</summary>
    public IReadOnlyList<string> WorkerIds { get; } = workerIds;
}

/// <summary>A worker's process or stream failed in a way that is not one sub-env's fault (its error arrives as-is).</summary>
public sealed class WorkerException(string workerId, string errorType, string errorMessage, string? remoteStackTrace)
    : Exception($"Worker '{workerId}' failed with {errorType}: {errorMessage}" +
                (string.IsNullOrEmpty(remoteStackTrace) ? "" : $"{Environment.NewLine}--- remote stack trace ---{Environment.NewLine}{remoteStackTrace}"))
{
    /// <summary>The worker's id.</summary>
    public string WorkerId { get; } = workerId;

    /// <summary>The remote exception type.</summary>
    public string ErrorType { get; } = errorType;

    /// <summary>The remote message.</summary>
    public string ErrorMessage { get; } = errorMessage;

    /// <summary>The remote stack trace.</summary>
    public string? RemoteStackTrace { get; } = remoteStackTrace;
}

/// <summary><c>StepAsync</c> was called while a step was pending (Gymnasium's <c>AlreadyPendingCallError</c>).</summary>
public sealed class AlreadyPendingCallException(string message) : InvalidOperationException(message);

/// <summary><c>StepWait</c> was called with no step pending (Gymnasium's <c>NoAsyncCallError</c>).</summary>
public sealed class NoAsyncCallException(string message) : InvalidOperationException(message);

/// <summary>A worker refused a policy push (wrong size, spec mismatch); it keeps acting with its previous version.</summary>
public sealed class PolicyRejectedException(string message) : InvalidOperationException(message);
