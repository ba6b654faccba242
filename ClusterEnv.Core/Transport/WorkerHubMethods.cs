using Grpc.Core;

namespace ClusterEnv.Transport;

/// <summary>The gRPC methods of <c>clusterenv.v1.WorkerHub</c> (clusterenv.proto), bound to <see cref="WireMessage"/>.</summary>
public static class WorkerHubMethods
{
    /// <summary>The service's full name.</summary>
    public const string ServiceName = "clusterenv.v1.WorkerHub";

    /// <summary>The metadata key that carries the hub's token (ASCII); the legacy <c>Register.token</c> field is still read.</summary>
    public const string TokenHeader = "x-clusterenv-token";

    /// <summary><c>rpc Connect(stream WorkerMessage) returns (stream HubMessage)</c>: one duplex stream per worker.</summary>
    public static readonly Method<WireMessage, WireMessage> Connect =
        new(MethodType.DuplexStreaming, ServiceName, "Connect", WireMessage.Marshaller, WireMessage.Marshaller);
}
