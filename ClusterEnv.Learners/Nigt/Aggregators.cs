namespace ClusterEnv.Learners.Nigt;

/// <summary>
/// Decides when the gradients that workers send make one optimizer step, and what that step's gradient is. Every
/// gradient is tagged with the version of the point it was computed at; <see cref="Add"/> returns the aggregated
/// gradient when a step is due, after which the caller steps, moves to the next version and calls <see cref="Advance"/>.
/// </summary>
public abstract class GradientAggregator(int workers, int size)
{
    /// <summary>Workers that send gradients (ids 0 … Workers − 1).</summary>
    public int Workers { get; } = workers;

    /// <summary>Gradients received.</summary>
    public long Received { get; private set; }

    /// <summary>Gradients computed at a point that was no longer current when they arrived, and so not used.</summary>
    public long DiscardedStale { get; private set; }

    /// <summary>The version of the current point.</summary>
    public long Version { get; private set; }

    /// <summary>The aggregated gradient of a due step (valid until the next <see cref="Advance"/>).</summary>
    protected float[] Result { get; } = new float[size];

    /// <summary>Name for tables ("sync", "rennala", "malenia").</summary>
    public abstract string Name { get; }

    /// <summary>Takes worker <paramref name="worker"/>'s gradient computed at version <paramref name="version"/>; returns the step's gradient when one is due, else null.</summary>
    public float[]? Add(int worker, long version, ReadOnlySpan<float> gradient)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(worker);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(worker, Workers);
        if (gradient.Length != Result.Length) throw new ArgumentException($"A gradient of {gradient.Length} values; the model has {Result.Length}.", nameof(gradient));
        Received++;
        if (version != Version)
        {
            DiscardedStale++; // computed at an old point: its information is about a model that no longer exists
            return null;
        }
        return Accept(worker, gradient) ? Result : null;
    }

    /// <summary>Moves to the next point: everything gathered for the old one is dropped.</summary>
    public void Advance()
    {
        Version++;
        Clear();
    }

    /// <summary>Takes a fresh gradient; true when the step is due (then <see cref="Result"/> holds its gradient).</summary>
    protected abstract bool Accept(int worker, ReadOnlySpan<float> gradient);

    /// <summary>Drops what was gathered for the current point.</summary>
    protected abstract void Clear();
}

/// <summary>
/// Synchronous averaging, the baseline: one gradient from every worker at the current point, averaged; the step
/// waits for the slowest worker. A second gradient from a worker that already sent one is not used.
/// </summary>
public sealed class SynchronousAggregator(int workers, int size) : GradientAggregator(workers, size)
{
    private readonly bool[] _have = new bool[workers];
    private readonly float[] _sum = new float[size];
    private int _count;

    /// <inheritdoc />
    public override string Name => "sync";

    /// <inheritdoc />
    protected override bool Accept(int worker, ReadOnlySpan<float> gradient)
    {
        if (_have[worker]) return false;
        _have[worker] = true;
        for (int i = 0; i < _sum.Length; i++) _sum[i] += gradient[i];
        if (++_count < Workers) return false;
        for (int i = 0; i < _sum.Length; i++) Result[i] = _sum[i] / Workers;
        return true;
    }

    /// <inheritdoc />
    protected override void Clear()
    {
        Array.Clear(_have);
        Array.Clear(_sum);
        _count = 0;
    }
}

/// <summary>
/// Rennala NIGT's rule (homogeneous workers): every worker keeps computing gradients at the current point; the first
/// <c>B</c> that arrive for it, from whichever workers, are averaged into the step's gradient — a fast worker may
/// contribute several, a slow one none, and nobody waits for stragglers. Gradients computed at an earlier point are
/// discarded.
/// </summary>
public sealed class RennalaAggregator : GradientAggregator
{
    private readonly float[] _sum;
    private int _count;

    /// <summary>Steps after <paramref name="batch"/> fresh gradients (B in the paper).</summary>
    public RennalaAggregator(int workers, int size, int batch) : base(workers, size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        Batch = batch;
        _sum = new float[size];
    }

    /// <summary>B: fresh gradients per step.</summary>
    public int Batch { get; }

    /// <inheritdoc />
    public override string Name => "rennala";

    /// <inheritdoc />
    protected override bool Accept(int worker, ReadOnlySpan<float> gradient)
    {
        for (int i = 0; i < _sum.Length; i++) _sum[i] += gradient[i];
        if (++_count < Batch) return false;
        for (int i = 0; i < _sum.Length; i++) Result[i] = _sum[i] / _count;
        return true;
    }

    /// <inheritdoc />
    protected override void Clear()
    {
        Array.Clear(_sum);
        _count = 0;
    }
}

/// <summary>
/// Malenia NIGT's rule (heterogeneous environments, one per worker): each worker's fresh gradients at the current
/// point are averaged on their own (counts b_i); the step is due once every worker has sent at least one and
/// (1/n·Σ 1/b_i)⁻¹ ≥ S/n — the harmonic mean of the counts reaches S/n, so fast workers make up for the noise of
/// slow ones without outweighing them — and its gradient is (1/n)·Σ_i mean_i: every worker's environment weighs the
/// same, however many gradients it sent.
/// </summary>
public sealed class MaleniaAggregator : GradientAggregator
{
    private readonly float[][] _sums;
    private readonly int[] _counts;

    /// <summary>Steps when the harmonic mean of the per-worker counts reaches <paramref name="s"/>/n (S in the paper).</summary>
    public MaleniaAggregator(int workers, int size, int s) : base(workers, size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(s, 1);
        S = s;
        _sums = Enumerable.Range(0, workers).Select(_ => new float[size]).ToArray();
        _counts = new int[workers];
    }

    /// <summary>S: the aggregation condition's target.</summary>
    public int S { get; }

    /// <inheritdoc />
    public override string Name => "malenia";

    /// <summary>Whether counts <paramref name="b"/> satisfy Malenia's condition for <paramref name="s"/>: every b_i ≥ 1 and (1/n·Σ 1/b_i)⁻¹ ≥ S/n.</summary>
    public static bool ConditionMet(ReadOnlySpan<int> b, int s)
    {
        double inv = 0;
        foreach (int c in b)
        {
            if (c < 1) return false;
            inv += 1.0 / c;
        }
        double harmonic = b.Length / inv;
        return harmonic >= (double)s / b.Length;
    }

    /// <inheritdoc />
    protected override bool Accept(int worker, ReadOnlySpan<float> gradient)
    {
        var sum = _sums[worker];
        for (int i = 0; i < sum.Length; i++) sum[i] += gradient[i];
        _counts[worker]++;
        if (!ConditionMet(_counts, S)) return false;
        Array.Clear(Result);
        for (int w = 0; w < Workers; w++)
        {
            float scale = 1f / (_counts[w] * Workers);
            var s = _sums[w];
            for (int i = 0; i < s.Length; i++) Result[i] += s[i] * scale;
        }
        return true;
    }

    /// <inheritdoc />
    protected override void Clear()
    {
        foreach (var s in _sums) Array.Clear(s);
        Array.Clear(_counts);
    }
}
