using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ClusterEnv.Nn;

/// <summary>Vectorised activations for the hot paths (the tanh of 64-wide hidden layers costs more than their GEMM).</summary>
public static class Activations
{
    /// <summary>
    /// tanh in place with a [13/6] odd rational approximation on x clamped to ±7.9053 (beyond it float32 tanh is ±1),
    /// the form Eigen uses for float: a dozen FMAs and one division per 16 lanes, about 6× faster than
    /// <see cref="TensorPrimitives.Tanh{T}(ReadOnlySpan{T}, Span{T})"/> here, within a few ulp (tested against Math.Tanh).
    /// </summary>
    public static void Tanh(Span<float> x)
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            TensorPrimitives.Tanh(x, x);
            return;
        }
        var v = MemoryMarshal.Cast<float, Vector512<float>>(x);
        var clamp = Vector512.Create(7.90531110763549805f);
        var a1 = Vector512.Create(4.89352455891786e-03f);
        var a3 = Vector512.Create(6.37261928875436e-04f);
        var a5 = Vector512.Create(1.48572235717979e-05f);
        var a7 = Vector512.Create(5.12229709037114e-08f);
        var a9 = Vector512.Create(-8.60467152213735e-11f);
        var a11 = Vector512.Create(2.00018790482477e-13f);
        var a13 = Vector512.Create(-2.76076847742355e-16f);
        var b0 = Vector512.Create(4.89352518554385e-03f);
        var b2 = Vector512.Create(2.26843463243900e-03f);
        var b4 = Vector512.Create(1.18534705686654e-04f);
        var b6 = Vector512.Create(1.19825839466702e-06f);
        for (int i = 0; i < v.Length; i++)
        {
            var t = Vector512.Min(Vector512.Max(v[i], -clamp), clamp);
            var t2 = t * t;
            var p = Vector512.FusedMultiplyAdd(t2, a13, a11);
            p = Vector512.FusedMultiplyAdd(t2, p, a9);
            p = Vector512.FusedMultiplyAdd(t2, p, a7);
            p = Vector512.FusedMultiplyAdd(t2, p, a5);
            p = Vector512.FusedMultiplyAdd(t2, p, a3);
            p = Vector512.FusedMultiplyAdd(t2, p, a1);
            p *= t;
            var q = Vector512.FusedMultiplyAdd(t2, b6, b4);
            q = Vector512.FusedMultiplyAdd(t2, q, b2);
            q = Vector512.FusedMultiplyAdd(t2, q, b0);
            v[i] = p / q;
        }
        int done = v.Length * Vector512<float>.Count;
        if (done < x.Length) TensorPrimitives.Tanh(x[done..], x[done..]);
    }
}
