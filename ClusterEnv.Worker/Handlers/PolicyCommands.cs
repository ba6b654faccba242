using System.Runtime.InteropServices;
using ClusterEnv.Policies;
using ClusterEnv.Transport.Protos;
using Microsoft.Extensions.Logging;

namespace ClusterEnv.Worker.Handlers;

/// <summary>
/// The policy this worker acts with and its version. Weights are applied between commands (while a stream runs,
/// between its rollouts), so a rollout never changes policy half-way. A bad push — wrong spec, wrong size, NaN or
/// infinite weights or statistics, a version not newer than the active one — is refused, named in the
/// acknowledgement, and the old policy stays.
/// </summary>
internal sealed class PolicyCommands(HostedEnvs envs, ILogger logger, string workerId)
{
    /// <summary>The policy pushed last (null: none yet).</summary>
    public ActorCritic? Policy { get; private set; }

    /// <summary>Its version (0: none).</summary>
    public ulong Version { get; private set; }

    public ActorCritic Require() =>
        Policy ?? throw new InvalidOperationException("No policy has been pushed to this worker; push one (ClusterVecEnv.Policies.Push) before collecting rollouts.");

    public PolicyAck Apply(PolicyUpdate update)
    {
        var vec = envs.Vec;
        string? error = null;
        try
        {
            var spec = PolicySpec.FromJson(update.SpecJson);
            var expected = PolicySpec.Of(vec.SingleObservationSpace, vec.SingleActionSpace, spec.Hidden, spec.Encoder?.Kind) with { Activation = spec.Activation };
            if (!spec.Equals(expected))
                error = $"The policy spec {update.SpecJson} does not fit this worker's envs ({expected.ToJson()}).";
            else
            {
                var next = Policy is not null && Policy.Spec.Equals(spec) ? Policy : new ActorCritic(spec);
                if (update.Weights is null || update.Weights.Dtype != DType.Float32 || update.Weights.Data.Length != next.Store.Count * 4)
                    error = $"The push carries {(update.Weights?.Data.Length ?? 0) / 4} float32 weights; the spec needs {next.Store.Count}.";
                else if (update.Version <= Version)
                    error = $"Version {update.Version} is not newer than the active version {Version}; versions must increase.";
                else error = Load(next, spec, update);
            }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException or NotSupportedException)
        {
            error = $"The policy spec could not be read: {e.Message}";
        }
        if (error is not null) WorkerLog.PolicyRefused(logger, workerId, update.Version, Version, error);
        return new PolicyAck { ActiveVersion = Version, Error = error ?? "" };
    }

    // Everything is checked before anything changes; returns why the push was refused, or null.
    private string? Load(ActorCritic next, PolicySpec spec, PolicyUpdate update)
    {
        try
        {
            var normalizer = update.ObsMean is { } mean
                ? new ObservationNormalizer(MemoryMarshal.Cast<byte, float>(mean.Data.Span), MemoryMarshal.Cast<byte, float>((update.ObsVar ?? new Tensor()).Data.Span), update.ObsClip)
                : null;
            if (normalizer is not null && normalizer.Mean.Length != spec.ObservationSize)
                throw new ArgumentException($"The push carries {normalizer.Mean.Length} observation statistics; the envs' observations have {spec.ObservationSize}.");
            next.LoadParameters(MemoryMarshal.Cast<byte, float>(update.Weights.Data.Span)); // refuses NaN/∞ and leaves the policy as it was
            next.Normalizer = normalizer;
            Policy = next;
            Version = update.Version;
            WorkerLog.PolicyApplied(logger, workerId, Version);
            return null;
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }
    }
}
