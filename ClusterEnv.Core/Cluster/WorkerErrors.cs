using ClusterEnv.Transport.Protos;
using Grpc.Core;
using ClusterEnv.Vector;

namespace ClusterEnv.Cluster;

/// <summary>A worker's error reply as the exception the learner sees: a sub-env's (with its global index) or the worker's own.</summary>
internal static class WorkerErrors
{
    /// <summary>Records the error in the call that waits for it (the first of each kind wins).</summary>
    public static void Record(VectorCallState calls, WorkerSlot slot, ReadOnlySpan<byte> body)
    {
        var e = WorkerError.Parser.ParseFrom(body);
        string? trace = e.StackTrace.Length == 0 ? null : e.StackTrace;
        if (e.EnvIndex >= 0 && e.EnvIndex < slot.Count) calls.SubEnvFailed(new SubEnvException(slot.Offset + e.EnvIndex, slot.Id, e.Type, e.Message, trace));
        else calls.WorkerFailed(new WorkerException(slot.Id, e.Type, e.Message, trace));
    }

    /// <summary>A reply that answers a command other than the one pending: the worker broke the protocol, and its stream ends with this status.</summary>
    public static RpcException Unexpected(int bodyField, in SlotCommand command) =>
        new(new Status(StatusCode.FailedPrecondition, $"Reply field {bodyField} does not answer the pending command (expects field {command.ReplyField})."));
}
