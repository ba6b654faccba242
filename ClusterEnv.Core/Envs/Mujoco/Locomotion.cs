namespace ClusterEnv.Envs.Mujoco;

/// <summary>
/// HalfCheetah-v5 as Gymnasium 1.x defines it: reward = forward_reward_weight · ẋ − ctrl_cost_weight · Σa²,
/// ẋ from the root's x before and after the step; never terminates (the registry truncates at 1000 steps).
/// Observation: qpos without the root x (unless <c>exclude_current_positions_from_observation=false</c>), then qvel.
/// Reset noise: U(±0.1) on qpos, 0.1·N(0,1) on qvel.
/// </summary>
public sealed class HalfCheetah : MujocoEnv
{
    private readonly double _forwardWeight, _ctrlWeight;
    private readonly bool _excludeX;

    /// <summary>Creates the env; the arguments and defaults are Gymnasium's.</summary>
    public HalfCheetah(string xmlFile = "half_cheetah.xml", int frameSkip = 5, double forwardRewardWeight = 1.0, double ctrlCostWeight = 0.1,
        double resetNoiseScale = 0.1, bool excludeCurrentPositionsFromObservation = true)
        : base(xmlFile, frameSkip, resetNoiseScale)
    {
        (_forwardWeight, _ctrlWeight, _excludeX) = (forwardRewardWeight, ctrlCostWeight, excludeCurrentPositionsFromObservation);
    }

    internal static HalfCheetah Create(IReadOnlyDictionary<string, object>? kw)
    {
        CheckKwargs("HalfCheetah", kw, [.. CommonArgs, "forward_reward_weight", "ctrl_cost_weight"]);
        RefuseRendering("HalfCheetah", kw);
        return new HalfCheetah(StringArg(kw, "xml_file", "half_cheetah.xml"), IntArg(kw, "frame_skip", 5), DoubleArg(kw, "forward_reward_weight", 1.0),
            DoubleArg(kw, "ctrl_cost_weight", 0.1), DoubleArg(kw, "reset_noise_scale", 0.1), BoolArg(kw, "exclude_current_positions_from_observation", true));
    }

    /// <inheritdoc />
    protected override int ObservationSize => Simulation.Nq + Simulation.Nv - (_excludeX ? 1 : 0);

    /// <inheritdoc />
    protected override bool GaussianVelocityNoise => true;

    /// <inheritdoc />
    protected override Dictionary<string, object> ResetInfo() => new() { ["x_position"] = Simulation.Qpos[0] };

    /// <inheritdoc />
    protected override StepResult StepCore(EnvAction action, Span<float> observation)
    {
        var a = ContinuousAction(action);
        double xVelocity = SimulateAlongX(a, observation), after = Simulation.Qpos[0];
        double forward = _forwardWeight * xVelocity, ctrl = _ctrlWeight * SumOfSquares(a);
        var info = new Dictionary<string, object>
        {
            ["x_position"] = after, ["x_velocity"] = xVelocity, ["reward_forward"] = forward, ["reward_ctrl"] = -ctrl,
        };
        return new StepResult(forward - ctrl, false, false, new EnvInfo { Extra = info });
    }

    /// <inheritdoc />
    protected override void WriteObservation(Span<float> o)
    {
        int k = Write(o, 0, Simulation.Qpos[(_excludeX ? 1 : 0)..]);
        Write(o, k, Simulation.Qvel);
    }
}

/// <summary>
/// Hopper-v5 and Walker2d-v5, Gymnasium 1.x's planar walkers: reward = forward_reward_weight · ẋ + healthy_reward
/// (while healthy) − ctrl_cost_weight · Σa²; terminated when unhealthy (z or the torso angle out of range, and for
/// Hopper any of qpos[2:], qvel outside healthy_state_range). Observation: qpos without the root x, then qvel clipped
/// to ±10. Reset noise U(±0.005) on both.
/// </summary>
public abstract class PlanarWalker : MujocoEnv
{
    private readonly string _name;
    private readonly double _forwardWeight, _ctrlWeight, _healthyReward;
    private readonly bool _terminateWhenUnhealthy, _excludeX;
    private readonly (double Low, double High) _zRange, _angleRange;
    private readonly (double Low, double High)? _stateRange;

    private protected PlanarWalker(string name, string xmlFile, int frameSkip, double forwardRewardWeight, double ctrlCostWeight, double healthyReward,
        bool terminateWhenUnhealthy, (double, double)? healthyStateRange, (double, double) healthyZRange, (double, double) healthyAngleRange,
        double resetNoiseScale, bool excludeCurrentPositionsFromObservation)
        : base(xmlFile, frameSkip, resetNoiseScale)
    {
        _name = name;
        (_forwardWeight, _ctrlWeight, _healthyReward) = (forwardRewardWeight, ctrlCostWeight, healthyReward);
        (_terminateWhenUnhealthy, _stateRange, _zRange, _angleRange) = (terminateWhenUnhealthy, healthyStateRange, healthyZRange, healthyAngleRange);
        _excludeX = excludeCurrentPositionsFromObservation;
    }

    private protected static readonly string[] WalkerArgs = [.. CommonArgs, "forward_reward_weight", "ctrl_cost_weight", "healthy_reward", "terminate_when_unhealthy", "healthy_z_range", "healthy_angle_range"];

    /// <inheritdoc />
    protected override int ObservationSize => Simulation.Nq + Simulation.Nv - (_excludeX ? 1 : 0);

    /// <summary>Whether the walker is upright: Gymnasium's <c>is_healthy</c> (all bounds strict).</summary>
    public bool IsHealthy
    {
        get
        {
            var qpos = Simulation.Qpos;
            double z = qpos[1], angle = qpos[2];
            if (!(_zRange.Low < z && z < _zRange.High) || !(_angleRange.Low < angle && angle < _angleRange.High)) return false;
            if (_stateRange is not (double lo, double hi)) return true;
            foreach (double v in qpos[2..]) if (!(lo < v && v < hi)) return false;
            foreach (double v in Simulation.Qvel) if (!(lo < v && v < hi)) return false;
            return true;
        }
    }

    /// <inheritdoc />
    protected override Dictionary<string, object> ResetInfo() => new() { ["x_position"] = Simulation.Qpos[0], ["z_distance_from_origin"] = Simulation.Qpos[1] - InitQpos[1] };

    /// <inheritdoc />
    protected override StepResult StepCore(EnvAction action, Span<float> observation)
    {
        var a = ContinuousAction(action);
        double xVelocity = SimulateAlongX(a, observation), after = Simulation.Qpos[0];
        bool healthy = IsHealthy;
        double forward = _forwardWeight * xVelocity, survive = healthy ? _healthyReward : 0, ctrl = _ctrlWeight * SumOfSquares(a);
        var info = new Dictionary<string, object>
        {
            ["x_position"] = after, ["z_distance_from_origin"] = Simulation.Qpos[1] - InitQpos[1], ["x_velocity"] = xVelocity,
            ["reward_forward"] = forward, ["reward_ctrl"] = -ctrl, ["reward_survive"] = survive,
        };
        return new StepResult(forward + survive - ctrl, !healthy && _terminateWhenUnhealthy, false, new EnvInfo { Extra = info });
    }

    /// <inheritdoc />
    protected override void WriteObservation(Span<float> o)
    {
        int k = Write(o, 0, Simulation.Qpos[(_excludeX ? 1 : 0)..]);
        Write(o, k, Simulation.Qvel, clip: 10);
    }

    /// <inheritdoc />
    public override string ToString() => $"{_name}({Simulation.Source})";
}

/// <summary>Hopper-v5: a one-legged <see cref="PlanarWalker"/>; Gymnasium's defaults (frame_skip 4, ctrl_cost_weight 1e-3, healthy z in (0.7, ∞), torso angle in (−0.2, 0.2), qpos[2:] and qvel in (−100, 100)).</summary>
public sealed class Hopper : PlanarWalker
{
    /// <summary>Creates the env; the arguments and defaults are Gymnasium's.</summary>
    public Hopper(string xmlFile = "hopper.xml", int frameSkip = 4, double forwardRewardWeight = 1.0, double ctrlCostWeight = 1e-3, double healthyReward = 1.0,
        bool terminateWhenUnhealthy = true, (double, double)? healthyStateRange = null, (double, double)? healthyZRange = null,
        (double, double)? healthyAngleRange = null, double resetNoiseScale = 5e-3, bool excludeCurrentPositionsFromObservation = true)
        : base("Hopper", xmlFile, frameSkip, forwardRewardWeight, ctrlCostWeight, healthyReward, terminateWhenUnhealthy, healthyStateRange ?? (-100.0, 100.0),
            healthyZRange ?? (0.7, double.PositiveInfinity), healthyAngleRange ?? (-0.2, 0.2), resetNoiseScale, excludeCurrentPositionsFromObservation)
    {
    }

    internal static Hopper Create(IReadOnlyDictionary<string, object>? kw)
    {
        CheckKwargs("Hopper", kw, [.. WalkerArgs, "healthy_state_range"]);
        RefuseRendering("Hopper", kw);
        return new Hopper(StringArg(kw, "xml_file", "hopper.xml"), IntArg(kw, "frame_skip", 4), DoubleArg(kw, "forward_reward_weight", 1.0),
            DoubleArg(kw, "ctrl_cost_weight", 1e-3), DoubleArg(kw, "healthy_reward", 1.0), BoolArg(kw, "terminate_when_unhealthy", true),
            RangeArg(kw, "healthy_state_range", (-100.0, 100.0)), RangeArg(kw, "healthy_z_range", (0.7, double.PositiveInfinity)),
            RangeArg(kw, "healthy_angle_range", (-0.2, 0.2)), DoubleArg(kw, "reset_noise_scale", 5e-3),
            BoolArg(kw, "exclude_current_positions_from_observation", true));
    }
}

/// <summary>Walker2d-v5: a two-legged <see cref="PlanarWalker"/>; Gymnasium's defaults (frame_skip 4, ctrl_cost_weight 1e-3, healthy z in (0.8, 2), torso angle in (−1, 1)).</summary>
public sealed class Walker2d : PlanarWalker
{
    /// <summary>Creates the env; the arguments and defaults are Gymnasium's.</summary>
    public Walker2d(string xmlFile = "walker2d.xml", int frameSkip = 4, double forwardRewardWeight = 1.0, double ctrlCostWeight = 1e-3, double healthyReward = 1.0,
        bool terminateWhenUnhealthy = true, (double, double)? healthyZRange = null, (double, double)? healthyAngleRange = null,
        double resetNoiseScale = 5e-3, bool excludeCurrentPositionsFromObservation = true)
        : base("Walker2d", xmlFile, frameSkip, forwardRewardWeight, ctrlCostWeight, healthyReward, terminateWhenUnhealthy, null,
            healthyZRange ?? (0.8, 2.0), healthyAngleRange ?? (-1.0, 1.0), resetNoiseScale, excludeCurrentPositionsFromObservation)
    {
    }

    internal static Walker2d Create(IReadOnlyDictionary<string, object>? kw)
    {
        CheckKwargs("Walker2d", kw, WalkerArgs);
        RefuseRendering("Walker2d", kw);
        return new Walker2d(StringArg(kw, "xml_file", "walker2d.xml"), IntArg(kw, "frame_skip", 4), DoubleArg(kw, "forward_reward_weight", 1.0),
            DoubleArg(kw, "ctrl_cost_weight", 1e-3), DoubleArg(kw, "healthy_reward", 1.0), BoolArg(kw, "terminate_when_unhealthy", true),
            RangeArg(kw, "healthy_z_range", (0.8, 2.0)), RangeArg(kw, "healthy_angle_range", (-1.0, 1.0)),
            DoubleArg(kw, "reset_noise_scale", 5e-3), BoolArg(kw, "exclude_current_positions_from_observation", true));
    }
}

/// <summary>
/// Ant-v5 as Gymnasium 1.x defines it: reward = forward_reward_weight · ẋ (of the main body's frame) + healthy_reward
/// − ctrl_cost_weight · Σa² − contact_cost_weight · Σ clip(cfrc_ext, contact_force_range)²; terminated when the
/// state is not finite or the torso's z leaves healthy_z_range (inclusive). Observation: qpos without x, y; qvel; the
/// clipped contact forces of every body but the world (<c>include_cfrc_ext_in_observation</c>): 105 values for the
/// default model. Reset noise: U(±0.1) on qpos, 0.1·N(0,1) on qvel.
/// </summary>
public sealed class Ant : MujocoEnv
{
    private readonly double _forwardWeight, _ctrlWeight, _contactWeight, _healthyReward;
    private readonly bool _terminateWhenUnhealthy, _excludeXy, _includeCfrc;
    private readonly (double Low, double High) _zRange, _forceRange;
    private readonly int _mainBody;

    /// <summary>Creates the env; the arguments and defaults are Gymnasium's (<paramref name="mainBody"/> is a body id or name).</summary>
    public Ant(string xmlFile = "ant.xml", int frameSkip = 5, double forwardRewardWeight = 1, double ctrlCostWeight = 0.5, double contactCostWeight = 5e-4,
        double healthyReward = 1.0, object? mainBody = null, bool terminateWhenUnhealthy = true, (double, double)? healthyZRange = null,
        (double, double)? contactForceRange = null, double resetNoiseScale = 0.1, bool excludeCurrentPositionsFromObservation = true,
        bool includeCfrcExtInObservation = true)
        : base(xmlFile, frameSkip, resetNoiseScale)
    {
        (_forwardWeight, _ctrlWeight, _contactWeight, _healthyReward) = (forwardRewardWeight, ctrlCostWeight, contactCostWeight, healthyReward);
        (_terminateWhenUnhealthy, _excludeXy, _includeCfrc) = (terminateWhenUnhealthy, excludeCurrentPositionsFromObservation, includeCfrcExtInObservation);
        _zRange = healthyZRange ?? (0.2, 1.0);
        _forceRange = contactForceRange ?? (-1.0, 1.0);
        _mainBody = mainBody switch
        {
            null => 1,
            int id when id >= 0 && id < Simulation.Nbody => id,
            long id when id >= 0 && id < Simulation.Nbody => (int)id,
            string name => Simulation.BodyId(name),
            _ => throw new ArgumentException($"main_body must be a body id in 0..{Simulation.Nbody - 1} or a body name, got {mainBody}."),
        };
    }

    internal static Ant Create(IReadOnlyDictionary<string, object>? kw)
    {
        CheckKwargs("Ant", kw, [.. CommonArgs, "forward_reward_weight", "ctrl_cost_weight", "contact_cost_weight", "healthy_reward", "main_body",
            "terminate_when_unhealthy", "healthy_z_range", "contact_force_range", "include_cfrc_ext_in_observation"]);
        RefuseRendering("Ant", kw);
        return new Ant(StringArg(kw, "xml_file", "ant.xml"), IntArg(kw, "frame_skip", 5), DoubleArg(kw, "forward_reward_weight", 1),
            DoubleArg(kw, "ctrl_cost_weight", 0.5), DoubleArg(kw, "contact_cost_weight", 5e-4), DoubleArg(kw, "healthy_reward", 1.0),
            kw is not null && kw.TryGetValue("main_body", out var body) ? body : null, BoolArg(kw, "terminate_when_unhealthy", true),
            RangeArg(kw, "healthy_z_range", (0.2, 1.0)), RangeArg(kw, "contact_force_range", (-1.0, 1.0)), DoubleArg(kw, "reset_noise_scale", 0.1),
            BoolArg(kw, "exclude_current_positions_from_observation", true), BoolArg(kw, "include_cfrc_ext_in_observation", true));
    }

    /// <inheritdoc />
    protected override int ObservationSize => Simulation.Nq + Simulation.Nv - (_excludeXy ? 2 : 0) + (_includeCfrc ? 6 * (Simulation.Nbody - 1) : 0);

    /// <summary>Gymnasium's <c>is_healthy</c>: a finite state and low ≤ z ≤ high.</summary>
    public bool IsHealthy
    {
        get
        {
            foreach (double v in Simulation.Qpos) if (!double.IsFinite(v)) return false;
            foreach (double v in Simulation.Qvel) if (!double.IsFinite(v)) return false;
            double z = Simulation.Qpos[2];
            return _zRange.Low <= z && z <= _zRange.High;
        }
    }

    /// <inheritdoc />
    protected override bool GaussianVelocityNoise => true;

    /// <inheritdoc />
    protected override Dictionary<string, object> ResetInfo() => PositionInfo();

    /// <inheritdoc />
    protected override StepResult StepCore(EnvAction action, Span<float> observation)
    {
        var a = ContinuousAction(action);
        double xBefore = Simulation.Xpos[3 * _mainBody], yBefore = Simulation.Xpos[3 * _mainBody + 1];
        DoSimulation(a);
        double xVelocity = (Simulation.Xpos[3 * _mainBody] - xBefore) / Dt, yVelocity = (Simulation.Xpos[3 * _mainBody + 1] - yBefore) / Dt;
        WriteObservation(observation);
        double contact = 0;
        foreach (double f in Simulation.CfrcExt) { double c = Math.Clamp(f, _forceRange.Low, _forceRange.High); contact += c * c; }
        bool healthy = IsHealthy;
        double forward = xVelocity * _forwardWeight, survive = healthy ? _healthyReward : 0, ctrl = _ctrlWeight * SumOfSquares(a);
        contact *= _contactWeight;
        var info = PositionInfo();
        info["x_velocity"] = xVelocity;
        info["y_velocity"] = yVelocity;
        (info["reward_forward"], info["reward_ctrl"], info["reward_contact"], info["reward_survive"]) = (forward, -ctrl, -contact, survive);
        return new StepResult(forward + survive - (ctrl + contact), !healthy && _terminateWhenUnhealthy, false, new EnvInfo { Extra = info });
    }

    /// <inheritdoc />
    protected override void WriteObservation(Span<float> o)
    {
        int k = Write(o, 0, Simulation.Qpos[(_excludeXy ? 2 : 0)..]);
        k = Write(o, k, Simulation.Qvel);
        if (!_includeCfrc) return;
        var f = Simulation.CfrcExt[6..];
        for (int i = 0; i < f.Length; i++) o[k + i] = (float)Math.Clamp(f[i], _forceRange.Low, _forceRange.High);
    }
}

/// <summary>
/// Humanoid-v5 as Gymnasium 1.x defines it: reward = forward_reward_weight · ẋ of the centre of mass + healthy_reward
/// − ctrl_cost_weight · Σctrl² − min(contact_cost_weight · Σcfrc_ext², 10); terminated when the torso's z leaves
/// (1, 2). Observation (348 values for the default model): qpos without x, y; qvel; cinert, cvel and cfrc_ext of every
/// body but the world; qfrc_actuator without the free joint's 6 — each group optional as in Gymnasium. Reset noise
/// U(±0.01) on both.
/// </summary>
public sealed class Humanoid : MujocoEnv
{
    private readonly double _forwardWeight, _ctrlWeight, _contactWeight, _healthyReward;
    private readonly (double Low, double High) _contactCostRange, _zRange;
    private readonly bool _terminateWhenUnhealthy, _excludeXy, _cinert, _cvel, _qfrc, _cfrc;

    /// <summary>Creates the env; the arguments and defaults are Gymnasium's.</summary>
    public Humanoid(string xmlFile = "humanoid.xml", int frameSkip = 5, double forwardRewardWeight = 1.25, double ctrlCostWeight = 0.1,
        double contactCostWeight = 5e-7, (double, double)? contactCostRange = null, double healthyReward = 5.0, bool terminateWhenUnhealthy = true,
        (double, double)? healthyZRange = null, double resetNoiseScale = 1e-2, bool excludeCurrentPositionsFromObservation = true,
        bool includeCinertInObservation = true, bool includeCvelInObservation = true, bool includeQfrcActuatorInObservation = true,
        bool includeCfrcExtInObservation = true)
        : base(xmlFile, frameSkip, resetNoiseScale)
    {
        (_forwardWeight, _ctrlWeight, _contactWeight, _healthyReward) = (forwardRewardWeight, ctrlCostWeight, contactCostWeight, healthyReward);
        _contactCostRange = contactCostRange ?? (double.NegativeInfinity, 10.0);
        _zRange = healthyZRange ?? (1.0, 2.0);
        (_terminateWhenUnhealthy, _excludeXy) = (terminateWhenUnhealthy, excludeCurrentPositionsFromObservation);
        (_cinert, _cvel, _qfrc, _cfrc) = (includeCinertInObservation, includeCvelInObservation, includeQfrcActuatorInObservation, includeCfrcExtInObservation);
        if (_qfrc && Simulation.Nv < 6)
            throw new ArgumentException($"The model '{Simulation.Source}' has {Simulation.Nv} degrees of freedom; Humanoid drops a free joint's 6 from qfrc_actuator, so it needs a free root joint.");
    }

    internal static Humanoid Create(IReadOnlyDictionary<string, object>? kw)
    {
        CheckKwargs("Humanoid", kw, [.. CommonArgs, "forward_reward_weight", "ctrl_cost_weight", "contact_cost_weight", "contact_cost_range", "healthy_reward",
            "terminate_when_unhealthy", "healthy_z_range", "include_cinert_in_observation", "include_cvel_in_observation",
            "include_qfrc_actuator_in_observation", "include_cfrc_ext_in_observation"]);
        RefuseRendering("Humanoid", kw);
        return new Humanoid(StringArg(kw, "xml_file", "humanoid.xml"), IntArg(kw, "frame_skip", 5), DoubleArg(kw, "forward_reward_weight", 1.25),
            DoubleArg(kw, "ctrl_cost_weight", 0.1), DoubleArg(kw, "contact_cost_weight", 5e-7), RangeArg(kw, "contact_cost_range", (double.NegativeInfinity, 10.0)),
            DoubleArg(kw, "healthy_reward", 5.0), BoolArg(kw, "terminate_when_unhealthy", true), RangeArg(kw, "healthy_z_range", (1.0, 2.0)),
            DoubleArg(kw, "reset_noise_scale", 1e-2), BoolArg(kw, "exclude_current_positions_from_observation", true),
            BoolArg(kw, "include_cinert_in_observation", true), BoolArg(kw, "include_cvel_in_observation", true),
            BoolArg(kw, "include_qfrc_actuator_in_observation", true), BoolArg(kw, "include_cfrc_ext_in_observation", true));
    }

    /// <inheritdoc />
    protected override int ObservationSize
    {
        get
        {
            int bodies = Simulation.Nbody - 1;
            return Simulation.Nq + Simulation.Nv - (_excludeXy ? 2 : 0) + (_cinert ? 10 * bodies : 0) + (_cvel ? 6 * bodies : 0)
                   + (_qfrc ? Simulation.Nv - 6 : 0) + (_cfrc ? 6 * bodies : 0);
        }
    }

    /// <summary>Gymnasium's <c>is_healthy</c>: low &lt; z &lt; high.</summary>
    public bool IsHealthy => _zRange.Low < Simulation.Qpos[2] && Simulation.Qpos[2] < _zRange.High;

    /// <summary>The x, y of the centre of mass: Σ mass·xipos / Σ mass.</summary>
    public (double X, double Y) MassCenter
    {
        get
        {
            var mass = Simulation.BodyMass;
            var xipos = Simulation.Xipos;
            double x = 0, y = 0, total = 0;
            for (int b = 0; b < mass.Length; b++) { x += mass[b] * xipos[3 * b]; y += mass[b] * xipos[3 * b + 1]; total += mass[b]; }
            return (x / total, y / total);
        }
    }

    /// <inheritdoc />
    protected override Dictionary<string, object> ResetInfo() => PositionInfo();

    /// <inheritdoc />
    protected override StepResult StepCore(EnvAction action, Span<float> observation)
    {
        var a = ContinuousAction(action);
        var (xBefore, yBefore) = MassCenter;
        DoSimulation(a);
        var (xAfter, yAfter) = MassCenter;
        double xVelocity = (xAfter - xBefore) / Dt, yVelocity = (yAfter - yBefore) / Dt;
        WriteObservation(observation);
        double ctrl = 0;
        foreach (double c in Simulation.Ctrl) ctrl += c * c;
        ctrl *= _ctrlWeight;
        double contact = 0;
        foreach (double f in Simulation.CfrcExt) contact += f * f;
        contact = Math.Clamp(_contactWeight * contact, _contactCostRange.Low, _contactCostRange.High);
        bool healthy = IsHealthy;
        double forward = _forwardWeight * xVelocity, survive = healthy ? _healthyReward : 0;
        var info = PositionInfo();
        info["x_velocity"] = xVelocity;
        info["y_velocity"] = yVelocity;
        (info["reward_survive"], info["reward_forward"], info["reward_ctrl"], info["reward_contact"]) = (survive, forward, -ctrl, -contact);
        return new StepResult(forward + survive - (ctrl + contact), !healthy && _terminateWhenUnhealthy, false, new EnvInfo { Extra = info });
    }

    /// <inheritdoc />
    protected override void WriteObservation(Span<float> o)
    {
        int k = Write(o, 0, Simulation.Qpos[(_excludeXy ? 2 : 0)..]);
        k = Write(o, k, Simulation.Qvel);
        if (_cinert) k = Write(o, k, Simulation.Cinert[10..]);
        if (_cvel) k = Write(o, k, Simulation.Cvel[6..]);
        if (_qfrc) k = Write(o, k, Simulation.QfrcActuator[6..]);
        if (_cfrc) Write(o, k, Simulation.CfrcExt[6..]);
    }
}
