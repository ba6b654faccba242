using System.Globalization;

namespace ClusterEnv.Spaces;

/// <summary>
/// A (possibly unbounded) box in R^n, as Gymnasium's <c>Box(low, high, shape, dtype)</c>: every element has its own
/// lower and upper bound, ±∞ allowed. Float32 by default; integer dtypes hold whole numbers.
/// </summary>
public sealed class Box : Space
{
    private readonly float[] _low;
    private readonly float[] _high;

    /// <summary>A box whose bounds are the same scalar for every element of <paramref name="shape"/>.</summary>
    public Box(float low, float high, int[] shape, DType dtype = DType.Float32)
        : this(Fill(low, shape), Fill(high, shape), shape, dtype) { }

    /// <summary>A box with per-element bounds; the shape is <c>(low.Length,)</c>.</summary>
    public Box(float[] low, float[] high, DType dtype = DType.Float32)
        : this(low, high, [low?.Length ?? 0], dtype) { }

    /// <summary>A box with per-element bounds (row-major over <paramref name="shape"/>).</summary>
    public Box(float[] low, float[] high, int[] shape, DType dtype = DType.Float32)
        : base(ValidateShape(shape), dtype)
    {
        ArgumentNullException.ThrowIfNull(low);
        ArgumentNullException.ThrowIfNull(high);
        int size = Product(shape);
        if (low.Length != size || high.Length != size)
            throw new ArgumentException(
                $"Box bounds have {low.Length} (low) and {high.Length} (high) elements but shape {ShapeString(shape)} needs {size}; " +
                "pass one bound per element, or scalar bounds with a shape.");
        for (int i = 0; i < size; i++)
        {
            if (float.IsNaN(low[i]) || float.IsNaN(high[i]))
                throw new ArgumentException($"Box bound at index {i} is NaN (low={low[i]}, high={high[i]}); bounds must be numbers or ±infinity.");
            if (low[i] > high[i])
                throw new ArgumentException($"Box low[{i}]={low[i]} is greater than high[{i}]={high[i]}; every low must be <= its high.");
            if (dtype != DType.Float32)
            {
                if ((!float.IsInfinity(low[i]) && low[i] != MathF.Floor(low[i])) || (!float.IsInfinity(high[i]) && high[i] != MathF.Floor(high[i])))
                    throw new ArgumentException($"Box of dtype {dtype} has a non-integer bound at index {i} (low={low[i]}, high={high[i]}); use whole numbers or dtype Float32.");
            }
        }
        _low = (float[])low.Clone();
        _high = (float[])high.Clone();
        Size = size;
    }

    /// <summary>Number of elements (product of the shape).</summary>
    public int Size { get; }

    /// <summary>Per-element lower bounds (a copy-free read-only view).</summary>
    public ReadOnlySpan<float> Low => _low;

    /// <summary>Per-element upper bounds.</summary>
    public ReadOnlySpan<float> High => _high;

    /// <inheritdoc />
    public override int FlatDim => Size;

    /// <inheritdoc />
    public override int EncodedSize => Size;

    /// <summary>True when every element has a finite lower and upper bound (Gymnasium's <c>is_bounded("both")</c>).</summary>
    public bool IsBounded
    {
        get
        {
            for (int i = 0; i < Size; i++)
                if (float.IsInfinity(_low[i]) || float.IsInfinity(_high[i])) return false;
            return true;
        }
    }

    /// <summary>
    /// Fills <paramref name="destination"/> with a random element, as Gymnasium samples a Box: uniform where both
    /// bounds are finite, normal where neither is, shifted exponential where one is; integer dtypes are floored.
    /// </summary>
    public void Sample(Span<float> destination)
    {
        if (destination.Length != Size)
            throw new ArgumentException($"Destination has {destination.Length} elements; this Box needs {Size}.", nameof(destination));
        // Gymnasium's order of draws: normal for the unbounded coordinates, exponential for the half-bounded ones
        // (below, then above), uniform for the bounded ones; integer dtypes sample floor(x) over [low, high + 1).
        var rng = Random;
        bool integer = DType != DType.Float32;
        for (int pass = 0; pass < 4; pass++)
        {
            for (int i = 0; i < Size; i++)
            {
                double lo = _low[i], hi = _high[i];
                bool below = !double.IsNegativeInfinity(lo), above = !double.IsPositiveInfinity(hi);
                int kind = (below, above) switch { (false, false) => 0, (true, false) => 1, (false, true) => 2, (true, true) => 3 };
                if (kind != pass) continue;
                if (integer && above) hi += 1;
                double v = kind switch
                {
                    0 => rng.NextGaussian(),
                    1 => lo + rng.NextExponential(),
                    2 => hi - rng.NextExponential(),
                    _ => rng.Uniform(lo, hi),
                };
                float f = integer ? (float)Math.Floor(v) : (float)v;
                // Rounding to float32 can step just outside a finite bound; keep samples inside the space.
                destination[i] = Math.Clamp(f, _low[i], _high[i]);
            }
        }
    }

    /// <inheritdoc />
    public override object Sample()
    {
        var v = new float[Size];
        Sample(v);
        return v;
    }

    /// <summary>True when <paramref name="value"/> has this box's size and every element lies within its bounds.</summary>
    public bool Contains(ReadOnlySpan<float> value)
    {
        if (value.Length != Size) return false;
        for (int i = 0; i < Size; i++)
        {
            float x = value[i];
            if (!(x >= _low[i] && x <= _high[i])) return false; // NaN fails both comparisons
            if (DType != DType.Float32 && x != MathF.Floor(x)) return false;
        }
        return true;
    }

    /// <inheritdoc />
    public override bool Contains(object? value) => value switch
    {
        float[] f => Contains(f),
        long[] l => Contains(Array.ConvertAll(l, x => (float)x)),
        int[] n => Contains(Array.ConvertAll(n, x => (float)x)),
        _ => false,
    };

    /// <inheritdoc />
    public override bool Equals(Space? other) =>
        other is Box b && b.DType == DType && b.Shape.SequenceEqual(Shape) && b.Low.SequenceEqual(Low) && b.High.SequenceEqual(High);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(DType, Size, _low.Length > 0 ? _low[0] : 0, _high.Length > 0 ? _high[^1] : 0);

    /// <inheritdoc />
    public override string ToString()
    {
        string Bound(float[] b) => b.All(x => x.Equals(b[0])) && b.Length > 0 ? Fmt(b[0]) : "[" + string.Join(", ", b.Select(Fmt)) + "]";
        return $"Box({Bound(_low)}, {Bound(_high)}, {ShapeString(Shape)}, {DType.ToString().ToLowerInvariant()})";
    }

    private static string Fmt(float x) => float.IsPositiveInfinity(x) ? "inf" : float.IsNegativeInfinity(x) ? "-inf" : x.ToString("R", CultureInfo.InvariantCulture);

    private static float[] Fill(float value, int[] shape)
    {
        var a = new float[Product(ValidateShape(shape))];
        Array.Fill(a, value);
        return a;
    }

    private static int[] ValidateShape(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        foreach (int d in shape)
            if (d <= 0) throw new ArgumentException($"Box shape {ShapeString(shape)} has a non-positive dimension {d}; every dimension must be >= 1.", nameof(shape));
        return (int[])shape.Clone();
    }
}
