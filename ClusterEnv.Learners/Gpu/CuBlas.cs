using System.Runtime.InteropServices;

namespace ClusterEnv.Learners.Gpu;

/// <summary>
/// The one cuBLAS call the learner needs, SGEMM, through P/Invoke (ILGPU's own binding knows cuBLAS 10–12 only; the
/// GPU machines have CUDA 13). Row-major C = op(A)·op(B) is computed as column-major Cᵀ = op(B)ᵀ·op(A)ᵀ.
/// </summary>
internal sealed unsafe class CuBlas : IDisposable
{
    private static readonly string[] FileNames = ["libcublas.so.13", "libcublas.so.12", "libcublas.so"];
    private readonly IntPtr _handle;
    private readonly delegate* unmanaged<IntPtr, int, int, int, int, int, float*, IntPtr, int, IntPtr, int, float*, IntPtr, int, int> _sgemm;
    private readonly delegate* unmanaged<IntPtr, int> _destroy;
    private readonly delegate* unmanaged<int, IntPtr> _statusString;

    public CuBlas(IntPtr stream)
    {
        var lib = CudaLibraries.Load("cuBLAS", FileNames);
        var create = (delegate* unmanaged<IntPtr*, int>)NativeLibrary.GetExport(lib, "cublasCreate_v2");
        var setStream = (delegate* unmanaged<IntPtr, IntPtr, int>)NativeLibrary.GetExport(lib, "cublasSetStream_v2");
        _sgemm = (delegate* unmanaged<IntPtr, int, int, int, int, int, float*, IntPtr, int, IntPtr, int, float*, IntPtr, int, int>)NativeLibrary.GetExport(lib, "cublasSgemm_v2");
        _destroy = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "cublasDestroy_v2");
        _statusString = NativeLibrary.TryGetExport(lib, "cublasGetStatusString", out var s) ? (delegate* unmanaged<int, IntPtr>)s : null;
        IntPtr handle;
        Check(create(&handle), "cublasCreate");
        _handle = handle;
        Check(setStream(_handle, stream), "cublasSetStream");
    }

    /// <summary>Row-major C (m×n) = op(A) (m×k) · op(B) (k×n) (+ C when <paramref name="accumulate"/>), device pointers.</summary>
    public void Gemm(IntPtr a, bool transA, IntPtr b, bool transB, IntPtr c, int m, int k, int n, bool accumulate)
    {
        const int N = 0, T = 1;
        float alpha = 1f, beta = accumulate ? 1f : 0f;
        int lda = transA ? m : k, ldb = transB ? k : n;
        Check(_sgemm(_handle, transB ? T : N, transA ? T : N, n, m, k, &alpha, b, ldb, a, lda, &beta, c, n), "cublasSgemm");
    }

    private void Check(int status, string call)
    {
        if (status == 0) return;
        string text = _statusString is not null ? Marshal.PtrToStringAnsi(_statusString(status)) ?? "" : "";
        throw new InvalidOperationException($"{call} failed with cuBLAS status {status}{(text.Length > 0 ? $" ({text})" : "")}.");
    }

    public void Dispose() => _destroy(_handle);
}
