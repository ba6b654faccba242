using ClusterEnv.Cluster;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Nn;
using ClusterEnv.Policies;
using ClusterEnv.Sync;
using ClusterEnv.Tests.Cluster;

namespace ClusterEnv.Tests.Sync;

public class ApsGateTests
{
    private static readonly PolicySpec Discrete = new(4, false, 3, [8]);
    private static readonly PolicySpec Gaussian = new(4, true, 2, [8]);

    private static float[] States(int count, int seed)
    {
        var rng = new Rng(seed);
        return Enumerable.Range(0, count * 4).Select(_ => (float)rng.Uniform(-1, 1)).ToArray();
    }

    // The slow formula: average over states of the closed-form KL between the two policies' outputs.
    private static double SlowKl(ActorCritic p, ActorCritic q, float[] states, int count)
    {
        double sum = 0;
        int k = p.Spec.ActionSize;
        for (int s = 0; s < count; s++)
        {
            var x = states.AsSpan(s * 4, 4);
            var a = p.Actor.Forward(x, 1).ToArray();
            var b = q.Actor.Forward(x, 1).ToArray();
            if (!p.Spec.Continuous)
            {
                double[] pa = Softmax(a), pb = Softmax(b);
                for (int i = 0; i < k; i++) sum += pa[i] * Math.Log(pa[i] / pb[i]);
            }
            else
            {
                for (int i = 0; i < k; i++)
                {
                    double s0 = Math.Exp(p.LogStd[i]), s1 = Math.Exp(q.LogStd[i]);
                    sum += Math.Log(s1 / s0) + (s0 * s0 + (a[i] - b[i]) * (a[i] - b[i])) / (2 * s1 * s1) - 0.5;
                }
            }
        }
        return sum / count;
    }

    // What a worker acting with p sends in its rollouts: the logits or means on each state, and the log-std.
    private static (float[] Params, float[] LogStd) Acting(ActorCritic p, float[] states, int count) =>
        (p.Actor.Forward(states.AsSpan(0, count * 4), count)[..(count * p.Spec.ActionSize)].ToArray(), p.Spec.Continuous ? p.LogStd.ToArray() : []);

    private static double[] Softmax(float[] z)
    {
        double mx = z.Max();
        var e = z.Select(v => Math.Exp(v - mx)).ToArray();
        return e.Select(v => v / e.Sum()).ToArray();
    }

    [Test]
    public void MeanKl_IsTheExactKlAveragedOverTheSameStates([Values] bool continuous)
    {
        var spec = continuous ? Gaussian : Discrete;
        var deployed = new ActorCritic(spec, seed: 1);
        var current = new ActorCritic(spec, seed: 2);
        var rng = new Rng(9);
        for (int i = 0; i < current.Store.Count; i++) current.Parameters[i] += (float)(0.3 * rng.NextGaussian());
        var states = States(50, 3);
        var gate = new ApsGate(spec, SyncStrategy.KlThreshold(0.01));
        var (p, logStd) = Acting(deployed, states, 50);
        double kl = gate.MeanKl(p, logStd, current, states, 50);
        Assert.That(kl, Is.EqualTo(SlowKl(deployed, current, states, 50)).Within(1e-6));
        var (same, sameLogStd) = Acting(current, states, 50);
        Assert.That(gate.MeanKl(same, sameLogStd, current, states, 50), Is.EqualTo(0).Within(1e-9));
    }

    [Test]
    public void KlThreshold_PushesIffKlExceedsTau_AndTheFirstDeploymentAlwaysHappens()
    {
        var policy = new ActorCritic(Discrete, seed: 1);
        var states = States(64, 4);
        var probe = new ApsGate(Discrete, SyncStrategy.Never);
        var (original, _) = Acting(policy, states, 64); // what the worker acting with the deployed weights sent
        // Move the current policy by a known amount, then set τ just below and just above the resulting KL.
        for (int i = 0; i < policy.Store.Count; i++) policy.Parameters[i] *= 1.5f;
        double kl = probe.MeanKl(original, [], policy, states, 64);
        Assert.That(kl, Is.GreaterThan(0));
        foreach (var (tau, push) in new[] { (kl * 0.99, true), (kl * 1.01, false) })
        {
            var gate = new ApsGate(Discrete, SyncStrategy.KlThreshold(tau));
            Assert.That(gate.Decide(false, policy, 0, 0, 0, states, [], [], 64).Push, Is.True, "the first deployment always happens");
            var d = gate.Decide(true, policy, 1, 1, 0, states, original, [], 64);
            Assert.That(d.Push, Is.EqualTo(push), $"KL {kl} vs τ {tau}");
            Assert.That(d.Kl, Is.EqualTo(kl).Within(1e-9));
            Assert.That(d.ByLag, Is.False);
            Assert.That(gate.Decide(true, policy, 1, 8, lagCap: 8, states, original, [], 64), Is.EqualTo(new SyncDecision(true, d.Kl, ByLag: !push)),
                "a worker at the lag cap is pushed whatever the KL says");
            Assert.That(gate.Decide(true, policy, 1, 1, 0, states, [], [], 0), Is.EqualTo(new SyncDecision(false, double.NaN, false)),
                "no state acted by the deployed version yet: no KL, no push by τ");
        }
    }

    [Test]
    public void OtherStrategies_FollowTheirRule()
    {
        var policy = new ActorCritic(Discrete, seed: 1);
        var states = States(8, 5);
        int Pushes(SyncStrategy s)
        {
            var gate = new ApsGate(Discrete, s);
            var (acting, _) = Acting(policy, states, 8);
            int pushes = 0, since = 0;
            for (ulong v = 2; v <= 13; v++)
            {
                since++;
                if (!gate.Decide(true, policy, since, (ulong)since, 0, states, acting, [], 8).Push) continue;
                pushes++;
                since = 0;
            }
            return pushes;
        }
        Assert.That(Pushes(SyncStrategy.Always), Is.EqualTo(12));
        Assert.That(Pushes(SyncStrategy.Never), Is.EqualTo(0));
        Assert.That(Pushes(SyncStrategy.EveryN(4)), Is.EqualTo(3));
        Assert.That(Pushes(SyncStrategy.KlThreshold(0)), Is.EqualTo(0), "identical policies have KL 0, which does not exceed τ = 0");
        Assert.That(SyncStrategy.Parse("every:3").Every, Is.EqualTo(3));
        Assert.That(SyncStrategy.Parse("0.05").Tau, Is.EqualTo(0.05));
        Assert.That(() => SyncStrategy.Parse("sometimes"), Throws.TypeOf<FormatException>());
    }
}

[NonParallelizable]
public class WorkerRolloutTests
{
    private static (ClusterVecEnv Env, PolicySpec Spec) Start()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [2, 3]);
        return (env, PolicySpec.For(env.SingleObservationSpace, env.SingleActionSpace));
    }

    [Test]
    public void Rollouts_CarryEverythingPpoNeeds_AndTheActingVersion()
    {
        var (env, spec) = Start();
        using (env)
        {
            var policy = new ActorCritic(spec, seed: 1);
            env.Reset(seed: 0);
            Assert.That(() => env.Rollouts.Collect(8), Throws.InstanceOf<WorkerException>().With.Message.Contains("No policy"));
            env.Reset(seed: 0);
            for (int w = 0; w < 2; w++) env.Policies.Push(w, 1, spec, policy.Parameters);
            env.Policies.WaitForAcks();
            Assert.That(env.Policies.States.Select(p => p.ActiveVersion), Is.All.EqualTo(1UL));
            var b = env.Rollouts.Collect(16);
            Assert.That(b.PolicyVersion, Is.All.EqualTo(1UL));
            // The behaviour log-probs and values are what the pushed policy gives on the recorded observations.
            var lp = new float[5];
            for (int t = 0; t < 16; t++)
            {
                var obs = b.Observations.AsSpan(t * 5 * 4, 5 * 4);
                var head = policy.Actor.Forward(obs, 5).ToArray();
                for (int i = 0; i < 5; i++)
                {
                    int idx = t * 5 + i;
                    Assert.That(b.LogProbs[idx], Is.EqualTo(Categorical.LogProb(head.AsSpan(i * 2, 2), b.DiscreteActions[idx])).Within(1e-5));
                    Assert.That(b.DistributionParameters.AsSpan(idx * 2, 2).ToArray(), Is.EqualTo(head.AsSpan(i * 2, 2).ToArray()).Within(1e-5));
                }
            }
            var values = new float[5];
            policy.Value(b.Observations.AsSpan(0, 20), 5, values);
            Assert.That(b.Values.AsSpan(0, 5).ToArray(), Is.EqualTo(values).Within(1e-5));
            Assert.That(b.Rewards.Count(r => r == 1.0), Is.GreaterThan(60));
            // Consecutive rollouts continue the same episodes: the next rollout starts where this one ended.
            var last = b.Observations.AsSpan(16 * 5 * 4, 20).ToArray();
            var b2 = env.Rollouts.Collect(16);
            Assert.That(b2.Observations.AsSpan(0, 20).ToArray(), Is.EqualTo(last));
        }
    }

    [Test]
    public void AWorkerThatMissedPushes_ActsWithItsOldVersion_AndSaysSo()
    {
        var (env, spec) = Start();
        using (env)
        {
            var policy = new ActorCritic(spec, seed: 1);
            env.Reset(seed: 0);
            env.Policies.Push(0, 1, spec, policy.Parameters);
            env.Policies.Push(1, 1, spec, policy.Parameters);
            env.Policies.Push(0, 2, spec, policy.Parameters); // only worker 0 gets version 2
            var b = env.Rollouts.Collect(4);
            Assert.That(b.PolicyVersion, Is.EqualTo(new ulong[] { 2, 2, 1, 1, 1 }));
        }
    }

    [Test]
    public void APushSentWhileARolloutRuns_IsAppliedAtTheNextRolloutBoundary()
    {
        var (env, spec) = Start();
        using (env)
        {
            var v1 = new ActorCritic(spec, seed: 1);
            var v2 = new ActorCritic(spec, seed: 2);
            env.Reset(seed: 0);
            for (int w = 0; w < 2; w++) env.Policies.Push(w, 1, spec, v1.Parameters);
            env.Policies.WaitForAcks();
            // A rollout is requested; once that request is on the wire to both workers, the push follows it on the same
            // stream, so the worker reads it only after the rollout: ordering, not timing, decides the versions, and a
            // rollout of any length shows it. (Its deadline counts from the worker's last progress, so load cannot
            // make it time out either.)
            var collecting = Task.Run(() => env.Rollouts.Collect(200).PolicyVersion.ToArray());
            var wait = System.Diagnostics.Stopwatch.StartNew();
            while ((env.OutstandingCommands(0) == 0 || env.OutstandingCommands(1) == 0) && wait.Elapsed < TimeSpan.FromSeconds(10)) Thread.Yield();
            for (int w = 0; w < 2; w++) env.Policies.Push(w, 2, spec, v2.Parameters);
            Assert.That(collecting.Result, Is.All.EqualTo(1UL), "the rollout in progress finished with version 1");
            Assert.That(env.Rollouts.Collect(2).PolicyVersion, Is.All.EqualTo(2UL), "the next rollout uses version 2");
        }
    }

    [Test]
    public void BadPushes_AreRefusedWithAClearError_AndTheWorkerKeepsItsPolicy()
    {
        var (env, spec) = Start();
        using (env)
        {
            var policy = new ActorCritic(spec, seed: 1);
            env.Reset(seed: 0);
            for (int w = 0; w < 2; w++) env.Policies.Push(w, 1, spec, policy.Parameters);
            env.Policies.WaitForAcks();
            env.Policies.Push(0, 2, spec, policy.Parameters.AsSpan(0, 10));
            var ex = Assert.Throws<PolicyRejectedException>(() => env.Policies.WaitForAcks())!;
            Assert.That(ex.Message, Does.Contain("10 float32 weights").And.Contain("keeps acting with version 1"));
            var wrongSpec = new PolicySpec(4, false, 3, [64, 64]); // three actions for CartPole's two
            env.Policies.Push(1, 3, wrongSpec, new ActorCritic(wrongSpec).Parameters);
            Assert.That(Assert.Throws<PolicyRejectedException>(() => env.Policies.WaitForAcks())!.Message, Does.Contain("does not fit"));
            Assert.That(env.Rollouts.Collect(2).PolicyVersion, Is.All.EqualTo(1UL), "both workers still act with version 1");
        }
    }

    [Test]
    public void PpoOnWorkerRollouts_WithAKlGate_LearnsAndPushesLessThanAlways()
    {
        var options = new PpoOptions { TotalTimesteps = 4 * 128 * 60, Seed = 1 };
        int Run(SyncStrategy s, out PpoResult result)
        {
            var (env, _) = TestCluster.InProcess("CartPole-v1", [2, 2]);
            using (env) result = Ppo.TrainOnWorkers(env, options, s);
            return result.History[^1].TotalPushes;
        }
        int always = Run(SyncStrategy.Always, out var a);
        int gated = Run(SyncStrategy.KlThreshold(0.005), out var g);
        Assert.That(always, Is.EqualTo(2 + 2 * 60), "Always pushes to both workers after every update");
        Assert.That(gated, Is.LessThan(always / 3));
        Assert.That(a.FinalMeanReturn20, Is.GreaterThan(80), "PPO on worker rollouts learns");
        Assert.That(g.History.Max(m => m.MeanPolicyLag), Is.GreaterThan(0), "skipped pushes show as policy lag");
        Assert.That(g.History[^1].BytesPushed, Is.LessThan(a.History[^1].BytesPushed));
    }
}
