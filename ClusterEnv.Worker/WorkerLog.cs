using Microsoft.Extensions.Logging;

namespace ClusterEnv.Worker;

/// <summary>Every log line of a worker, with stable event ids. Calls come from the service loop and, while rollouts stream, the stream's acting thread.</summary>
internal static partial class WorkerLog
{
    [LoggerMessage(1, LogLevel.Information, "Worker '{WorkerId}' dialling {Hub} ({NumEnvs} x {EnvId})")]
    public static partial void Dialling(ILogger logger, string workerId, Uri hub, int numEnvs, string envId);

    [LoggerMessage(2, LogLevel.Information, "Worker '{WorkerId}' registered with {Hub}")]
    public static partial void Registered(ILogger logger, string workerId, Uri hub);

    [LoggerMessage(3, LogLevel.Error, "Worker '{WorkerId}': the hub refused it or ended the stream with {Status}: {Detail}")]
    public static partial void Refused(ILogger logger, string workerId, string status, string detail);

    [LoggerMessage(4, LogLevel.Error, "Worker '{WorkerId}': {Reason}")]
    public static partial void Failed(ILogger logger, string workerId, string reason);

    [LoggerMessage(5, LogLevel.Warning, "Worker '{WorkerId}': the learner (pid {Pid}) is gone; exiting")]
    public static partial void ParentGone(ILogger logger, string workerId, int pid);

    [LoggerMessage(6, LogLevel.Information, "Worker '{WorkerId}': the hub closed the stream; exiting")]
    public static partial void Closed(ILogger logger, string workerId);

    [LoggerMessage(7, LogLevel.Warning, "Worker '{WorkerId}' refused policy version {Version} and keeps version {Active}: {Reason}")]
    public static partial void PolicyRefused(ILogger logger, string workerId, ulong version, ulong active, string reason);

    [LoggerMessage(8, LogLevel.Debug, "Worker '{WorkerId}' acts with policy version {Version}")]
    public static partial void PolicyApplied(ILogger logger, string workerId, ulong version);

    [LoggerMessage(9, LogLevel.Information, "Worker '{WorkerId}' streams rollouts of {Steps} steps (initial credit {Credit})")]
    public static partial void StreamStarted(ILogger logger, string workerId, uint steps, uint credit);

    [LoggerMessage(10, LogLevel.Error, "Worker '{WorkerId}': the rollout stream failed: {Reason}")]
    public static partial void StreamFailed(ILogger logger, string workerId, string reason);

    [LoggerMessage(11, LogLevel.Warning, "Worker '{WorkerId}': {Reason}")]
    public static partial void InfoDropped(ILogger logger, string workerId, string reason);
}
