namespace ClusterEnv.Spaces;

/// <summary>Gymnasium's <c>batch_space</c>: the space of <c>n</c> stacked elements of a space.</summary>
public static class SpaceBatching
{
    /// <summary>
    /// Box → Box with a leading n axis; Discrete → MultiDiscrete (nvec all n, start all start); MultiDiscrete →
    /// integer Box (low = start, high = start + nvec − 1); MultiBinary → Box(0, 1, int8); Tuple and Dict → batched
    /// element by element.
    /// </summary>
    public static Space BatchSpace(Space space, int n)
    {
        ArgumentNullException.ThrowIfNull(space);
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "A batch needs n >= 1 elements.");
        switch (space)
        {
            case Box b:
                return new Box(Tile(b.Low, n), Tile(b.High, n), [n, .. b.Shape], b.DType);
            case Discrete d:
                return new MultiDiscrete(Enumerable.Repeat(d.N, n).ToArray(), Enumerable.Repeat(d.Start, n).ToArray());
            case MultiDiscrete m:
            {
                var low = new float[m.Nvec.Length];
                var high = new float[m.Nvec.Length];
                for (int i = 0; i < low.Length; i++)
                {
                    low[i] = m.Start[i];
                    high[i] = (float)((long)m.Start[i] + m.Nvec[i] - 1);
                }
                return new Box(Tile(low, n), Tile(high, n), [n, m.Nvec.Length], DType.Int64);
            }
            case MultiBinary mb:
                return new Box(0f, 1f, [n, .. mb.Shape], DType.Int8);
            case TupleSpace t:
                return new TupleSpace(t.Spaces.Select(s => BatchSpace(s, n)).ToArray());
            case DictSpace ds:
                return new DictSpace(ds.Items.Select(p => (p.Key, BatchSpace(p.Value, n))).ToArray());
            default:
                return new TupleSpace(Enumerable.Repeat(space, n).ToArray());
        }
    }

    private static float[] Tile(ReadOnlySpan<float> values, int n)
    {
        var r = new float[values.Length * n];
        for (int i = 0; i < n; i++) values.CopyTo(r.AsSpan(i * values.Length));
        return r;
    }
}
