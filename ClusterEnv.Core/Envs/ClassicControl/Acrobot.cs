using ClusterEnv.Rendering;
using ClusterEnv.Spaces;

namespace ClusterEnv.Envs.ClassicControl;

/// <summary>
/// Acrobot-v1, faithful to Gymnasium's <c>AcrobotEnv</c> with the "book" dynamics: two links, torque −1 / 0 / +1 on
/// the middle joint, one RK4 step of dt = 0.2, angles wrapped to [−π, π], velocities bounded by 4π and 9π.
/// Reward −1 per step and 0 on the terminal step; terminates when −cos θ1 − cos(θ1 + θ2) &gt; 1.
/// </summary>
/// <remarks>
/// As in Gymnasium, the state drawn at reset is rounded to float32 (<c>.astype(np.float32)</c>) and the first
/// observation is computed from that float32 state in float32; after a step the state is float64.
/// </remarks>
public sealed class Acrobot : RenderedEnv
{
    private const double Dt = 0.2;
    private const double LinkLength1 = 1.0;
    private const double LinkMass1 = 1.0;
    private const double LinkMass2 = 1.0;
    private const double LinkComPos1 = 0.5;
    private const double LinkComPos2 = 0.5;
    private const double LinkMoi = 1.0;
    private const double MaxVel1 = 4 * Math.PI;
    private const double MaxVel2 = 9 * Math.PI;
    private static readonly double[] AvailTorque = [-1.0, 0.0, 1.0];

    private static readonly Box ObsSpace = new(
        [-1f, -1f, -1f, -1f, (float)-MaxVel1, (float)-MaxVel2],
        [1f, 1f, 1f, 1f, (float)MaxVel1, (float)MaxVel2]);

    private readonly Discrete _actionSpace = new(3);
    private readonly double[] _s = new double[4];
    private bool _stateIsFloat32;

    private const int ScreenDim = 500;
    private static readonly Rgb LinkColour = new(0, 204, 204), JointColour = new(204, 204, 0);
    private bool _hasState;

    /// <summary>Creates the env; <paramref name="renderMode"/> "rgb_array" draws 500×500 frames (<see cref="IRenderable"/>).</summary>
    public Acrobot(string? renderMode = null) : base(renderMode, ScreenDim, ScreenDim) { }

    internal static Acrobot Create(IReadOnlyDictionary<string, object>? kwargs)
    {
        CheckKwargs("Acrobot", kwargs, "render_mode");
        return new Acrobot(RenderModeArg(kwargs));
    }

    /// <inheritdoc />
    protected override bool HasState => _hasState;

    /// <inheritdoc />
    internal override void Draw(Canvas canvas)
    {
        const double LinkLength2 = 1.0;
        double bound = LinkLength1 + LinkLength2 + 0.2, scale = ScreenDim / (bound * 2), offset = ScreenDim / 2.0;
        canvas.Fill(Rgb.White);
        canvas.Line(-2.2 * scale + offset, 1 * scale + offset, 2.2 * scale + offset, 1 * scale + offset, Rgb.Black);
        double p1x = LinkLength1 * Math.Sin(_s[0]) * scale, p1y = -LinkLength1 * Math.Cos(_s[0]) * scale;
        Span<(double X, double Y)> link = stackalloc (double, double)[4];
        for (int j = 0; j < 2; j++)
        {
            double x = (j == 0 ? 0 : p1x) + offset, y = (j == 0 ? 0 : p1y) + offset;
            double th = j == 0 ? _s[0] - Math.PI / 2 : _s[0] + _s[1] - Math.PI / 2;
            double len = (j == 0 ? LinkLength1 : LinkLength2) * scale, l = 0, r = len, t = 0.1 * scale, b = -0.1 * scale;
            link[0] = (l, b); link[1] = (l, t); link[2] = (r, t); link[3] = (r, b);
            foreach (ref var p in link)
            {
                var (rx, ry) = Geometry.Rotate(p.X, p.Y, th);
                p = (rx + x, ry + y);
            }
            canvas.AaPolygon(link, LinkColour);
            canvas.FilledPolygon(link, LinkColour);
            canvas.AaCircle((int)x, (int)y, (int)(0.1 * scale), JointColour);
            canvas.FilledCircle((int)x, (int)y, (int)(0.1 * scale), JointColour);
        }
    }

    /// <inheritdoc />
    public override Space ObservationSpace => ObsSpace;

    /// <inheritdoc />
    public override Space ActionSpace => _actionSpace;

    /// <summary>The physical state (θ1, θ2, θ̇1, θ̇2); setting it makes it a float64 state.</summary>
    public (double Theta1, double Theta2, double DTheta1, double DTheta2) State
    {
        get => (_s[0], _s[1], _s[2], _s[3]);
        set
        {
            (_s[0], _s[1], _s[2], _s[3]) = value;
            _stateIsFloat32 = false;
        }
    }

    /// <inheritdoc />
    protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options)
    {
        var (low, high) = ResetBounds(options, -0.1, 0.1);
        for (int i = 0; i < 4; i++) _s[i] = (float)NpRandom.Uniform(low, high);
        _stateIsFloat32 = true;
        _hasState = true;
        WriteObservation(observation);
        return default;
    }

    /// <inheritdoc />
    protected override StepResult StepCore(EnvAction action, Span<float> observation)
    {
        double torque = AvailTorque[DiscreteAction(action)];
        Rk4(_s, torque);
        _s[0] = Wrap(_s[0], -Math.PI, Math.PI);
        _s[1] = Wrap(_s[1], -Math.PI, Math.PI);
        _s[2] = Bound(_s[2], -MaxVel1, MaxVel1);
        _s[3] = Bound(_s[3], -MaxVel2, MaxVel2);
        _stateIsFloat32 = false;

        bool terminated = -Math.Cos(_s[0]) - Math.Cos(_s[1] + _s[0]) > 1.0;
        WriteObservation(observation);
        return new StepResult(terminated ? 0.0 : -1.0, terminated, false, default);
    }

    private void WriteObservation(Span<float> o)
    {
        if (_stateIsFloat32)
        {
            // NumPy evaluates cos/sin of a float32 scalar in float32.
            float t0 = (float)_s[0], t1 = (float)_s[1];
            o[0] = MathF.Cos(t0);
            o[1] = MathF.Sin(t0);
            o[2] = MathF.Cos(t1);
            o[3] = MathF.Sin(t1);
        }
        else
        {
            o[0] = (float)Math.Cos(_s[0]);
            o[1] = (float)Math.Sin(_s[0]);
            o[2] = (float)Math.Cos(_s[1]);
            o[3] = (float)Math.Sin(_s[1]);
        }
        o[4] = (float)_s[2];
        o[5] = (float)_s[3];
    }

    // One classical Runge–Kutta step over [0, Dt] of the state augmented with the (constant) torque.
    private static void Rk4(double[] y, double a)
    {
        const double dt = Dt - 0;
        const double dt2 = dt / 2.0;
        Span<double> k1 = stackalloc double[4], k2 = stackalloc double[4], k3 = stackalloc double[4], k4 = stackalloc double[4];
        Span<double> tmp = stackalloc double[4];
        Dsdt(y, a, k1);
        for (int i = 0; i < 4; i++) tmp[i] = y[i] + dt2 * k1[i];
        Dsdt(tmp, a, k2);
        for (int i = 0; i < 4; i++) tmp[i] = y[i] + dt2 * k2[i];
        Dsdt(tmp, a, k3);
        for (int i = 0; i < 4; i++) tmp[i] = y[i] + dt * k3[i];
        Dsdt(tmp, a, k4);
        for (int i = 0; i < 4; i++) y[i] = y[i] + dt / 6.0 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
    }

    // The book's equations of motion, in Gymnasium's order of operations. Its `x**2` on NumPy float64 scalars
    // calls C pow(), which is not always x*x to the last bit, so Sq uses Math.Pow (libm pow) as well.
    private static void Dsdt(ReadOnlySpan<double> s, double a, Span<double> ds)
    {
        const double m1 = LinkMass1, m2 = LinkMass2, l1 = LinkLength1, lc1 = LinkComPos1, lc2 = LinkComPos2;
        const double I1 = LinkMoi, I2 = LinkMoi, g = 9.8;
        double theta1 = s[0], theta2 = s[1], dtheta1 = s[2], dtheta2 = s[3];
        double d1 = m1 * Sq(lc1) + m2 * (Sq(l1) + Sq(lc2) + 2 * l1 * lc2 * Math.Cos(theta2)) + I1 + I2;
        double d2 = m2 * (Sq(lc2) + l1 * lc2 * Math.Cos(theta2)) + I2;
        double phi2 = m2 * lc2 * g * Math.Cos(theta1 + theta2 - Math.PI / 2.0);
        double phi1 = -m2 * l1 * lc2 * Sq(dtheta2) * Math.Sin(theta2)
                      - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * Math.Sin(theta2)
                      + (m1 * lc1 + m2 * l1) * g * Math.Cos(theta1 - Math.PI / 2)
                      + phi2;
        double ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * Sq(dtheta1) * Math.Sin(theta2) - phi2)
                          / (m2 * Sq(lc2) + I2 - Sq(d2) / d1);
        double ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
        ds[0] = dtheta1;
        ds[1] = dtheta2;
        ds[2] = ddtheta1;
        ds[3] = ddtheta2;
    }

    private static double Sq(double x) => Math.Pow(x, 2);

    private static double Wrap(double x, double m, double M)
    {
        double diff = M - m;
        while (x > M) x -= diff;
        while (x < m) x += diff;
        return x;
    }

    private static double Bound(double x, double m, double M)
    {
        double lo = m > x ? m : x; // Python's max(x, m) keeps x unless m is strictly larger
        return M < lo ? M : lo;
    }
}
