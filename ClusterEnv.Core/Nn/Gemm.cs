using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ClusterEnv.Nn;

/// <summary>
/// Single-precision matrix product <c>C = op(A)·op(B) (+ C)</c> on row-major buffers, where op is identity or transpose:
/// the three shapes an MLP needs (forward <c>X·Wᵀ</c>, input gradient <c>dY·W</c>, weight gradient <c>dYᵀ·X</c>).
/// BLIS-style: op(B) is packed per k-block into panels of NR columns, op(A) into panels of MR rows, and a register-blocked
/// micro-kernel (6 rows × 32 columns with <see cref="Vector512{T}"/>, 6 × 16 with <see cref="Vector256{T}"/>, scalar
/// otherwise) accumulates in registers. Packing buffers are per thread and reused, so a call allocates nothing once
/// warm. Single-threaded: parallelise over batches, not inside the small products of RL networks.
/// </summary>
public static unsafe class Gemm
{
    private const int MR = 6;
    // Block sizes tuned on the target CPU (48 KiB L1d, 2 MiB L2): a packed B block of KC × NC floats (512 KiB) stays in
    // L2 while MC rows of A stream past it. Measured at 1024³: KC 256 / whole-n gave 80 GFLOP/s, these give 88-90.
    private const int KC = 512;
    private const int MC = 48;
    private const int NC = 256;

    /// <summary>Column-panel width of the active kernel (32 with AVX-512, 16 with AVX/AVX2, 8 otherwise).</summary>
    public static int NR { get; } = Vector512.IsHardwareAccelerated ? 32 : Vector256.IsHardwareAccelerated ? 16 : 8;

    /// <summary>Which kernel runs on this machine.</summary>
    public static string KernelName => NR switch { 32 => "avx512 6x32", 16 => "avx2 6x16", _ => "scalar 6x8" };

    [ThreadStatic] private static float[]? _packA;
    [ThreadStatic] private static float[]? _packB;

    /// <summary>
    /// <c>C[m×n] = op(A)[m×k] · op(B)[k×n]</c>, or <c>+=</c> when <paramref name="accumulate"/>. A is m×k (k×m when
    /// <paramref name="transA"/>), B is k×n (n×k when <paramref name="transB"/>), all row-major and dense.
    /// </summary>
    public static void Multiply(ReadOnlySpan<float> a, bool transA, ReadOnlySpan<float> b, bool transB, Span<float> c, int m, int k, int n, bool accumulate = false)
    {
        if (m < 0 || k < 0 || n < 0) throw new ArgumentOutOfRangeException(nameof(m), $"Matrix sizes must be non-negative (m={m}, k={k}, n={n}).");
        if (a.Length < m * k) throw new ArgumentException($"A has {a.Length} elements; a {m}×{k} operand needs {m * k}.", nameof(a));
        if (b.Length < k * n) throw new ArgumentException($"B has {b.Length} elements; a {k}×{n} operand needs {k * n}.", nameof(b));
        if (c.Length < m * n) throw new ArgumentException($"C has {c.Length} elements; the {m}×{n} result needs {m * n}.", nameof(c));
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate) c[..(m * n)].Clear();
            return;
        }
        if (!transA && transB && n <= 4)
        {
            // A few outputs (policy and value heads): row-by-row dot products beat a 32-wide panel that is mostly padding.
            for (int i = 0; i < m; i++)
            {
                var row = a.Slice(i * k, k);
                for (int j = 0; j < n; j++)
                {
                    float d = System.Numerics.Tensors.TensorPrimitives.Dot(row, b.Slice(j * k, k));
                    c[i * n + j] = accumulate ? c[i * n + j] + d : d;
                }
            }
            return;
        }
        int nr = NR;
        int ncMax = Math.Min(n, NC / nr * nr);
        var packB = Rent(ref _packB, ((ncMax + nr - 1) / nr) * nr * KC);
        var packA = Rent(ref _packA, ((MC + MR - 1) / MR) * MR * KC);
        fixed (float* pa = a, pb0 = b, pc0 = c, bufA = packA, bufB = packB)
        for (int jn = 0; jn < n; jn += ncMax)
        {
            int ncBlock = Math.Min(ncMax, n - jn);
            int nPanels = (ncBlock + nr - 1) / nr;
            float* pb = transB ? pb0 + (long)jn * k : pb0 + jn;
            float* pc = pc0 + jn;
            for (int p0 = 0; p0 < k; p0 += KC)
            {
                int kc = Math.Min(KC, k - p0);
                bool acc = accumulate || p0 > 0;
                PackB(pb, transB, k, n, ncBlock, p0, kc, nr, bufB);
                for (int i0 = 0; i0 < m; i0 += MC)
                {
                    int mc = Math.Min(MC, m - i0);
                    // A row-major is read in place (six row pointers); only a transposed A is packed.
                    bool direct = !transA && Vector512.IsHardwareAccelerated;
                    if (!direct) PackA(pa, transA, m, k, i0, mc, p0, kc, bufA);
                    for (int jp = 0; jp < nPanels; jp++)
                    {
                        int j0 = jp * nr;
                        int nc = Math.Min(nr, ncBlock - j0);
                        float* panelB = bufB + (long)jp * kc * nr;
                        for (int ir = 0; ir < mc; ir += MR)
                        {
                            int rows = Math.Min(MR, mc - ir);
                            float* dst = pc + (long)(i0 + ir) * n + j0;
                            if (direct && rows == MR && nc == nr)
                            {
                                Kernel512(pa + (long)(i0 + ir) * k + p0, k, 1, panelB, kc, dst, n, acc);
                                continue;
                            }
                            if (direct)
                            {
                                PackA(pa, false, m, k, i0 + ir, rows, p0, kc, bufA);
                                EdgeKernel(bufA, panelB, kc, dst, n, rows, nc, acc);
                                continue;
                            }
                            float* panelA = bufA + (long)ir * kc;
                            if (rows == MR && nc == nr)
                                Kernel(panelA, panelB, kc, dst, n, acc);
                            else
                                EdgeKernel(panelA, panelB, kc, dst, n, rows, nc, acc);
                        }
                    }
                }
            }
        }
    }

    private static float[] Rent(ref float[]? buffer, int size)
    {
        if (buffer is null || buffer.Length < size) buffer = GC.AllocateUninitializedArray<float>(Math.Max(size, 4096), pinned: true);
        return buffer;
    }

    // op(B)[p0..p0+kc, 0..cols) → panels [jp][kk][nr], zero-padded past cols; n is B's row stride when not transposed.
    private static void PackB(float* b, bool transB, int k, int n, int cols, int p0, int kc, int nr, float* dst)
    {
        for (int j0 = 0; j0 < cols; j0 += nr)
        {
            int nc = Math.Min(nr, cols - j0);
            for (int kk = 0; kk < kc; kk++)
            {
                float* row = dst + kk * nr;
                if (!transB)
                {
                    float* src = b + (long)(p0 + kk) * n + j0;
                    int j = 0;
                    for (; j < nc; j++) row[j] = src[j];
                    for (; j < nr; j++) row[j] = 0f;
                }
                else
                {
                    int j = 0;
                    for (; j < nc; j++) row[j] = b[(long)(j0 + j) * k + p0 + kk];
                    for (; j < nr; j++) row[j] = 0f;
                }
            }
            dst += kc * nr;
        }
    }

    // op(A)[i0..i0+mc, p0..p0+kc) → panels [ir][kk][MR], zero-padded past mc.
    private static void PackA(float* a, bool transA, int m, int k, int i0, int mc, int p0, int kc, float* dst)
    {
        for (int ir = 0; ir < mc; ir += MR)
        {
            int rows = Math.Min(MR, mc - ir);
            for (int kk = 0; kk < kc; kk++)
            {
                float* col = dst + kk * MR;
                int r = 0;
                if (!transA)
                    for (; r < rows; r++) col[r] = a[(long)(i0 + ir + r) * k + p0 + kk];
                else
                {
                    float* src = a + (long)(p0 + kk) * m + i0 + ir;
                    for (; r < rows; r++) col[r] = src[r];
                }
                for (; r < MR; r++) col[r] = 0f;
            }
            dst += kc * MR;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Kernel(float* a, float* b, int kc, float* c, int ldc, bool acc)
    {
        if (Vector512.IsHardwareAccelerated) Kernel512(a, 1, MR, b, kc, c, ldc, acc);
        else if (Vector256.IsHardwareAccelerated) Kernel256(a, b, kc, c, ldc, acc);
        else KernelScalar(a, b, kc, c, ldc, MR, 8, acc);
    }

    // 6×32 AVX-512 micro-kernel: element (r, kk) of A is at a[r·rowStride + kk·kStride], so one kernel reads both a
    // packed panel (rowStride 1, kStride MR) and six rows of a row-major A in place (rowStride lda, kStride 1).
    private static void Kernel512(float* a, int rowStride, int kStride, float* b, int kc, float* c, int ldc, bool acc)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                         c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        float* r0 = a, r1 = a + rowStride, r2 = a + 2 * rowStride, r3 = a + 3 * rowStride, r4 = a + 4 * rowStride, r5 = a + 5 * rowStride;
        for (int kk = 0, ka = 0; kk < kc; kk++, ka += kStride)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(r0[ka]);
            c00 = Vector512.FusedMultiplyAdd(a0, b0, c00); c01 = Vector512.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector512.Create(r1[ka]);
            c10 = Vector512.FusedMultiplyAdd(a1, b0, c10); c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector512.Create(r2[ka]);
            c20 = Vector512.FusedMultiplyAdd(a2, b0, c20); c21 = Vector512.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector512.Create(r3[ka]);
            c30 = Vector512.FusedMultiplyAdd(a3, b0, c30); c31 = Vector512.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector512.Create(r4[ka]);
            c40 = Vector512.FusedMultiplyAdd(a4, b0, c40); c41 = Vector512.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector512.Create(r5[ka]);
            c50 = Vector512.FusedMultiplyAdd(a5, b0, c50); c51 = Vector512.FusedMultiplyAdd(a5, b1, c51);
            b += 32;
        }
        Store512(c, c00, c01, acc); c += ldc;
        Store512(c, c10, c11, acc); c += ldc;
        Store512(c, c20, c21, acc); c += ldc;
        Store512(c, c30, c31, acc); c += ldc;
        Store512(c, c40, c41, acc); c += ldc;
        Store512(c, c50, c51, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* c, Vector512<float> v0, Vector512<float> v1, bool acc)
    {
        if (acc)
        {
            v0 += Vector512.Load(c);
            v1 += Vector512.Load(c + 16);
        }
        v0.Store(c);
        v1.Store(c + 16);
    }

    private static void Kernel256(float* a, float* b, int kc, float* c, int ldc, bool acc)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                         c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var a0 = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00); c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10); c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20); c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30); c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector256.Create(a[4]);
            c40 = Vector256.FusedMultiplyAdd(a4, b0, c40); c41 = Vector256.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector256.Create(a[5]);
            c50 = Vector256.FusedMultiplyAdd(a5, b0, c50); c51 = Vector256.FusedMultiplyAdd(a5, b1, c51);
            a += MR;
            b += 16;
        }
        Store256(c, c00, c01, acc); c += ldc;
        Store256(c, c10, c11, acc); c += ldc;
        Store256(c, c20, c21, acc); c += ldc;
        Store256(c, c30, c31, acc); c += ldc;
        Store256(c, c40, c41, acc); c += ldc;
        Store256(c, c50, c51, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store256(float* c, Vector256<float> v0, Vector256<float> v1, bool acc)
    {
        if (acc)
        {
            v0 += Vector256.Load(c);
            v1 += Vector256.Load(c + 8);
        }
        v0.Store(c);
        v1.Store(c + 8);
    }

    // Partial tiles: compute the full padded tile into a stack buffer, then copy the valid part.
    private static void EdgeKernel(float* a, float* b, int kc, float* c, int ldc, int rows, int cols, bool acc)
    {
        int nr = NR;
        float* tile = stackalloc float[MR * 32];
        if (nr == 32 && Vector512.IsHardwareAccelerated) Kernel512(a, 1, MR, b, kc, tile, nr, false);
        else if (nr == 16 && Vector256.IsHardwareAccelerated) Kernel256(a, b, kc, tile, nr, false);
        else KernelScalar(a, b, kc, tile, nr, MR, nr, false);
        for (int r = 0; r < rows; r++)
        {
            float* dst = c + (long)r * ldc;
            float* src = tile + r * nr;
            if (acc) for (int j = 0; j < cols; j++) dst[j] += src[j];
            else for (int j = 0; j < cols; j++) dst[j] = src[j];
        }
    }

    private static void KernelScalar(float* a, float* b, int kc, float* c, int ldc, int rows, int nr, bool acc)
    {
        float* sums = stackalloc float[MR * 32];
        new Span<float>(sums, MR * nr).Clear();
        for (int kk = 0; kk < kc; kk++)
        {
            for (int r = 0; r < MR; r++)
            {
                float av = a[kk * MR + r];
                for (int j = 0; j < nr; j++) sums[r * nr + j] = MathF.FusedMultiplyAdd(av, b[kk * nr + j], sums[r * nr + j]);
            }
        }
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < nr; j++)
                c[(long)r * ldc + j] = acc ? c[(long)r * ldc + j] + sums[r * nr + j] : sums[r * nr + j];
    }
}
