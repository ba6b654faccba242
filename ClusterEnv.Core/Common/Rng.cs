using System.Numerics;
using System.Runtime.CompilerServices;

namespace ClusterEnv.Common;

/// <summary>The whole state of an <see cref="Rng"/> (for checkpoints): PCG64's 128-bit state and increment, and the buffered half-word.</summary>
public readonly record struct RngState(ulong StateHigh, ulong StateLow, ulong IncrementHigh, ulong IncrementLow, bool HasUInt32, uint UInt32);

/// <summary>
/// NumPy's default generator, reimplemented: <c>np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))</c>,
/// which is what Gymnasium's <c>np_random</c> is. The same seed gives NumPy's stream bit for bit in
/// <see cref="NextUInt64"/>, <see cref="NextUInt32"/>, <see cref="NextDouble"/> (<c>random()</c>),
/// <see cref="Uniform"/> (<c>uniform(low, high)</c>), <see cref="NextInt"/> and <see cref="NextLong"/>
/// (<c>integers</c> with the default int64 dtype) and <see cref="NextBytes"/> (<c>integers(…, dtype=int8/uint8)</c>), so
/// envs and spaces seeded alike start where Gymnasium's do. Not thread-safe; each env owns one.
/// </summary>
/// <remarks>
/// Two draws do not follow NumPy: <see cref="NextGaussian"/> (Box–Muller; NumPy uses a ziggurat with its own tables)
/// and <see cref="NextExponential"/> (inversion). They only serve unbounded Box samples and weight initialisation.
/// </remarks>
public sealed class Rng
{
    // PCG64 (XSL-RR 128/64): 128-bit LCG state and odd increment, as NumPy's pcg64.h.
    private const ulong MultiplierHigh = 2549297995355413924UL, MultiplierLow = 4865540595714422341UL;
    private ulong _hi, _lo, _incHi, _incLo;
    private bool _hasUInt32;
    private uint _uinteger;

    /// <summary>Creates a generator seeded with <paramref name="seed"/> (NumPy's <c>SeedSequence(seed)</c>), or from OS entropy when null.</summary>
    public Rng(long? seed = null) => Reseed(seed ?? System.Random.Shared.NextInt64());

    /// <summary>The generator's whole state: setting it back continues the same stream.</summary>
    public RngState State
    {
        get => new(_hi, _lo, _incHi, _incLo, _hasUInt32, _uinteger);
        set
        {
            if ((value.IncrementLow & 1) == 0) throw new ArgumentException("A PCG64 increment is odd; this state was not written by Rng.State.", nameof(value));
            (_hi, _lo, _incHi, _incLo, _hasUInt32, _uinteger) = (value.StateHigh, value.StateLow, value.IncrementHigh, value.IncrementLow, value.HasUInt32, value.UInt32);
        }
    }

    /// <summary>
    /// Restarts the stream as NumPy's <c>PCG64(SeedSequence(seed))</c> does. A negative seed (which NumPy refuses) is
    /// taken as its 64-bit two's complement.
    /// </summary>
    public void Reseed(long seed)
    {
        Span<ulong> words = stackalloc ulong[4];
        SeedSequence.GenerateState(unchecked((ulong)seed), words);
        // pcg64_set_seed: state = (words[0] << 64) | words[1], sequence = (words[2] << 64) | words[3]; srandom.
        _incHi = (words[2] << 1) | (words[3] >> 63);
        _incLo = (words[3] << 1) | 1;
        _hi = 0;
        _lo = 0;
        Step();
        ulong lo = _lo + words[1];
        _hi += words[0] + (lo < _lo ? 1UL : 0UL);
        _lo = lo;
        Step();
        _hasUInt32 = false;
        _uinteger = 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Step()
    {
        // state = state · M + inc (mod 2^128)
        ulong high = Math.BigMul(_lo, MultiplierLow, out ulong low);
        high += _hi * MultiplierLow + _lo * MultiplierHigh;
        ulong sumLo = low + _incLo;
        _hi = high + _incHi + (sumLo < low ? 1UL : 0UL);
        _lo = sumLo;
    }

    /// <summary>The next 64 random bits (NumPy's <c>next_uint64</c>: step, then the XSL-RR output of the new state).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong NextUInt64()
    {
        Step();
        return BitOperations.RotateRight(_hi ^ _lo, (int)(_hi >> 58));
    }

    /// <summary>The next 32 random bits (NumPy's <c>next_uint32</c>: the low half of a 64-bit draw, then its high half).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint NextUInt32()
    {
        if (_hasUInt32)
        {
            _hasUInt32 = false;
            return _uinteger;
        }
        ulong next = NextUInt64();
        _hasUInt32 = true;
        _uinteger = (uint)(next >> 32);
        return (uint)next;
    }

    /// <summary>Uniform double in [0, 1) with 53 random bits (NumPy's <c>random()</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / 9007199254740992.0);

    /// <summary>Uniform double in [low, high) (NumPy's <c>uniform(low, high)</c>: low + (high − low)·random()).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public double Uniform(double low, double high) => low + (high - low) * NextDouble();

    /// <summary>Uniform integer in [0, n) (NumPy's <c>integers(n)</c>, Lemire's multiply-and-reject on 32-bit draws).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "The upper bound must be positive.");
        return (int)NextLong(0, n - 1);
    }

    /// <summary>Uniform integer in [low, high], both included (NumPy's <c>integers(low, high + 1)</c> with the int64 dtype).</summary>
    public long NextLong(long low, long high)
    {
        if (low > high) throw new ArgumentOutOfRangeException(nameof(high), high, $"high must be >= low ({low}).");
        ulong range = unchecked((ulong)(high - low));
        if (range == 0) return low;
        if (range < uint.MaxValue) return unchecked(low + (long)BoundedUInt32((uint)range));
        if (range == uint.MaxValue) return unchecked(low + (long)NextUInt32());
        if (range == ulong.MaxValue) return unchecked(low + (long)NextUInt64());
        // Lemire on 64-bit draws.
        ulong excl = range + 1;
        ulong m = Math.BigMul(NextUInt64(), excl, out ulong leftover);
        if (leftover < excl)
        {
            ulong threshold = (ulong.MaxValue - range) % excl;
            while (leftover < threshold) m = Math.BigMul(NextUInt64(), excl, out leftover);
        }
        return unchecked(low + (long)m);
    }

    // Lemire on 32-bit draws, rng < 2^32 − 1 (NumPy's buffered_bounded_lemire_uint32).
    private uint BoundedUInt32(uint rng)
    {
        uint excl = rng + 1;
        ulong m = (ulong)NextUInt32() * excl;
        uint leftover = (uint)m;
        if (leftover < excl)
        {
            uint threshold = (uint.MaxValue - rng) % excl;
            while (leftover < threshold)
            {
                m = (ulong)NextUInt32() * excl;
                leftover = (uint)m;
            }
        }
        return (uint)(m >> 32);
    }

    /// <summary>
    /// Fills <paramref name="destination"/> with uniform integers in [low, high] as one NumPy call
    /// <c>integers(low, high + 1, size=n, dtype=int8)</c> does (bytes cut from shared 32-bit draws); high − low ≤ 255.
    /// </summary>
    public void NextBytes(int low, int high, Span<int> destination)
    {
        if (low > high || high - low > 255) throw new ArgumentOutOfRangeException(nameof(high), high, $"NextBytes needs low <= high <= low + 255 (low {low}).");
        uint range = (uint)(high - low);
        uint buffer = 0;
        int count = 0;
        for (int i = 0; i < destination.Length; i++)
        {
            if (range == 0)
            {
                destination[i] = low;
                continue;
            }
            if (range == 255)
            {
                destination[i] = low + (int)NextBufferedByte(ref buffer, ref count);
                continue;
            }
            uint excl = range + 1;
            uint m = NextBufferedByte(ref buffer, ref count) * excl;
            uint leftover = m & 0xFF;
            if (leftover < excl)
            {
                uint threshold = (255 - range) % excl;
                while (leftover < threshold)
                {
                    m = NextBufferedByte(ref buffer, ref count) * excl;
                    leftover = m & 0xFF;
                }
            }
            destination[i] = low + (int)(m >> 8);
        }
    }

    // NumPy's buffered_uint8: four bytes from each 32-bit draw, lowest first.
    private uint NextBufferedByte(ref uint buffer, ref int count)
    {
        if (count == 0)
        {
            buffer = NextUInt32();
            count = 3;
        }
        else
        {
            buffer >>= 8;
            count--;
        }
        return buffer & 0xFF;
    }

    /// <summary>Standard normal sample (Box–Muller, one value per call; not NumPy's ziggurat stream).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble(); // (0, 1]
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>Exponential(1) sample (inversion; not NumPy's ziggurat stream).</summary>
    public double NextExponential() => -Math.Log(1.0 - NextDouble());
}

/// <summary>NumPy's <c>SeedSequence</c> for one non-negative integer of entropy (pool of 4 words, no spawn key).</summary>
public static class SeedSequence
{
    private const uint InitA = 0x43b0d7e5, MultA = 0x931e8875, InitB = 0x8b51f9dd, MultB = 0x58f38ded;
    private const uint MixMultL = 0xca01f9dd, MixMultR = 0x4973f715;
    private const int PoolSize = 4;

    /// <summary>The 4-word pool <c>SeedSequence(entropy).pool</c>.</summary>
    public static uint[] Pool(ulong entropy)
    {
        // The entropy as 32-bit words, least significant first (0 is one word).
        Span<uint> words = stackalloc uint[2];
        int n = 0;
        do
        {
            words[n++] = (uint)entropy;
            entropy >>= 32;
        }
        while (entropy != 0);
        var pool = new uint[PoolSize];
        uint hashConst = InitA;
        for (int i = 0; i < PoolSize; i++) pool[i] = HashMix(i < n ? words[i] : 0, ref hashConst);
        for (int src = 0; src < PoolSize; src++)
            for (int dst = 0; dst < PoolSize; dst++)
                if (src != dst) pool[dst] = Mix(pool[dst], HashMix(pool[src], ref hashConst));
        return pool;
    }

    /// <summary><c>SeedSequence(entropy).generate_state(len(destination), np.uint64)</c>.</summary>
    public static void GenerateState(ulong entropy, Span<ulong> destination)
    {
        var pool = Pool(entropy);
        uint hashConst = InitB;
        for (int i = 0; i < destination.Length * 2; i++)
        {
            uint v = pool[i % PoolSize];
            v ^= hashConst;
            hashConst = unchecked(hashConst * MultB);
            v = unchecked(v * hashConst);
            v ^= v >> 16;
            if ((i & 1) == 0) destination[i / 2] = v;
            else destination[i / 2] |= (ulong)v << 32; // little-endian pairs of 32-bit words
        }
    }

    private static uint HashMix(uint value, ref uint hashConst)
    {
        value ^= hashConst;
        hashConst = unchecked(hashConst * MultA);
        value = unchecked(value * hashConst);
        return value ^ (value >> 16);
    }

    private static uint Mix(uint x, uint y)
    {
        uint r = unchecked(MixMultL * x - MixMultR * y);
        return r ^ (r >> 16);
    }
}

/// <summary>Gymnasium's rule for seeds (<c>gymnasium.utils.seeding.np_random</c>): any non-negative integer.</summary>
public static class Seeds
{
    /// <summary>Throws, naming the seed and the rule, when <paramref name="seed"/> is negative.</summary>
    public static void Check(long seed)
    {
        if (seed < 0)
            throw new ArgumentOutOfRangeException(nameof(seed), seed, $"Seed {seed} is negative; seeds must be >= 0 (as in Gymnasium, which takes any non-negative integer; here up to {long.MaxValue}).");
    }
}
