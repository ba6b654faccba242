using ClusterEnv.Envs;

namespace ClusterEnv.Vector;

/// <summary>
/// The batched info of a vector env's reset or step: Gymnasium's dict of arrays with <c>_key</c> masks, as typed
/// arrays owned by the vector env and overwritten by its next call.
/// </summary>
public sealed class VectorInfo
{
    private readonly IReadOnlyDictionary<string, object>?[] _extras;
    private bool _anyExtra;

    /// <summary>Creates an empty info for <paramref name="numEnvs"/> sub-envs with observations of <paramref name="observationSize"/> floats.</summary>
    public VectorInfo(int numEnvs, int observationSize)
    {
        NumEnvs = numEnvs;
        ObservationSize = observationSize;
        Episode = new EpisodeBatch(numEnvs);
        FinalEpisode = new EpisodeBatch(numEnvs);
        HasFinalObservation = new bool[numEnvs];
        FinalObservations = new float[numEnvs * observationSize];
        _extras = new IReadOnlyDictionary<string, object>?[numEnvs];
    }

    /// <summary>Number of sub-envs.</summary>
    public int NumEnvs { get; }

    /// <summary>Floats per observation.</summary>
    public int ObservationSize { get; }

    /// <summary>Episode statistics in the sub-envs' current info (<c>info["episode"]</c>).</summary>
    public EpisodeBatch Episode { get; }

    /// <summary><see cref="AutoresetMode.SameStep"/>: which sub-envs ended and were reset in this call (<c>info["_final_obs"]</c>).</summary>
    public bool[] HasFinalObservation { get; }

    /// <summary><see cref="AutoresetMode.SameStep"/>: the last observation of each ended episode, row i for sub-env i (<c>info["final_obs"]</c>).</summary>
    public float[] FinalObservations { get; }

    /// <summary><see cref="AutoresetMode.SameStep"/>: episode statistics in the final step's info (<c>info["final_info"]["episode"]</c>).</summary>
    public EpisodeBatch FinalEpisode { get; }

    /// <summary>Env-specific extra info of sub-env i (null when it reported none).</summary>
    public IReadOnlyDictionary<string, object>? Extra(int i) => _extras[i];

    /// <summary>Whether any sub-env reported extra info in this call.</summary>
    public bool HasExtra => _anyExtra;

    /// <summary>The extra info keys reported by any sub-env in this call, sorted.</summary>
    public IReadOnlyList<string> ExtraKeys =>
        _anyExtra ? _extras.Where(e => e is not null).SelectMany(e => e!.Keys).Distinct().Order(StringComparer.Ordinal).ToArray() : [];

    /// <summary>
    /// Gymnasium 1.x's stacked form: <c>info[key]</c> as one value per sub-env (null where absent) and
    /// <c>info["_" + key]</c> as the mask of sub-envs that reported it. False when no sub-env reported <paramref name="key"/>.
    /// </summary>
    public bool TryGetStacked(string key, out object?[] values, out bool[] mask)
    {
        values = new object?[NumEnvs];
        mask = new bool[NumEnvs];
        bool any = false;
        for (int i = 0; i < NumEnvs; i++)
            if (_extras[i] is { } e && e.TryGetValue(key, out var v))
            {
                values[i] = v;
                mask[i] = any = true;
            }
        return any;
    }

    /// <summary>Adds one extra entry of sub-env i (what a cluster vector env reads off the wire).</summary>
    internal void SetExtra(int i, string key, object value)
    {
        var d = _extras[i] as Dictionary<string, object> ?? (_extras[i] is { } old ? new Dictionary<string, object>(old) : []);
        d[key] = value;
        _extras[i] = d;
        _anyExtra = true;
    }

    /// <summary>The final observation of sub-env i (meaningful where <see cref="HasFinalObservation"/>[i]).</summary>
    public ReadOnlySpan<float> FinalObservation(int i) => FinalObservations.AsSpan(i * ObservationSize, ObservationSize);

    /// <summary>
    /// The statistics of an episode of sub-env i that finished in this call, whatever the autoreset mode
    /// (NextStep reports them in <see cref="Episode"/>, SameStep in <see cref="FinalEpisode"/>).
    /// </summary>
    public bool TryGetEpisode(int i, out EpisodeStatistics statistics)
    {
        var b = Episode.Mask[i] ? Episode : FinalEpisode.Mask[i] ? FinalEpisode : null;
        statistics = b is null ? default : new EpisodeStatistics(b.Return[i], b.Length[i], b.Seconds[i]);
        return b is not null;
    }

    /// <summary>Records sub-env i's info (reset or step).</summary>
    public void Set(int i, in EnvInfo info)
    {
        if (info.Episode is { } e) Episode.Set(i, e);
        if (info.Extra is not null)
        {
            _extras[i] = info.Extra;
            _anyExtra = true;
        }
    }

    /// <summary>Records a SameStep autoreset of sub-env i: its final observation and final info.</summary>
    public void SetFinal(int i, ReadOnlySpan<float> finalObservation, in EnvInfo finalInfo)
    {
        HasFinalObservation[i] = true;
        finalObservation.CopyTo(FinalObservations.AsSpan(i * ObservationSize, ObservationSize));
        if (finalInfo.Episode is { } e) FinalEpisode.Set(i, e);
    }

    /// <summary>Clears the rows of sub-envs offset..offset+count-1 (first-ready stepping: the sub-envs about to be stepped).</summary>
    internal void ClearRows(int offset, int count)
    {
        Episode.ClearRows(offset, count);
        FinalEpisode.ClearRows(offset, count);
        Array.Clear(HasFinalObservation, offset, count);
        if (_anyExtra) Array.Clear(_extras, offset, count);
    }

    /// <summary>Clears everything before the next call fills it.</summary>
    public void Clear()
    {
        Episode.Clear();
        FinalEpisode.Clear();
        Array.Clear(HasFinalObservation);
        if (_anyExtra)
        {
            Array.Clear(_extras);
            _anyExtra = false;
        }
    }
}
