using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Tests.Cluster;

/// <summary>Envs that misbehave on purpose, registered for in-process workers.</summary>
internal static class TestEnvs
{
    public const string Throwing = "Test/Throwing-v0";
    public const string Hanging = "Test/Hanging-v0";
    public const string Slow = "Test/Slow-v0";
    public const string Info = "Test/Info-v0";

    /// <summary>Released by tests so hung envs end.</summary>
    public static readonly ManualResetEventSlim Unblock = new(false);

    private static int _registered;

    /// <summary>How many more times a ThrowingEnv built with fail=true may throw (one by default).</summary>
    public static int ThrowsLeft = 1;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1) return;
        Gym.Register(Throwing, kw => new ThrowingEnv(kw is not null && kw.TryGetValue("fail", out var f) && f is true));
        Gym.Register(Hanging, kw => new HangingEnv(kw is not null && kw.TryGetValue("hang", out var h) && h is true));
        Gym.Register(Info, () => new InfoEnv());
        Gym.Register(Slow, kw => new SlowEnv(kw is not null && kw.TryGetValue("ms", out var ms) ? Convert.ToInt32(ms, System.Globalization.CultureInfo.InvariantCulture) : 5));
    }

    // Reports extra info of every kind: an int at reset; per step a double, a bool and a 2-float array, a "late" int
    // only from step 2 on, and a string (which cannot cross the wire).
    private sealed class InfoEnv : EnvBase
    {
        private int _t;
        public override Space ObservationSpace { get; } = new Box(-1f, 1f, [1]);
        public override Space ActionSpace { get; } = new Discrete(2);
        protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options)
        {
            _t = 0;
            observation[0] = 0;
            return new EnvInfo { Extra = new Dictionary<string, object> { ["level"] = 3 } };
        }
        protected override StepResult StepCore(EnvAction action, Span<float> observation)
        {
            _t++;
            observation[0] = 0;
            var extra = new Dictionary<string, object>
            {
                ["x"] = _t * 0.5, ["flag"] = _t % 2 == 0, ["vec"] = new[] { (float)_t, -(float)_t }, ["name"] = "not a number",
            };
            if (_t >= 2) extra["late"] = 7;
            return new StepResult(1, false, false, new EnvInfo { Extra = extra });
        }
    }

    private sealed class ThrowingEnv(bool fail) : EnvBase
    {
        private int _t;
        public override Space ObservationSpace { get; } = new Box(-1f, 1f, [1]);
        public override Space ActionSpace { get; } = new Discrete(2);
        protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options) { observation[0] = 0; return default; }
        protected override StepResult StepCore(EnvAction action, Span<float> observation)
        {
            if (++_t == 3 && fail && Interlocked.Decrement(ref ThrowsLeft) >= 0) throw new InvalidDataException("sensor broke");
            observation[0] = 0.5f;
            return new StepResult(1, false, false, default);
        }
    }

    private sealed class HangingEnv(bool hang) : EnvBase
    {
        public override Space ObservationSpace { get; } = new Box(-1f, 1f, [1]);
        public override Space ActionSpace { get; } = new Discrete(2);
        protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options) { observation[0] = 0; return default; }
        protected override StepResult StepCore(EnvAction action, Span<float> observation)
        {
            if (hang) Unblock.Wait(TimeSpan.FromSeconds(30));
            return new StepResult(0, false, false, default);
        }
    }

    /// <summary>Sleeps <c>ms</c> per step (5 by default), so a rollout's wall time does not depend on the CPU.</summary>
    private sealed class SlowEnv(int ms) : EnvBase
    {
        public override Space ObservationSpace { get; } = new Box(-1f, 1f, [1]);
        public override Space ActionSpace { get; } = new Discrete(2);
        protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options) { observation[0] = 0; return default; }
        protected override StepResult StepCore(EnvAction action, Span<float> observation)
        {
            Thread.Sleep(ms);
            observation[0] = 0.25f;
            return new StepResult(1, false, false, default);
        }
    }
}
