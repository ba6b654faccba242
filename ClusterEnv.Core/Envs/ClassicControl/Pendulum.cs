using ClusterEnv.Rendering;
using ClusterEnv.Spaces;

namespace ClusterEnv.Envs.ClassicControl;

/// <summary>
/// Pendulum-v1, faithful to Gymnasium's <c>PendulumEnv</c>: torque clipped to ±2, θ̇ += (3g/(2l)·sin θ + 3/(ml²)·u)·dt
/// clipped to ±8, θ += θ̇·dt with dt = 0.05; reward −(norm(θ)² + 0.1·θ̇² + 0.001·u²) on the state before the
/// update. Never terminates (the registry's time limit truncates at 200 steps).
/// </summary>
/// <remarks>
/// The torque is float32 as in Gymnasium; the terms <c>3.0·u</c> and <c>0.001·u²</c> are float32 products under
/// NumPy 2's promotion rules (NEP 50), which this class reproduces.
/// </remarks>
public sealed class Pendulum : RenderedEnv
{
    private const double MaxSpeed = 8;
    private const float MaxTorque = 2.0f;
    private const double Dt = 0.05;
    private const double M = 1.0;
    private const double L = 1.0;
    private const double DefaultX = Math.PI;
    private const double DefaultY = 1.0;

    private static readonly Box ObsSpace = new([-1f, -1f, (float)-MaxSpeed], [1f, 1f, (float)MaxSpeed]);
    private static readonly Box ActSpace = new(-MaxTorque, MaxTorque, [1]);

    private readonly double _g;
    private double _theta, _thetaDot;

    private const int ScreenDim = 500;
    private static readonly Rgb RodColour = new(204, 77, 77);
    private bool _hasState;

    /// <summary>Creates the env with gravity <paramref name="g"/> (Gymnasium's default 10.0).</summary>
    /// <param name="g">Gravity.</param>
    /// <param name="renderMode">"rgb_array" to draw 500×500 frames (<see cref="IRenderable"/>; without Gymnasium's torque arrow, which is an image file there), or null.</param>
    public Pendulum(double g = 10.0, string? renderMode = null) : base(renderMode, ScreenDim, ScreenDim) => _g = g;

    internal static Pendulum Create(IReadOnlyDictionary<string, object>? kwargs)
    {
        CheckKwargs("Pendulum", kwargs, "g", "render_mode");
        return new Pendulum(DoubleArg(kwargs, "g", 10.0), RenderModeArg(kwargs));
    }

    /// <inheritdoc />
    protected override bool HasState => _hasState;

    /// <inheritdoc />
    internal override void Draw(Canvas canvas)
    {
        const double Bound = 2.2;
        double scale = ScreenDim / (Bound * 2), rodLength = 1 * scale, rodWidth = 0.2 * scale;
        const int Offset = ScreenDim / 2;
        canvas.Fill(Rgb.White);
        double l = 0, r = rodLength, t = rodWidth / 2, b = -rodWidth / 2;
        Span<(double X, double Y)> rod = [(l, b), (l, t), (r, t), (r, b)];
        foreach (ref var p in rod)
        {
            var (x, y) = Geometry.Rotate(p.X, p.Y, _theta + Math.PI / 2);
            p = (x + Offset, y + Offset);
        }
        canvas.AaPolygon(rod, RodColour);
        canvas.FilledPolygon(rod, RodColour);
        canvas.AaCircle(Offset, Offset, (int)(rodWidth / 2), RodColour);
        canvas.FilledCircle(Offset, Offset, (int)(rodWidth / 2), RodColour);
        var (ex, ey) = Geometry.Rotate(rodLength, 0, _theta + Math.PI / 2);
        canvas.AaCircle((int)(ex + Offset), (int)(ey + Offset), (int)(rodWidth / 2), RodColour);
        canvas.FilledCircle((int)(ex + Offset), (int)(ey + Offset), (int)(rodWidth / 2), RodColour);
        canvas.AaCircle(Offset, Offset, (int)(0.05 * scale), Rgb.Black);
        canvas.FilledCircle(Offset, Offset, (int)(0.05 * scale), Rgb.Black);
    }

    /// <inheritdoc />
    public override Space ObservationSpace => ObsSpace;

    /// <inheritdoc />
    public override Space ActionSpace => ActSpace;

    /// <summary>The float64 state (θ, θ̇).</summary>
    public (double Theta, double ThetaDot) State
    {
        get => (_theta, _thetaDot);
        set => (_theta, _thetaDot) = value;
    }

    /// <inheritdoc />
    protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options)
    {
        double x = DefaultX, y = DefaultY;
        if (options is not null)
        {
            x = options.GetDouble("x_init", DefaultX);
            y = options.GetDouble("y_init", DefaultY);
        }
        _theta = NpRandom.Uniform(-x, x);
        _thetaDot = NpRandom.Uniform(-y, y);
        _hasState = true;
        WriteObservation(observation);
        return default;
    }

    /// <inheritdoc />
    protected override StepResult StepCore(EnvAction action, Span<float> observation)
    {
        float u = Math.Clamp(ContinuousAction(action)[0], -MaxTorque, MaxTorque);
        double th = _theta, thdot = _thetaDot;

        // `x**2` on NumPy scalars calls C pow (powf for float32), so square with Pow to match to the last bit.
        float uCost = 0.001f * MathF.Pow(u, 2);
        double costs = Math.Pow(AngleNormalize(th), 2) + 0.1 * Math.Pow(thdot, 2) + uCost;

        float uTerm = 3.0f / (float)(M * Math.Pow(L, 2)) * u;
        double newthdot = thdot + (3 * _g / (2 * L) * Math.Sin(th) + uTerm) * Dt;
        newthdot = Math.Clamp(newthdot, -MaxSpeed, MaxSpeed);
        double newth = th + newthdot * Dt;

        _theta = newth;
        _thetaDot = newthdot;
        WriteObservation(observation);
        return new StepResult(-costs, false, false, default);
    }

    private void WriteObservation(Span<float> o)
    {
        o[0] = (float)Math.Cos(_theta);
        o[1] = (float)Math.Sin(_theta);
        o[2] = (float)_thetaDot;
    }

    /// <summary>((x + π) mod 2π) − π with Python's floored modulo, as NumPy's <c>remainder</c> computes it.</summary>
    internal static double AngleNormalize(double x)
    {
        double a = x + Math.PI, b = 2 * Math.PI;
        double mod = a % b; // C fmod
        if (mod != 0) { if ((b < 0) != (mod < 0)) mod += b; }
        else mod = Math.CopySign(0.0, b);
        return mod - Math.PI;
    }
}
