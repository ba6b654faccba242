using SysVector = System.Numerics.Vector;
using System.Numerics;

namespace ClusterEnv.Wrappers;

/// <summary>Conversions between uint8 images and the float32 slots observations travel in (values 0..255, exact).</summary>
public static class Pixels
{
    /// <summary>Widens bytes to floats, vectorised.</summary>
    public static void ToFloat(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (dst.Length != src.Length) throw new ArgumentException($"{src.Length} bytes go to {src.Length} floats, not {dst.Length}.", nameof(dst));
        int i = 0, n = Vector<int>.Count;
        if (SysVector.IsHardwareAccelerated)
        {
            for (; i + Vector<byte>.Count <= src.Length; i += Vector<byte>.Count)
            {
                SysVector.Widen(new Vector<byte>(src.Slice(i)), out var lo, out var hi);
                SysVector.Widen(lo, out var a, out var b);
                SysVector.Widen(hi, out var c, out var e);
                SysVector.ConvertToSingle(a).CopyTo(dst.Slice(i));
                SysVector.ConvertToSingle(b).CopyTo(dst.Slice(i + n));
                SysVector.ConvertToSingle(c).CopyTo(dst.Slice(i + 2 * n));
                SysVector.ConvertToSingle(e).CopyTo(dst.Slice(i + 3 * n));
            }
        }
        for (; i < src.Length; i++) dst[i] = src[i];
    }

    /// <summary>Narrows floats holding 0..255 integers back to bytes (values outside are clamped, fractions truncated).</summary>
    public static void ToBytes(ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (dst.Length != src.Length) throw new ArgumentException($"{src.Length} floats go to {src.Length} bytes, not {dst.Length}.", nameof(dst));
        for (int i = 0; i < src.Length; i++) dst[i] = (byte)Math.Clamp(src[i], 0f, 255f);
    }
}
