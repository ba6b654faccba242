using ClusterEnv.Cluster;
using ClusterEnv.Envs;
using ClusterEnv.Tests.Cluster;
using ClusterEnv.Vector;

namespace ClusterEnv.Tests.Vector;

/// <summary>The sub-envs' extra info reaches the learner, per sub-env and in Gymnasium 1.x's stacked form, locally and over the wire.</summary>
public class InfoTests
{
    [OneTimeSetUp]
    public void Register() => TestEnvs.Register();

    private static IEnumerable<TestCaseData> Envs()
    {
        yield return new TestCaseData((Func<IVectorEnv>)(() => Gym.MakeVec(TestEnvs.Info, 3))).SetArgDisplayNames("local");
        yield return new TestCaseData((Func<IVectorEnv>)(() => { TestEnvs.Register(); return TestCluster.InProcess(TestEnvs.Info, [1, 2], recordStatistics: false).Env; }))
            .SetArgDisplayNames("cluster");
    }

    [TestCaseSource(nameof(Envs))]
    public void NumericInfo_ArrivesWithItsKeysAndMasks(Func<IVectorEnv> make)
    {
        using var envs = make();
        bool local = envs is SyncVectorEnv;
        var reset = envs.Reset(seed: 1);
        Assert.That(reset.Info.TryGetStacked("level", out var level, out var levelMask), Is.True);
        Assert.That(levelMask, Is.EqualTo(new[] { true, true, true }));
        Assert.That(level.Select(v => Convert.ToInt64(v)), Is.EqualTo(new long[] { 3, 3, 3 }));

        var r = envs.Step([0, 0, 0]);
        Assert.That(r.Info.TryGetStacked("x", out var x, out _), Is.True);
        Assert.That(x, Has.All.EqualTo(0.5));
        Assert.That(r.Info.TryGetStacked("flag", out var flag, out _), Is.True);
        Assert.That(flag, Has.All.EqualTo(false));
        Assert.That(r.Info.TryGetStacked("late", out _, out _), Is.False, "no sub-env reported it yet");
        var vec = r.Info.Extra(2)!["vec"];
        Assert.That(((IEnumerable<object>)((System.Collections.IEnumerable)vec).Cast<object>()).Select(Convert.ToDouble), Is.EqualTo(new[] { 1.0, -1.0 }));
        Assert.That(r.Info.Extra(1)!.ContainsKey("name"), Is.EqualTo(local), "a string stays local: it cannot cross the wire (the worker warns once)");

        r = envs.Step([0, 0, 0]);
        Assert.That(r.Info.TryGetStacked("late", out var late, out var lateMask), Is.True);
        Assert.That(lateMask, Is.EqualTo(new[] { true, true, true }));
        Assert.That(late.Select(v => Convert.ToInt64(v)), Has.All.EqualTo(7L));
        Assert.That(r.Info.Extra(0)!["flag"], Is.EqualTo(true));
    }
}
