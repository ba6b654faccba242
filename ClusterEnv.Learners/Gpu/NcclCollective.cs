using System.Runtime.InteropServices;
using ClusterEnv.Learners.Distributed;
using ILGPU.Runtime;

namespace ClusterEnv.Learners.Gpu;

/// <summary>NCCL's 128-byte unique id, passed by value to ncclCommInitRank.</summary>
[StructLayout(LayoutKind.Sequential, Size = 128)]
internal unsafe struct NcclUniqueId
{
    public fixed byte Bytes[128];
}

/// <summary>
/// <see cref="ICollective"/> on NVIDIA's NCCL (P/Invoke to libnccl.so.2, found by <see cref="CudaLibraries"/>): one
/// rank per GPU, the communicator's unique id sent from rank 0 over a bootstrap collective (MPI, or a world of 1).
/// Gradients are all-reduced where they live, in device memory (<see cref="AllReduceDevice"/>); host spans go through
/// a device scratch buffer. Errors carry NCCL's own string and the rank.
/// </summary>
public sealed unsafe class NcclCollective : IDeviceCollective
{
    private static readonly string[] FileNames = ["libnccl.so.2", "libnccl.so"];
    private const int NcclFloat32 = 7, NcclFloat64 = 8;
    private static IntPtr _lib;
    private static delegate* unmanaged<NcclUniqueId*, int> _getUniqueId;
    private static delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int> _commInitRank;
    private static delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _allReduce;
    private static delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> _broadcast;
    private static delegate* unmanaged<IntPtr, int> _commDestroy;
    private static delegate* unmanaged<int, IntPtr> _errorString;
    private static delegate* unmanaged<int*, int> _getVersion;

    private readonly GpuDevice _device;
    private readonly IntPtr _comm;
    private MemoryBuffer1D<byte, ILGPU.Stride1D.Dense>? _scratch;

    private NcclCollective(GpuDevice device, IntPtr comm, int rank, int size, int version)
    {
        _device = device;
        _comm = comm;
        Rank = rank;
        WorldSize = size;
        Backend = $"NCCL {version / 10000}.{version / 100 % 100}.{version % 100} on {device.Name}";
    }

    /// <summary>
    /// Joins the NCCL world of <paramref name="bootstrap"/>'s ranks on <paramref name="device"/> (a CUDA device):
    /// rank 0 makes the unique id and broadcasts it over <paramref name="bootstrap"/>.
    /// </summary>
    public static NcclCollective Create(GpuDevice device, ICollective bootstrap)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(bootstrap);
        if (!device.IsCuda) throw new ArgumentException($"NCCL needs a CUDA device; '{device.Name}' is ILGPU's CPU accelerator.", nameof(device));
        Load();
        NcclUniqueId id;
        if (bootstrap.Rank == 0) Check(_getUniqueId(&id), 0, "ncclGetUniqueId");
        bootstrap.Broadcast(new Span<byte>(id.Bytes, 128), root: 0);
        IntPtr comm;
        Check(_commInitRank(&comm, bootstrap.WorldSize, id, bootstrap.Rank), bootstrap.Rank, "ncclCommInitRank");
        int version = 0;
        if (_getVersion is not null) _getVersion(&version);
        return new NcclCollective(device, comm, bootstrap.Rank, bootstrap.WorldSize, version);
    }

    /// <summary>Loads libnccl; throws <see cref="DllNotFoundException"/> naming where it looked when it is absent.</summary>
    public static void Load()
    {
        if (_lib != IntPtr.Zero) return;
        var lib = CudaLibraries.Load("NCCL", FileNames);
        _getUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)NativeLibrary.GetExport(lib, "ncclGetUniqueId");
        _commInitRank = (delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int>)NativeLibrary.GetExport(lib, "ncclCommInitRank");
        _allReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)NativeLibrary.GetExport(lib, "ncclAllReduce");
        _broadcast = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)NativeLibrary.GetExport(lib, "ncclBroadcast");
        _commDestroy = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "ncclCommDestroy");
        _errorString = (delegate* unmanaged<int, IntPtr>)NativeLibrary.GetExport(lib, "ncclGetErrorString");
        _getVersion = NativeLibrary.TryGetExport(lib, "ncclGetVersion", out var v) ? (delegate* unmanaged<int*, int>)v : null;
        _lib = lib;
    }

    /// <summary>NCCL's name for a result code (without the library, for messages and tests).</summary>
    public static string ResultName(int result) => result switch
    {
        0 => "ncclSuccess",
        1 => "ncclUnhandledCudaError",
        2 => "ncclSystemError",
        3 => "ncclInternalError",
        4 => "ncclInvalidArgument",
        5 => "ncclInvalidUsage",
        6 => "ncclRemoteError",
        7 => "ncclInProgress",
        _ => $"NCCL result {result}",
    };

    private static void Check(int result, int rank, string call)
    {
        if (result == 0) return;
        string text = _errorString is not null ? Marshal.PtrToStringAnsi(_errorString(result)) ?? "" : "";
        throw new InvalidOperationException($"Rank {rank}: {call} failed with {ResultName(result)}{(text.Length > 0 ? $": {text}" : "")}.");
    }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int WorldSize { get; }

    /// <inheritdoc />
    public string Backend { get; }

    private static int Op(ReduceOp op) => op switch
    {
        ReduceOp.Sum => 0,
        ReduceOp.Max => 2,
        ReduceOp.Min => 3,
        ReduceOp.Mean => 4, // ncclAvg (NCCL ≥ 2.10)
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    /// <inheritdoc />
    public void AllReduceDevice(IntPtr buffer, long count, ReduceOp op, IntPtr stream) =>
        Check(_allReduce(buffer, buffer, (nuint)count, NcclFloat32, Op(op), _comm, stream), Rank, "ncclAllReduce");

    /// <inheritdoc />
    public void AllReduce(Span<float> values, ReduceOp op) => ThroughDevice(MemoryMarshal.AsBytes(values), values.Length, NcclFloat32, op, broadcastRoot: -1);

    /// <inheritdoc />
    public void AllReduce(Span<double> values, ReduceOp op) => ThroughDevice(MemoryMarshal.AsBytes(values), values.Length, NcclFloat64, op, broadcastRoot: -1);

    /// <inheritdoc />
    public void Broadcast(Span<float> values, int root) => ThroughDevice(MemoryMarshal.AsBytes(values), values.Length, NcclFloat32, ReduceOp.Sum, root);

    /// <inheritdoc />
    public void Broadcast(Span<byte> bytes, int root) => ThroughDevice(bytes, bytes.Length, 0 /* ncclInt8 */, ReduceOp.Sum, root);

    /// <inheritdoc />
    public void Barrier()
    {
        Span<float> one = [0f];
        AllReduce(one, ReduceOp.Sum);
    }

    private void ThroughDevice(Span<byte> bytes, int count, int dtype, ReduceOp op, int broadcastRoot)
    {
        if (count == 0) return;
        if (_scratch is null || _scratch.Length < bytes.Length)
        {
            _scratch?.Dispose();
            _scratch = _device.Accelerator.Allocate1D<byte>(bytes.Length);
        }
        var view = _scratch.View.SubView(0, bytes.Length);
        view.CopyFromCPU(ref bytes[0], bytes.Length);
        var ptr = GpuDevice.Address<byte>(view);
        if (broadcastRoot >= 0) Check(_broadcast(ptr, ptr, (nuint)count, dtype, broadcastRoot, _comm, _device.Stream), Rank, "ncclBroadcast");
        else Check(_allReduce(ptr, ptr, (nuint)count, dtype, Op(op), _comm, _device.Stream), Rank, "ncclAllReduce");
        _device.Synchronize();
        view.CopyToCPU(ref bytes[0], bytes.Length);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _scratch?.Dispose();
        _commDestroy(_comm);
    }
}
