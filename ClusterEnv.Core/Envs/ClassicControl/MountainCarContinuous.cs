using ClusterEnv.Rendering;
using ClusterEnv.Spaces;

namespace ClusterEnv.Envs.ClassicControl;

/// <summary>
/// MountainCarContinuous-v0, faithful to Gymnasium's <c>Continuous_MountainCarEnv</c>: force = clip(a, −1, 1)·0.0015
/// against 0.0025·cos(3x); reward −0.1·a² per step with the <b>unclipped</b> action, +100 on reaching x ≥ 0.45.
/// </summary>
/// <remarks>
/// Gymnasium stores this env's state as float32 after every step, so its arithmetic runs in float32 with Python
/// constants cast to float32 — NumPy 2's promotion rules (NEP 50), which this class reproduces. The first step after
/// a reset starts from a float64 state, as in Gymnasium.
/// </remarks>
public sealed class MountainCarContinuous : RenderedEnv
{
    private const double MinPosition = -1.2;
    private const double MaxPosition = 0.6;
    private const double MaxSpeed = 0.07;
    private const double GoalPosition = 0.45;
    private const double Power = 0.0015;

    private static readonly Box ObsSpace = new([(float)MinPosition, (float)-MaxSpeed], [(float)MaxPosition, (float)MaxSpeed]);
    private static readonly Box ActSpace = new(-1f, 1f, [1]);

    private readonly double _goalVelocity;
    private double _position, _velocity;
    private bool _stateIsFloat32;

    /// <summary>Creates the env.</summary>
    /// <param name="goalVelocity">Gymnasium's <c>goal_velocity</c>.</param>
    /// <param name="renderMode">"rgb_array" to draw 400×600 frames (<see cref="IRenderable"/>), or null.</param>
    public MountainCarContinuous(double goalVelocity = 0, string? renderMode = null) : base(renderMode, MountainCarDrawing.Width, MountainCarDrawing.Height) =>
        _goalVelocity = goalVelocity;

    internal static MountainCarContinuous Create(IReadOnlyDictionary<string, object>? kwargs)
    {
        CheckKwargs("MountainCarContinuous", kwargs, "goal_velocity", "render_mode");
        return new MountainCarContinuous(DoubleArg(kwargs, "goal_velocity", 0), RenderModeArg(kwargs));
    }

    private bool _hasState;

    /// <inheritdoc />
    protected override bool HasState => _hasState;

    /// <inheritdoc />
    internal override void Draw(Canvas canvas) => MountainCarDrawing.Draw(canvas, _position, MinPosition, MaxPosition, GoalPosition);

    /// <inheritdoc />
    public override Space ObservationSpace => ObsSpace;

    /// <inheritdoc />
    public override Space ActionSpace => ActSpace;

    /// <summary>The state (position, velocity); setting it makes it a float64 state, as right after a reset.</summary>
    public (double Position, double Velocity) State
    {
        get => (_position, _velocity);
        set
        {
            (_position, _velocity) = value;
            _stateIsFloat32 = false;
        }
    }

    /// <inheritdoc />
    protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options)
    {
        var (low, high) = ResetBounds(options, -0.6, -0.4);
        _position = NpRandom.Uniform(low, high);
        _hasState = true;
        _velocity = 0;
        _stateIsFloat32 = false;
        observation[0] = (float)_position;
        observation[1] = 0f;
        return default;
    }

    /// <inheritdoc />
    protected override StepResult StepCore(EnvAction action, Span<float> observation)
    {
        float a = ContinuousAction(action)[0];

        // force = min(max(a, -1.0), 1.0): stays float32 unless a bound (a Python float) wins.
        bool forceIsFloat32 = true;
        double force = a;
        if (-1.0f > a) { force = -1.0; forceIsFloat32 = false; }
        if (forceIsFloat32 ? 1.0f < (float)force : 1.0 < force) { force = 1.0; forceIsFloat32 = false; }

        bool terminated;
        if (!_stateIsFloat32)
        {
            // First step after reset: position and velocity are float64.
            double cosTerm = 0.0025 * Math.Cos(3 * _position);
            double dv = forceIsFloat32 ? (float)((float)force * (float)Power) - (float)cosTerm : force * Power - cosTerm;
            double v = _velocity + dv;
            if (v > MaxSpeed) v = MaxSpeed;
            if (v < -MaxSpeed) v = -MaxSpeed;
            double p = _position + v;
            if (p > MaxPosition) p = MaxPosition;
            if (p < MinPosition) p = MinPosition;
            if (p == MinPosition && v < 0) v = 0;
            terminated = p >= GoalPosition && v >= _goalVelocity;
            _position = (float)p;
            _velocity = (float)v;
        }
        else
        {
            // Later steps: float32 state; Python floats are cast to float32 (NEP 50).
            float p = (float)_position, v = (float)_velocity;
            double cosTerm = 0.0025 * Math.Cos((float)(3f * p));
            float dv = forceIsFloat32 ? (float)((float)force * (float)Power) - (float)cosTerm : (float)(force * Power - cosTerm);
            v = v + dv;
            if (v > (float)MaxSpeed) v = (float)MaxSpeed;
            if (v < (float)-MaxSpeed) v = (float)-MaxSpeed;
            p = p + v;
            if (p > (float)MaxPosition) p = (float)MaxPosition;
            if (p < (float)MinPosition) p = (float)MinPosition;
            if (p == (float)MinPosition && v < 0) v = 0;
            terminated = p >= (float)GoalPosition && v >= (float)_goalVelocity;
            _position = p;
            _velocity = v;
        }
        _stateIsFloat32 = true;

        double reward = terminated ? 100.0 : 0.0;
        reward -= Math.Pow(a, 2) * 0.1;
        observation[0] = (float)_position;
        observation[1] = (float)_velocity;
        return new StepResult(reward, terminated, false, default);
    }
}
