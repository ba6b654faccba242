using System.Runtime.CompilerServices;

namespace ClusterEnv.Common;

/// <summary>
/// A small, fast, seedable pseudo-random generator (xoshiro256**, seeded through SplitMix64).
/// Same seed, same stream, on every platform and runtime version — unlike <see cref="System.Random"/>,
/// whose seeded algorithm is an implementation detail. Not thread-safe; each env owns one.
/// </summary>
/// <remarks>
/// Gymnasium uses NumPy's PCG64; streams therefore differ from Gymnasium's for the same seed. What carries over
/// is the contract: the same seed gives the same trajectory.
/// </remarks>
public sealed class Rng
{
    private ulong _s0, _s1, _s2, _s3;

    /// <summary>The generator's whole state (for checkpoints): setting it back continues the same stream.</summary>
    public (ulong S0, ulong S1, ulong S2, ulong S3) State
    {
        get => (_s0, _s1, _s2, _s3);
        set => (_s0, _s1, _s2, _s3) = value;
    }

    /// <summary>Creates a generator seeded with <paramref name="seed"/>, or from OS entropy when null.</summary>
    public Rng(long? seed = null) => Reseed(seed ?? System.Random.Shared.NextInt64());

    /// <summary>Restarts the stream from <paramref name="seed"/>.</summary>
    public void Reseed(long seed)
    {
        ulong x = unchecked((ulong)seed);
        _s0 = SplitMix64(ref x);
        _s1 = SplitMix64(ref x);
        _s2 = SplitMix64(ref x);
        _s3 = SplitMix64(ref x);
    }

    private static ulong SplitMix64(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>The next 64 uniformly random bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong NextUInt64()
    {
        ulong result = BitRotate(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = BitRotate(_s3, 45);
        return result;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong BitRotate(ulong x, int k) => (x << k) | (x >> (64 - k));

    /// <summary>Uniform double in [0, 1) with 53 random bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform double in [low, high).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public double Uniform(double low, double high) => low + (high - low) * NextDouble();

    /// <summary>Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "The upper bound must be positive.");
        ulong range = (ulong)n;
        ulong m = Math.BigMul(NextUInt64(), range, out ulong low);
        if (low < range)
        {
            ulong threshold = (0UL - range) % range;
            while (low < threshold) m = Math.BigMul(NextUInt64(), range, out low);
        }
        return (int)m;
    }

    /// <summary>Uniform integer in [low, high] (inclusive), for ranges up to the full long range.</summary>
    public long NextLong(long low, long high)
    {
        if (low > high) throw new ArgumentOutOfRangeException(nameof(high), high, $"high must be >= low ({low}).");
        ulong range = unchecked((ulong)(high - low)) + 1;
        if (range == 0) return unchecked((long)NextUInt64());
        ulong m = Math.BigMul(NextUInt64(), range, out ulong lo);
        if (lo < range)
        {
            ulong threshold = (0UL - range) % range;
            while (lo < threshold) m = Math.BigMul(NextUInt64(), range, out lo);
        }
        return unchecked(low + (long)m);
    }

    /// <summary>Standard normal sample (Box–Muller, one value per call).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble(); // (0, 1]
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>Exponential(1) sample.</summary>
    public double NextExponential() => -Math.Log(1.0 - NextDouble());
}
