using ClusterEnv.Rendering;
using ClusterEnv.Spaces;

namespace ClusterEnv.Envs.ClassicControl;

/// <summary>
/// MountainCar-v0, faithful to Gymnasium's <c>MountainCarEnv</c>: actions push left / nothing / right with force
/// 0.001 against gravity 0.0025·cos(3x); velocity clipped to ±0.07, position to [−1.2, 0.6]; reward −1 per step;
/// terminates when x ≥ 0.5 with non-negative velocity.
/// </summary>
public sealed class MountainCar : RenderedEnv
{
    private const double MinPosition = -1.2;
    private const double MaxPosition = 0.6;
    private const double MaxSpeed = 0.07;
    private const double GoalPosition = 0.5;
    private const double Force = 0.001;
    private const double Gravity = 0.0025;

    private static readonly Box ObsSpace = new([(float)MinPosition, (float)-MaxSpeed], [(float)MaxPosition, (float)MaxSpeed]);

    private readonly Discrete _actionSpace = new(3);
    private readonly double _goalVelocity;
    private double _position, _velocity;

    /// <summary>Creates the env.</summary>
    /// <param name="goalVelocity">Gymnasium's <c>goal_velocity</c>.</param>
    /// <param name="renderMode">"rgb_array" to draw 400×600 frames (<see cref="IRenderable"/>), or null.</param>
    public MountainCar(double goalVelocity = 0, string? renderMode = null) : base(renderMode, MountainCarDrawing.Width, MountainCarDrawing.Height) =>
        _goalVelocity = goalVelocity;

    internal static MountainCar Create(IReadOnlyDictionary<string, object>? kwargs)
    {
        CheckKwargs("MountainCar", kwargs, "goal_velocity", "render_mode");
        return new MountainCar(DoubleArg(kwargs, "goal_velocity", 0), RenderModeArg(kwargs));
    }

    private bool _hasState;

    /// <inheritdoc />
    protected override bool HasState => _hasState;

    /// <inheritdoc />
    internal override void Draw(Canvas canvas) => MountainCarDrawing.Draw(canvas, _position, MinPosition, MaxPosition, GoalPosition);

    /// <inheritdoc />
    public override Space ObservationSpace => ObsSpace;

    /// <inheritdoc />
    public override Space ActionSpace => _actionSpace;

    /// <summary>The float64 state (position, velocity).</summary>
    public (double Position, double Velocity) State
    {
        get => (_position, _velocity);
        set => (_position, _velocity) = value;
    }

    /// <inheritdoc />
    protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options)
    {
        var (low, high) = ResetBounds(options, -0.6, -0.4);
        _position = NpRandom.Uniform(low, high);
        _hasState = true;
        _velocity = 0;
        observation[0] = (float)_position;
        observation[1] = 0f;
        return default;
    }

    /// <inheritdoc />
    protected override StepResult StepCore(EnvAction action, Span<float> observation)
    {
        int a = DiscreteAction(action);
        _velocity += (a - 1) * Force + Math.Cos(3 * _position) * (-Gravity);
        _velocity = Math.Clamp(_velocity, -MaxSpeed, MaxSpeed);
        _position += _velocity;
        _position = Math.Clamp(_position, MinPosition, MaxPosition);
        if (_position == MinPosition && _velocity < 0) _velocity = 0;

        bool terminated = _position >= GoalPosition && _velocity >= _goalVelocity;
        observation[0] = (float)_position;
        observation[1] = (float)_velocity;
        return new StepResult(-1.0, terminated, false, default);
    }
}
