namespace ClusterEnv.Spaces;

/// <summary>An n-shape binary array, every element 0 or 1, as Gymnasium's <c>MultiBinary(n)</c>.</summary>
public sealed class MultiBinary : Space
{
    /// <summary>Creates <c>MultiBinary(n)</c> with shape <c>(n,)</c>.</summary>
    public MultiBinary(int n) : this([n]) { }

    /// <summary>Creates <c>MultiBinary(shape)</c>.</summary>
    public MultiBinary(int[] shape) : base(Validate(shape), DType.Int8)
    {
        Size = Product(shape);
    }

    /// <summary>Number of elements.</summary>
    public int Size { get; }

    /// <inheritdoc />
    public override int FlatDim => Size;

    /// <inheritdoc />
    public override int EncodedSize => Size;

    /// <summary>Fills <paramref name="destination"/> with independent fair coin flips.</summary>
    public void Sample(Span<int> destination)
    {
        if (destination.Length != Size)
            throw new ArgumentException($"Destination has {destination.Length} elements; this MultiBinary has {Size}.", nameof(destination));
        Random.NextBytes(0, 1, destination); // Gymnasium: integers(0, 2, size=n, dtype=int8)
    }

    /// <inheritdoc />
    public override object Sample()
    {
        var v = new int[Size];
        Sample(v);
        return v;
    }

    /// <summary>True when the value has this space's size and holds only 0 and 1.</summary>
    public bool Contains(ReadOnlySpan<int> value)
    {
        if (value.Length != Size) return false;
        foreach (int x in value) if (x is not (0 or 1)) return false;
        return true;
    }

    /// <inheritdoc />
    public override bool Contains(object? value) => value switch
    {
        int[] a => Contains(a),
        sbyte[] b => b.Length == Size && b.All(x => x is 0 or 1),
        byte[] b => b.Length == Size && b.All(x => x is 0 or 1),
        _ => false,
    };

    /// <inheritdoc />
    public override bool Equals(Space? other) => other is MultiBinary m && m.Shape.SequenceEqual(Shape);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(nameof(MultiBinary), Size);

    /// <inheritdoc />
    public override string ToString() => Shape.Count == 1 ? $"MultiBinary({Shape[0]})" : $"MultiBinary({ShapeString(Shape)})";

    private static int[] Validate(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length == 0) throw new ArgumentException("MultiBinary needs a shape with at least one dimension.", nameof(shape));
        foreach (int d in shape)
            if (d <= 0) throw new ArgumentOutOfRangeException(nameof(shape), d, $"MultiBinary shape {ShapeString(shape)} has a dimension {d}; every dimension must be >= 1.");
        return (int[])shape.Clone();
    }
}
