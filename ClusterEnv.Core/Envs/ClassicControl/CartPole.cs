using ClusterEnv.Rendering;
using ClusterEnv.Spaces;

namespace ClusterEnv.Envs.ClassicControl;

/// <summary>
/// CartPole-v1 (Barto, Sutton and Anderson), faithful to Gymnasium's <c>CartPoleEnv</c>: explicit Euler at τ = 0.02 s,
/// float64 state, float32 observations; terminates when |x| &gt; 2.4 or |θ| &gt; 12°; reward +1 per step including
/// the terminal one (or Sutton–Barto's 0 / −1 with <c>sutton_barto_reward</c>). Action 0 pushes left, 1 right.
/// </summary>
public sealed class CartPole : RenderedEnv
{
    // Gymnasium's physical constants, as settable attributes (its gravity, masscart, masspole, length, force_mag,
    // tau; SetAttr("length", 1.0) on a vector env reaches them). Unlike Gymnasium, which computes total_mass and
    // polemass_length once in __init__, they follow the masses and the length when those are changed.

    /// <summary>g, m/s².</summary>
    public double Gravity { get; set; } = 9.8;

    /// <summary>The cart's mass.</summary>
    public double MassCart { get; set; } = 1.0;

    /// <summary>The pole's mass.</summary>
    public double MassPole { get; set; } = 0.1;

    /// <summary>Half the pole's length (Gymnasium's <c>length</c>).</summary>
    public double Length { get; set; } = 0.5;

    /// <summary>The force a push applies.</summary>
    public double ForceMag { get; set; } = 10.0;

    /// <summary>Seconds between state updates.</summary>
    public double Tau { get; set; } = 0.02;

    private double TotalMass => MassPole + MassCart;
    private double PoleMassLength => MassPole * Length;
    private const double XThreshold = 2.4;
    private static readonly double ThetaThresholdRadians = 12 * 2 * Math.PI / 360;

    private static readonly Box ObsSpace = new(
        [(float)-(XThreshold * 2), float.NegativeInfinity, (float)-(ThetaThresholdRadians * 2), float.NegativeInfinity],
        [(float)(XThreshold * 2), float.PositiveInfinity, (float)(ThetaThresholdRadians * 2), float.PositiveInfinity]);

    private readonly bool _suttonBartoReward;
    private readonly Discrete _actionSpace = new(2);
    private double _x, _xDot, _theta, _thetaDot;
    private int _stepsBeyondTerminated = -1; // -1 = None

    /// <summary>Creates the env; <paramref name="suttonBartoReward"/> selects the 0 / −1 reward.</summary>
    /// <param name="suttonBartoReward">Selects the 0 / −1 reward.</param>
    /// <param name="renderMode">"rgb_array" to draw 400×600 frames (<see cref="Rendering.IRenderable"/>), or null.</param>
    public CartPole(bool suttonBartoReward = false, string? renderMode = null) : base(renderMode, ScreenWidth, ScreenHeight) =>
        _suttonBartoReward = suttonBartoReward;

    internal static CartPole Create(IReadOnlyDictionary<string, object>? kwargs)
    {
        CheckKwargs("CartPole", kwargs, "sutton_barto_reward", "render_mode");
        return new CartPole(BoolArg(kwargs, "sutton_barto_reward", false), RenderModeArg(kwargs));
    }

    /// <inheritdoc />
    public override Space ObservationSpace => ObsSpace;

    /// <inheritdoc />
    public override Space ActionSpace => _actionSpace;

    /// <summary>The float64 physical state (x, ẋ, θ, θ̇).</summary>
    public (double X, double XDot, double Theta, double ThetaDot) State
    {
        get => (_x, _xDot, _theta, _thetaDot);
        set => (_x, _xDot, _theta, _thetaDot) = value;
    }

    /// <inheritdoc />
    protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options)
    {
        var (low, high) = ResetBounds(options, -0.05, 0.05);
        var rng = NpRandom;
        _x = rng.Uniform(low, high);
        _xDot = rng.Uniform(low, high);
        _theta = rng.Uniform(low, high);
        _thetaDot = rng.Uniform(low, high);
        _stepsBeyondTerminated = -1;
        _hasState = true;
        WriteObservation(observation);
        return default;
    }

    /// <inheritdoc />
    protected override StepResult StepCore(EnvAction action, Span<float> observation)
    {
        int a = DiscreteAction(action);
        double force = a == 1 ? ForceMag : -ForceMag;
        double costheta = Math.Cos(_theta);
        double sintheta = Math.Sin(_theta);

        double temp = (force + PoleMassLength * (_thetaDot * _thetaDot) * sintheta) / TotalMass;
        double thetaacc = (Gravity * sintheta - costheta * temp)
                          / (Length * (4.0 / 3.0 - MassPole * (costheta * costheta) / TotalMass));
        double xacc = temp - PoleMassLength * thetaacc * costheta / TotalMass;

        _x = _x + Tau * _xDot;
        _xDot = _xDot + Tau * xacc;
        _theta = _theta + Tau * _thetaDot;
        _thetaDot = _thetaDot + Tau * thetaacc;

        bool terminated = _x < -XThreshold || _x > XThreshold || _theta < -ThetaThresholdRadians || _theta > ThetaThresholdRadians;
        double reward;
        if (!terminated) reward = _suttonBartoReward ? 0.0 : 1.0;
        else if (_stepsBeyondTerminated < 0)
        {
            _stepsBeyondTerminated = 0; // the pole just fell
            reward = _suttonBartoReward ? -1.0 : 1.0;
        }
        else
        {
            _stepsBeyondTerminated++; // undefined behaviour in Gymnasium too: it warns and pays 0
            reward = _suttonBartoReward ? -1.0 : 0.0;
        }

        WriteObservation(observation);
        return new StepResult(reward, terminated, false, default);
    }

    private const int ScreenWidth = 600, ScreenHeight = 400;
    private static readonly Rgb CartColour = Rgb.Black, PoleColour = new(202, 152, 101), AxleColour = new(129, 132, 203);
    private bool _hasState;

    /// <inheritdoc />
    protected override bool HasState => _hasState;

    /// <inheritdoc />
    internal override void Draw(Canvas canvas)
    {
        double scale = ScreenWidth / (XThreshold * 2), poleWidth = 10.0, poleLen = scale * (2 * Length);
        double cartWidth = 50.0, cartHeight = 30.0, axleOffset = cartHeight / 4.0;
        double cartX = _x * scale + ScreenWidth / 2.0;
        const double CartY = 100;
        canvas.Fill(Rgb.White);
        double l = -cartWidth / 2, r = cartWidth / 2, t = cartHeight / 2, b = -cartHeight / 2;
        ReadOnlySpan<(double, double)> cart = [(l + cartX, b + CartY), (l + cartX, t + CartY), (r + cartX, t + CartY), (r + cartX, b + CartY)];
        canvas.AaPolygon(cart, CartColour);
        canvas.FilledPolygon(cart, CartColour);
        l = -poleWidth / 2; r = poleWidth / 2; t = poleLen - poleWidth / 2; b = -poleWidth / 2;
        Span<(double X, double Y)> pole = [(l, b), (l, t), (r, t), (r, b)];
        foreach (ref var p in pole)
        {
            var (x, y) = Geometry.Rotate(p.X, p.Y, -_theta);
            p = (x + cartX, y + CartY + axleOffset);
        }
        canvas.AaPolygon(pole, PoleColour);
        canvas.FilledPolygon(pole, PoleColour);
        canvas.AaCircle((int)cartX, (int)(CartY + axleOffset), (int)(poleWidth / 2), AxleColour);
        canvas.FilledCircle((int)cartX, (int)(CartY + axleOffset), (int)(poleWidth / 2), AxleColour);
        canvas.HLine(0, ScreenWidth, (int)CartY, Rgb.Black);
    }

    private void WriteObservation(Span<float> o)
    {
        o[3] = (float)_thetaDot;
        o[0] = (float)_x;
        o[1] = (float)_xDot;
        o[2] = (float)_theta;
    }
}
