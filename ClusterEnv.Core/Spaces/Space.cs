using ClusterEnv.Common;

namespace ClusterEnv.Spaces;

/// <summary>
/// The set of valid observations or actions of an environment, as Gymnasium's <c>gymnasium.spaces.Space</c>.
/// </summary>
/// <remarks>
/// <para>Every space has a <see cref="Shape"/>, a <see cref="DType"/>, a seeded <see cref="Sample"/> and
/// <see cref="Contains"/>. <see cref="FlatDim"/> is Gymnasium's <c>flatdim</c> (one-hot for discrete parts);
/// <see cref="EncodedSize"/> is how many float32 / int32 slots one element occupies in the contiguous observation
/// and action buffers of this library (a <see cref="Discrete"/> value takes one slot holding the value itself).</para>
/// <para>Spaces are immutable apart from their random generator; equality is structural.</para>
/// </remarks>
public abstract class Space : IEquatable<Space>
{
    private Rng? _rng;

    /// <summary>Creates a space of the given shape and element type.</summary>
    protected Space(int[] shape, DType dtype)
    {
        Shape = shape;
        DType = dtype;
    }

    /// <summary>The shape of one element (empty for scalars such as <see cref="Discrete"/>).</summary>
    public IReadOnlyList<int> Shape { get; }

    /// <summary>The element type of values in this space.</summary>
    public DType DType { get; }

    /// <summary>Gymnasium's <c>flatdim</c>: the length of <c>flatten(space, x)</c> (Discrete is one-hot of size n).</summary>
    public abstract int FlatDim { get; }

    /// <summary>Slots one element occupies in this library's contiguous buffers (Discrete: 1; Box: product of shape).</summary>
    public abstract int EncodedSize { get; }

    /// <summary>The space's random generator; seeded lazily from OS entropy unless <see cref="Seed"/> was called.</summary>
    protected Rng Random => _rng ??= new Rng();

    /// <summary>
    /// Seeds the space's sampler so that <see cref="Sample"/> is reproducible: the generator becomes NumPy's
    /// <c>Generator(PCG64(SeedSequence(seed)))</c>, as Gymnasium's <c>Space.seed(seed)</c> makes it, so samples equal
    /// Gymnasium's for the same seed. Null seeds from OS entropy.
    /// </summary>
    public virtual void Seed(long? seed)
    {
        _rng = new Rng(seed);
    }

    /// <summary>
    /// Gymnasium's seeding of a composite space (<c>Dict.seed(int)</c>, <c>Tuple.seed(int)</c>): this space's own
    /// generator is seeded with <paramref name="seed"/>, draws <c>integers(2**31 - 1, size=n)</c> and seeds sub-space i
    /// with draw i.
    /// </summary>
    private protected void SeedComposite(long? seed, IReadOnlyList<Space> subspaces)
    {
        _rng = new Rng(seed);
        if (seed is null)
        {
            foreach (var sub in subspaces) sub.Seed(null);
            return;
        }
        Span<long> subseeds = subspaces.Count <= 64 ? stackalloc long[subspaces.Count] : new long[subspaces.Count];
        for (int i = 0; i < subseeds.Length; i++) subseeds[i] = _rng.NextLong(0, int.MaxValue - 1);
        for (int i = 0; i < subseeds.Length; i++) subspaces[i].Seed(subseeds[i]);
    }

    /// <summary>Draws a random element (boxed; typed overloads on the concrete spaces avoid boxing).</summary>
    public abstract object Sample();

    /// <summary>True when <paramref name="value"/> is an element of this space (type, shape and bounds).</summary>
    public abstract bool Contains(object? value);

    /// <inheritdoc />
    public abstract bool Equals(Space? other);

    /// <inheritdoc />
    public sealed override bool Equals(object? obj) => obj is Space s && Equals(s);

    /// <inheritdoc />
    public abstract override int GetHashCode();

    /// <summary>Gymnasium-style description, e.g. <c>Box(-1.0, 1.0, (3,), float32)</c>.</summary>
    public abstract override string ToString();

    /// <summary>The space of a batch of <paramref name="n"/> elements, following Gymnasium's <c>batch_space</c>.</summary>
    public Space Batch(int n) => SpaceBatching.BatchSpace(this, n);

    internal static string ShapeString(IReadOnlyList<int> shape) =>
        shape.Count == 1 ? $"({shape[0]},)" : "(" + string.Join(", ", shape) + ")";

    internal static int Product(IReadOnlyList<int> shape)
    {
        int p = 1;
        foreach (int d in shape) p = checked(p * d);
        return p;
    }
}
