using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using Grpc.Core;

namespace ClusterEnv.Cluster;

/// <summary>
/// Gymnasium's get_attr / set_attr / call, run on the workers' sub-envs: one round trip per worker, values in sub-env
/// order. Values cross the wire as numbers, bools, strings or numeric arrays (ValueCodec). An error names the global
/// sub-env and the worker, and leaves the envs as they were (no reset needed).
/// </summary>
internal sealed class AttributeCalls(WorkerSlot[] slots, VectorCallState calls, WorkerRollouts rollouts, int numEnvs) : IReplyOwner
{
    private object?[]? _results;

    public object?[] Run(AttrCommand.Types.Op op, string name, IReadOnlyList<object?> args, IReadOnlyList<object?>? values)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        calls.ThrowIfUnusable();
        rollouts.ThrowIfStreaming("GetAttr, SetAttr or Call");
        if (values is not null && values.Count != numEnvs)
            throw new ArgumentException($"SetAttr got {values.Count} values for {numEnvs} sub-envs; give one per sub-env, or a single value for all.", nameof(values));
        // Everything is encoded before anything is sent: a value that cannot cross the wire fails here, by name.
        var protoArgs = args.Select((a, i) => ValueCodec.ToProto(a, $"argument {i} of Call(\"{name}\")")).ToArray();
        var commands = slots.Select(s =>
        {
            var cmd = new AttrCommand { Op = op, Name = name };
            cmd.Args.AddRange(protoArgs);
            if (values is not null)
                for (int i = 0; i < s.Count; i++) cmd.Values.Add(ValueCodec.ToProto(values[s.Offset + i], $"the value for sub-env {s.Offset + i}"));
            return new HubMessage { Attr = cmd };
        }).ToArray();
        var results = new object?[numEnvs];
        bool neededReset = calls.NeedsReset;
        _results = results;
        calls.Begin();
        for (int w = 0; w < slots.Length; w++)
        {
            calls.Track(slots[w]);
            if (!slots[w].Send(commands[w], WorkerMessage.AttrResultFieldNumber, gather: true, this)) calls.Untrack(slots[w]);
        }
        try
        {
            calls.End(op switch { AttrCommand.Types.Op.Get => "GetAttr", AttrCommand.Types.Op.Set => "SetAttr", _ => "Call" });
        }
        catch (Exception e) when (e is Vector.SubEnvException or WorkerException)
        {
            calls.NeedsReset = neededReset; // an attribute error does not break the envs
            throw;
        }
        finally
        {
            _results = null;
        }
        return results;
    }

    void IReplyOwner.OnReply(WorkerSlot slot, in SlotCommand command, int bodyField, ReadOnlySpan<byte> body)
    {
        if (bodyField == WorkerMessage.ErrorFieldNumber)
        {
            WorkerErrors.Record(calls, slot, body);
            return;
        }
        if (bodyField != WorkerMessage.AttrResultFieldNumber)
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Reply field {bodyField} does not answer the pending command (expects attr_result)."));
        var r = AttrResult.Parser.ParseFrom(body);
        var into = _results ?? throw new InvalidDataException("An attr_result arrived with no GetAttr, SetAttr or Call pending.");
        if (r.Values.Count != slot.Count)
            throw new InvalidDataException($"Worker '{slot.Id}' answered with {r.Values.Count} values for its {slot.Count} envs.");
        for (int i = 0; i < slot.Count; i++) into[slot.Offset + i] = ValueCodec.FromProto(r.Values[i]);
    }
}
