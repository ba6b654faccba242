using System.Runtime.CompilerServices;

namespace ClusterEnv.Spaces;

/// <summary>One leaf of a (possibly nested) space and where it lies in the encoded and the flattened forms.</summary>
/// <param name="Path">Dict keys and Tuple indices joined by '/', e.g. "position" or "sensors/0"; "" for a space that is a leaf itself.</param>
/// <param name="Space">The leaf space (Box, Discrete, MultiDiscrete or MultiBinary); its <see cref="Space.Shape"/> is the leaf's shape.</param>
/// <param name="Offset">Index of the leaf's first slot in the encoded buffer (what vector envs and workers carry).</param>
/// <param name="Size">Its encoded slots (a Discrete value takes 1).</param>
/// <param name="FlatOffset">Index of its first element in Gymnasium's <c>flatten</c> form.</param>
/// <param name="FlatSize">Its elements there (a Discrete(n) is one-hot of n).</param>
public sealed record SpaceLeaf(string Path, Space Space, int Offset, int Size, int FlatOffset, int FlatSize);

/// <summary>
/// Where every part of a structured space lies in the contiguous buffers this library carries: observations of Dict,
/// Tuple and shaped Box spaces travel flat (Dict values in key order, Tuple items in order, arrays row-major, a
/// Discrete value as itself), and the layout gives each sub-env's row back its structure — a slice per leaf with its
/// shape (<see cref="Slice"/>), the structured value (<see cref="Unpack(ReadOnlySpan{float})"/>, as <see cref="Space.Sample()"/> returns
/// it) — and converts to and from Gymnasium's <c>flatten</c> form (<see cref="Flatten"/>, <see cref="Unflatten"/>).
/// </summary>
public sealed class SpaceLayout
{
    private static readonly ConditionalWeakTable<Space, SpaceLayout> Cache = new();
    private readonly Dictionary<string, SpaceLeaf> _byPath;

    private SpaceLayout(Space space)
    {
        Space = space;
        var leaves = new List<SpaceLeaf>();
        int offset = 0, flat = 0;
        Walk(space, "", leaves, ref offset, ref flat);
        Leaves = leaves;
        _byPath = leaves.ToDictionary(l => l.Path, StringComparer.Ordinal);
        FlatSpace = FlattenSpace(space);
    }

    /// <summary>The layout of <paramref name="space"/> (cached per space object).</summary>
    public static SpaceLayout Of(Space space)
    {
        ArgumentNullException.ThrowIfNull(space);
        return Cache.GetValue(space, s => new SpaceLayout(s));
    }

    /// <summary>The space laid out.</summary>
    public Space Space { get; }

    /// <summary>The leaves in buffer order.</summary>
    public IReadOnlyList<SpaceLeaf> Leaves { get; }

    /// <summary>Slots of one element in the encoded buffer (<see cref="Space.EncodedSize"/>).</summary>
    public int EncodedSize => Space.EncodedSize;

    /// <summary>Gymnasium's <c>flatdim</c>.</summary>
    public int FlatDim => Space.FlatDim;

    /// <summary>Gymnasium's <c>flatten_space</c>: a Box of <see cref="FlatDim"/> elements (one-hot parts in [0, 1]); float32 when any leaf is.</summary>
    public Box FlatSpace { get; }

    /// <summary>The leaf at <paramref name="path"/>; the error lists the paths there are.</summary>
    public SpaceLeaf this[string path] => _byPath.TryGetValue(path, out var leaf) ? leaf
        : throw new KeyNotFoundException($"No leaf '{path}' in {Space}; its leaves are {string.Join(", ", Leaves.Select(l => $"'{l.Path}'"))}.");

    /// <summary>The slots of leaf <paramref name="path"/> in one element's encoded row (row-major in the leaf's shape).</summary>
    public ReadOnlySpan<float> Slice(ReadOnlySpan<float> row, string path)
    {
        CheckRow(row.Length);
        var leaf = this[path];
        return row.Slice(leaf.Offset, leaf.Size);
    }

    /// <summary>Row <paramref name="index"/> of a batch of encoded elements (a vector env's observations).</summary>
    public ReadOnlySpan<float> Row(ReadOnlySpan<float> batch, int index)
    {
        if (batch.Length % EncodedSize != 0)
            throw new ArgumentException($"A batch of {Space} elements has a multiple of {EncodedSize} slots, not {batch.Length}.", nameof(batch));
        return batch.Slice(index * EncodedSize, EncodedSize);
    }

    /// <summary>
    /// The structured value of an encoded row, as <see cref="Space.Sample()"/> returns one: Dict → Dictionary&lt;string, object&gt;,
    /// Tuple → object[], Box → float[] (row-major), Discrete → int, MultiDiscrete and MultiBinary → int[].
    /// </summary>
    public object Unpack(ReadOnlySpan<float> row)
    {
        CheckRow(row.Length);
        int offset = 0;
        return Unpack(Space, row, ref offset);
    }

    /// <summary>Writes a structured value (as <see cref="Unpack(ReadOnlySpan{float})"/> gives) into an encoded row.</summary>
    public void Pack(object value, Span<float> row)
    {
        CheckRow(row.Length);
        if (!Space.Contains(value)) throw new ArgumentException($"The value is not an element of {Space}.", nameof(value));
        int offset = 0;
        Pack(Space, value, row, ref offset);
    }

    /// <summary>Gymnasium's <c>flatten(space, x)</c> of an encoded row: Discrete and MultiDiscrete parts one-hot, the rest as they are.</summary>
    public void Flatten(ReadOnlySpan<float> row, Span<float> flat)
    {
        CheckRow(row.Length);
        if (flat.Length != FlatDim) throw new ArgumentException($"The flat form of {Space} has {FlatDim} elements, not {flat.Length}.", nameof(flat));
        foreach (var leaf in Leaves)
        {
            var src = row.Slice(leaf.Offset, leaf.Size);
            var dst = flat.Slice(leaf.FlatOffset, leaf.FlatSize);
            switch (leaf.Space)
            {
                case Discrete d:
                    dst.Clear();
                    dst[OneHotIndex(src[0] - d.Start, d.N, leaf.Path)] = 1f;
                    break;
                case MultiDiscrete m:
                    dst.Clear();
                    for (int i = 0, at = 0; i < m.Nvec.Length; at += m.Nvec[i], i++)
                        dst[at + OneHotIndex(src[i] - m.Start[i], m.Nvec[i], leaf.Path)] = 1f;
                    break;
                default:
                    src.CopyTo(dst);
                    break;
            }
        }
    }

    /// <summary>Gymnasium's <c>unflatten</c>: the encoded row of a flat form (one-hot parts read by their largest element).</summary>
    public void Unflatten(ReadOnlySpan<float> flat, Span<float> row)
    {
        CheckRow(row.Length);
        if (flat.Length != FlatDim) throw new ArgumentException($"The flat form of {Space} has {FlatDim} elements, not {flat.Length}.", nameof(flat));
        foreach (var leaf in Leaves)
        {
            var src = flat.Slice(leaf.FlatOffset, leaf.FlatSize);
            var dst = row.Slice(leaf.Offset, leaf.Size);
            switch (leaf.Space)
            {
                case Discrete d:
                    dst[0] = d.Start + ArgMax(src);
                    break;
                case MultiDiscrete m:
                    for (int i = 0, at = 0; i < m.Nvec.Length; at += m.Nvec[i], i++) dst[i] = m.Start[i] + ArgMax(src.Slice(at, m.Nvec[i]));
                    break;
                default:
                    src.CopyTo(dst);
                    break;
            }
        }
    }

    private void CheckRow(int length)
    {
        if (length != EncodedSize) throw new ArgumentException($"An encoded element of {Space} has {EncodedSize} slots, not {length}.");
    }

    private static int OneHotIndex(float value, int n, string path)
    {
        int i = (int)value;
        if (i != value || i < 0 || i >= n) throw new ArgumentException($"Leaf '{path}' holds {value}, which is not one of its {n} values.");
        return i;
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    private static void Walk(Space space, string path, List<SpaceLeaf> leaves, ref int offset, ref int flat)
    {
        switch (space)
        {
            case DictSpace d:
                foreach (var (key, sub) in d.Items) Walk(sub, Join(path, key), leaves, ref offset, ref flat);
                break;
            case TupleSpace t:
                for (int i = 0; i < t.Count; i++) Walk(t[i], Join(path, i.ToString(System.Globalization.CultureInfo.InvariantCulture)), leaves, ref offset, ref flat);
                break;
            default:
                leaves.Add(new SpaceLeaf(path, space, offset, space.EncodedSize, flat, space.FlatDim));
                offset += space.EncodedSize;
                flat += space.FlatDim;
                break;
        }
    }

    private static string Join(string path, string part) => path.Length == 0 ? part : path + "/" + part;

    private Box FlattenSpace(Space space)
    {
        var low = new float[space.FlatDim];
        var high = new float[space.FlatDim];
        bool anyFloat = false;
        foreach (var leaf in Leaves)
        {
            if (leaf.Space is Box b)
            {
                b.Low.CopyTo(low.AsSpan(leaf.FlatOffset));
                b.High.CopyTo(high.AsSpan(leaf.FlatOffset));
                anyFloat |= b.DType == DType.Float32;
            }
            else
            {
                high.AsSpan(leaf.FlatOffset, leaf.FlatSize).Fill(1f); // one-hot and binary parts lie in [0, 1]
            }
        }
        return new Box(low, high, anyFloat ? DType.Float32 : DType.Int64);
    }

    private static object Unpack(Space space, ReadOnlySpan<float> row, ref int offset)
    {
        switch (space)
        {
            case DictSpace d:
            {
                var r = new Dictionary<string, object>(d.Items.Count);
                foreach (var (key, sub) in d.Items) r[key] = Unpack(sub, row, ref offset);
                return r;
            }
            case TupleSpace t:
            {
                var r = new object[t.Count];
                for (int i = 0; i < t.Count; i++) r[i] = Unpack(t[i], row, ref offset);
                return r;
            }
            case Box:
            {
                var r = row.Slice(offset, space.EncodedSize).ToArray();
                offset += space.EncodedSize;
                return r;
            }
            case Discrete:
                return (int)row[offset++];
            default:
            {
                var src = row.Slice(offset, space.EncodedSize);
                var r = new int[src.Length];
                for (int i = 0; i < r.Length; i++) r[i] = (int)src[i];
                offset += space.EncodedSize;
                return r;
            }
        }
    }

    private static void Pack(Space space, object value, Span<float> row, ref int offset)
    {
        switch (space)
        {
            case DictSpace d:
                var dict = (IReadOnlyDictionary<string, object>)value;
                foreach (var (key, sub) in d.Items) Pack(sub, dict[key], row, ref offset);
                break;
            case TupleSpace t:
                var items = (object[])value;
                for (int i = 0; i < t.Count; i++) Pack(t[i], items[i], row, ref offset);
                break;
            case Discrete:
                row[offset++] = Convert.ToSingle(value, System.Globalization.CultureInfo.InvariantCulture);
                break;
            default:
                var dst = row.Slice(offset, space.EncodedSize);
                switch (value)
                {
                    case float[] f: f.CopyTo(dst); break;
                    case int[] n: for (int i = 0; i < n.Length; i++) dst[i] = n[i]; break;
                    case long[] l: for (int i = 0; i < l.Length; i++) dst[i] = l[i]; break;
                    default: throw new ArgumentException($"A {space} value is float[], int[] or long[], not {value.GetType().Name}.", nameof(value));
                }
                offset += space.EncodedSize;
                break;
        }
    }
}
