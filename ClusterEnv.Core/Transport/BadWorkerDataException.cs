namespace ClusterEnv.Transport;

/// <summary>A worker's reply that parsed but holds data no learner may use (non-finite values, sizes or versions that do not fit the request). Ends the worker's stream: the worker is dropped.</summary>
internal sealed class BadWorkerDataException(string problem) : Exception(problem);
