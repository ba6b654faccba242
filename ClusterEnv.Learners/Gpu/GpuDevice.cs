using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace ClusterEnv.Learners.Gpu;

/// <summary>No usable GPU: the message says what is missing and what to do instead.</summary>
public sealed class GpuUnavailableException(string message, Exception? inner = null) : InvalidOperationException(message, inner);

/// <summary>
/// A device for the learner: an NVIDIA GPU through ILGPU's CUDA backend (kernels compiled from C# to PTX, GEMMs on
/// cuBLAS), or ILGPU's CPU accelerator, which runs the very same kernels on the CPU (what the tests use). One per
/// process; building one compiles nothing until a kernel is first used.
/// </summary>
public sealed class GpuDevice : IDisposable
{
    private readonly Context _context;
    private CuBlas? _blas;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape, Stride>? _gemm;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, Stride>? _biasActivation;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, int, Stride>? _activationBackward;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, Stride>? _columnSumAdd;
    private Action<Index1D, ArrayView<float>, ArrayView<double>, int>? _sumOfSquares;
    private Action<Index1D, ArrayView<float>, ArrayView<double>, float, Stride>? _clipByNorm;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamScalars, Stride>? _adam;
    private Action<Index1D, ArrayView<float>, float, Stride>? _scale;
    private MemoryBuffer1D<double, Stride1D.Dense>? _norm;

    private GpuDevice(Context context, Accelerator accelerator, bool isCuda)
    {
        _context = context;
        Accelerator = accelerator;
        IsCuda = isCuda;
    }

    /// <summary>
    /// Opens <paramref name="name"/>: "cuda" or "cuda:N" (an NVIDIA GPU), or "cpu" (ILGPU's CPU accelerator, the same
    /// kernels on the CPU). Fails with a message naming what is missing.
    /// </summary>
    public static GpuDevice Open(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name == "cpu")
        {
            var context = Context.Create(b => b.CPU().EnableAlgorithms().Math(MathMode.Default));
            // Sequential: one thread runs every kernel thread in turn. The parallel mode spins its warps on barriers, which
            // measured 10–100× slower here on 2 busy cores; the tests want the kernels' results, not their speed.
            return new GpuDevice(context, context.CreateCPUAccelerator(0, CPUAcceleratorMode.Sequential), isCuda: false);
        }
        if (name != "cuda" && !name.StartsWith("cuda:", StringComparison.Ordinal))
            throw new ArgumentException($"Unknown device '{name}'; use cuda, cuda:N or cpu (ILGPU's CPU accelerator).", nameof(name));
        int index = name == "cuda" ? 0 : int.Parse(name.AsSpan(5), System.Globalization.CultureInfo.InvariantCulture);
        Context? ctx = null;
        try
        {
            ctx = Context.Create(b => b.Cuda().EnableAlgorithms().Math(MathMode.Default));
            var devices = ctx.GetCudaDevices();
            if (devices.Count == 0)
                throw new GpuUnavailableException("No CUDA device found: the NVIDIA driver (libcuda.so.1) is missing or sees no GPU. Train on the CPU engine (the default), or check nvidia-smi.");
            if (index >= devices.Count)
                throw new ArgumentOutOfRangeException(nameof(name), $"cuda:{index} does not exist; this machine has {devices.Count} CUDA device(s).");
            return new GpuDevice(ctx, ctx.CreateCudaAccelerator(index), isCuda: true);
        }
        catch (Exception e) when (e is not GpuUnavailableException and not ArgumentOutOfRangeException)
        {
            ctx?.Dispose();
            throw new GpuUnavailableException($"Could not open a CUDA device ({e.GetType().Name}: {e.Message}). Train on the CPU engine (the default), or check the NVIDIA driver with nvidia-smi.", e);
        }
    }

    /// <summary>The ILGPU accelerator.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>True for an NVIDIA GPU, false for the CPU accelerator.</summary>
    public bool IsCuda { get; }

    /// <summary>The device's name, for logs and benchmark records.</summary>
    public string Name => Accelerator.Name;

    /// <summary>The CUDA stream kernels run on (IntPtr.Zero on the CPU accelerator), for cuBLAS and NCCL.</summary>
    public IntPtr Stream => Accelerator.DefaultStream is CudaStream s ? s.StreamPtr : IntPtr.Zero;

    /// <summary>Allocates <paramref name="length"/> zeroed floats on the device.</summary>
    public MemoryBuffer1D<float, Stride1D.Dense> Allocate(long length)
    {
        var b = Accelerator.Allocate1D<float>(Math.Max(length, 1));
        b.MemSetToZero();
        return b;
    }

    // Threads for a grid-stride launch over n items: one per item on a GPU (up to 2^20, then each takes several); 8 on
    // the CPU accelerator, whose cost is per thread.
    internal Stride Grid(long n) => new((int)n, (int)Math.Max(1, Math.Min(n, IsCuda ? 1 << 20 : 8)));

    /// <summary>Waits for everything queued on the device.</summary>
    public void Synchronize() => Accelerator.Synchronize();

    /// <summary>The device address of a view's first element (for cuBLAS and NCCL).</summary>
    public static IntPtr Address<T>(ArrayView<T> view) where T : unmanaged => view.LoadEffectiveAddressAsPtr();

    /// <summary>Row-major C (m×n) = op(A) (m×k) · op(B) (k×n), or C += that: cuBLAS on a GPU, the GEMM kernel on the CPU accelerator.</summary>
    public void Gemm(ArrayView<float> a, bool transA, ArrayView<float> b, bool transB, ArrayView<float> c, int m, int k, int n, bool accumulate = false, bool useKernel = false)
    {
        if (m == 0 || n == 0) return;
        if (IsCuda && !useKernel)
        {
            _blas ??= new CuBlas(Stream);
            _blas.Gemm(Address(a), transA, Address(b), transB, Address(c), m, k, n, accumulate);
            return;
        }
        _gemm ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmShape, Stride>(GpuKernels.Gemm);
        var g = Grid(m * n);
        _gemm(g.Threads, a, b, c.SubView(0, (long)m * n), new GemmShape(m, k, n, transA ? 1 : 0, transB ? 1 : 0, accumulate ? 1 : 0), g);
    }

    internal void BiasActivation(ArrayView<float> y, ArrayView<float> bias, int width, int activation)
    {
        _biasActivation ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, Stride>(GpuKernels.BiasActivation);
        var g = Grid(y.Length);
        if (y.Length > 0) _biasActivation(g.Threads, y, bias, width, activation, g);
    }

    internal void ActivationBackward(ArrayView<float> delta, ArrayView<float> x, int activation)
    {
        _activationBackward ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, Stride>(GpuKernels.ActivationBackward);
        var g = Grid(delta.Length);
        if (delta.Length > 0) _activationBackward(g.Threads, delta, x, activation, g);
    }

    internal void ColumnSumAdd(ArrayView<float> m, ArrayView<float> sums, int rows, int width)
    {
        _columnSumAdd ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, Stride>(GpuKernels.ColumnSumAdd);
        var g = Grid(width);
        _columnSumAdd(g.Threads, m, sums, rows, width, g);
    }

    /// <summary>Adam.ClipGradNorm on the device: scales <paramref name="grads"/> to a global L2 norm of at most <paramref name="maxNorm"/>.</summary>
    public void ClipGradNorm(ArrayView<float> grads, double maxNorm)
    {
        _sumOfSquares ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<double>, int>(GpuKernels.SumOfSquares);
        _clipByNorm ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<double>, float, Stride>(GpuKernels.ClipByNorm);
        _norm ??= Accelerator.Allocate1D<double>(1);
        _norm.MemSetToZero();
        int threads = Grid(Math.Min(grads.Length, 4096)).Threads;
        _sumOfSquares(threads, grads, _norm.View, threads);
        var g = Grid(grads.Length);
        _clipByNorm(g.Threads, grads, _norm.View, (float)maxNorm, g);
    }

    internal void Adam(ArrayView<float> p, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, AdamScalars s)
    {
        _adam ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamScalars, Stride>(GpuKernels.Adam);
        var st = Grid(s.Length);
        _adam(st.Threads, p, g, m, v, s, st);
    }

    /// <summary>x *= factor on the device.</summary>
    public void Scale(ArrayView<float> x, float factor)
    {
        _scale ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, float, Stride>(GpuKernels.Scale);
        var g = Grid(x.Length);
        if (x.Length > 0) _scale(g.Threads, x, factor, g);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _blas?.Dispose();
        _norm?.Dispose();
        Accelerator.Dispose();
        _context.Dispose();
    }
}
