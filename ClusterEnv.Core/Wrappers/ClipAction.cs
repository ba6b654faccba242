using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Clips continuous actions to the wrapped env's Box bounds, as Gymnasium's <c>ClipAction</c>; the wrapper's own
/// action space becomes the unbounded Box of the same shape. NaN still fails the env's check.
/// </summary>
public sealed class ClipAction : EnvWrapper
{
    private readonly Box _inner;
    private readonly Box _actionSpace;
    private readonly float[] _clipped;

    /// <summary>Wraps an env whose action space is a float32 <see cref="Box"/>.</summary>
    public ClipAction(IEnv env) : base(env)
    {
        _inner = env.ActionSpace as Box is { DType: DType.Float32 } b
            ? b
            : throw new ArgumentException($"ClipAction needs a float32 Box action space, but the env has {env.ActionSpace}.", nameof(env));
        _actionSpace = new Box(float.NegativeInfinity, float.PositiveInfinity, _inner.Shape.ToArray());
        _clipped = new float[_inner.Size];
    }

    /// <inheritdoc />
    public override Space ActionSpace => _actionSpace;

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        var a = action.AsContinuous(_inner.Size);
        var low = _inner.Low;
        var high = _inner.High;
        for (int i = 0; i < a.Length; i++)
            _clipped[i] = Math.Clamp(a[i], low[i], high[i]); // NaN passes through and fails the env's check
        return Env.Step(new EnvAction((ReadOnlySpan<float>)_clipped), observation);
    }
}
