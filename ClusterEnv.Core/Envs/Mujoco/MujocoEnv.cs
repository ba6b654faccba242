using ClusterEnv.Spaces;

namespace ClusterEnv.Envs.Mujoco;

/// <summary>
/// Base of the MuJoCo envs, as Gymnasium's <c>MujocoEnv</c>: a compiled model (<see cref="Simulation"/>), the
/// initial pose and velocities read once after loading, <c>frame_skip</c> physics steps per env step
/// (<see cref="Dt"/> = timestep × frame_skip), the action space from the actuators' control ranges (float32), and a
/// float64 observation Box of unbounded values.
/// </summary>
/// <remarks>
/// Reset: <c>mj_resetData</c>, then the subclass's noise around the initial state (<see cref="SetState"/> runs
/// <c>mj_forward</c>). Step: the action is written to <c>ctrl</c> unclipped (MuJoCo clamps limited controls itself,
/// and the control costs are taken on the action as given), <c>mj_step</c> runs frame_skip times, then
/// <c>mj_rnePostConstraint</c> so the contact forces (<c>cfrc_ext</c>) are current, as Gymnasium 1.x does.
/// Uniform noise follows NumPy's <c>Generator.uniform</c> stream exactly; the standard-normal noise of HalfCheetah's
/// and Ant's velocities is Box–Muller (<see cref="Common.Rng.NextGaussian"/>), not NumPy's ziggurat.
/// </remarks>
public abstract class MujocoEnv : EnvBase
{
    private readonly Box _actionSpace;
    private Box? _observationSpace;

    /// <summary>Loads <paramref name="xmlFile"/> (a built-in model name or a path; see <see cref="MujocoSimulation.Load"/>).</summary>
    protected MujocoEnv(string xmlFile, int frameSkip, double resetNoiseScale)
    {
        if (frameSkip < 1) throw new ArgumentOutOfRangeException(nameof(frameSkip), frameSkip, "frame_skip must be at least 1 (physics steps per env step).");
        if (!(resetNoiseScale >= 0)) throw new ArgumentOutOfRangeException(nameof(resetNoiseScale), resetNoiseScale, "reset_noise_scale must be a number >= 0.");
        FrameSkip = frameSkip;
        ResetNoiseScale = resetNoiseScale;
        Simulation = MujocoSimulation.Load(xmlFile);
        try
        {
            InitQpos = Simulation.Qpos.ToArray();
            InitQvel = Simulation.Qvel.ToArray();
            int nu = Simulation.Nu;
            if (nu == 0) throw new ArgumentException($"The MuJoCo model '{Simulation.Source}' has no actuators, so there is nothing to act on.");
            var range = Simulation.ActuatorCtrlRange;
            var low = new float[nu];
            var high = new float[nu];
            for (int i = 0; i < nu; i++) (low[i], high[i]) = ((float)range[2 * i], (float)range[2 * i + 1]);
            _actionSpace = new Box(low, high);
        }
        catch
        {
            Simulation.Dispose();
            throw;
        }
    }

    /// <summary>The model and its state.</summary>
    public MujocoSimulation Simulation { get; }

    /// <summary>Physics steps per env step.</summary>
    public int FrameSkip { get; }

    /// <summary>Scale of the noise added to the initial state at reset.</summary>
    public double ResetNoiseScale { get; }

    /// <summary>Seconds per env step: timestep × frame_skip.</summary>
    public double Dt => Simulation.Timestep * FrameSkip;

    /// <summary>The pose and velocities after loading (Gymnasium's <c>init_qpos</c>, <c>init_qvel</c>).</summary>
    protected double[] InitQpos { get; }

    /// <inheritdoc cref="InitQpos"/>
    protected double[] InitQvel { get; }

    /// <summary>Length of the observation vector for this model and these options.</summary>
    protected abstract int ObservationSize { get; }

    /// <inheritdoc />
    public override Space ObservationSpace => _observationSpace ??= new Box(double.NegativeInfinity, double.PositiveInfinity, [ObservationSize], DType.Float64);

    /// <inheritdoc />
    public override Space ActionSpace => _actionSpace;

    /// <summary>Sets positions and velocities and runs <c>mj_forward</c> (Gymnasium's <c>set_state</c>).</summary>
    protected void SetState(ReadOnlySpan<double> qpos, ReadOnlySpan<double> qvel)
    {
        qpos.CopyTo(Simulation.Qpos);
        qvel.CopyTo(Simulation.Qvel);
        Simulation.Forward();
    }

    /// <summary>Writes the observation of the current state.</summary>
    protected abstract void WriteObservation(Span<float> observation);

    /// <summary>What <c>Reset</c> puts in <c>info</c> (Gymnasium's <c>_get_reset_info</c>).</summary>
    protected abstract Dictionary<string, object> ResetInfo();

    /// <summary>Whether the reset noise on velocities is s·N(0, 1) (HalfCheetah, Ant) rather than U(−s, s).</summary>
    protected virtual bool GaussianVelocityNoise => false;

    /// <summary>x, y and their distance from the origin, for the free-floating bodies' <c>info</c>.</summary>
    protected Dictionary<string, object> PositionInfo()
    {
        var q = Simulation.Qpos;
        return new Dictionary<string, object> { ["x_position"] = q[0], ["y_position"] = q[1], ["distance_from_origin"] = Math.Sqrt(q[0] * q[0] + q[1] * q[1]) };
    }

    /// <summary><c>mj_resetData</c>, the noise around the initial state (Gymnasium's <c>reset_model</c>), the observation.</summary>
    protected sealed override EnvInfo ResetCore(Span<float> observation, ResetOptions? options)
    {
        Simulation.ResetData();
        ResetWithNoise(GaussianVelocityNoise);
        WriteObservation(observation);
        return new EnvInfo { Extra = ResetInfo() };
    }

    /// <summary>
    /// Gymnasium's usual <c>reset_model</c>: qpos += U(−s, s) per coordinate, then qvel += U(−s, s), or
    /// s·N(0, 1) when <paramref name="gaussianVelocity"/>.
    /// </summary>
    private void ResetWithNoise(bool gaussianVelocity)
    {
        double s = ResetNoiseScale;
        var qpos = Simulation.Qpos;
        var qvel = Simulation.Qvel;
        for (int i = 0; i < qpos.Length; i++) qpos[i] = InitQpos[i] + NpRandom.Uniform(-s, s);
        for (int i = 0; i < qvel.Length; i++) qvel[i] = InitQvel[i] + (gaussianVelocity ? s * NpRandom.NextGaussian() : NpRandom.Uniform(-s, s));
        Simulation.Forward();
    }

    /// <summary>Writes the action to <c>ctrl</c> and advances <see cref="FrameSkip"/> physics steps.</summary>
    protected void DoSimulation(ReadOnlySpan<float> action)
    {
        var ctrl = Simulation.Ctrl;
        for (int i = 0; i < ctrl.Length; i++) ctrl[i] = action[i];
        Simulation.Step(FrameSkip);
        Simulation.RnePostConstraint();
    }

    /// <summary>The planar bodies' step: simulates, writes the observation, and returns ẋ of the root (qpos[0]) over the step.</summary>
    protected double SimulateAlongX(ReadOnlySpan<float> action, Span<float> observation)
    {
        double before = Simulation.Qpos[0];
        DoSimulation(action);
        WriteObservation(observation);
        return (Simulation.Qpos[0] - before) / Dt;
    }

    /// <summary>Σ aᵢ² of the action, in float64 as NumPy sums the squares of a float32 action promoted by the weight.</summary>
    protected static double SumOfSquares(ReadOnlySpan<float> action)
    {
        double sum = 0;
        for (int i = 0; i < action.Length; i++) sum += (double)action[i] * action[i];
        return sum;
    }

    /// <summary>Copies <paramref name="values"/> into the observation from <paramref name="offset"/>, clipped to ±<paramref name="clip"/> when given.</summary>
    protected static int Write(Span<float> observation, int offset, ReadOnlySpan<double> values, double clip = double.PositiveInfinity)
    {
        for (int i = 0; i < values.Length; i++) observation[offset + i] = (float)Math.Clamp(values[i], -clip, clip);
        return offset + values.Length;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing) => Simulation.Dispose();

    /// <summary>Reads an integer constructor argument, or the default.</summary>
    protected static int IntArg(IReadOnlyDictionary<string, object>? kwargs, string name, int fallback) =>
        kwargs is not null && kwargs.TryGetValue(name, out var v)
            ? v switch
            {
                int i => i,
                long l when l is >= int.MinValue and <= int.MaxValue => (int)l,
                double d when d == Math.Floor(d) && Math.Abs(d) < int.MaxValue => (int)d,
                _ => throw new ArgumentException($"Argument '{name}' must be an integer, got {v} ({v?.GetType().Name})."),
            }
            : fallback;

    /// <summary>Reads a string constructor argument, or the default.</summary>
    protected static string StringArg(IReadOnlyDictionary<string, object>? kwargs, string name, string fallback) =>
        kwargs is not null && kwargs.TryGetValue(name, out var v)
            ? v as string ?? throw new ArgumentException($"Argument '{name}' must be a string, got {v} ({v?.GetType().Name}).")
            : fallback;

    /// <summary>Reads a (low, high) pair: a tuple or a list of two numbers, or the default.</summary>
    protected static (double Low, double High) RangeArg(IReadOnlyDictionary<string, object>? kwargs, string name, (double, double) fallback)
    {
        if (kwargs is null || !kwargs.TryGetValue(name, out var v)) return fallback;
        static double Num(object? o) => o switch { double d => d, float f => f, int i => i, long l => l, _ => double.NaN };
        double[] pair = v switch
        {
            ValueTuple<double, double> t => [t.Item1, t.Item2],
            double[] d => d,
            float[] f => Array.ConvertAll(f, x => (double)x),
            System.Collections.IEnumerable e and not string => e.Cast<object?>().Select(Num).ToArray(),
            _ => [],
        };
        if (pair.Length != 2 || double.IsNaN(pair[0]) || double.IsNaN(pair[1]) || pair[0] > pair[1])
            throw new ArgumentException($"Argument '{name}' must be a (low, high) pair of numbers with low <= high, got {v}.");
        return (pair[0], pair[1]);
    }

    /// <summary>Refuses <c>render_mode</c>: MuJoCo's renderer needs an OpenGL context this library does not create.</summary>
    protected static void RefuseRendering(string envName, IReadOnlyDictionary<string, object>? kwargs)
    {
        if (kwargs is not null && kwargs.TryGetValue("render_mode", out var mode) && mode is not null)
            throw new ArgumentException($"{envName} does not render (render_mode={mode}): MuJoCo draws through OpenGL, which this library does not set up. Leave render_mode unset.");
    }

    /// <summary>The arguments every MuJoCo env takes, beside its own.</summary>
    protected static readonly string[] CommonArgs = ["xml_file", "frame_skip", "reset_noise_scale", "exclude_current_positions_from_observation", "render_mode"];
}
