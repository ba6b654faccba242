namespace ClusterEnv.Envs;

/// <summary>An env or vector env was stepped before its first reset (Gymnasium's <c>ResetNeeded</c>).</summary>
public sealed class ResetNeededException(string message) : InvalidOperationException(message);

/// <summary>A closed env or vector env was used (Gymnasium's <c>ClosedEnvironmentError</c>).</summary>
public sealed class EnvironmentClosedException(string message) : InvalidOperationException(message);

/// <summary>An id was not found in the registry, or a registration was invalid.</summary>
public sealed class UnknownEnvironmentException(string message) : ArgumentException(message);
