namespace ClusterEnv.Spaces;

/// <summary>
/// A finite set of integers {start, ..., start + n - 1}, as Gymnasium's <c>Discrete(n, start=0)</c>.
/// In buffers a value takes one int32 slot holding the value itself (not one-hot).
/// </summary>
public sealed class Discrete : Space
{
    /// <summary>Creates <c>Discrete(n, start)</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">n is zero or negative.</exception>
    public Discrete(int n, int start = 0) : base([], DType.Int64)
    {
        if (n <= 0)
            throw new ArgumentOutOfRangeException(nameof(n), n, $"Discrete needs n >= 1 values, got n={n}; pass the number of distinct actions or observations.");
        if ((long)start + n - 1 > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(start), start, $"Discrete(n={n}, start={start}) exceeds the int32 range; lower start or n.");
        N = n;
        Start = start;
    }

    /// <summary>Number of values.</summary>
    public int N { get; }

    /// <summary>Smallest value.</summary>
    public int Start { get; }

    /// <inheritdoc />
    public override int FlatDim => N;

    /// <inheritdoc />
    public override int EncodedSize => 1;

    /// <summary>A uniformly random value.</summary>
    public int SampleValue() => Start + Random.NextInt(N);

    /// <inheritdoc />
    public override object Sample() => SampleValue();

    /// <summary>True when <paramref name="value"/> is in {start, ..., start + n - 1}.</summary>
    public bool Contains(long value) => value >= Start && value < (long)Start + N;

    /// <inheritdoc />
    public override bool Contains(object? value) => value switch
    {
        int i => Contains(i),
        long l => Contains(l),
        _ => false,
    };

    /// <inheritdoc />
    public override bool Equals(Space? other) => other is Discrete d && d.N == N && d.Start == Start;

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(nameof(Discrete), N, Start);

    /// <inheritdoc />
    public override string ToString() => Start == 0 ? $"Discrete({N})" : $"Discrete({N}, start={Start})";
}
