namespace ClusterEnv.Spaces;

/// <summary>
/// A vector of independent discrete values, element i in {start[i], ..., start[i] + nvec[i] - 1}, as Gymnasium's
/// <c>MultiDiscrete(nvec, start)</c>. The batched form of <see cref="Discrete"/>.
/// </summary>
public sealed class MultiDiscrete : Space
{
    private readonly int[] _nvec;
    private readonly int[] _start;

    /// <summary>Creates <c>MultiDiscrete(nvec, start)</c>; <paramref name="start"/> defaults to zeros.</summary>
    public MultiDiscrete(int[] nvec, int[]? start = null) : base([nvec?.Length ?? 0], DType.Int64)
    {
        ArgumentNullException.ThrowIfNull(nvec);
        if (nvec.Length == 0) throw new ArgumentException("MultiDiscrete needs at least one component; pass nvec with one entry per component.", nameof(nvec));
        start ??= new int[nvec.Length];
        if (start.Length != nvec.Length)
            throw new ArgumentException($"MultiDiscrete start has {start.Length} entries but nvec has {nvec.Length}; give one start per component.", nameof(start));
        for (int i = 0; i < nvec.Length; i++)
        {
            if (nvec[i] <= 0)
                throw new ArgumentOutOfRangeException(nameof(nvec), nvec[i], $"MultiDiscrete nvec[{i}]={nvec[i]}; every component needs at least 1 value.");
            if ((long)start[i] + nvec[i] - 1 > int.MaxValue)
                throw new ArgumentOutOfRangeException(nameof(start), start[i], $"MultiDiscrete component {i} (nvec={nvec[i]}, start={start[i]}) exceeds the int32 range.");
        }
        _nvec = (int[])nvec.Clone();
        _start = (int[])start.Clone();
    }

    /// <summary>Number of values per component.</summary>
    public ReadOnlySpan<int> Nvec => _nvec;

    /// <summary>Smallest value per component.</summary>
    public ReadOnlySpan<int> Start => _start;

    /// <inheritdoc />
    public override int FlatDim => _nvec.Sum();

    /// <inheritdoc />
    public override int EncodedSize => _nvec.Length;

    /// <summary>Fills <paramref name="destination"/> with a random element.</summary>
    public void Sample(Span<int> destination)
    {
        if (destination.Length != _nvec.Length)
            throw new ArgumentException($"Destination has {destination.Length} elements; this MultiDiscrete has {_nvec.Length} components.", nameof(destination));
        for (int i = 0; i < _nvec.Length; i++) destination[i] = _start[i] + (int)(Random.NextDouble() * _nvec[i]); // Gymnasium: (random(shape) · nvec).astype(int) + start
    }

    /// <inheritdoc />
    public override object Sample()
    {
        var v = new int[_nvec.Length];
        Sample(v);
        return v;
    }

    /// <summary>True when every component is within its range.</summary>
    public bool Contains(ReadOnlySpan<int> value)
    {
        if (value.Length != _nvec.Length) return false;
        for (int i = 0; i < value.Length; i++)
            if (value[i] < _start[i] || value[i] >= (long)_start[i] + _nvec[i]) return false;
        return true;
    }

    /// <inheritdoc />
    public override bool Contains(object? value) => value switch
    {
        int[] a => Contains(a),
        long[] l => l.All(x => x is >= int.MinValue and <= int.MaxValue) && Contains(Array.ConvertAll(l, x => (int)x)),
        _ => false,
    };

    /// <inheritdoc />
    public override bool Equals(Space? other) => other is MultiDiscrete m && m.Nvec.SequenceEqual(Nvec) && m.Start.SequenceEqual(Start);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(nameof(MultiDiscrete), _nvec.Length, _nvec[0], _start[0]);

    /// <inheritdoc />
    public override string ToString() =>
        _start.All(s => s == 0) ? $"MultiDiscrete([{string.Join(", ", _nvec)}])" : $"MultiDiscrete([{string.Join(", ", _nvec)}], start=[{string.Join(", ", _start)}])";
}
