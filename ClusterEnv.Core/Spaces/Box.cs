using System.Globalization;

namespace ClusterEnv.Spaces;

/// <summary>
/// A (possibly unbounded) box in R^n, as Gymnasium's <c>Box(low, high, shape, dtype)</c>: every element has its own
/// lower and upper bound, ±∞ allowed. Float32 by default; integer dtypes hold whole numbers.
/// </summary>
public sealed class Box : Space
{
    private readonly double[] _low64;
    private readonly double[] _high64;
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
        : this(ToDoubles(low, nameof(low)), ToDoubles(high, nameof(high)), shape, dtype) { }

    /// <summary>
    /// A box with bounds given at float64 precision, the same for every element of <paramref name="shape"/>; pass
    /// <see cref="DType.Float64"/> for Gymnasium's <c>Box(low, high, shape, dtype=np.float64)</c>.
    /// </summary>
    public Box(double low, double high, int[] shape, DType dtype = DType.Float32)
        : this(Fill(low, shape), Fill(high, shape), shape, dtype) { }

    /// <summary>
    /// A box with per-element float64 bounds (row-major over <paramref name="shape"/>). As in Gymnasium, bounds are
    /// cast to the dtype: a float32 box keeps them rounded to float32.
    /// </summary>
    public Box(double[] low, double[] high, int[] shape, DType dtype = DType.Float32)
        : base(ValidateShape(shape), dtype)
    {
        ArgumentNullException.ThrowIfNull(low);
        ArgumentNullException.ThrowIfNull(high);
        if (dtype is not (DType.Float32 or DType.Float64 or DType.Int64 or DType.Int8 or DType.UInt8))
            throw new ArgumentException($"Box dtype {dtype} is not supported; use Float32, Float64, Int64, Int8 or UInt8.", nameof(dtype));
        int size = Product(shape);
        if (low.Length != size || high.Length != size)
            throw new ArgumentException(
                $"Box bounds have {low.Length} (low) and {high.Length} (high) elements but shape {ShapeString(shape)} needs {size}; " +
                "pass one bound per element, or scalar bounds with a shape.");
        _low64 = new double[size];
        _high64 = new double[size];
        for (int i = 0; i < size; i++)
        {
            double lo = dtype == DType.Float32 ? (float)low[i] : low[i], hi = dtype == DType.Float32 ? (float)high[i] : high[i];
            if (double.IsNaN(lo) || double.IsNaN(hi))
                throw new ArgumentException($"Box bound at index {i} is NaN (low={lo}, high={hi}); bounds must be numbers or ±infinity.");
            if (lo > hi)
                throw new ArgumentException($"Box low[{i}]={lo} is greater than high[{i}]={hi}; every low must be <= its high.");
            if (IsIntegerDType(dtype))
            {
                if ((!double.IsInfinity(lo) && lo != Math.Floor(lo)) || (!double.IsInfinity(hi) && hi != Math.Floor(hi)))
                    throw new ArgumentException($"Box of dtype {dtype} has a non-integer bound at index {i} (low={lo}, high={hi}); use whole numbers or a float dtype.");
            }
            _low64[i] = lo;
            _high64[i] = hi;
        }
        _low = Array.ConvertAll(_low64, x => (float)x);
        _high = Array.ConvertAll(_high64, x => (float)x);
        Size = size;
    }

    /// <summary>Number of elements (product of the shape).</summary>
    public int Size { get; }

    /// <summary>Per-element lower bounds as float32 (what float32 buffers hold; exact except for float64 boxes).</summary>
    public ReadOnlySpan<float> Low => _low;

    /// <summary>Per-element upper bounds as float32.</summary>
    public ReadOnlySpan<float> High => _high;

    /// <summary>Per-element lower bounds at float64 precision: exact for every dtype (Gymnasium's <c>low</c>).</summary>
    public ReadOnlySpan<double> Low64 => _low64;

    /// <summary>Per-element upper bounds at float64 precision.</summary>
    public ReadOnlySpan<double> High64 => _high64;

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
                if (double.IsInfinity(_low64[i]) || double.IsInfinity(_high64[i])) return false;
            return true;
        }
    }

    /// <summary>
    /// Fills <paramref name="destination"/> with a random element, as Gymnasium samples a Box: uniform where both
    /// bounds are finite, normal where neither is, shifted exponential where one is; integer dtypes are floored.
    /// A float64 box's sample is rounded to float32 here; <see cref="Sample(Span{double})"/> keeps it whole.
    /// </summary>
    public void Sample(Span<float> destination)
    {
        if (destination.Length != Size)
            throw new ArgumentException($"Destination has {destination.Length} elements; this Box needs {Size}.", nameof(destination));
        SampleInto(destination, default);
    }

    /// <summary>Fills <paramref name="destination"/> with a random element at float64 precision (Gymnasium's values for a float64 box).</summary>
    public void Sample(Span<double> destination)
    {
        if (destination.Length != Size)
            throw new ArgumentException($"Destination has {destination.Length} elements; this Box needs {Size}.", nameof(destination));
        SampleInto(default, destination);
    }

    // Writes into exactly one of the two destinations.
    private void SampleInto(Span<float> f32, Span<double> f64)
    {
        // Gymnasium's order of draws: normal for the unbounded coordinates, exponential for the half-bounded ones
        // (below, then above), uniform for the bounded ones; integer dtypes sample floor(x) over [low, high + 1).
        var rng = Random;
        bool integer = IsIntegerDType(DType), single = DType == DType.Float32;
        for (int pass = 0; pass < 4; pass++)
        {
            for (int i = 0; i < Size; i++)
            {
                double lo = _low64[i], hi = _high64[i];
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
                if (integer) v = Math.Floor(v);
                else if (single) v = (float)v;
                // Rounding (to float32, or by the floor) can step just outside a finite bound; keep samples inside the space.
                v = Math.Clamp(v, _low64[i], _high64[i]);
                if (f64.IsEmpty) f32[i] = Math.Clamp((float)v, _low[i], _high[i]);
                else f64[i] = v;
            }
        }
    }

    /// <inheritdoc />
    public override object Sample()
    {
        if (DType == DType.Float64)
        {
            var d = new double[Size];
            Sample(d);
            return d;
        }
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
            if (IsIntegerDType(DType) && x != MathF.Floor(x)) return false;
        }
        return true;
    }

    /// <summary>True when <paramref name="value"/> has this box's size and every element lies within its float64 bounds.</summary>
    public bool Contains(ReadOnlySpan<double> value)
    {
        if (value.Length != Size) return false;
        for (int i = 0; i < Size; i++)
        {
            double x = value[i];
            if (!(x >= _low64[i] && x <= _high64[i])) return false;
            if (IsIntegerDType(DType) && x != Math.Floor(x)) return false;
        }
        return true;
    }

    /// <inheritdoc />
    public override bool Contains(object? value) => value switch
    {
        float[] f => Contains(f.AsSpan()),
        double[] d => Contains(d.AsSpan()),
        long[] l => Contains(Array.ConvertAll(l, x => (double)x).AsSpan()),
        int[] n => Contains(Array.ConvertAll(n, x => (double)x).AsSpan()),
        _ => false,
    };

    /// <inheritdoc />
    public override bool Equals(Space? other) =>
        other is Box b && b.DType == DType && b.Shape.SequenceEqual(Shape) && b.Low64.SequenceEqual(Low64) && b.High64.SequenceEqual(High64);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(DType, Size, _low64.Length > 0 ? _low64[0] : 0, _high64.Length > 0 ? _high64[^1] : 0);

    /// <inheritdoc />
    public override string ToString()
    {
        string Bound(double[] b) => b.All(x => x.Equals(b[0])) && b.Length > 0 ? Fmt(b[0]) : "[" + string.Join(", ", b.Select(Fmt)) + "]";
        return $"Box({Bound(_low64)}, {Bound(_high64)}, {ShapeString(Shape)}, {DType.ToString().ToLowerInvariant()})";
    }

    private string Fmt(double x) =>
        double.IsPositiveInfinity(x) ? "inf" : double.IsNegativeInfinity(x) ? "-inf"
        : DType == DType.Float64 ? x.ToString("R", CultureInfo.InvariantCulture) : ((float)x).ToString("R", CultureInfo.InvariantCulture);

    private static bool IsIntegerDType(DType d) => d is DType.Int64 or DType.Int8 or DType.UInt8;

    private static double[] ToDoubles(float[] values, string name)
    {
        ArgumentNullException.ThrowIfNull(values, name);
        return Array.ConvertAll(values, x => (double)x);
    }

    private static T[] Fill<T>(T value, int[] shape)
    {
        var a = new T[Product(ValidateShape(shape))];
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
