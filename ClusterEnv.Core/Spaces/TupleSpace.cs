namespace ClusterEnv.Spaces;

/// <summary>A fixed-length product of spaces, as Gymnasium's <c>Tuple(spaces)</c>; elements are <c>object[]</c>.</summary>
public sealed class TupleSpace : Space
{
    private readonly Space[] _spaces;

    /// <summary>Creates a tuple of the given spaces (at least one).</summary>
    public TupleSpace(params Space[] spaces) : base([], DType.Float32)
    {
        ArgumentNullException.ThrowIfNull(spaces);
        if (spaces.Length == 0) throw new ArgumentException("TupleSpace needs at least one sub-space.", nameof(spaces));
        for (int i = 0; i < spaces.Length; i++)
            if (spaces[i] is null) throw new ArgumentNullException(nameof(spaces), $"TupleSpace sub-space {i} is null.");
        _spaces = (Space[])spaces.Clone();
    }

    /// <summary>The sub-spaces, in order.</summary>
    public IReadOnlyList<Space> Spaces => _spaces;

    /// <summary>The i-th sub-space.</summary>
    public Space this[int index] => _spaces[index];

    /// <summary>Number of sub-spaces.</summary>
    public int Count => _spaces.Length;

    /// <inheritdoc />
    public override int FlatDim => _spaces.Sum(s => s.FlatDim);

    /// <inheritdoc />
    public override int EncodedSize => _spaces.Sum(s => s.EncodedSize);

    /// <summary>Seeds each sub-space with a seed drawn from <paramref name="seed"/>, as Gymnasium's <c>Tuple.seed(int)</c>.</summary>
    public override void Seed(long? seed) => SeedComposite(seed, _spaces);

    /// <inheritdoc />
    public override object Sample() => _spaces.Select(s => s.Sample()).ToArray();

    /// <inheritdoc />
    public override bool Contains(object? value)
    {
        if (value is not object?[] items || items.Length != _spaces.Length) return false;
        for (int i = 0; i < items.Length; i++)
            if (!_spaces[i].Contains(items[i])) return false;
        return true;
    }

    /// <inheritdoc />
    public override bool Equals(Space? other) => other is TupleSpace t && t._spaces.SequenceEqual(_spaces);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(nameof(TupleSpace), _spaces.Length, _spaces[0]);

    /// <inheritdoc />
    public override string ToString() => "Tuple(" + string.Join(", ", _spaces.Select(s => s.ToString())) + ")";
}
