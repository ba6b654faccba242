using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Wrappers;

/// <summary>Maps the env's observation (input) to a new observation (output), e.g. a clip or a feature map.</summary>
public delegate void ObservationTransform(ReadOnlySpan<float> input, Span<float> output);

/// <summary>
/// Applies a function to every observation, as Gymnasium's <c>TransformObservation(env, func, observation_space)</c>.
/// Give the new observation space when the function changes its size or bounds.
/// </summary>
public sealed class TransformObservation : EnvWrapper
{
    private readonly ObservationTransform _transform;
    private readonly Space _observationSpace;
    private readonly float[] _inner;

    /// <summary>Wraps <paramref name="env"/>; <paramref name="observationSpace"/> defaults to the env's.</summary>
    public TransformObservation(IEnv env, ObservationTransform transform, Space? observationSpace = null) : base(env)
    {
        _transform = transform ?? throw new ArgumentNullException(nameof(transform));
        _observationSpace = observationSpace ?? env.ObservationSpace;
        _inner = new float[env.ObservationSpace.EncodedSize];
    }

    /// <summary>Clips every observation element to [<paramref name="low"/>, <paramref name="high"/>] (CleanRL clips normalised observations to ±10).</summary>
    public static TransformObservation Clip(IEnv env, float low, float high) =>
        new(env, (input, output) =>
        {
            for (int i = 0; i < input.Length; i++) output[i] = Math.Clamp(input[i], low, high);
        });

    /// <inheritdoc />
    public override Space ObservationSpace => _observationSpace;

    /// <inheritdoc />
    public override EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null)
    {
        var info = Env.Reset(_inner, seed, options);
        _transform(_inner, observation);
        return info;
    }

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        var r = Env.Step(action, _inner);
        _transform(_inner, observation);
        return r;
    }
}
