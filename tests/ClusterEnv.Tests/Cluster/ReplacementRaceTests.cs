using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Policies;
using ClusterEnv.Rollouts;
using ClusterEnv.Sync;

namespace ClusterEnv.Tests.Cluster;

/// <summary>
/// The three races that once ended training under worker churn, each forced into its window by a test hook rather
/// than hoped for under load: a push reaching a replacement before its welcome and reset (its stream then started
/// before the reset), a publisher pushing a replacement the version it was already given (refused, which ended the
/// run), and a crashed worker's gather seen between its loss and its verdict (reported as a hang).
/// </summary>
[NonParallelizable]
public class ReplacementRaceTests
{
    [TearDown]
    public void ClearHooks()
    {
        WorkerReplacements.BeforeWelcomeForTests = null;
        WorkerReplacements.AfterSlotFailedForTests = null;
    }

    private static ClusterVecEnv Start(bool replace, TimeSpan? stepTimeout = null) => new(new ClusterOptions
    {
        EnvId = "CartPole-v1", NumEnvs = 4, NumWorkers = 2, ReplaceLostWorkers = replace, StepTimeout = stepTimeout ?? TimeSpan.FromSeconds(60),
    });

    [Test]
    public void APushInTheWindowBeforeAReplacementIsWelcomed_WaitsForIt_AndItsStreamStartsOnlyAfterItsReset()
    {
        using var env = Start(replace: true);
        var spec = PolicySpec.For(env.SingleObservationSpace, env.SingleActionSpace);
        var policy = new ActorCritic(spec, seed: 1);
        env.Reset(seed: 0);
        env.Policies.Push(0, 1, spec, policy.Parameters);
        env.Policies.Push(1, 1, spec, policy.Parameters);
        env.Policies.WaitForAcks();
        using var source = new StreamingRolloutSource(env, steps: 16, credit: 2);
        var windowHit = new ManualResetEventSlim();
        WorkerReplacements.BeforeWelcomeForTests = slot =>
        {
            // The learner publishes while the replacement is registered but not yet welcomed: once, this push started
            // its stream before its reset and the worker failed with ResetNeededException.
            env.Policies.Push(slot, 2, spec, policy.Parameters);
            windowHit.Set();
        };
        env.Pool!.ProcessOf("worker-001")!.Kill();
        var batches = new List<RolloutBatch>();
        var sw = Stopwatch.StartNew();
        long afterReplacement = -1;
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            batches.Clear();
            source.Take(4, batches); // throws if the stream failed (the race's symptom)
            foreach (var b in batches) source.Return(b);
            if (env.Elastic.WorkersReplaced == 1 && afterReplacement < 0) afterReplacement = env.Rollouts.StreamedRollouts[1];
            if (afterReplacement >= 0 && env.Rollouts.StreamedRollouts[1] >= afterReplacement + 3) break;
        }
        Assert.That(windowHit.IsSet, Is.True, "the hook ran in the window");
        Assert.That(env.Elastic.WorkersReplaced, Is.EqualTo(1));
        Assert.That(env.Rollouts.StreamedRollouts[1], Is.GreaterThanOrEqualTo(afterReplacement + 3), "the replacement streams");
        Assert.That(env.Policies.States[1].ActiveVersion, Is.EqualTo(2UL), "the push made in the window reached the replacement");
        Assert.That(env.Policies.States[1].LastError, Is.Null);
    }

    [Test]
    public void APublishInTheWindowBeforeAReplacementIsWelcomed_IsItsOnlyStartingPush_AndNothingIsRefused()
    {
        using var env = Start(replace: true);
        var spec = PolicySpec.For(env.SingleObservationSpace, env.SingleActionSpace);
        var policy = new ActorCritic(spec, seed: 1);
        env.Reset(seed: 0);
        var publisher = new PolicyPublisher(env, spec, SyncStrategy.Always);
        publisher.Publish(policy);
        env.Policies.WaitForAcks();
        int pushesBefore = env.Policies.States[1].Pushes;
        ulong publishedInWindow = 0;
        WorkerReplacements.BeforeWelcomeForTests = _ =>
        {
            // Once, the take-over queued the newest version itself and the publisher, not knowing, pushed the same
            // version again: the replacement refused it ("not newer") and the run ended.
            publishedInWindow = publisher.Publish(policy).Version;
        };
        env.Pool!.ProcessOf("worker-001")!.Kill();
        var sw = Stopwatch.StartNew();
        while (env.Elastic.WorkersReplaced < 1 && sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            env.Reset(seed: 1); // lockstep: waits for the replacement's reset
        }
        Assert.That(env.Elastic.WorkersReplaced, Is.EqualTo(1));
        for (int round = 0; round < 5; round++)
        {
            publisher.Publish(policy); // throws PolicyRejectedException on a refusal
            env.Policies.WaitForAcks();
        }
        publisher.Publish(policy);
        Assert.That(publishedInWindow, Is.GreaterThan(1UL), "the hook published in the window");
        Assert.That(env.Policies.States[1].LastError, Is.Null, "the replacement refused nothing");
        Assert.That(env.Policies.States[1].Pushes - pushesBefore, Is.EqualTo(7), "one starting push and one per later round; none twice");
        Assert.That(publisher.DeployedVersion(1), Is.EqualTo(publisher.Version - 1));
    }

    [Test]
    public void ACrashSeenBetweenItsLossAndItsVerdict_IsReportedAsLost_NeverAsHung()
    {
        // Once, a call made while a crashed worker's loss was marked but its verdict not yet told called it hung at
        // once, whatever the step timeout (a lost worker counted as out of time). The window is held open and the
        // call is made inside it; the timeout is far away.
        using var env = Start(replace: false, stepTimeout: TimeSpan.FromSeconds(30));
        using var inWindow = new ManualResetEventSlim();
        WorkerReplacements.AfterSlotFailedForTests = () =>
        {
            inWindow.Set();
            Thread.Sleep(1500);
        };
        int[] actions = [0, 1, 0, 1];
        env.Reset(seed: 0);
        env.Step(actions);
        env.Pool!.ProcessOf("worker-000")!.Kill();
        Assert.That(inWindow.Wait(TimeSpan.FromSeconds(30)), Is.True, "the crash was seen");
        var ex = Assert.Catch(() => env.Step(actions))!;
        Assert.That(ex, Is.TypeOf<WorkerLostException>(), ex.ToString());
        Assert.That(((WorkerLostException)ex).WorkerId, Is.EqualTo("worker-000"));
    }
}
