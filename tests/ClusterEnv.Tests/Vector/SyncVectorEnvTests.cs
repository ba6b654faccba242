using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Vector;

/// <summary>The conformance suite, run against the local <see cref="SyncVectorEnv"/>.</summary>
public class SyncVectorEnvConformanceTests : VectorEnvConformanceTests
{
    protected override IVectorEnv Create(string envId, int numEnvs, AutoresetMode mode, bool recordStatistics = true) =>
        Gym.MakeVec(envId, numEnvs, mode, recordStatistics ? e => new RecordEpisodeStatistics(e) : null);
}

/// <summary>What is specific to the local implementation: allocation, failures of sub-envs, construction.</summary>
public class SyncVectorEnvTests
{
    [TestCase(AutoresetMode.NextStep)]
    [TestCase(AutoresetMode.SameStep)]
    public void Step_AllocatesNothingInSteadyState_AcrossEpisodeBoundaries(AutoresetMode mode)
    {
        using var envs = Gym.MakeVec("CartPole-v1", 64, mode, e => new RecordEpisodeStatistics(e));
        envs.Reset(seed: 0);
        var rng = new Rng(0);
        var actions = new int[64];
        void Run(int steps)
        {
            for (int t = 0; t < steps; t++)
            {
                for (int i = 0; i < actions.Length; i++) actions[i] = rng.NextInt(2);
                envs.Step(actions);
            }
        }
        Run(2_000); // warm up: JIT tiers
        int episodes = 0;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int t = 0; t < 5_000; t++)
        {
            for (int i = 0; i < actions.Length; i++) actions[i] = rng.NextInt(2);
            var r = envs.Step(actions);
            if (r.Info.Episode.Any || r.Info.FinalEpisode.Any) episodes++;
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(episodes, Is.GreaterThan(100), "the window must include autoresets");
        Assert.That(allocated, Is.Zero, $"{allocated} bytes allocated over 5000 steps");
    }

    [Test]
    public void Step_ContinuousActions_AllocatesNothing()
    {
        using var envs = Gym.MakeVec("Pendulum-v1", 16, wrap: e => new ClipAction(e));
        envs.Reset(seed: 0);
        var actions = new float[16];
        for (int t = 0; t < 1000; t++) envs.Step(actions);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int t = 0; t < 2000; t++) envs.Step(actions);
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    private sealed class ThrowingEnv(int failAtStep) : EnvBase
    {
        private int _t;
        public override Space ObservationSpace { get; } = new Box(-1f, 1f, [1]);
        public override Space ActionSpace { get; } = new Discrete(2);
        protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options) { observation[0] = 0; return default; }
        protected override StepResult StepCore(EnvAction action, Span<float> observation)
        {
            if (++_t == failAtStep) throw new InvalidDataException("sensor broke");
            observation[0] = 0;
            return new StepResult(1, false, false, default);
        }
    }

    [Test]
    public void SubEnvThatThrows_SurfacesWithItsIndex_AndRequiresReset()
    {
        using var envs = new SyncVectorEnv([new ThrowingEnv(100), new ThrowingEnv(3)]);
        envs.Reset(seed: 0);
        envs.Step(new[] { 0, 0 });
        envs.Step(new[] { 0, 0 });
        var ex = Assert.Throws<SubEnvException>(() => envs.Step(new[] { 0, 0 }));
        Assert.That(ex!.EnvIndex, Is.EqualTo(1));
        Assert.That(ex.ErrorType, Is.EqualTo(typeof(InvalidDataException).FullName));
        Assert.That(ex.Message, Does.Contain("sensor broke"));
        Assert.That(ex.InnerException, Is.TypeOf<InvalidDataException>());
        Assert.Throws<ResetNeededException>(() => envs.Step(new[] { 0, 0 }));
        envs.Reset();
        Assert.DoesNotThrow(() => envs.Step(new[] { 0, 0 }));
    }

    [Test]
    public void Construction_RejectsMismatchedSpaces()
    {
        var ex = Assert.Throws<ArgumentException>(() => new SyncVectorEnv([Gym.Make("CartPole-v1"), Gym.Make("Acrobot-v1")]));
        Assert.That(ex!.Message, Does.Contain("Sub-env 1").And.Contain("equal spaces"));
    }

    [Test]
    public void Construction_RejectsTupleActionSpaces()
    {
        var env = new TupleActionEnv();
        var ex = Assert.Throws<NotSupportedException>(() => new SyncVectorEnv([env]));
        Assert.That(ex!.Message, Does.Contain("Tuple("));
    }

    private sealed class TupleActionEnv : EnvBase
    {
        public override Space ObservationSpace { get; } = new Box(-1f, 1f, [1]);
        public override Space ActionSpace { get; } = new TupleSpace(new Discrete(2), new Discrete(3));
        protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options) => default;
        protected override StepResult StepCore(EnvAction action, Span<float> observation) => default;
    }

    [Test]
    public void MultiDiscreteActions_AreValidatedPerComponent()
    {
        using var envs = new SyncVectorEnv([new MultiDiscreteEnv(), new MultiDiscreteEnv()]);
        envs.Reset(seed: 0);
        Assert.DoesNotThrow(() => envs.Step(new[] { 1, 4, 0, 0 }));
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => envs.Step(new[] { 1, 4, 2, 0 }));
        Assert.That(ex!.Message, Does.Contain("sub-env 1 (element 0)").And.Contain("0..1"));
    }

    private sealed class MultiDiscreteEnv : EnvBase
    {
        public override Space ObservationSpace { get; } = new Box(-10f, 10f, [2]);
        public override Space ActionSpace { get; } = new MultiDiscrete([2, 5]);
        protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options) => default;
        protected override StepResult StepCore(EnvAction action, Span<float> observation)
        {
            observation[0] = action.Ints[0];
            observation[1] = action.Ints[1];
            return new StepResult(0, false, false, default);
        }
    }
}
