namespace ClusterEnv.Policies;

/// <summary>
/// The observation statistics a policy acts with: x ↦ clip((x − mean) / √(var + 1e-8), −clip, clip), as Gymnasium's
/// <c>NormalizeObservation</c> and CleanRL apply them. They belong to the policy, not to the envs: a learner updates
/// them from the raw observations it receives and ships a snapshot with every weight push, so a worker always acts
/// with the statistics its weights were trained with.
/// </summary>
public sealed class ObservationNormalizer
{
    /// <summary>Statistics for observations of <paramref name="mean"/>.Length floats.</summary>
    public ObservationNormalizer(ReadOnlySpan<float> mean, ReadOnlySpan<float> var, float clip)
    {
        if (mean.Length != var.Length) throw new ArgumentException($"Mean has {mean.Length} elements and variance {var.Length}; they must match.", nameof(var));
        if (!(clip > 0) || !float.IsFinite(clip)) throw new ArgumentOutOfRangeException(nameof(clip), clip, "The observation clip must be a finite number > 0.");
        for (int i = 0; i < var.Length; i++)
            if (!float.IsFinite(mean[i]) || !(var[i] >= 0) || !float.IsFinite(var[i]))
                throw new ArgumentException($"Observation statistic {i} is mean {mean[i]}, variance {var[i]}; both must be finite and the variance >= 0.", nameof(var));
        Mean = mean.ToArray();
        Var = var.ToArray();
        Scale = Var.Select(v => (float)(1 / Math.Sqrt(v + 1e-8))).ToArray();
        Clip = clip;
    }

    /// <summary>A snapshot of running statistics.</summary>
    public static ObservationNormalizer From(Wrappers.RunningMeanStd rms, double clip)
    {
        ArgumentNullException.ThrowIfNull(rms);
        var mean = new float[rms.Mean.Length];
        var var = new float[rms.Var.Length];
        for (int i = 0; i < mean.Length; i++)
        {
            mean[i] = (float)rms.Mean[i];
            var[i] = (float)rms.Var[i];
        }
        return new ObservationNormalizer(mean, var, (float)clip);
    }

    /// <summary>Per-element mean.</summary>
    public float[] Mean { get; }

    /// <summary>Per-element variance.</summary>
    public float[] Var { get; }

    /// <summary>1 / √(var + 1e-8), per element.</summary>
    public float[] Scale { get; }

    /// <summary>Normalised values are clipped to [−Clip, Clip].</summary>
    public float Clip { get; }

    /// <summary>Normalises a batch of observations (any number of rows of <see cref="Mean"/>.Length floats) into <paramref name="destination"/>.</summary>
    public void Normalize(ReadOnlySpan<float> raw, Span<float> destination)
    {
        int m = Mean.Length;
        if (raw.Length % m != 0 || destination.Length < raw.Length)
            throw new ArgumentException($"Expected whole rows of {m} floats and room for them; got {raw.Length} in and {destination.Length} out.");
        for (int j = 0; j < raw.Length; j++)
        {
            int c = j % m;
            destination[j] = Math.Clamp((raw[j] - Mean[c]) * Scale[c], -Clip, Clip);
        }
    }
}
