namespace ClusterEnv.Vector;

/// <summary>
/// A sub-env of a vector env threw. Carries which sub-env (and, for remote envs, which worker) and the original
/// exception's type, message and stack trace. The vector env must be reset before it is stepped again.
/// </summary>
public sealed class SubEnvException : Exception
{
    /// <summary>Wraps an exception thrown by a local sub-env.</summary>
    public SubEnvException(int envIndex, Exception inner)
        : base($"Sub-env {envIndex} threw {inner.GetType().FullName}: {inner.Message.TrimEnd('.')}. Reset the vector env before stepping it again.", inner)
    {
        EnvIndex = envIndex;
        ErrorType = inner.GetType().FullName ?? inner.GetType().Name;
        ErrorMessage = inner.Message;
        ErrorStackTrace = inner.StackTrace;
    }

    /// <summary>Describes an exception thrown by a sub-env in another process.</summary>
    public SubEnvException(int envIndex, string? workerId, string errorType, string errorMessage, string? errorStackTrace)
        : base($"Sub-env {envIndex}{(workerId is null ? "" : $" on worker '{workerId}'")} threw {errorType}: {errorMessage.TrimEnd('.')}. Reset the vector env before stepping it again." +
               (errorStackTrace is null ? "" : $"{Environment.NewLine}--- remote stack trace ---{Environment.NewLine}{errorStackTrace}"))
    {
        EnvIndex = envIndex;
        WorkerId = workerId;
        ErrorType = errorType;
        ErrorMessage = errorMessage;
        ErrorStackTrace = errorStackTrace;
    }

    /// <summary>Index of the sub-env in the vector env.</summary>
    public int EnvIndex { get; }

    /// <summary>The worker that hosts the sub-env (null for local envs).</summary>
    public string? WorkerId { get; }

    /// <summary>Full name of the original exception type.</summary>
    public string ErrorType { get; }

    /// <summary>The original message.</summary>
    public string ErrorMessage { get; }

    /// <summary>The original stack trace.</summary>
    public string? ErrorStackTrace { get; }
}
