using System.Diagnostics;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Vector;

/// <summary>
/// The contract every <see cref="IVectorEnv"/> must meet, written once and run against each implementation (like
/// System.Threading.Channels' ChannelTestBase). A subclass supplies <see cref="Create"/>; every sub-env must be
/// <c>Gym.Make(id)</c>, wrapped in RecordEpisodeStatistics when <c>recordStatistics</c> is set, so that the tests
/// can replay the same episodes on local single envs as a reference model.
/// </summary>
public abstract class VectorEnvConformanceTests
{
    /// <summary>Creates the vector env under test.</summary>
    protected abstract IVectorEnv Create(string envId, int numEnvs, AutoresetMode mode, bool recordStatistics = true);

    private static IEnv MakeReference(string envId, bool recordStatistics = true)
    {
        var env = Gym.Make(envId);
        return recordStatistics ? new RecordEpisodeStatistics(env) : env;
    }

    // ---------------------------------------------------------------- spaces

    [Test]
    public void Spaces_MatchTheSingleEnvAndBatchAsGymnasium()
    {
        using var envs = Create("CartPole-v1", 3, AutoresetMode.NextStep);
        using var single = Gym.Make("CartPole-v1");
        Assert.That(envs.NumEnvs, Is.EqualTo(3));
        Assert.That(envs.SingleObservationSpace, Is.EqualTo(single.ObservationSpace));
        Assert.That(envs.SingleActionSpace, Is.EqualTo(single.ActionSpace));
        Assert.That(envs.ObservationSpace, Is.EqualTo(single.ObservationSpace.Batch(3)));
        Assert.That(envs.ObservationSpace.Shape, Is.EqualTo(new[] { 3, 4 }));
        Assert.That(envs.ActionSpace, Is.EqualTo(new MultiDiscrete([2, 2, 2])));
        Assert.That((envs.ObservationSize, envs.ActionSize), Is.EqualTo((4, 1)));
        Assert.That(envs.AutoresetMode, Is.EqualTo(AutoresetMode.NextStep));
    }

    [Test]
    public void Spaces_ContinuousEnv_BatchesToABox()
    {
        using var envs = Create("Pendulum-v1", 2, AutoresetMode.NextStep);
        Assert.That(envs.ActionSpace, Is.EqualTo(new Box(-2f, 2f, [2, 1])));
        Assert.That(envs.ActionSize, Is.EqualTo(1));
        envs.Reset(seed: 1);
        var r = envs.Step(new float[] { 0.5f, -2f });
        Assert.That(r.Observations, Has.Length.EqualTo(6));
        Assert.That(r.Rewards, Has.All.LessThanOrEqualTo(0.0));
    }

    // ---------------------------------------------------------------- seeding

    [Test]
    public void Reset_SeedsSubEnvIWithSeedPlusI()
    {
        using var envs = Create("CartPole-v1", 4, AutoresetMode.NextStep);
        var obs = envs.Reset(seed: 123).Observations;
        for (int i = 0; i < 4; i++)
        {
            using var single = Gym.Make("CartPole-v1");
            var (expected, _) = single.Reset(seed: 123 + i);
            Assert.That(obs.AsSpan(i * 4, 4).ToArray(), Is.EqualTo(expected), $"sub-env {i}");
        }
    }

    [Test]
    public void Reset_WithSeedList_SeedsEachSubEnv()
    {
        using var envs = Create("Acrobot-v1", 2, AutoresetMode.NextStep);
        var obs = envs.Reset(new long?[] { 9, 4 }).Observations;
        using var single = Gym.Make("Acrobot-v1");
        Assert.That(obs.AsSpan(6, 6).ToArray(), Is.EqualTo(single.Reset(seed: 4).Observation));
        Assert.That(obs.AsSpan(0, 6).ToArray(), Is.EqualTo(single.Reset(seed: 9).Observation));
    }

    [Test]
    public void SameSeedAndActions_GiveTheSameTrajectories()
    {
        float[] Run()
        {
            using var envs = Create("CartPole-v1", 3, AutoresetMode.NextStep);
            envs.Reset(seed: 5);
            var rng = new Rng(1);
            var actions = new int[3];
            var trace = new List<float>();
            for (int t = 0; t < 300; t++)
            {
                for (int i = 0; i < 3; i++) actions[i] = rng.NextInt(2);
                var r = envs.Step(actions);
                trace.AddRange(r.Observations);
                trace.AddRange(r.Rewards.Select(x => (float)x));
                trace.AddRange(r.Terminated.Select(x => x ? 1f : 0f));
            }
            return trace.ToArray();
        }
        var first = Run();
        var second = Run();
        Assert.That(second, Is.EqualTo(first));
    }

    // ---------------------------------------------------------------- autoreset

    /// <summary>Steps with fixed actions until some sub-env terminates (fails the test after 1000 steps).</summary>
    private static VectorStepResult StepUntilTerminated(IVectorEnv envs, int[] actions, Func<VectorStepResult, bool>? done = null)
    {
        done ??= r => r.Terminated.Any(t => t);
        for (int t = 0; t < 1000; t++)
        {
            var r = envs.Step(actions);
            if (done(r)) return r;
        }
        Assert.Fail("no sub-env terminated within 1000 steps");
        throw new UnreachableException();
    }

    [TestCase("CartPole-v1")]
    [TestCase("Acrobot-v1")]
    public void NextStep_MatchesGymnasiumSemantics(string envId) => CheckAgainstReferenceModel(envId, AutoresetMode.NextStep, steps: 700);

    [TestCase("CartPole-v1")]
    [TestCase("MountainCar-v0")]
    public void SameStep_MatchesGymnasiumSemantics(string envId) => CheckAgainstReferenceModel(envId, AutoresetMode.SameStep, steps: 700);

    /// <summary>
    /// Replays the vector env's run on single envs following Gymnasium 1.x's SyncVectorEnv step, and compares
    /// every observation, reward, flag, final observation and episode statistic.
    /// </summary>
    private void CheckAgainstReferenceModel(string envId, AutoresetMode mode, int steps)
    {
        const int n = 3;
        const int seed = 11;
        using var envs = Create(envId, n, mode);
        var refs = Enumerable.Range(0, n).Select(_ => MakeReference(envId)).ToArray();
        int obsSize = envs.ObservationSize;
        var refObs = new float[n][];
        var autoreset = new bool[n];
        var reset = envs.Reset(seed: seed);
        for (int i = 0; i < n; i++)
        {
            refObs[i] = new float[obsSize];
            refs[i].Reset(refObs[i], seed: seed + i);
            Assert.That(reset.Observations.AsSpan(i * obsSize, obsSize).ToArray(), Is.EqualTo(refObs[i]));
        }

        var rng = new Rng(3);
        var discrete = (Discrete)envs.SingleActionSpace;
        var actions = new int[n];
        int episodesSeen = 0, ignoredActions = 0;
        for (int t = 0; t < steps; t++)
        {
            for (int i = 0; i < n; i++) actions[i] = rng.NextInt(discrete.N);
            var r = envs.Step(actions);
            for (int i = 0; i < n; i++)
            {
                string at = $"step {t}, sub-env {i}";
                double reward;
                bool term, trunc;
                bool finalExpected = false;
                float[]? finalObs = null;
                EnvInfo info;
                if (mode == AutoresetMode.NextStep && autoreset[i])
                {
                    info = refs[i].Reset(refObs[i]);
                    (reward, term, trunc) = (0.0, false, false);
                    ignoredActions++;
                }
                else
                {
                    var s = refs[i].Step(actions[i], refObs[i]);
                    (reward, term, trunc, info) = (s.Reward, s.Terminated, s.Truncated, s.Info);
                    if (mode == AutoresetMode.SameStep && (term || trunc))
                    {
                        finalExpected = true;
                        finalObs = (float[])refObs[i].Clone();
                        Assert.That(r.Info.FinalEpisode.Mask[i], Is.EqualTo(info.Episode is not null), at);
                        if (info.Episode is { } fe)
                            Assert.That((r.Info.FinalEpisode.Return[i], r.Info.FinalEpisode.Length[i]), Is.EqualTo((fe.Return, fe.Length)), at);
                        info = refs[i].Reset(refObs[i]);
                    }
                }
                autoreset[i] = term || trunc;

                Assert.That(r.Observations.AsSpan(i * obsSize, obsSize).ToArray(), Is.EqualTo(refObs[i]), at);
                Assert.That((r.Rewards[i], r.Terminated[i], r.Truncated[i]), Is.EqualTo((reward, term, trunc)), at);
                Assert.That(r.Info.HasFinalObservation[i], Is.EqualTo(finalExpected), at);
                if (finalObs is not null) Assert.That(r.Info.FinalObservation(i).ToArray(), Is.EqualTo(finalObs), at);
                Assert.That(r.Info.Episode.Mask[i], Is.EqualTo(info.Episode is not null), at);
                if (info.Episode is { } e)
                    Assert.That((r.Info.Episode.Return[i], r.Info.Episode.Length[i]), Is.EqualTo((e.Return, e.Length)), at);
                if (r.Info.TryGetEpisode(i, out _)) episodesSeen++;
            }
        }
        foreach (var e in refs) e.Dispose();
        Assert.That(episodesSeen, Is.GreaterThan(2), "the run should cross several episode boundaries");
        if (mode == AutoresetMode.NextStep) Assert.That(ignoredActions, Is.GreaterThan(0));
    }

    [Test]
    public void NextStep_AutoresetStep_IgnoresTheActionAndReportsZeroReward()
    {
        using var envs = Create("CartPole-v1", 1, AutoresetMode.NextStep);
        envs.Reset(seed: 0);
        var r = StepUntilTerminated(envs, [1]); // always pushing right ends the episode quickly
        Assert.That(r.Terminated[0], Is.True);
        Assert.That(r.Rewards[0], Is.EqualTo(1.0));
        Assert.That(Math.Abs(r.Observations[0]) > 2.4 || Math.Abs(r.Observations[2]) > 0.2094, "the final observation is the terminal state");

        r = envs.Step(new[] { 0 });
        Assert.That((r.Rewards[0], r.Terminated[0], r.Truncated[0]), Is.EqualTo((0.0, false, false)));
        Assert.That(r.Observations, Has.All.InRange(-0.05f, 0.05f), "the first observation of a new episode");
    }

    [Test]
    public void TimeLimit_Truncates_AndIsReportedAsTruncatedNotTerminated()
    {
        using var envs = Create("Pendulum-v1", 2, AutoresetMode.NextStep);
        envs.Reset(seed: 0);
        var actions = new float[2];
        for (int t = 1; t <= 200; t++)
        {
            var r = envs.Step(actions);
            Assert.That(r.Terminated, Has.All.False);
            Assert.That(r.Truncated, Has.All.EqualTo(t == 200), $"step {t}");
            if (t == 200)
            {
                Assert.That(r.Info.Episode.Mask, Has.All.True);
                Assert.That(r.Info.Episode.Length, Has.All.EqualTo(200));
            }
        }
    }

    [Test]
    public void Disabled_SteppingAFinishedSubEnv_Throws_UntilItIsResetByMask()
    {
        using var envs = Create("CartPole-v1", 2, AutoresetMode.Disabled);
        envs.Reset(seed: 0);
        var r = StepUntilTerminated(envs, [1, 0]);
        int done = r.Terminated[0] ? 0 : 1, other = 1 - done;
        float[] before = (float[])r.Observations.Clone();

        var ex = Assert.Throws<InvalidOperationException>(() => envs.Step(new[] { 1, 0 }));
        Assert.That(ex!.Message, Does.Contain($"Sub-env {done}").And.Contain("ResetMask"));

        var mask = new bool[2];
        mask[done] = true;
        var reset = envs.Reset(options: new ResetOptions { ResetMask = mask });
        Assert.That(reset.Observations.AsSpan(other * 4, 4).ToArray(), Is.EqualTo(before.AsSpan(other * 4, 4).ToArray()), "an unmasked sub-env is untouched");
        Assert.That(reset.Observations.AsSpan(done * 4, 4).ToArray(), Has.All.InRange(-0.05f, 0.05f));
        Assert.DoesNotThrow(() => envs.Step(new[] { 0, 0 }));
    }

    [Test]
    public void ResetMask_InNextStepMode_CancelsThePendingAutoreset()
    {
        using var envs = Create("CartPole-v1", 2, AutoresetMode.NextStep);
        envs.Reset(seed: 0);
        var r = StepUntilTerminated(envs, [1, 1], x => x.Terminated[0]);
        var reset = envs.Reset(seed: 50, options: new ResetOptions { ResetMask = [true, false] });
        using var single = Gym.Make("CartPole-v1");
        Assert.That(reset.Observations.AsSpan(0, 4).ToArray(), Is.EqualTo(single.Reset(seed: 50).Observation));
        r = envs.Step(new[] { 0, 0 });
        Assert.That(r.Rewards[0], Is.EqualTo(1.0), "a real step, not an autoreset step");
    }

    // ---------------------------------------------------------------- bad input

    [Test]
    public void Step_BeforeReset_Throws()
    {
        using var envs = Create("CartPole-v1", 2, AutoresetMode.NextStep);
        Assert.Throws<ResetNeededException>(() => envs.Step(new[] { 0, 1 }));
    }

    [Test]
    public void Step_AfterClose_Throws()
    {
        var envs = Create("CartPole-v1", 2, AutoresetMode.NextStep);
        envs.Reset(seed: 0);
        envs.Close();
        Assert.That(envs.IsClosed, Is.True);
        Assert.Throws<EnvironmentClosedException>(() => envs.Step(new[] { 0, 1 }));
        Assert.DoesNotThrow(envs.Close, "Close is idempotent");
    }

    [Test]
    public void Reset_AfterClose_Throws()
    {
        var envs = Create("CartPole-v1", 2, AutoresetMode.NextStep);
        envs.Dispose();
        Assert.Throws<EnvironmentClosedException>(() => envs.Reset(seed: 0));
    }

    [TestCase(1)]
    [TestCase(3)]
    [TestCase(0)]
    public void Step_WrongActionCount_ThrowsNamingTheExpectedCount(int count)
    {
        using var envs = Create("CartPole-v1", 2, AutoresetMode.NextStep);
        envs.Reset(seed: 0);
        var ex = Assert.Throws<ArgumentException>(() => envs.Step(new int[count]));
        Assert.That(ex!.Message, Does.Contain($"Got {count} action values").And.Contain("need 2"));
    }

    [Test]
    public void Step_OutOfRangeDiscreteAction_Throws_AndStepsNoSubEnv()
    {
        using var envs = Create("CartPole-v1", 3, AutoresetMode.NextStep);
        var buffer = envs.Reset(seed: 0).Observations;
        var before = (float[])buffer.Clone();
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => envs.Step(new[] { 0, 1, 2 }));
        Assert.That(ex!.Message, Does.Contain("sub-env 2").And.Contain("0..1"));
        Assert.Throws<ArgumentOutOfRangeException>(() => envs.Step(new[] { -1, 0, 0 }));
        Assert.That(buffer, Is.EqualTo(before), "a rejected call leaves the observations as they were");
        var r = envs.Step(new[] { 0, 0, 0 });
        using var single = Gym.Make("CartPole-v1");
        single.Reset(seed: 0);
        Assert.That(r.Observations.AsSpan(0, 4).ToArray(), Is.EqualTo(single.Step(0).Observation), "the rejected calls stepped nothing");
    }

    [Test]
    public void Step_FloatActionsForADiscreteSpace_Throws()
    {
        using var envs = Create("CartPole-v1", 2, AutoresetMode.NextStep);
        envs.Reset(seed: 0);
        var ex = Assert.Throws<ArgumentException>(() => envs.Step(new float[] { 0, 1 }));
        Assert.That(ex!.Message, Does.Contain("discrete").And.Contain("int actions"));
    }

    [Test]
    public void Step_IntActionsForAContinuousSpace_Throws()
    {
        using var envs = Create("Pendulum-v1", 2, AutoresetMode.NextStep);
        envs.Reset(seed: 0);
        var ex = Assert.Throws<ArgumentException>(() => envs.Step(new[] { 0, 1 }));
        Assert.That(ex!.Message, Does.Contain("continuous").And.Contain("float actions"));
    }

    [TestCase(float.NaN)]
    [TestCase(float.PositiveInfinity)]
    [TestCase(float.NegativeInfinity)]
    public void Step_NonFiniteContinuousAction_Throws(float bad)
    {
        using var envs = Create("Pendulum-v1", 2, AutoresetMode.NextStep);
        envs.Reset(seed: 0);
        var ex = Assert.Throws<ArgumentException>(() => envs.Step(new[] { 0f, bad }));
        Assert.That(ex!.Message, Does.Contain("sub-env 1").And.Contain("finite"));
    }

    [Test]
    public void Reset_BadResetMask_Throws()
    {
        using var envs = Create("CartPole-v1", 2, AutoresetMode.NextStep);
        Assert.That(Assert.Throws<ArgumentException>(() => envs.Reset(options: new ResetOptions { ResetMask = [true] }))!.Message, Does.Contain("2 sub-envs"));
        Assert.That(Assert.Throws<ArgumentException>(() => envs.Reset(options: new ResetOptions { ResetMask = [false, false] }))!.Message, Does.Contain("selects no sub-env"));
    }

    [Test]
    public void Reset_WrongNumberOfSeeds_Throws()
    {
        using var envs = Create("CartPole-v1", 2, AutoresetMode.NextStep);
        Assert.Throws<ArgumentException>(() => envs.Reset(new long?[] { 1, 2, 3 }));
    }

    [Test]
    public void Reset_OptionsReachTheSubEnvs()
    {
        using var envs = Create("CartPole-v1", 4, AutoresetMode.NextStep);
        var obs = envs.Reset(seed: 0, options: new ResetOptions { ["low"] = 0.3, ["high"] = 0.4 }).Observations;
        Assert.That(obs, Has.All.InRange(0.3f, 0.4f));
        var ex = Assert.Throws<SubEnvException>(() => envs.Reset(seed: 0, options: new ResetOptions { ["low"] = 0.5, ["high"] = 0.4 }));
        Assert.That(ex!.ErrorType, Is.EqualTo(typeof(ArgumentException).FullName));
        Assert.That(ex.Message, Does.Contain("low=0.5 is greater than high=0.4"));
    }
}
