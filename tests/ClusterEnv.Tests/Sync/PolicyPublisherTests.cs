using ClusterEnv.Cluster;
using ClusterEnv.Policies;
using ClusterEnv.Sync;
using ClusterEnv.Tests.Cluster;

namespace ClusterEnv.Tests.Sync;

public class PolicyPublisherTests
{
    private static (ClusterVecEnv Env, PolicySpec Spec) Start()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [2, 2]);
        env.Reset(seed: 0);
        return (env, PolicySpec.For(env.SingleObservationSpace, env.SingleActionSpace));
    }

    [Test]
    public void AVersionCountsAsDeployed_OnlyOnceTheWorkerAcknowledgesIt()
    {
        var (env, spec) = Start();
        using (env)
        {
            var policy = new ActorCritic(spec, seed: 1);
            var publisher = new PolicyPublisher(env, spec, SyncStrategy.Always);
            var first = publisher.Publish(policy);
            Assert.That(first.Pushes, Is.EqualTo(2));
            Assert.That(publisher.DeployedVersion(0), Is.EqualTo(0UL), "sent is not deployed");
            env.Policies.WaitForAcks();
            var second = publisher.Publish(policy);
            Assert.That(publisher.DeployedVersion(0), Is.EqualTo(1UL));
            Assert.That(publisher.DeployedVersion(1), Is.EqualTo(1UL));
            Assert.That(second.Version, Is.EqualTo(2UL));
            Assert.That(new[] { publisher.Deployments(0), publisher.Deployments(1) }, Is.EqualTo(new[] { 1, 1 }), "deployments are acknowledged versions");
        }
    }

    [Test]
    public void AWorkerWhosePushIsInFlight_IsSkipped_NotPushedAgain()
    {
        var (env, spec) = Start();
        using (env)
        {
            var policy = new ActorCritic(spec, seed: 1);
            var publisher = new PolicyPublisher(env, spec, SyncStrategy.Always);
            publisher.Publish(policy);
            // Publish again at once: the acknowledgements may or may not be in; whichever workers still wait are skipped.
            var round = publisher.Publish(policy);
            Assert.That(round.Pushes + round.InFlight, Is.EqualTo(2));
            Assert.That(publisher.TotalPushes, Is.EqualTo(2 + round.Pushes));
            env.Policies.WaitForAcks();
        }
    }

    [Test]
    public void ARefusedPush_SurfacesAtTheNextPublish_NamingTheWorker()
    {
        var (env, spec) = Start();
        using (env)
        {
            var policy = new ActorCritic(spec, seed: 1);
            var publisher = new PolicyPublisher(env, spec, SyncStrategy.Always);
            publisher.Publish(policy);
            env.Policies.WaitForAcks();
            // Someone else pushes version 5 to worker 1 behind the publisher's back: its next push (version 2) is not newer.
            env.Policies.Push(1, 5, spec, policy.Parameters);
            env.Policies.WaitForAcks();
            publisher.Publish(policy); // pushes version 2 to both
            Assert.Throws<PolicyRejectedException>(() => env.Policies.WaitForAcks(), "waits for the acknowledgements, then names the refusal");
            var ex = Assert.Throws<PolicyRejectedException>(() => publisher.Publish(policy))!;
            Assert.That(ex.Message, Does.Contain("worker 'w1'").And.Contain("refused version 2").And.Contain("not newer"));
        }
    }

    [Test]
    public void KlThresholdWithALagCap_PushesOnceTheWorkerIsThatFarBehind_EvenWithoutDrift()
    {
        var (env, spec) = Start();
        using (env)
        {
            var policy = new ActorCritic(spec, seed: 1);
            // τ so high that the KL never triggers a push; the cap of 3 versions must.
            var publisher = new PolicyPublisher(env, spec, SyncStrategy.KlThreshold(1e9, maxLag: 3));
            publisher.Publish(policy);
            env.Policies.WaitForAcks();
            var pushesPerRound = new List<int>();
            for (int i = 0; i < 7; i++)
            {
                var round = publisher.Publish(policy);
                pushesPerRound.Add(round.Pushes);
                env.Policies.WaitForAcks();
                Assert.That(publisher.Lag(0), Is.LessThanOrEqualTo(3UL));
            }
            Assert.That(pushesPerRound, Is.EqualTo(new[] { 0, 0, 2, 0, 0, 2, 0 }), "versions 2, 3 skipped; 4 pushed (3 behind version 1); 7 pushed (3 behind 4)");
            Assert.That(SyncStrategy.Parse("0.05:8"), Is.EqualTo(SyncStrategy.KlThreshold(0.05, 8)));
            Assert.That(SyncStrategy.KlThreshold(0.05, 8).ToString(), Is.EqualTo("0.05:8"));
        }
    }
}
