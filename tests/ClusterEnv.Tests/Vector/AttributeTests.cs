using ClusterEnv.Cluster;
using ClusterEnv.Envs;
using ClusterEnv.Tests.Cluster;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Vector;

/// <summary>Gymnasium's get_attr / set_attr / call, the same on a local and a cluster vector env.</summary>
public class AttributeTests
{
    private static IEnumerable<TestCaseData> Envs()
    {
        yield return new TestCaseData((Func<IVectorEnv>)(() => Gym.MakeVec("CartPole-v1", 4, wrap: e => new RecordEpisodeStatistics(e)))).SetArgDisplayNames("local");
        yield return new TestCaseData((Func<IVectorEnv>)(() => TestCluster.InProcess("CartPole-v1", [2, 2]).Env)).SetArgDisplayNames("cluster");
    }

    [TestCaseSource(nameof(Envs))]
    public void GetSetAndCall_ReachEverySubEnv_ThroughItsWrappers(Func<IVectorEnv> make)
    {
        using var envs = make();
        Assert.That(envs.GetAttr("gravity"), Is.EqualTo(new object?[] { 9.8, 9.8, 9.8, 9.8 }), "Python-style names find C# properties");
        Assert.That(envs.GetAttr("max_episode_steps"), Is.EqualTo(new object?[] { 500, 500, 500, 500 }).Or.EqualTo(new object?[] { 500L, 500L, 500L, 500L }),
            "an attribute of a wrapper (TimeLimit)");
        envs.SetAttr("length", new object?[] { 0.5, 1.0, 1.5, 2.0 });
        Assert.That(envs.GetAttr("Length"), Is.EqualTo(new object?[] { 0.5, 1.0, 1.5, 2.0 }));
        envs.SetAttr("gravity", 3.0);
        Assert.That(envs.GetAttr("gravity"), Has.All.EqualTo(3.0));
        Assert.That(envs.Call("gravity"), Has.All.EqualTo(3.0), "Call on a non-method returns the attribute, as in Gymnasium");

        // A longer pole falls more slowly: the physics changed, per sub-env.
        envs.Reset(seed: 7);
        int[] lengths = new int[4];
        var alive = new bool[] { true, true, true, true };
        for (int t = 0; t < 500 && alive.Any(a => a); t++)
        {
            var r = envs.Step([1, 1, 1, 1]);
            for (int i = 0; i < 4; i++)
            {
                if (alive[i]) lengths[i]++;
                if (r.Terminated[i] || r.Truncated[i]) alive[i] = false;
            }
        }
        Assert.That(lengths[3], Is.GreaterThan(lengths[0]), $"pole lengths 0.5 → 2.0 gave episodes of {string.Join(", ", lengths)} steps");
    }

    [TestCaseSource(nameof(Envs))]
    public void UnknownNamesAndBadValues_AreNamed_AndTheEnvsCarryOn(Func<IVectorEnv> make)
    {
        using var envs = make();
        envs.Reset(seed: 1);
        var ex = Assert.Catch<Exception>(() => envs.GetAttr("no_such_thing"))!;
        Assert.That(ex.Message, Does.Contain("no attribute 'no_such_thing'"));
        ex = Assert.Catch<Exception>(() => envs.SetAttr("observation_space", 1.0))!;
        Assert.That(ex.Message, Does.Contain("cannot be set"));
        ex = Assert.Catch<Exception>(() => envs.SetAttr("gravity", new object?[] { 1.0 }))!;
        Assert.That(ex.Message, Does.Contain("1 values for 4 sub-envs"));
        envs.Step([0, 0, 0, 0]); // still usable, no reset needed
    }

    [Test]
    public void OnTheCluster_AnErrorNamesTheGlobalSubEnvAndItsWorker()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [2, 2]);
        using (env)
        {
            var ex = Assert.Throws<SubEnvException>(() => env.Call("no_such_method", 1))!;
            Assert.That(ex.WorkerId, Is.AnyOf("w0", "w1"), "whichever worker answered first");
            Assert.That(ex.EnvIndex, Is.EqualTo(ex.WorkerId == "w0" ? 0 : 2), "the global index of that worker's first sub-env");
            Assert.That(ex.ErrorType, Does.Contain("UnknownAttributeException"));
            var bad = Assert.Throws<ArgumentException>(() => env.Call("gravity", new object()))!;
            Assert.That(bad.Message, Does.Contain("cannot cross the wire"));
        }
    }
}
