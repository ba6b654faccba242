using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Tests.Cluster;

/// <summary>Envs that misbehave on purpose, registered for in-process workers.</summary>
internal static class TestEnvs
{
    public const string Throwing = "Test/Throwing-v0";
    public const string Hanging = "Test/Hanging-v0";
    public const string Slow = "Test/Slow-v0";

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
        Gym.Register(Slow, kw => new SlowEnv(kw is not null && kw.TryGetValue("ms", out var ms) ? Convert.ToInt32(ms, System.Globalization.CultureInfo.InvariantCulture) : 5));
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
