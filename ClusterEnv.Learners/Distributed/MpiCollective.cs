using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace ClusterEnv.Learners.Distributed;

/// <summary>
/// Collectives over Open MPI (Debian's <c>openmpi-bin</c>; ranks started by <c>mpirun</c> or <c>srun --mpi=pmix</c>),
/// through a small P/Invoke layer on <c>libmpi.so.40</c>. Open MPI's handles are the addresses of exported globals
/// (<c>ompi_mpi_comm_world</c>, <c>ompi_mpi_float</c>, ...), so this binding is Open MPI's, not MPICH's. Errors come back
/// as codes (MPI_ERRORS_RETURN) and are thrown with MPI's own error string and this rank. A collective that does not
/// complete within <see cref="Timeout"/> (a peer rank died or took another path) aborts the whole job with a named
/// message instead of hanging.
/// </summary>
public sealed unsafe class MpiCollective : ICollective
{
    /// <summary>The library looked for; override with CLUSTERENV_MPI_LIB.</summary>
    public const string DefaultLibrary = "libmpi.so.40";

    private static IntPtr _lib;
    private static IntPtr _comm, _float, _double, _byte, _sum, _max, _min;
    private static delegate* unmanaged<int*, byte***, int> _init;
    private static delegate* unmanaged<int*, int> _initialized;
    private static delegate* unmanaged<int*, int> _finalized;
    private static delegate* unmanaged<int> _finalize;
    private static delegate* unmanaged<IntPtr, int*, int> _commRank, _commSize;
    private static delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int> _allreduce;
    private static delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int> _bcast;
    private static delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, IntPtr*, int> _iallreduce;
    private static delegate* unmanaged<int, IntPtr*, int*, void*, int> _testall;
    private static delegate* unmanaged<int, IntPtr*, void*, int> _waitall;
    private static delegate* unmanaged<IntPtr, int> _barrier;
    private static delegate* unmanaged<IntPtr, int, int> _abort;
    private static delegate* unmanaged<int, byte*, int*, int> _errorString;
    private static delegate* unmanaged<IntPtr, IntPtr, int> _setErrhandler;
    private static delegate* unmanaged<byte*, int*, int> _libraryVersion;

    private readonly Timer _watchdog;
    private long _callStarted;      // Stopwatch timestamp of the collective in progress, 0 when none
    private string _callName = "";
    private bool _disposed;

    private MpiCollective(int rank, int size, string version, TimeSpan timeout)
    {
        Rank = rank;
        WorldSize = size;
        Backend = $"MPI ({version})";
        Timeout = timeout;
        _watchdog = new Timer(_ => Watch(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int WorldSize { get; }

    /// <inheritdoc />
    public string Backend { get; }

    /// <summary>The longest a collective may take before the job is aborted as hung.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>
    /// Initialises MPI (once per process) and returns this rank's collective. Fails with a clear message when
    /// libmpi cannot be loaded (install openmpi-bin, or set CLUSTERENV_MPI_LIB) or the process was not started by an
    /// MPI launcher.
    /// </summary>
    public static MpiCollective Initialize(TimeSpan? timeout = null)
    {
        Load();
        int flag;
        Check(_initialized(&flag), -1, "MPI_Initialized");
        if (flag == 0)
        {
            PreferCopyInCopyOut();
            Check(_init(null, null), -1, "MPI_Init");
        }
        Check(_setErrhandler(_comm, Export("ompi_mpi_errors_return")), -1, "MPI_Comm_set_errhandler");
        int rank, size;
        Check(_commRank(_comm, &rank), -1, "MPI_Comm_rank");
        Check(_commSize(_comm, &size), rank, "MPI_Comm_size");
        byte* buf = stackalloc byte[512];
        int len = 0;
        string version = _libraryVersion(buf, &len) == 0 ? Encoding.ASCII.GetString(buf, Math.Max(0, Math.Min(len, 512))).Split(',')[0].Trim() : "Open MPI";
        if (rank == 0 && size > 1 && BoundToOneCpu() is { } cpus)
            Console.Error.WriteLine($"warning: this MPI rank is bound to CPU {cpus} alone (mpirun binds each rank to one core by default " +
                                    "for 2 ranks or fewer). .NET's JIT and GC threads then compete with the learner on that core, which measured several times slower " +
                                    "here: start the ranks with `mpirun --bind-to none` (or `--map-by slot:PE=N` for N cores each).");
        return new MpiCollective(rank, size, version, timeout ?? TimeSpan.FromMinutes(5));
    }

    // Open MPI's shared-memory transport copies large messages in one step through the kernel (CMA) when it can; in
    // containers that path measured 2.5× slower than copy-in/copy-out for gradient-sized messages (a 550 KB all-reduce at
    // 2 ranks: 300 µs vs 117 µs; 40 KB: 30 µs vs 13 µs), which cost a tenth of the data-parallel speed-up. So unless
    // the user chose (mpirun --mca btl_vader_single_copy_mechanism …, or the OMPI_MCA_ variable), take copy-in/copy-out.
    // The variable must be in the native environment before MPI_Init reads it.
    private const string SingleCopyVariable = "OMPI_MCA_btl_vader_single_copy_mechanism";

    private static void PreferCopyInCopyOut()
    {
        if (Environment.GetEnvironmentVariable(SingleCopyVariable) is not null) return;
        if (SetEnv(SingleCopyVariable, "none", 0) != 0) return; // not fatal: MPI runs with its own default
        Environment.SetEnvironmentVariable(SingleCopyVariable, "none");
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv([MarshalAs(UnmanagedType.LPStr)] string name, [MarshalAs(UnmanagedType.LPStr)] string value, int overwrite);

    // The CPU this process may run on, when it is one of several (Linux: Cpus_allowed_list in /proc/self/status).
    private static string? BoundToOneCpu()
    {
        try
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal));
            string? list = line?.Split(':', 2)[1].Trim();
            string online = File.Exists("/sys/devices/system/cpu/online") ? File.ReadAllText("/sys/devices/system/cpu/online").Trim() : "";
            return list is not null && !list.Contains(',', StringComparison.Ordinal) && !list.Contains('-', StringComparison.Ordinal) && online != list ? list : null;
        }
        catch (IOException) { return null; }
    }

    private static void Load()
    {
        if (_lib != IntPtr.Zero) return;
        string name = Environment.GetEnvironmentVariable("CLUSTERENV_MPI_LIB") is { Length: > 0 } custom ? custom : DefaultLibrary;
        if (!NativeLibrary.TryLoad(name, out var lib))
            throw new DllNotFoundException($"Could not load the MPI library '{name}'. Install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev), " +
                                           "or point CLUSTERENV_MPI_LIB at libmpi.so of an Open MPI 4.x installation. (MPICH is not supported: its handles are integers.)");
        _lib = lib;
        _comm = Export("ompi_mpi_comm_world");
        _float = Export("ompi_mpi_float");
        _double = Export("ompi_mpi_double");
        _byte = Export("ompi_mpi_byte");
        _sum = Export("ompi_mpi_op_sum");
        _max = Export("ompi_mpi_op_max");
        _min = Export("ompi_mpi_op_min");
        _init = (delegate* unmanaged<int*, byte***, int>)Export("MPI_Init");
        _initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        _finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        _commRank = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_rank");
        _commSize = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_size");
        _allreduce = (delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int>)Export("MPI_Allreduce");
        _bcast = (delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int>)Export("MPI_Bcast");
        _iallreduce = (delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, IntPtr*, int>)Export("MPI_Iallreduce");
        _testall = (delegate* unmanaged<int, IntPtr*, int*, void*, int>)Export("MPI_Testall");
        _waitall = (delegate* unmanaged<int, IntPtr*, void*, int>)Export("MPI_Waitall");
        _barrier = (delegate* unmanaged<IntPtr, int>)Export("MPI_Barrier");
        _abort = (delegate* unmanaged<IntPtr, int, int>)Export("MPI_Abort");
        _errorString = (delegate* unmanaged<int, byte*, int*, int>)Export("MPI_Error_string");
        _setErrhandler = (delegate* unmanaged<IntPtr, IntPtr, int>)Export("MPI_Comm_set_errhandler");
        _libraryVersion = (delegate* unmanaged<byte*, int*, int>)Export("MPI_Get_library_version");
    }

    private static IntPtr Export(string symbol) => NativeLibrary.TryGetExport(_lib, symbol, out var p) ? p
        : throw new EntryPointNotFoundException($"The MPI library has no '{symbol}': it is not Open MPI 4.x (set CLUSTERENV_MPI_LIB to Open MPI's libmpi.so.40).");

    private static void Check(int code, int rank, string call)
    {
        if (code == 0) return;
        string text = $"error {code}";
        if (_errorString != null)
        {
            byte* buf = stackalloc byte[512];
            int len = 0;
            if (_errorString(code, buf, &len) == 0) text = Encoding.ASCII.GetString(buf, Math.Max(0, Math.Min(len, 512)));
        }
        throw new CollectiveException($"{(rank >= 0 ? $"Rank {rank}: " : "")}{call} failed: {text}.");
    }

    /// <inheritdoc />
    public void AllReduce(Span<float> values, ReduceOp op)
    {
        Begin("MPI_Allreduce");
        fixed (float* p = values) Check(_allreduce((void*)1 /* MPI_IN_PLACE */, p, values.Length, _float, Op(op), _comm), Rank, "MPI_Allreduce");
        End();
        if (op == ReduceOp.Mean)
        {
            float inv = 1f / WorldSize;
            for (int i = 0; i < values.Length; i++) values[i] *= inv;
        }
    }

    /// <inheritdoc />
    public void AllReduce(Span<double> values, ReduceOp op)
    {
        Begin("MPI_Allreduce");
        fixed (double* p = values) Check(_allreduce((void*)1, p, values.Length, _double, Op(op), _comm), Rank, "MPI_Allreduce");
        End();
        if (op == ReduceOp.Mean)
            for (int i = 0; i < values.Length; i++) values[i] /= WorldSize;
    }

    // Non-blocking all-reduces in flight: their requests (Open MPI's are pointers), and each one's pinned buffer and range.
    private IntPtr[] _requests = new IntPtr[8];
    private (GCHandle Pin, int Start, int Length, ReduceOp Op)[] _inFlight = new (GCHandle, int, int, ReduceOp)[8];
    private int _inFlightCount;

    /// <inheritdoc />
    public void StartAllReduce(float[] buffer, int start, int length, ReduceOp op)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)start + (ulong)(uint)length, (ulong)buffer.Length, nameof(length));
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_inFlightCount == _requests.Length)
        {
            Array.Resize(ref _requests, _requests.Length * 2);
            Array.Resize(ref _inFlight, _inFlight.Length * 2);
        }
        var pin = GCHandle.Alloc(buffer, GCHandleType.Pinned); // MPI writes into it after this call returns
        float* p = (float*)pin.AddrOfPinnedObject() + start;
        IntPtr request;
        int code = _iallreduce((void*)1 /* MPI_IN_PLACE */, p, length, _float, Op(op), _comm, &request);
        if (code != 0)
        {
            pin.Free();
            Check(code, Rank, "MPI_Iallreduce");
        }
        _requests[_inFlightCount] = request;
        _inFlight[_inFlightCount++] = (pin, start, length, op);
    }

    /// <inheritdoc />
    public void ProgressAllReduces()
    {
        if (_inFlightCount == 0) return;
        int done;
        fixed (IntPtr* r = _requests) Check(_testall(_inFlightCount, r, &done, null /* MPI_STATUSES_IGNORE */), Rank, "MPI_Testall");
    }

    /// <inheritdoc />
    public void WaitAllReduces()
    {
        if (_inFlightCount == 0) return;
        Begin("MPI_Waitall (all-reduces started with MPI_Iallreduce)");
        try
        {
            fixed (IntPtr* r = _requests) Check(_waitall(_inFlightCount, r, null), Rank, "MPI_Waitall");
        }
        finally
        {
            End();
            for (int i = 0; i < _inFlightCount; i++)
            {
                var (pin, start, length, op) = _inFlight[i];
                if (op == ReduceOp.Mean)
                {
                    var values = new Span<float>((float*)pin.AddrOfPinnedObject() + start, length);
                    float inv = 1f / WorldSize;
                    for (int j = 0; j < values.Length; j++) values[j] *= inv;
                }
                pin.Free();
                _inFlight[i] = default;
            }
            _inFlightCount = 0;
        }
    }

    /// <inheritdoc />
    public void Broadcast(Span<float> values, int root)
    {
        Begin("MPI_Bcast");
        fixed (float* p = values) Check(_bcast(p, values.Length, _float, root, _comm), Rank, "MPI_Bcast");
        End();
    }

    /// <inheritdoc />
    public void Broadcast(Span<byte> bytes, int root)
    {
        Begin("MPI_Bcast");
        fixed (byte* p = bytes) Check(_bcast(p, bytes.Length, _byte, root, _comm), Rank, "MPI_Bcast");
        End();
    }

    /// <inheritdoc />
    public void Barrier()
    {
        Begin("MPI_Barrier");
        Check(_barrier(_comm), Rank, "MPI_Barrier");
        End();
    }

    private static IntPtr Op(ReduceOp op) => op switch { ReduceOp.Max => _max, ReduceOp.Min => _min, _ => _sum };

    private void Begin(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _callName = name;
        Volatile.Write(ref _callStarted, Stopwatch.GetTimestamp());
    }

    private void End() => Volatile.Write(ref _callStarted, 0);

    // A collective stuck past the timeout: a peer rank died or took another path. MPI offers no way to cancel it, so
    // say which rank waited on what, and abort the whole job (every rank exits) rather than hang.
    private void Watch()
    {
        long started = Volatile.Read(ref _callStarted);
        if (started == 0 || Stopwatch.GetElapsedTime(started) < Timeout) return;
        Console.Error.WriteLine($"Rank {Rank} of {WorldSize}: {_callName} did not complete within {Timeout.TotalSeconds:0.#} s; another rank died or stopped " +
                                "calling collectives. Aborting the job (MPI_Abort) instead of hanging.");
        Console.Error.Flush();
        _abort(_comm, 70);
    }

    /// <summary>Finalises MPI (after a barrier, so that no rank leaves while another still sends).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _watchdog.Dispose();
        try { Barrier(); } catch (CollectiveException) { }
        _disposed = true;
        int done;
        if (_finalized(&done) == 0 && done == 0) _finalize();
    }
}
