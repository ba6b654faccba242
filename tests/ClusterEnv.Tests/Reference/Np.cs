namespace ClusterEnv.Tests.Reference;

/// <summary>
/// A NumPy 2 scalar for reference computations: a value with its dtype, following NEP 50 promotion. Python floats
/// and ints are "weak": combined with an np.float32 they are cast to float32 and the operation runs in float32;
/// np.float32 with np.float64 gives float64.
/// </summary>
internal readonly record struct Np(double V, Np.Kind K)
{
    public enum Kind { Py, F32, F64 }

    public static Np Py(double v) => new(v, Kind.Py);
    public static Np F32(double v) => new((float)v, Kind.F32);
    public static Np F64(double v) => new(v, Kind.F64);

    private static Kind Promote(Kind a, Kind b) =>
        a == b ? a : a == Kind.F64 || b == Kind.F64 ? Kind.F64 : Kind.F32; // Py with F32 → F32 (weak)

    private static Np Op(Np a, Np b, Func<double, double, double> f64, Func<float, float, float> f32)
    {
        var k = Promote(a.K, b.K);
        return k == Kind.F32 ? new Np(f32((float)a.V, (float)b.V), k) : new Np(f64(a.V, b.V), k);
    }

    private static bool Cmp(Np a, Np b, Func<double, double, bool> f64, Func<float, float, bool> f32) =>
        Promote(a.K, b.K) == Kind.F32 ? f32((float)a.V, (float)b.V) : f64(a.V, b.V);

    public static Np operator +(Np a, Np b) => Op(a, b, (x, y) => x + y, (x, y) => x + y);
    public static Np operator -(Np a, Np b) => Op(a, b, (x, y) => x - y, (x, y) => x - y);
    public static Np operator *(Np a, Np b) => Op(a, b, (x, y) => x * y, (x, y) => x * y);
    public static Np operator /(Np a, Np b) => Op(a, b, (x, y) => x / y, (x, y) => x / y);
    public static bool operator >(Np a, Np b) => Cmp(a, b, (x, y) => x > y, (x, y) => x > y);
    public static bool operator <(Np a, Np b) => Cmp(a, b, (x, y) => x < y, (x, y) => x < y);
    public static bool operator >=(Np a, Np b) => Cmp(a, b, (x, y) => x >= y, (x, y) => x >= y);
    public static bool operator <=(Np a, Np b) => Cmp(a, b, (x, y) => x <= y, (x, y) => x <= y);
    public bool Eq(Np b) => Cmp(this, b, (x, y) => x == y, (x, y) => x == y);

    /// <summary>x**2 on a NumPy scalar: C pow (powf for float32), keeping the dtype.</summary>
    public Np Sq() => K == Kind.F32 ? new Np(MathF.Pow((float)V, 2), K) : new Np(Math.Pow(V, 2), K);

    /// <summary>Python's built-in max(a, b): keeps a unless b is strictly greater.</summary>
    public static Np PyMax(Np a, Np b) => b > a ? b : a;

    /// <summary>Python's built-in min(a, b): keeps a unless b is strictly smaller.</summary>
    public static Np PyMin(Np a, Np b) => b < a ? b : a;
}
