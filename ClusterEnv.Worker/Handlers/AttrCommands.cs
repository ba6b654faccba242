using ClusterEnv.Envs;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;

namespace ClusterEnv.Worker.Handlers;

/// <summary>Gymnasium's get_attr / set_attr / call on every sub-env; an error names the sub-env it came from.</summary>
internal sealed class AttrCommands(HostedEnvs envs, HubClient hub, string workerId)
{
    public void OnAttr(ulong seq, AttrCommand cmd)
    {
        var vec = envs.Vec;
        var result = new AttrResult();
        var args = cmd.Args.Select(ValueCodec.FromProto).ToArray();
        if (cmd.Op == AttrCommand.Types.Op.Set && cmd.Values.Count != vec.NumEnvs)
            throw new ArgumentException($"SetAttr sent {cmd.Values.Count} values to a worker with {vec.NumEnvs} envs.");
        for (int i = 0; i < vec.NumEnvs; i++)
        {
            try
            {
                var env = vec.Envs[i];
                object? value = cmd.Op switch
                {
                    AttrCommand.Types.Op.Get => EnvAttributes.Get(env, cmd.Name),
                    AttrCommand.Types.Op.Call => EnvAttributes.Call(env, cmd.Name, args),
                    _ => Set(env, ValueCodec.FromProto(cmd.Values[i])),
                };
                result.Values.Add(ValueCodec.ToProto(value, $"'{cmd.Name}' of env {i}"));
            }
            catch (Exception e) when (e is not SubEnvException)
            {
                throw new SubEnvException(i, workerId, e.GetType().FullName ?? e.GetType().Name, e.Message, e.StackTrace);
            }
        }
        hub.Reply(seq, new WorkerMessage { AttrResult = result });

        object? Set(IEnv env, object? value)
        {
            EnvAttributes.Set(env, cmd.Name, value);
            return null;
        }
    }
}
