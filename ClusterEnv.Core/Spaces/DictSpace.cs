namespace ClusterEnv.Spaces;

/// <summary>
/// A named product of spaces, as Gymnasium's <c>Dict</c>. Built from a dictionary, the keys are sorted (ordinal,
/// like Python's sort of str), as Gymnasium does for a plain <c>dict</c>; built from a sequence of pairs, insertion
/// order is kept. The key order fixes the buffer layout. Elements are <c>IReadOnlyDictionary&lt;string, object&gt;</c>.
/// </summary>
public sealed class DictSpace : Space
{
    private readonly KeyValuePair<string, Space>[] _items;

    /// <summary>Creates a Dict space with keys sorted ordinally.</summary>
    public DictSpace(IReadOnlyDictionary<string, Space> spaces)
        : this(SortedItems(spaces)) { }

    /// <summary>Creates a Dict space that keeps the given key order.</summary>
    public DictSpace(params (string Key, Space Space)[] orderedSpaces)
        : this(orderedSpaces?.Select(p => new KeyValuePair<string, Space>(p.Key, p.Space)).ToArray()!) { }

    private DictSpace(KeyValuePair<string, Space>[] items) : base([], DType.Float32)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Length == 0) throw new ArgumentException("DictSpace needs at least one key.", nameof(items));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, space) in items)
        {
            if (key is null) throw new ArgumentException("DictSpace keys must not be null.");
            if (space is null) throw new ArgumentException($"DictSpace key '{key}' maps to a null space.");
            if (!seen.Add(key)) throw new ArgumentException($"DictSpace key '{key}' appears twice; keys must be unique.");
        }
        _items = items;
    }

    /// <summary>The keys in layout order.</summary>
    public IEnumerable<string> Keys => _items.Select(p => p.Key);

    /// <summary>The (key, space) pairs in layout order.</summary>
    public IReadOnlyList<KeyValuePair<string, Space>> Items => _items;

    /// <summary>The sub-space for <paramref name="key"/>.</summary>
    public Space this[string key] =>
        _items.FirstOrDefault(p => p.Key == key).Value
        ?? throw new KeyNotFoundException($"DictSpace has no key '{key}'; keys are: {string.Join(", ", Keys)}.");

    /// <inheritdoc />
    public override int FlatDim => _items.Sum(p => p.Value.FlatDim);

    /// <inheritdoc />
    public override int EncodedSize => _items.Sum(p => p.Value.EncodedSize);

    /// <summary>Seeds each sub-space (in key order) with a seed drawn from <paramref name="seed"/>, as Gymnasium's <c>Dict.seed(int)</c>.</summary>
    public override void Seed(long? seed) => SeedComposite(seed, _items.Select(p => p.Value).ToArray());

    /// <inheritdoc />
    public override object Sample()
    {
        var d = new Dictionary<string, object>(_items.Length);
        foreach (var (k, s) in _items) d[k] = s.Sample();
        return d;
    }

    /// <inheritdoc />
    public override bool Contains(object? value)
    {
        if (value is not IReadOnlyDictionary<string, object> d || d.Count != _items.Length) return false;
        foreach (var (k, s) in _items)
            if (!d.TryGetValue(k, out var v) || !s.Contains(v)) return false;
        return true;
    }

    /// <inheritdoc />
    public override bool Equals(Space? other) =>
        other is DictSpace o && o._items.Length == _items.Length &&
        o._items.Zip(_items).All(p => p.First.Key == p.Second.Key && p.First.Value.Equals(p.Second.Value));

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(nameof(DictSpace), _items.Length, _items[0].Key);

    /// <inheritdoc />
    public override string ToString() => "Dict(" + string.Join(", ", _items.Select(p => $"'{p.Key}': {p.Value}")) + ")";

    private static KeyValuePair<string, Space>[] SortedItems(IReadOnlyDictionary<string, Space> spaces)
    {
        ArgumentNullException.ThrowIfNull(spaces);
        return spaces.OrderBy(p => p.Key, StringComparer.Ordinal).ToArray();
    }
}
