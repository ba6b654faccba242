using System.Reflection;

namespace ClusterEnv.Envs.Mujoco;

/// <summary>
/// One compiled MuJoCo model and its simulation state (<c>mjModel</c> + <c>mjData</c>), with the arrays the
/// locomotion envs read as spans over MuJoCo's own memory (no copies). Not thread-safe; one per env.
/// </summary>
public sealed class MujocoSimulation : IDisposable
{
    private const int ObjBody = 1; // mjOBJ_BODY

    private IntPtr _model, _data;

    private MujocoSimulation(IntPtr model, string source)
    {
        _model = model;
        Source = source;
        try { _data = MujocoNative.MakeData(model); }
        catch { MujocoNative.DeleteModel(model); throw; }
        Nq = MujocoNative.Int(model, MujocoNative.Layout.ModelNq);
        Nv = MujocoNative.Int(model, MujocoNative.Layout.ModelNv);
        Nu = MujocoNative.Int(model, MujocoNative.Layout.ModelNu);
        Na = MujocoNative.Int(model, MujocoNative.Layout.ModelNa);
        Nbody = MujocoNative.Int(model, MujocoNative.Layout.ModelNbody);
        Ntendon = MujocoNative.Int(model, MujocoNative.Layout.ModelNtendon);
        Timestep = MujocoNative.Double(model, MujocoNative.Layout.ModelTimestep);
    }

    /// <summary>Names of the models this library carries (<c>half_cheetah.xml</c>, ...), usable as <c>xml_file</c>.</summary>
    public static IReadOnlyList<string> BuiltInModels { get; } = typeof(MujocoSimulation).Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal))
        .Select(n => n[ResourcePrefix.Length..]).Order(StringComparer.Ordinal).ToArray();

    private const string ResourcePrefix = "ClusterEnv.Mujoco.Models.";

    /// <summary>Whether MuJoCo 2.2.2 can be loaded here (see <see cref="UnavailableReason"/>).</summary>
    public static bool IsAvailable => MujocoNative.UnavailableReason is null;

    /// <summary>Why MuJoCo cannot be used here (what to install), or null when it can.</summary>
    public static string? UnavailableReason => MujocoNative.UnavailableReason;

    /// <summary>
    /// Loads a model as Gymnasium's <c>expand_model_path</c> resolves <c>xml_file</c>: a path starting with
    /// <c>/</c> or <c>.</c> is used as it is, <c>~</c> is the home folder, and a bare name is one of
    /// <see cref="BuiltInModels"/> (where Gymnasium looks in its own assets folder).
    /// </summary>
    public static MujocoSimulation Load(string xmlFile)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(xmlFile);
        MujocoNative.Load();
        if (xmlFile.StartsWith('/') || xmlFile.StartsWith('.') || xmlFile.StartsWith('~'))
        {
            string path = xmlFile.StartsWith('~')
                ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), xmlFile[1..].TrimStart('/'))
                : xmlFile;
            if (!File.Exists(path))
                throw new FileNotFoundException($"The MuJoCo model file '{path}' does not exist; pass the path of an MJCF .xml file, or one of the built-in models: {string.Join(", ", BuiltInModels)}.", path);
            return new MujocoSimulation(MujocoNative.LoadXml(Path.GetFullPath(path)), path);
        }
        using var stream = typeof(MujocoSimulation).Assembly.GetManifestResourceStream(ResourcePrefix + xmlFile)
            ?? throw new ArgumentException($"'{xmlFile}' is not a built-in MuJoCo model (those are: {string.Join(", ", BuiltInModels)}). " +
                                           "To load your own model, give its path starting with '/', './' or '~/' (e.g. Gymnasium's assets folder).");
        // mj_loadXML reads a file; the built-in models have no relative includes, so a private temporary copy will do.
        string temp = Path.Combine(Path.GetTempPath(), $"clusterenv-mujoco-{Environment.ProcessId}-{Guid.NewGuid():N}-{xmlFile}");
        try
        {
            using (var file = File.Create(temp)) stream.CopyTo(file);
            return new MujocoSimulation(MujocoNative.LoadXml(temp), xmlFile);
        }
        finally { File.Delete(temp); }
    }

    /// <summary>The model's origin: a built-in model's name or the file's path.</summary>
    public string Source { get; }

    /// <summary>Generalised coordinates (<c>nq</c>), degrees of freedom (<c>nv</c>), actuators (<c>nu</c>), activations (<c>na</c>), bodies including the world (<c>nbody</c>), tendons.</summary>
    public int Nq { get; }

    /// <inheritdoc cref="Nq"/>
    public int Nv { get; }

    /// <inheritdoc cref="Nq"/>
    public int Nu { get; }

    /// <inheritdoc cref="Nq"/>
    public int Na { get; }

    /// <inheritdoc cref="Nq"/>
    public int Nbody { get; }

    /// <inheritdoc cref="Nq"/>
    public int Ntendon { get; }

    /// <summary>The physics step (<c>opt.timestep</c>), seconds.</summary>
    public double Timestep { get; }

    private IntPtr M => _model != IntPtr.Zero ? _model : throw new ObjectDisposedException(nameof(MujocoSimulation));

    private IntPtr D => _data != IntPtr.Zero ? _data : throw new ObjectDisposedException(nameof(MujocoSimulation));

    /// <summary>The reference pose <c>qpos0</c>.</summary>
    public ReadOnlySpan<double> Qpos0 => MujocoNative.Doubles(M, MujocoNative.Layout.ModelQpos0, Nq);

    /// <summary>Body masses (<c>nbody</c>; the world's is 0).</summary>
    public ReadOnlySpan<double> BodyMass => MujocoNative.Doubles(M, MujocoNative.Layout.ModelBodyMass, Nbody);

    /// <summary>Control ranges, (low, high) per actuator.</summary>
    public ReadOnlySpan<double> ActuatorCtrlRange => MujocoNative.Doubles(M, MujocoNative.Layout.ModelActuatorCtrlRange, 2 * Nu);

    /// <summary>Whether each actuator's control is clamped to its range.</summary>
    public ReadOnlySpan<byte> ActuatorCtrlLimited => MujocoNative.Bytes(M, MujocoNative.Layout.ModelActuatorCtrlLimited, Nu);

    /// <summary>Simulation time, seconds.</summary>
    public double Time => MujocoNative.Double(D, MujocoNative.Layout.DataTime);

    /// <summary>Positions (<c>nq</c>).</summary>
    public Span<double> Qpos => MujocoNative.Doubles(D, MujocoNative.Layout.DataQpos, Nq);

    /// <summary>Velocities (<c>nv</c>).</summary>
    public Span<double> Qvel => MujocoNative.Doubles(D, MujocoNative.Layout.DataQvel, Nv);

    /// <summary>Actuator activations (<c>na</c>).</summary>
    public Span<double> Act => MujocoNative.Doubles(D, MujocoNative.Layout.DataAct, Na);

    /// <summary>Controls (<c>nu</c>).</summary>
    public Span<double> Ctrl => MujocoNative.Doubles(D, MujocoNative.Layout.DataCtrl, Nu);

    /// <summary>Body frame positions, 3 per body.</summary>
    public ReadOnlySpan<double> Xpos => MujocoNative.Doubles(D, MujocoNative.Layout.DataXpos, 3 * Nbody);

    /// <summary>Body centre-of-mass positions, 3 per body.</summary>
    public ReadOnlySpan<double> Xipos => MujocoNative.Doubles(D, MujocoNative.Layout.DataXipos, 3 * Nbody);

    /// <summary>Com-based body inertias, 10 per body.</summary>
    public ReadOnlySpan<double> Cinert => MujocoNative.Doubles(D, MujocoNative.Layout.DataCinert, 10 * Nbody);

    /// <summary>Com-based body velocities, 6 per body.</summary>
    public ReadOnlySpan<double> Cvel => MujocoNative.Doubles(D, MujocoNative.Layout.DataCvel, 6 * Nbody);

    /// <summary>Actuator forces in joint space (<c>nv</c>).</summary>
    public ReadOnlySpan<double> QfrcActuator => MujocoNative.Doubles(D, MujocoNative.Layout.DataQfrcActuator, Nv);

    /// <summary>Com-based external forces on each body, 6 per body (filled by <see cref="RnePostConstraint"/>).</summary>
    public ReadOnlySpan<double> CfrcExt => MujocoNative.Doubles(D, MujocoNative.Layout.DataCfrcExt, 6 * Nbody);

    /// <summary>Tendon lengths and velocities.</summary>
    public ReadOnlySpan<double> TenLength => MujocoNative.Doubles(D, MujocoNative.Layout.DataTenLength, Ntendon);

    /// <inheritdoc cref="TenLength"/>
    public ReadOnlySpan<double> TenVelocity => MujocoNative.Doubles(D, MujocoNative.Layout.DataTenVelocity, Ntendon);

    /// <summary>How many times MuJoCo found a NaN, infinity or huge value in the accelerations and reset the state.</summary>
    public int UnstableCount => MujocoNative.Int(D, MujocoNative.Layout.DataWarning + MujocoNative.Layout.WarningBadQacc * MujocoNative.Layout.WarningStatSize + 4);

    /// <summary>The id of a named body, or an exception naming the model.</summary>
    public int BodyId(string name)
    {
        int id = MujocoNative.NameToId(M, ObjBody, name);
        return id >= 0 ? id : throw new ArgumentException($"The MuJoCo model '{Source}' has no body named '{name}'.");
    }

    /// <summary><c>mj_step</c> <paramref name="count"/> times.</summary>
    public void Step(int count = 1) => MujocoNative.Step(M, D, count);

    /// <summary><c>mj_forward</c>: positions, velocities and forces from the state, without integrating.</summary>
    public void Forward() => MujocoNative.Forward(M, D);

    /// <summary><c>mj_resetData</c>: the state at <see cref="Qpos0"/>, zero velocities, time 0.</summary>
    public void ResetData() => MujocoNative.ResetData(M, D);

    /// <summary><c>mj_rnePostConstraint</c>: fills <see cref="CfrcExt"/> (and <c>cacc</c>, <c>cfrc_int</c>).</summary>
    public void RnePostConstraint() => MujocoNative.RnePostConstraint(M, D);

    /// <summary>Frees MuJoCo's memory.</summary>
    public void Dispose()
    {
        if (_data != IntPtr.Zero) { MujocoNative.DeleteData(_data); _data = IntPtr.Zero; }
        if (_model != IntPtr.Zero) { MujocoNative.DeleteModel(_model); _model = IntPtr.Zero; }
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees MuJoCo's memory if <see cref="Dispose"/> was not called.</summary>
    ~MujocoSimulation()
    {
        if (_data != IntPtr.Zero) MujocoNative.DeleteData(_data);
        if (_model != IntPtr.Zero) MujocoNative.DeleteModel(_model);
    }
}
