using System.Text.Json;
using ClusterEnv.Nn;
using ClusterEnv.Spaces;

namespace ClusterEnv.Policies;

/// <summary>
/// The architecture of an actor-critic policy: what a worker needs, beside the flat weights, to rebuild it.
/// Discrete action spaces get a categorical head with <see cref="ActionSize"/> logits; Box spaces a diagonal Gaussian
/// with <see cref="ActionSize"/> means and a state-independent log-std.
/// </summary>
public sealed record PolicySpec(int ObservationSize, bool Continuous, int ActionSize, int[] Hidden, Activation Activation = Activation.Tanh)
{
    /// <summary>CleanRL's networks for the given spaces: separate 64-64 tanh actor and critic.</summary>
    public static PolicySpec For(Space observationSpace, Space actionSpace, int[]? hidden = null, Activation activation = Activation.Tanh)
    {
        ArgumentNullException.ThrowIfNull(observationSpace);
        ArgumentNullException.ThrowIfNull(actionSpace);
        hidden ??= [64, 64];
        return actionSpace switch
        {
            Discrete d => new PolicySpec(observationSpace.EncodedSize, false, d.N, hidden, activation),
            Box { DType: DType.Float32 } b => new PolicySpec(observationSpace.EncodedSize, true, b.Size, hidden, activation),
            _ => throw new NotSupportedException($"Action space {actionSpace} is not supported by the actor-critic policy; use Discrete or a float32 Box."),
        };
    }

    /// <summary>The spec as JSON (stored in checkpoints).</summary>
    public string ToJson() => JsonSerializer.Serialize(new { observation_size = ObservationSize, continuous = Continuous, action_size = ActionSize, hidden = Hidden, activation = Activation.ToString() });

    /// <summary>Parses <see cref="ToJson"/>.</summary>
    public static PolicySpec FromJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var r = doc.RootElement;
        return new PolicySpec(r.GetProperty("observation_size").GetInt32(), r.GetProperty("continuous").GetBoolean(), r.GetProperty("action_size").GetInt32(),
            r.GetProperty("hidden").EnumerateArray().Select(e => e.GetInt32()).ToArray(), Enum.Parse<Activation>(r.GetProperty("activation").GetString()!));
    }

    /// <summary>Structural equality (the hidden sizes by value).</summary>
    public bool Equals(PolicySpec? other) => other is not null && ObservationSize == other.ObservationSize && Continuous == other.Continuous &&
        ActionSize == other.ActionSize && Hidden.SequenceEqual(other.Hidden) && Activation == other.Activation;

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(ObservationSize, Continuous, ActionSize, Hidden.Length, Activation);
}
