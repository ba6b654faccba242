using System.Runtime.InteropServices;
using ClusterEnv.Common;
using ClusterEnv.Policies;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;

namespace ClusterEnv.Worker.Handlers;

/// <summary>NIGT: one truncated-REINFORCE policy gradient at the point sent, from episodes on this worker's envs (which then need a reset).</summary>
internal sealed class GradientCommands(HostedEnvs envs, HubClient hub)
{
    private ActorCritic? _policy;
    private Rng? _rng;

    public void OnGradient(ulong seq, GradientCommand cmd)
    {
        var vec = envs.Vec;
        var spec = PolicySpec.FromJson(cmd.SpecJson);
        if (_policy is null || !_policy.Spec.Equals(spec)) _policy = new ActorCritic(spec);
        var point = MemoryMarshal.Cast<byte, float>(cmd.Point.Data.Span);
        if (point.Length != _policy.Parameters.Length)
            throw new ArgumentException($"The gradient point has {point.Length} weights; the policy {cmd.SpecJson} has {_policy.Parameters.Length}.");
        _policy.LoadParameters(point);
        if (cmd.Seed != 0 || _rng is null) _rng = new Rng(cmd.Seed == 0 ? null : (long)cmd.Seed);
        var returns = new List<double>();
        var settings = new GradientSettings((int)Math.Max(1, cmd.Episodes), (int)Math.Max(1, cmd.Horizon), cmd.Gamma, cmd.StandardizeReturns);
        var throttle = envs.Throttle();
        var grad = PolicyGradient.Reinforce(_policy, vec.Envs, _rng, settings, returns, out long steps, cmd.Seed == 0 ? null : (int)(cmd.Seed % int.MaxValue),
            done => { if (throttle.Due()) hub.SendProgress(seq, done); }); // the learner's deadline counts from the last progress
        envs.Forget();
        var result = new GradientResult
        {
            Version = cmd.Version, Steps = (ulong)steps,
            Gradient = Tensors.Of(DType.Float32, [grad.Length], MemoryMarshal.AsBytes(grad.AsSpan())),
        };
        result.Returns.AddRange(returns);
        hub.Reply(seq, new WorkerMessage { GradientResult = result });
    }
}
