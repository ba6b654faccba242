using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;

namespace ClusterEnv.Cluster;

// Gymnasium's get_attr / set_attr / call, run on the workers' sub-envs: one round trip per worker, values in sub-env
// order. Values cross the wire as numbers, bools, strings or numeric arrays (ValueCodec). An error names the global
// sub-env and the worker, and leaves the envs as they were (no reset needed).
public sealed partial class ClusterVecEnv
{
    private object?[]? _attrResults;

    /// <inheritdoc />
    public IReadOnlyList<object?> GetAttr(string name) => Attr(AttrCommand.Types.Op.Get, name, [], null);

    /// <inheritdoc />
    public IReadOnlyList<object?> Call(string name, params object?[] args) => Attr(AttrCommand.Types.Op.Call, name, args ?? [], null);

    /// <inheritdoc />
    public void SetAttr(string name, IReadOnlyList<object?> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count != NumEnvs)
            throw new ArgumentException($"SetAttr got {values.Count} values for {NumEnvs} sub-envs; give one per sub-env, or a single value for all.", nameof(values));
        Attr(AttrCommand.Types.Op.Set, name, [], values);
    }

    /// <inheritdoc />
    public void SetAttr(string name, object? value) => SetAttr(name, Enumerable.Repeat(value, NumEnvs).ToArray());

    private object?[] Attr(AttrCommand.Types.Op op, string name, IReadOnlyList<object?> args, IReadOnlyList<object?>? values)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ThrowIfUnusable();
        if (_stream is not null)
            throw new InvalidOperationException("Rollouts are streaming from the workers; stop the stream before GetAttr, SetAttr or Call.");
        // Everything is encoded before anything is sent: a value that cannot cross the wire fails here, by name.
        var protoArgs = args.Select((a, i) => ValueCodec.ToProto(a, $"argument {i} of Call(\"{name}\")")).ToArray();
        var commands = _slots.Select(s =>
        {
            var cmd = new AttrCommand { Op = op, Name = name };
            cmd.Args.AddRange(protoArgs);
            if (values is not null)
                for (int i = 0; i < s.Count; i++) cmd.Values.Add(ValueCodec.ToProto(values[s.Offset + i], $"the value for sub-env {s.Offset + i}"));
            return new HubMessage { Attr = cmd };
        }).ToArray();
        var results = new object?[NumEnvs];
        bool neededReset = _needsReset;
        _attrResults = results;
        _info.Clear();
        Begin();
        for (int w = 0; w < _slots.Length; w++) SendTracked(_slots[w], commands[w], WorkerMessage.AttrResultFieldNumber);
        try
        {
            End(op switch { AttrCommand.Types.Op.Get => "GetAttr", AttrCommand.Types.Op.Set => "SetAttr", _ => "Call" });
        }
        catch (Exception e) when (e is SubEnvException or WorkerException)
        {
            _needsReset = neededReset; // an attribute error does not break the envs
            throw;
        }
        finally
        {
            _attrResults = null;
        }
        return results;
    }

    private void ReadAttrResult(WorkerChannel s, AttrResult r)
    {
        var into = _attrResults ?? throw new InvalidDataException("An attr_result arrived with no GetAttr, SetAttr or Call pending.");
        if (r.Values.Count != s.Count)
            throw new InvalidDataException($"Worker '{s.Id}' answered with {r.Values.Count} values for its {s.Count} envs.");
        for (int i = 0; i < s.Count; i++) into[s.Offset + i] = ValueCodec.FromProto(r.Values[i]);
    }
}
