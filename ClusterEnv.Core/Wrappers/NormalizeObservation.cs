using ClusterEnv.Envs;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Normalises observations to roughly zero mean and unit variance with running statistics, as Gymnasium's
/// <c>NormalizeObservation</c>: <c>(obs − mean) / sqrt(var + ε)</c>, statistics updated on every reset and step
/// unless <see cref="UpdateRunningMean"/> is off (freeze it for evaluation).
/// </summary>
public sealed class NormalizeObservation : EnvWrapper
{
    private readonly double _epsilon;

    /// <summary>Wraps <paramref name="env"/>.</summary>
    public NormalizeObservation(IEnv env, double epsilon = 1e-8) : base(env)
    {
        _epsilon = epsilon;
        ObsRms = new RunningMeanStd(env.ObservationSpace.EncodedSize);
    }

    /// <summary>The running statistics.</summary>
    public RunningMeanStd ObsRms { get; }

    /// <summary>Whether resets and steps update the statistics.</summary>
    public bool UpdateRunningMean { get; set; } = true;

    /// <inheritdoc />
    public override EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null)
    {
        var info = Env.Reset(observation, seed, options);
        Normalize(observation);
        return info;
    }

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        var r = Env.Step(action, observation);
        Normalize(observation);
        return r;
    }

    private void Normalize(Span<float> obs)
    {
        if (UpdateRunningMean) ObsRms.Update(obs);
        var mean = ObsRms.Mean;
        var var = ObsRms.Var;
        for (int i = 0; i < obs.Length; i++) obs[i] = (float)((obs[i] - mean[i]) / Math.Sqrt(var[i] + _epsilon));
    }
}
