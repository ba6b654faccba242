using System.Text.Json;
using ClusterEnv.Nn;
using ClusterEnv.Spaces;

namespace ClusterEnv.Policies;

/// <summary>
/// The architecture of an actor-critic policy: what a worker needs, beside the flat weights, to rebuild it.
/// Discrete action spaces get a categorical head with <see cref="ActionSize"/> logits; Box spaces a diagonal Gaussian
/// with <see cref="ActionSize"/> means and a state-independent log-std. With an <see cref="Encoder"/>, the actor and the
/// critic share a convolutional torso over image observations (CleanRL's Atari agent) and <see cref="Hidden"/> are
/// the heads' hidden layers on its features (none by default: linear heads).
/// </summary>
public sealed record PolicySpec(int ObservationSize, bool Continuous, int ActionSize, int[] Hidden, Activation Activation = Activation.Tanh)
{
    /// <summary>The shared image torso, or null for separate MLPs on vector observations.</summary>
    public EncoderSpec? Encoder { get; init; }

    /// <summary>
    /// CleanRL's Atari networks for image observations: a shared <paramref name="encoder"/> torso ("nature" or
    /// "small", <see cref="EncoderSpec"/>) with linear actor and critic heads. The observations must be a Box of
    /// (C, H, W) or (H, W) images, e.g. from FrameStackObservation over GrayscaleObservation and ResizeObservation.
    /// </summary>
    public static PolicySpec ForImages(Space observationSpace, Space actionSpace, string encoder = "nature", int[]? hidden = null)
    {
        ArgumentNullException.ThrowIfNull(observationSpace);
        var shape = observationSpace is Box b ? b.Shape : null;
        var (c, h, w) = shape switch
        {
            { Count: 3 } => (shape[0], shape[1], shape[2]),
            { Count: 2 } => (1, shape[0], shape[1]),
            _ => throw new ArgumentException($"A CNN policy needs image observations, a Box of (C, H, W) or (H, W); the space is {observationSpace}. " +
                                             "Render, grayscale, resize and stack frames first (AddRenderObservation, GrayscaleObservation, ResizeObservation, FrameStackObservation)."),
        };
        if (shape.Count == 3 && shape[2] is 3 or 4 && shape[0] > 4)
            throw new ArgumentException($"The observations {observationSpace} look like (H, W, C) images; a CNN policy reads (C, H, W). Grayscale and stack frames (FrameStackObservation gives (stack, H, W)).");
        var spec = For(observationSpace, actionSpace, hidden ?? [], Activation.ReLU);
        return spec with { Encoder = new EncoderSpec(encoder, c, h, w) };
    }

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

    /// <summary>
    /// The spec a learner builds from its options: <see cref="ForImages"/> with <paramref name="encoder"/> (its heads'
    /// hidden layers <paramref name="hidden"/>, usually none), else <see cref="For"/>'s MLPs of <paramref name="hidden"/>.
    /// </summary>
    public static PolicySpec Of(Space observationSpace, Space actionSpace, int[] hidden, string? encoder) =>
        encoder is null ? For(observationSpace, actionSpace, hidden) : ForImages(observationSpace, actionSpace, encoder, hidden);

    /// <summary>The spec as JSON (stored in checkpoints; "encoder" only when there is one).</summary>
    public string ToJson() => Encoder is { } e
        ? JsonSerializer.Serialize(new { observation_size = ObservationSize, continuous = Continuous, action_size = ActionSize, hidden = Hidden, activation = Activation.ToString(),
            encoder = new { kind = e.Kind, channels = e.Channels, height = e.Height, width = e.Width } })
        : JsonSerializer.Serialize(new { observation_size = ObservationSize, continuous = Continuous, action_size = ActionSize, hidden = Hidden, activation = Activation.ToString() });

    /// <summary>Parses <see cref="ToJson"/>.</summary>
    public static PolicySpec FromJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var r = doc.RootElement;
        var spec = new PolicySpec(r.GetProperty("observation_size").GetInt32(), r.GetProperty("continuous").GetBoolean(), r.GetProperty("action_size").GetInt32(),
            r.GetProperty("hidden").EnumerateArray().Select(e => e.GetInt32()).ToArray(), Enum.Parse<Activation>(r.GetProperty("activation").GetString()!));
        if (r.TryGetProperty("encoder", out var e))
            spec = spec with { Encoder = new EncoderSpec(e.GetProperty("kind").GetString()!, e.GetProperty("channels").GetInt32(), e.GetProperty("height").GetInt32(), e.GetProperty("width").GetInt32()) };
        return spec;
    }

    /// <summary>Structural equality (the hidden sizes by value).</summary>
    public bool Equals(PolicySpec? other) => other is not null && ObservationSize == other.ObservationSize && Continuous == other.Continuous &&
        ActionSize == other.ActionSize && Hidden.SequenceEqual(other.Hidden) && Activation == other.Activation && Equals(Encoder, other.Encoder);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(ObservationSize, Continuous, ActionSize, Hidden.Length, Activation, Encoder);
}

/// <summary>
/// A convolutional torso over (<see cref="Channels"/>, <see cref="Height"/>, <see cref="Width"/>) images whose pixels
/// are 0..255 (the network divides by 255, as CleanRL's does): <see cref="Kind"/> "nature" (the DQN Nature network,
/// 512 features) or "small" (the 2013 DQN network, 256 features; about a fifth of the work).
/// </summary>
public sealed record EncoderSpec(string Kind, int Channels, int Height, int Width)
{
    /// <summary>The kinds there are.</summary>
    public static readonly IReadOnlyList<string> Kinds = ["nature", "small"];

    /// <summary>Declares the torso in <paramref name="store"/>, refusing an unknown kind by name.</summary>
    internal ConvEncoder Build(ParameterStore store) => Kind switch
    {
        "nature" => ConvEncoder.Nature(store, "encoder", Channels, Height, Width),
        "small" => ConvEncoder.Small(store, "encoder", Channels, Height, Width),
        _ => throw new ArgumentException($"Unknown encoder '{Kind}'; use one of {string.Join(", ", Kinds)}."),
    };
}
