using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Envs.ClassicControl;
using ClusterEnv.Spaces;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Envs;

public class RegistryAndEnvTests
{
    [TestCase("CartPole-v1", 500, 475.0)]
    [TestCase("Acrobot-v1", 500, -100.0)]
    [TestCase("MountainCar-v0", 200, -110.0)]
    [TestCase("MountainCarContinuous-v0", 999, 90.0)]
    public void Registry_HasGymnasiumLimitsAndThresholds(string id, int maxSteps, double threshold)
    {
        var spec = Gym.Spec(id);
        Assert.That((spec.MaxEpisodeSteps, spec.RewardThreshold), Is.EqualTo(((int?)maxSteps, (double?)threshold)));
        using var env = Gym.Make(id);
        Assert.That(env, Is.TypeOf<TimeLimit>());
        Assert.That(((TimeLimit)env).MaxEpisodeSteps, Is.EqualTo(maxSteps));
        Assert.That(env.Spec!.Id, Is.EqualTo(id));
    }

    [Test]
    public void Registry_Pendulum_HasNoThreshold()
    {
        Assert.That(Gym.Spec("Pendulum-v1").RewardThreshold, Is.Null);
        Assert.That(Gym.Spec("Pendulum-v1").MaxEpisodeSteps, Is.EqualTo(200));
    }

    [Test]
    public void Make_UnknownId_NamesTheRegisteredOnes()
    {
        var ex = Assert.Throws<UnknownEnvironmentException>(() => Gym.Make("CartPole-v9"));
        Assert.That(ex!.Message, Does.Contain("'CartPole-v9'").And.Contain("Did you mean 'CartPole-v1'").And.Contain("Acrobot-v1").And.Contain("Gym.Register"));
    }

    [Test]
    public void Make_UnknownArgument_NamesTheAcceptedOnes()
    {
        var ex = Assert.Throws<ArgumentException>(() => Gym.Make("Pendulum-v1", new Dictionary<string, object> { ["gravity"] = 9.81 }));
        Assert.That(ex!.Message, Does.Contain("'gravity'").And.Contain("accepts: g"));
    }

    [Test]
    public void Make_PassesArguments_AndOverridesTheTimeLimit()
    {
        using var heavy = Gym.Make("Pendulum-v1", new Dictionary<string, object> { ["g"] = 20.0 }, maxEpisodeSteps: 7);
        using var normal = Gym.Make("Pendulum-v1");
        var o1 = new float[3];
        var o2 = new float[3];
        heavy.Reset(o1, seed: 1);
        normal.Reset(o2, seed: 1);
        StepResult r = default;
        for (int t = 0; t < 7; t++) { r = heavy.Step(new[] { 0f }, o1); normal.Step(new[] { 0f }, o2); }
        Assert.That(o1, Is.Not.EqualTo(o2), "gravity changes the dynamics");
        Assert.That(r.Truncated, Is.True, "the overridden limit of 7 steps");
    }

    [Test]
    public void Register_UsersOwnEnv_IsMadeWithItsLimit()
    {
        Gym.Register("TestCounter-v0", () => new CounterEnv(), maxEpisodeSteps: 3, rewardThreshold: 3.0);
        using var env = Gym.Make("TestCounter-v0");
        var obs = new float[1];
        env.Reset(obs);
        Assert.That(env.Step(0, obs).Truncated, Is.False);
        Assert.That(env.Step(0, obs).Truncated, Is.False);
        Assert.That(env.Step(0, obs).Truncated, Is.True);
        Assert.That(Gym.Ids, Does.Contain("TestCounter-v0"));
        Assert.Throws<ArgumentException>(() => Gym.Make("TestCounter-v0", new Dictionary<string, object> { ["x"] = 1 }));
    }

    private sealed class CounterEnv : EnvBase
    {
        private int _n;
        public override Space ObservationSpace { get; } = new Box(0f, 100f, [1]);
        public override Space ActionSpace { get; } = new Discrete(1);
        protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options) { _n = 0; observation[0] = 0; return default; }
        protected override StepResult StepCore(EnvAction action, Span<float> observation)
        {
            DiscreteAction(action);
            observation[0] = ++_n;
            return new StepResult(1, false, false, default);
        }
    }

    [Test]
    public void Env_StepBeforeReset_Throws()
    {
        using var env = Gym.Make("Acrobot-v1");
        Assert.Throws<ResetNeededException>(() => env.Step(0, new float[6]));
    }

    [Test]
    public void Env_InvalidActionsAndBuffers_ThrowClearly()
    {
        using var cart = Gym.Make("CartPole-v1");
        var obs = new float[4];
        cart.Reset(obs, seed: 0);
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => cart.Step(2, obs))!.Message, Does.Contain("valid actions are 0..1"));
        Assert.That(Assert.Throws<ArgumentException>(() => cart.Step(new[] { 0.5f }, obs))!.Message, Does.Contain("discrete"));
        Assert.That(Assert.Throws<ArgumentException>(() => cart.Step(0, new float[3]))!.Message, Does.Contain("needs 4"));
        using var pend = Gym.Make("Pendulum-v1");
        var po = new float[3];
        pend.Reset(po, seed: 0);
        Assert.That(Assert.Throws<ArgumentException>(() => pend.Step(new[] { float.NaN }, po))!.Message, Does.Contain("finite"));
        Assert.Throws<ArgumentException>(() => pend.Step(new[] { 1f, 1f }, po));
    }

    [TestCase("CartPole-v1")]
    [TestCase("Acrobot-v1")]
    [TestCase("MountainCar-v0")]
    [TestCase("MountainCarContinuous-v0")]
    [TestCase("Pendulum-v1")]
    public void SameSeed_SameTrajectory_AndObservationsInSpace(string id)
    {
        float[] Run()
        {
            using var env = Gym.Make(id);
            var obs = new float[env.ObservationSpace.EncodedSize];
            env.Reset(obs, seed: 77);
            env.ActionSpace.Seed(5);
            var trace = new List<float>(obs);
            for (int t = 0; t < 100; t++)
            {
                var r = env.ActionSpace is Discrete d ? env.Step(d.SampleValue(), obs) : env.Step((float[])env.ActionSpace.Sample(), obs);
                trace.AddRange(obs);
                trace.Add((float)r.Reward);
                if (id != "CartPole-v1") Assert.That(((Box)env.ObservationSpace).Contains(obs), $"{id} step {t}: {string.Join(", ", obs)}");
                if (r.Terminated || r.Truncated) env.Reset(obs);
            }
            return trace.ToArray();
        }
        var a = Run();
        var b = Run();
        Assert.That(b, Is.EqualTo(a));
    }

    [Test]
    public void DifferentSeeds_DifferentStarts()
    {
        using var env = Gym.Make("CartPole-v1");
        Assert.That(env.Reset(seed: 1).Observation, Is.Not.EqualTo(env.Reset(seed: 2).Observation));
    }

    [Test]
    public void CartPole_ResetBoundsOption_IsHonoured_AndValidated()
    {
        using var env = Gym.Make("CartPole-v1");
        var (obs, _) = env.Reset(seed: 0, new ResetOptions { ["low"] = -0.2, ["high"] = -0.1 });
        Assert.That(obs, Has.All.InRange(-0.2f, -0.1f));
        Assert.Throws<ArgumentException>(() => env.Reset(seed: 0, new ResetOptions { ["low"] = "abc" }));
    }

    [Test]
    public void Pendulum_ResetOptions_XInitYInit()
    {
        using var env = Gym.Make("Pendulum-v1");
        env.Reset(seed: 0, new ResetOptions { ["x_init"] = 0.1, ["y_init"] = 0.2 });
        var p = (Pendulum)env.Unwrapped();
        Assert.That(Math.Abs(p.State.Theta), Is.LessThanOrEqualTo(0.1));
        Assert.That(Math.Abs(p.State.ThetaDot), Is.LessThanOrEqualTo(0.2));
    }

    [Test]
    public void Rng_IsDeterministic_AndNextIntIsInRangeAndRoughlyUniform()
    {
        var a = new Rng(9);
        var b = new Rng(9);
        var counts = new int[5];
        for (int i = 0; i < 50_000; i++)
        {
            int x = a.NextInt(5);
            Assert.That(b.NextInt(5), Is.EqualTo(x));
            counts[x]++;
        }
        Assert.That(counts, Has.All.InRange(9_500, 10_500));
        var u = new Rng(1);
        for (int i = 0; i < 1000; i++) Assert.That(u.NextDouble(), Is.InRange(0.0, 1.0).And.LessThan(1.0));
    }
}
