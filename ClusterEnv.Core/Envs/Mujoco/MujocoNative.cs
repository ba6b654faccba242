using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace ClusterEnv.Envs.Mujoco;

/// <summary>
/// The MuJoCo 2.2.2 C API (Debian's <c>libmujoco2.2.2</c>) through function pointers, as the MPI binding does.
/// </summary>
/// <remarks>
/// <para>
/// P/Invoke, not a C shim: the calls take and return plain pointers, and the handful of <c>mjModel</c>/<c>mjData</c>
/// fields the envs read are at fixed offsets for one library version. Those offsets are the constants in
/// <see cref="Layout"/>, written for 2.2.2 and guarded twice: <see cref="Load"/> refuses any other
/// <c>mj_version()</c>, and a test compiles <c>offsetof</c> against the installed headers with gcc and compares.
/// A shim would need a C compiler on every machine that runs the envs; this needs only the library.
/// </para>
/// <para>
/// MuJoCo's default error handler calls <c>exit()</c>. This binding installs its own, which records the message;
/// every call that can raise one checks and throws <see cref="MujocoException"/>. Warnings (an unstable
/// simulation, a full contact buffer) are counted in <c>mjData.warning</c> and printed by MuJoCo to stdout; they are
/// routed to stderr here so a worker's stdout stays clean.
/// </para>
/// </remarks>
internal static unsafe class MujocoNative
{
    /// <summary>The library version the layout constants describe (<c>mjVERSION_HEADER</c>).</summary>
    public const int Version = 222;

    /// <summary>Names tried in order; CLUSTERENV_MUJOCO_LIB overrides them.</summary>
    private static readonly string[] LibraryNames = ["libmujoco.so.2.2.2", "libmujoco.so"];

    /// <summary>Byte offsets of the fields read, in MuJoCo 2.2.2's <c>mjModel</c> and <c>mjData</c> (x86-64).</summary>
    internal static class Layout
    {
        public const int ModelNq = 0, ModelNv = 4, ModelNu = 8, ModelNa = 12, ModelNbody = 16, ModelNtendon = 116;
        public const int ModelTimestep = 232, ModelQpos0 = 1096, ModelBodyMass = 1240;
        public const int ModelActuatorCtrlLimited = 2744, ModelActuatorCtrlRange = 2792;
        public const int DataWarning = 24, DataTime = 40336, DataQpos = 40376, DataQvel = 40384, DataAct = 40392;
        public const int DataCtrl = 40408, DataXpos = 40480, DataXipos = 40504, DataCinert = 40616;
        public const int DataTenLength = 40664, DataTenVelocity = 40944, DataCvel = 40960;
        public const int DataQfrcActuator = 41088, DataCfrcExt = 41168;
        public const int WarningStatSize = 8, WarningCount = 8, WarningBadQacc = 6;

        /// <summary>Every constant by the C expression it stands for, for the layout test.</summary>
        public static IReadOnlyList<(string Expression, int Offset)> All =>
        [
            ("offsetof(mjModel, nq)", ModelNq), ("offsetof(mjModel, nv)", ModelNv), ("offsetof(mjModel, nu)", ModelNu),
            ("offsetof(mjModel, na)", ModelNa), ("offsetof(mjModel, nbody)", ModelNbody),
            ("offsetof(mjModel, ntendon)", ModelNtendon), ("offsetof(mjModel, opt.timestep)", ModelTimestep),
            ("offsetof(mjModel, qpos0)", ModelQpos0), ("offsetof(mjModel, body_mass)", ModelBodyMass),
            ("offsetof(mjModel, actuator_ctrllimited)", ModelActuatorCtrlLimited),
            ("offsetof(mjModel, actuator_ctrlrange)", ModelActuatorCtrlRange),
            ("offsetof(mjData, warning)", DataWarning), ("offsetof(mjData, time)", DataTime),
            ("offsetof(mjData, qpos)", DataQpos), ("offsetof(mjData, qvel)", DataQvel), ("offsetof(mjData, act)", DataAct),
            ("offsetof(mjData, ctrl)", DataCtrl), ("offsetof(mjData, xpos)", DataXpos), ("offsetof(mjData, xipos)", DataXipos),
            ("offsetof(mjData, cinert)", DataCinert), ("offsetof(mjData, ten_length)", DataTenLength),
            ("offsetof(mjData, ten_velocity)", DataTenVelocity), ("offsetof(mjData, cvel)", DataCvel),
            ("offsetof(mjData, qfrc_actuator)", DataQfrcActuator), ("offsetof(mjData, cfrc_ext)", DataCfrcExt),
            ("sizeof(mjWarningStat)", WarningStatSize), ("mjNWARNING", WarningCount), ("mjWARN_BADQACC", WarningBadQacc),
        ];
    }

    private static readonly object Gate = new();
    private static bool _loaded;
    private static string? _unavailable;

    private static delegate* unmanaged<byte*, void*, byte*, int, void*> _loadXml;
    private static delegate* unmanaged<void*, void> _deleteModel;
    private static delegate* unmanaged<void*, void*> _makeData;
    private static delegate* unmanaged<void*, void> _deleteData;
    private static delegate* unmanaged<void*, void*, void> _step, _forward, _resetData, _rnePostConstraint;
    private static delegate* unmanaged<void*, int, byte*, int> _name2id;

    [ThreadStatic] private static string? _pendingError;

    /// <summary>Why the library cannot be used here, or null when it can.</summary>
    public static string? UnavailableReason
    {
        get
        {
            lock (Gate)
            {
                if (!_loaded && _unavailable is null) _unavailable = TryLoad();
                return _unavailable;
            }
        }
    }

    /// <summary>Loads the library once, or throws <see cref="MujocoUnavailableException"/> saying what to install.</summary>
    public static void Load()
    {
        if (UnavailableReason is string reason) throw new MujocoUnavailableException(reason);
    }

    /// <summary>Finds a usable library among <paramref name="names"/>: null when one loads and is 2.2.2, else the reason.</summary>
    internal static string? Probe(IReadOnlyList<string> names) => Find(names, out _);

    private static string? Find(IReadOnlyList<string> names, out IntPtr lib)
    {
        lib = IntPtr.Zero;
        foreach (var name in names)
            if (NativeLibrary.TryLoad(name, out lib)) break;
        if (lib == IntPtr.Zero)
            return $"MuJoCo envs need the MuJoCo 2.2.2 C library ({string.Join(" or ", names)}), which was not found. " +
                   "On Debian 12 install it with `apt-get install libmujoco2.2.2`; elsewhere set CLUSTERENV_MUJOCO_LIB to the path of a MuJoCo 2.2.2 libmujoco.so.";
        if (!NativeLibrary.TryGetExport(lib, "mj_version", out var versionExport))
            return $"The library loaded as MuJoCo ({string.Join(" or ", names)}) has no mj_version; set CLUSTERENV_MUJOCO_LIB to a MuJoCo 2.2.2 libmujoco.so.";
        int v = ((delegate* unmanaged<int>)versionExport)();
        return v == Version ? null
            : $"MuJoCo envs are built for MuJoCo 2.2.2 (mj_version 222), but the library loaded reports {v}; " +
              "its structs have another layout. Install libmujoco2.2.2 or point CLUSTERENV_MUJOCO_LIB at a 2.2.2 build.";
    }

    private static string? TryLoad()
    {
        var names = Environment.GetEnvironmentVariable("CLUSTERENV_MUJOCO_LIB") is { Length: > 0 } custom ? [custom] : LibraryNames;
        if (Find(names, out var lib) is string reason) return reason;
        _loadXml = (delegate* unmanaged<byte*, void*, byte*, int, void*>)NativeLibrary.GetExport(lib, "mj_loadXML");
        _deleteModel = (delegate* unmanaged<void*, void>)NativeLibrary.GetExport(lib, "mj_deleteModel");
        _makeData = (delegate* unmanaged<void*, void*>)NativeLibrary.GetExport(lib, "mj_makeData");
        _deleteData = (delegate* unmanaged<void*, void>)NativeLibrary.GetExport(lib, "mj_deleteData");
        _step = (delegate* unmanaged<void*, void*, void>)NativeLibrary.GetExport(lib, "mj_step");
        _forward = (delegate* unmanaged<void*, void*, void>)NativeLibrary.GetExport(lib, "mj_forward");
        _resetData = (delegate* unmanaged<void*, void*, void>)NativeLibrary.GetExport(lib, "mj_resetData");
        _rnePostConstraint = (delegate* unmanaged<void*, void*, void>)NativeLibrary.GetExport(lib, "mj_rnePostConstraint");
        _name2id = (delegate* unmanaged<void*, int, byte*, int>)NativeLibrary.GetExport(lib, "mj_name2id");
        *(delegate* unmanaged<byte*, void>*)NativeLibrary.GetExport(lib, "mju_user_error") = &OnError;
        *(delegate* unmanaged<byte*, void>*)NativeLibrary.GetExport(lib, "mju_user_warning") = &OnWarning;
        _loaded = true;
        return null;
    }

    [UnmanagedCallersOnly]
    private static void OnError(byte* message) => _pendingError = Marshal.PtrToStringUTF8((IntPtr)message);

    [UnmanagedCallersOnly]
    private static void OnWarning(byte* message) => Console.Error.WriteLine($"MuJoCo warning: {Marshal.PtrToStringUTF8((IntPtr)message)}");

    private static void ThrowIfFailed(string call)
    {
        if (_pendingError is not string e) return;
        _pendingError = null;
        throw new MujocoException($"MuJoCo reported an error in {call}: {e}");
    }

    /// <summary>Compiles an MJCF file; throws with MuJoCo's own message when it does not compile.</summary>
    public static IntPtr LoadXml(string path)
    {
        Load();
        var error = new byte[1000];
        var name = Encoding.UTF8.GetBytes(path + "\0");
        void* model;
        fixed (byte* n = name, e = error) model = _loadXml(n, null, e, error.Length);
        ThrowIfFailed("mj_loadXML");
        if (model is null)
        {
            int end = Array.IndexOf(error, (byte)0);
            throw new MujocoException($"MuJoCo could not load the model '{path}': {Encoding.UTF8.GetString(error, 0, end < 0 ? error.Length : end)}");
        }
        return (IntPtr)model;
    }

    public static IntPtr MakeData(IntPtr model)
    {
        var d = _makeData((void*)model);
        ThrowIfFailed("mj_makeData");
        if (d is null) throw new MujocoException("mj_makeData could not allocate the simulation state (out of memory).");
        return (IntPtr)d;
    }

    public static void DeleteModel(IntPtr model) => _deleteModel((void*)model);

    public static void DeleteData(IntPtr data) => _deleteData((void*)data);

    public static void Step(IntPtr m, IntPtr d, int count)
    {
        for (int i = 0; i < count; i++) _step((void*)m, (void*)d);
        ThrowIfFailed("mj_step");
    }

    public static void Forward(IntPtr m, IntPtr d)
    {
        _forward((void*)m, (void*)d);
        ThrowIfFailed("mj_forward");
    }

    public static void ResetData(IntPtr m, IntPtr d)
    {
        _resetData((void*)m, (void*)d);
        ThrowIfFailed("mj_resetData");
    }

    public static void RnePostConstraint(IntPtr m, IntPtr d)
    {
        _rnePostConstraint((void*)m, (void*)d);
        ThrowIfFailed("mj_rnePostConstraint");
    }

    /// <summary>The id of the named object of <paramref name="type"/> (mjtObj), or -1.</summary>
    public static int NameToId(IntPtr m, int type, string name)
    {
        var bytes = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* b = bytes) return _name2id((void*)m, type, b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Int(IntPtr structure, int offset) => *(int*)((byte*)structure + offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Double(IntPtr structure, int offset) => *(double*)((byte*)structure + offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Span<double> Doubles(IntPtr structure, int offset, int length) =>
        new(*(double**)((byte*)structure + offset), length);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Span<byte> Bytes(IntPtr structure, int offset, int length) =>
        new(*(byte**)((byte*)structure + offset), length);
}

/// <summary>MuJoCo refused a model or reported an error while simulating.</summary>
public class MujocoException(string message) : Exception(message);

/// <summary>The MuJoCo library is missing or is not version 2.2.2; the message names what to install.</summary>
public sealed class MujocoUnavailableException(string message) : MujocoException(message);
