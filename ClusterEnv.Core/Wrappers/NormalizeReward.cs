using ClusterEnv.Envs;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Scales rewards so that the discounted return has roughly unit variance, as Gymnasium's <c>NormalizeReward</c>:
/// keeps <c>G = G·γ·(1 − terminated) + r</c>, tracks its running variance and returns <c>r / sqrt(var + ε)</c>
/// (the mean is not subtracted).
/// </summary>
public sealed class NormalizeReward : EnvWrapper
{
    private readonly double _gamma;
    private readonly double _epsilon;
    private double _discountedReward;

    /// <summary>Wraps <paramref name="env"/> with discount <paramref name="gamma"/>.</summary>
    public NormalizeReward(IEnv env, double gamma = 0.99, double epsilon = 1e-8) : base(env)
    {
        if (gamma is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "gamma must be in [0, 1].");
        _gamma = gamma;
        _epsilon = epsilon;
    }

    /// <summary>Running statistics of the discounted return.</summary>
    public RunningMeanStd ReturnRms { get; } = new(1);

    /// <summary>Whether steps update the statistics.</summary>
    public bool UpdateRunningMean { get; set; } = true;

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        var r = Env.Step(action, observation);
        _discountedReward = _discountedReward * _gamma * (r.Terminated ? 0 : 1) + r.Reward;
        if (UpdateRunningMean) ReturnRms.Update(_discountedReward);
        return r with { Reward = r.Reward / Math.Sqrt(ReturnRms.Var[0] + _epsilon) };
    }
}
