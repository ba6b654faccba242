namespace ClusterEnv.Transport;

/// <summary>gRPC status codes (grpc/grpc doc/statuscodes.md).</summary>
public enum GrpcStatusCode
{
    OK = 0, Cancelled = 1, Unknown = 2, InvalidArgument = 3, DeadlineExceeded = 4, NotFound = 5, AlreadyExists = 6,
    PermissionDenied = 7, ResourceExhausted = 8, FailedPrecondition = 9, Aborted = 10, OutOfRange = 11,
    Unimplemented = 12, Internal = 13, Unavailable = 14, DataLoss = 15, Unauthenticated = 16,
}

/// <summary>A gRPC protocol violation or call failure, carrying the status a peer should see.</summary>
public sealed class GrpcException(GrpcStatusCode status, string message) : Exception($"{status}: {message}")
{
    /// <summary>The gRPC status.</summary>
    public GrpcStatusCode Status { get; } = status;

    /// <summary>The status message (what travels in <c>grpc-message</c>).</summary>
    public string Detail { get; } = message;
}
