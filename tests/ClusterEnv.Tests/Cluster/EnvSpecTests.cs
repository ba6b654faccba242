using ClusterEnv.Cluster;
using ClusterEnv.Envs;

namespace ClusterEnv.Tests.Cluster;

/// <summary>Registered only in worker processes that load this assembly (--assembly), never in the test process.</summary>
public sealed class WorkerOnlyEnvs : IEnvRegistrar
{
    public const string Id = "Test/WorkerOnly-v0";

    public void Register() => Gym.Register(Id, () => Gym.Make("CartPole-v1"), maxEpisodeSteps: 77, rewardThreshold: 12.5);
}

public class EnvSpecTests
{
    [Test]
    public void AnEnvKnownOnlyToTheWorkers_GetsItsSpecFromThem()
    {
        Assert.That(Gym.Ids, Does.Not.Contain(WorkerOnlyEnvs.Id), "the learner's registry does not know it");
        using var env = new ClusterVecEnv(new ClusterOptions
        {
            EnvId = WorkerOnlyEnvs.Id, NumEnvs = 2, NumWorkers = 1, WorkerAssemblies = [typeof(WorkerOnlyEnvs).Assembly.Location],
        });
        Assert.That(env.Spec, Is.Not.Null);
        Assert.That(env.Spec!.Id, Is.EqualTo(WorkerOnlyEnvs.Id));
        Assert.That(env.Spec.MaxEpisodeSteps, Is.EqualTo(77));
        Assert.That(env.Spec.RewardThreshold, Is.EqualTo(12.5));
        Assert.That(env.Spec.IsRemote, Is.True);
        var ex = Assert.Throws<InvalidOperationException>(() => env.Spec.Factory(null))!;
        Assert.That(ex.Message, Does.Contain("exists only on the workers"));
        env.Reset(seed: 1);
        env.Step([0, 1]);
    }

    [Test]
    public void AnEnvTheLearnerKnows_KeepsItsOwnSpec()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [1]);
        using (env)
        {
            Assert.That(env.Spec!.RewardThreshold, Is.EqualTo(475));
            Assert.That(env.Spec.IsRemote, Is.False);
        }
    }
}
