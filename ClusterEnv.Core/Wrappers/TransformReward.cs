using ClusterEnv.Envs;

namespace ClusterEnv.Wrappers;

/// <summary>Applies a function to every reward, as Gymnasium's <c>TransformReward</c>.</summary>
public sealed class TransformReward : EnvWrapper
{
    private readonly Func<double, double> _transform;

    /// <summary>Wraps <paramref name="env"/>.</summary>
    public TransformReward(IEnv env, Func<double, double> transform) : base(env) =>
        _transform = transform ?? throw new ArgumentNullException(nameof(transform));

    /// <summary>Clips every reward to [<paramref name="low"/>, <paramref name="high"/>].</summary>
    public static TransformReward Clip(IEnv env, double low, double high) => new(env, r => Math.Clamp(r, low, high));

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        var r = Env.Step(action, observation);
        return r with { Reward = _transform(r.Reward) };
    }
}
