using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Gymnasium's <c>FlattenObservation</c>: observations become <c>flatten(space, obs)</c> — Dict values in key order,
/// Tuple items in order, Discrete and MultiDiscrete parts one-hot — in the Box <c>flatten_space(space)</c>.
/// <see cref="SpaceLayout.Unflatten"/> is its inverse.
/// </summary>
public sealed class FlattenObservation : EnvWrapper
{
    private readonly SpaceLayout _layout;
    private readonly float[] _inner;

    /// <summary>Wraps <paramref name="env"/>.</summary>
    public FlattenObservation(IEnv env) : base(env)
    {
        _layout = SpaceLayout.Of(env.ObservationSpace);
        _inner = new float[_layout.EncodedSize];
    }

    /// <summary>The layout of the wrapped env's (structured) observation space.</summary>
    public SpaceLayout Layout => _layout;

    /// <inheritdoc />
    public override Space ObservationSpace => _layout.FlatSpace;

    /// <inheritdoc />
    public override EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null)
    {
        var info = Env.Reset(_inner, seed, options);
        _layout.Flatten(_inner, observation);
        return info;
    }

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        var r = Env.Step(action, _inner);
        _layout.Flatten(_inner, observation);
        return r;
    }
}
