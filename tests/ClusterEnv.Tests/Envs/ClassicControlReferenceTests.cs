using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Envs.ClassicControl;
using ClusterEnv.Tests.Reference;

namespace ClusterEnv.Tests.Envs;

/// <summary>
/// Each env against a literal transliteration of Gymnasium's equations (<see cref="GymnasiumReference"/>): 500
/// steps from a given state and action sequence must give the same float32 observation bits, rewards and flags.
/// </summary>
public class ClassicControlReferenceTests
{
    private const int Steps = 500;

    private static void AssertSameBits(float[] expected, float[] actual, int step, string what = "observation")
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length));
        for (int k = 0; k < expected.Length; k++)
            if (BitConverter.SingleToInt32Bits(expected[k]) != BitConverter.SingleToInt32Bits(actual[k]))
                Assert.Fail($"Step {step}: {what}[{k}] = {actual[k]:R} but Gymnasium's equations give {expected[k]:R}.");
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(2)]
    public void CartPole_MatchesGymnasiumBitForBit(int seed)
    {
        var env = new CartPole();
        var obs = new float[4];
        env.Reset(obs, seed: seed);
        env.State = (0.01, -0.2, 0.03, 0.1); // a given state
        var reference = new GymnasiumReference.CartPoleRef([0.01, -0.2, 0.03, 0.1]);
        var rng = new Rng(seed + 100);
        bool everTerminated = false;
        for (int t = 0; t < Steps; t++)
        {
            // Balance for a while, then act randomly, so both the live and the past-termination branches run.
            int a = t < 150 ? (obs[2] + 0.5f * obs[3] > 0 ? 1 : 0) : rng.NextInt(2);
            var r = env.Step(a, obs);
            var (eObs, eReward, eTerm) = reference.Step(a);
            AssertSameBits(eObs, obs, t);
            Assert.That((r.Reward, r.Terminated, r.Truncated), Is.EqualTo((eReward, eTerm, false)), $"step {t}");
            everTerminated |= r.Terminated;
        }
        Assert.That(everTerminated, "the test should cover termination");
    }

    [TestCase(0)]
    [TestCase(7)]
    public void Acrobot_MatchesGymnasiumBitForBit_FromTheFloat32ResetState(int seed)
    {
        var env = new Acrobot();
        var obs = new float[6];
        env.Reset(obs, seed: seed);
        var s = env.State;
        foreach (double v in new[] { s.Theta1, s.Theta2, s.DTheta1, s.DTheta2 })
            Assert.That((double)(float)v, Is.EqualTo(v), "Gymnasium rounds the reset state to float32");
        var reference = new GymnasiumReference.AcrobotRef([s.Theta1, s.Theta2, s.DTheta1, s.DTheta2], stateIsFloat32: true);
        AssertSameBits(reference.Observation(), obs, -1, "reset observation");

        var rng = new Rng(seed);
        for (int t = 0; t < Steps; t++)
        {
            int a = rng.NextInt(3);
            var r = env.Step(a, obs);
            var (eObs, eReward, eTerm) = reference.Step(a);
            AssertSameBits(eObs, obs, t);
            Assert.That((r.Reward, r.Terminated), Is.EqualTo((eReward, eTerm)), $"step {t}");
        }
    }

    [Test]
    public void Acrobot_MatchesGymnasiumBitForBit_FromAGivenFloat64State()
    {
        var env = new Acrobot();
        var obs = new float[6];
        env.Reset(obs, seed: 3);
        env.State = (2.5, -1.0, 3.0, -6.0);
        var reference = new GymnasiumReference.AcrobotRef([2.5, -1.0, 3.0, -6.0], stateIsFloat32: false);
        bool terminated = false;
        for (int t = 0; t < Steps; t++)
        {
            int a = t % 3;
            var r = env.Step(a, obs);
            var (eObs, eReward, eTerm) = reference.Step(a);
            AssertSameBits(eObs, obs, t);
            Assert.That((r.Reward, r.Terminated), Is.EqualTo((eReward, eTerm)), $"step {t}");
            terminated |= r.Terminated;
        }
        Assert.That(terminated, "a swinging start should reach the goal height at least once");
    }

    [TestCase(-0.5, 0.0)]
    [TestCase(-1.15, -0.05)] // runs into the left wall: position clip and velocity reset
    public void MountainCar_MatchesGymnasiumBitForBit(double position, double velocity)
    {
        var env = new MountainCar();
        var obs = new float[2];
        env.Reset(obs, seed: 0);
        env.State = (position, velocity);
        var reference = new GymnasiumReference.MountainCarRef(position, velocity);
        bool terminated = false;
        for (int t = 0; t < Steps; t++)
        {
            int a = obs[1] >= 0 ? 2 : 0; // pump energy: push along the velocity
            if (t < 5) a = 0;
            var r = env.Step(a, obs);
            var (eObs, eReward, eTerm) = reference.Step(a);
            AssertSameBits(eObs, obs, t);
            Assert.That((r.Reward, r.Terminated), Is.EqualTo((eReward, eTerm)), $"step {t}");
            terminated |= r.Terminated;
        }
        Assert.That(terminated, "the energy-pumping policy reaches the goal");
    }

    [TestCase(-0.5, 1)]
    [TestCase(-1.1, 2)]
    public void MountainCarContinuous_MatchesGymnasiumBitForBit(double position, int seed)
    {
        var env = new MountainCarContinuous();
        var obs = new float[2];
        env.Reset(obs, seed: 0);
        env.State = (position, 0.0);
        var reference = new GymnasiumReference.MountainCarContinuousRef(position, 0.0);
        var rng = new Rng(seed);
        bool terminated = false;
        for (int t = 0; t < Steps; t++)
        {
            // Mostly pump along the velocity with out-of-range magnitudes (clipped force, unclipped cost), sometimes random.
            float a = rng.NextInt(4) == 0 ? (float)rng.Uniform(-1.5, 1.5) : (obs[1] >= 0 ? 1.7f : -1.3f);
            if (t < 3) a = -1f;
            var r = env.Step(new[] { a }, obs);
            var (eObs, eReward, eTerm) = reference.Step(a);
            AssertSameBits(eObs, obs, t);
            Assert.That(r.Reward, Is.EqualTo(eReward), $"reward at step {t}");
            Assert.That(r.Terminated, Is.EqualTo(eTerm), $"terminated at step {t}");
            terminated |= r.Terminated;
        }
        Assert.That(terminated, "the pumping policy reaches the goal");
    }

    [TestCase(3.0, 0.5, 5)]
    [TestCase(-0.2, -7.9, 6)]
    public void Pendulum_MatchesGymnasiumBitForBit(double theta, double thetaDot, int seed)
    {
        var env = new Pendulum();
        var obs = new float[3];
        env.Reset(obs, seed: 0);
        env.State = (theta, thetaDot);
        var reference = new GymnasiumReference.PendulumRef(theta, thetaDot);
        var rng = new Rng(seed);
        for (int t = 0; t < Steps; t++)
        {
            float a = (float)rng.Uniform(-3, 3); // beyond ±2 to exercise the clip
            var r = env.Step(new[] { a }, obs);
            var (eObs, eReward) = reference.Step(a);
            AssertSameBits(eObs, obs, t);
            Assert.That(r.Reward, Is.EqualTo(eReward), $"reward at step {t}");
            Assert.That(r.Terminated || r.Truncated, Is.False);
        }
    }

    [Test]
    public void Pendulum_AngleNormalize_IsFlooredModulo()
    {
        Assert.That(Pendulum.AngleNormalize(0), Is.EqualTo(0).Within(1e-15));
        Assert.That(Pendulum.AngleNormalize(3 * Math.PI / 2), Is.EqualTo(-Math.PI / 2).Within(1e-12));
        Assert.That(Pendulum.AngleNormalize(-3 * Math.PI / 2), Is.EqualTo(Math.PI / 2).Within(1e-12));
        Assert.That(Pendulum.AngleNormalize(-7.0), Is.InRange(-Math.PI, Math.PI));
    }
}
