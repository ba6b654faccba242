using ClusterEnv.Transport;
using Microsoft.Extensions.Logging;
using Grpc.Core;

namespace ClusterEnv.Cluster;

/// <summary>
/// Every log line of the hub and the cluster vector env, with stable event ids (filter or alert on them). Calls come
/// from Kestrel's request threads (registration, refusal, loss) and from the learner's thread (timeouts, close).
/// </summary>
internal static partial class ClusterLog
{
    [LoggerMessage(1, LogLevel.Information, "Hub listening on {Url}")]
    public static partial void HubListening(ILogger logger, Uri url);

    [LoggerMessage(2, LogLevel.Information, "Worker '{WorkerId}' registered from {Peer} (host {Host}, pid {Pid}, {Runtime}): {NumEnvs} x {EnvId}")]
    public static partial void WorkerRegistered(ILogger logger, string workerId, string peer, string host, int pid, string runtime, int numEnvs, string envId);

    [LoggerMessage(3, LogLevel.Warning, "Refused worker '{WorkerId}' from {Peer} with {Status}: {Reason}")]
    public static partial void WorkerRefused(ILogger logger, string workerId, string peer, StatusCode status, string reason);

    [LoggerMessage(4, LogLevel.Warning, "Closed a stream from {Peer} with {Status} before it registered: {Reason}")]
    public static partial void StreamRejected(ILogger logger, string peer, StatusCode status, string reason);

    [LoggerMessage(5, LogLevel.Error, "Lost worker '{WorkerId}': {Reason}")]
    public static partial void WorkerLost(ILogger logger, string workerId, string reason);

    [LoggerMessage(6, LogLevel.Error, "{Operation}: worker '{WorkerId}' sent no reply and no progress for {Seconds} s (StepTimeout)")]
    public static partial void WorkerHung(ILogger logger, string operation, string workerId, double seconds);

    [LoggerMessage(7, LogLevel.Information, "All {Count} workers registered ({NumEnvs} envs)")]
    public static partial void AllRegistered(ILogger logger, int count, int numEnvs);

    [LoggerMessage(9, LogLevel.Warning, "The hub listens on {Host} without a token (HubOptions.AllowAnyWorker): any process that reaches {Url} may join and feed the learner")]
    public static partial void OpenDoor(ILogger logger, string host, Uri url);

    [LoggerMessage(10, LogLevel.Error, "Dropping worker '{WorkerId}': it sent bad data ({Problem}); it is replaced if the vector env replaces lost workers")]
    public static partial void WorkerEvicted(ILogger logger, string workerId, string problem);

    [LoggerMessage(8, LogLevel.Information, "Closed: {Count} workers told to exit")]
    public static partial void Closed(ILogger logger, int count);

    [LoggerMessage(11, LogLevel.Warning, "Worker '{WorkerId}' stays on gRPC: no shared-memory channel could be made ({Reason}); workers on this host use gRPC where that happens")]
    public static partial void SharedMemoryUnavailable(ILogger logger, string workerId, string reason);
}
