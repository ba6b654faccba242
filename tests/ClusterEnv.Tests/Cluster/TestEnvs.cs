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
    public const string Structured = "Test/Structured-v0";

    private static ManualResetEventSlim _unblock = new(false);

    /// <summary>Released by tests so hung envs end (a HangingEnv waits on the gate current when it was made).</summary>
    public static ManualResetEventSlim Unblock => Volatile.Read(ref _unblock);

    /// <summary>Releases the envs hung so far and closes a fresh gate for the envs made from now on.</summary>
    public static void NewHangGate() => Interlocked.Exchange(ref _unblock, new ManualResetEventSlim(false)).Set();

    private static int _registered;

    /// <summary>How many more times a ThrowingEnv built with fail=true may throw (one by default).</summary>
    public static int ThrowsLeft = 1;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1) return;
        Gym.Register(Throwing, kw => new ThrowingEnv(kw is not null && kw.TryGetValue("fail", out var f) && f is true));
        Gym.Register(Hanging, kw => new HangingEnv(kw is not null && kw.TryGetValue("hang", out var h) && h is true));
        Gym.Register(Info, () => new InfoEnv());
        Gym.Register(Structured, () => new StructuredEnv());
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

    // A Dict observation with a nested Tuple: {"goal": Discrete(3, start=1), "grid": Box(0, 9, (2, 3)), "parts": (MultiDiscrete([2, 4]), MultiBinary(2))}.
    // After reset and t steps with action a: goal 1 + (seed % 3), grid[i][j] = t + i·3 + j (capped at 9), parts = ([t % 2, a], [1, 0]).
    private sealed class StructuredEnv : EnvBase
    {
        private int _t, _goal;
        public override Space ObservationSpace { get; } = new DictSpace(new Dictionary<string, Space>
        {
            ["grid"] = new Box(0f, 9f, [2, 3]),
            ["goal"] = new Discrete(3, start: 1),
            ["parts"] = new TupleSpace(new MultiDiscrete([2, 4]), new MultiBinary(2)),
        });
        public override Space ActionSpace { get; } = new Discrete(4);
        protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options)
        {
            _t = 0;
            _goal = 1 + NpRandom.NextInt(3);
            Write(observation, 0);
            return default;
        }
        protected override StepResult StepCore(EnvAction action, Span<float> observation)
        {
            _t++;
            Write(observation, action.AsDiscrete());
            return new StepResult(1, _t >= 5, false, default);
        }
        private void Write(Span<float> o, int a)
        {
            o[0] = _goal; // keys sorted: goal, grid, parts
            for (int k = 0; k < 6; k++) o[1 + k] = Math.Min(9, _t + k);
            o[7] = _t % 2;
            o[8] = a;
            o[9] = 1;
            o[10] = 0;
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
        private readonly ManualResetEventSlim _gate = Unblock;
        public override Space ObservationSpace { get; } = new Box(-1f, 1f, [1]);
        public override Space ActionSpace { get; } = new Discrete(2);
        protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options) { observation[0] = 0; return default; }
        protected override StepResult StepCore(EnvAction action, Span<float> observation)
        {
            if (hang) _gate.Wait(TimeSpan.FromSeconds(30));
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
