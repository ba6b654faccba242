using ClusterEnv.Cluster;
using ClusterEnv.Envs;
using ClusterEnv.Learners.Nigt;

namespace ClusterEnv.Tests.Learners;

public class NigtTests
{
    [Test]
    public void NigtOptimizer_FollowsItsFormula()
    {
        // Two steps by hand: m₁ = (1−β)g₁, θ₁ = θ₀ − η m₁/‖m₁‖; x̃₁ = θ₁ + β/(1−β)(θ₁ − θ₀); m₂ = βm₁ + (1−β)g₂, θ₂ = θ₁ − η m₂/‖m₂‖.
        double beta = 0.9, eta = 0.1;
        var nigt = new NigtOptimizer(2, eta, beta);
        float[] theta = [1f, -2f], point = new float[2];
        nigt.Transport(theta, point);
        Assert.That(point, Is.EqualTo(theta), "before the first step the transported point is θ itself");

        float[] g1 = [3f, 4f];
        nigt.Step(theta, g1);
        double[] m1 = [(1 - beta) * 3, (1 - beta) * 4];
        double n1 = Math.Sqrt(m1[0] * m1[0] + m1[1] * m1[1]);
        double[] theta1 = [1 - eta * m1[0] / n1, -2 - eta * m1[1] / n1];
        Assert.That(theta[0], Is.EqualTo(theta1[0]).Within(1e-6));
        Assert.That(theta[1], Is.EqualTo(theta1[1]).Within(1e-6));
        Assert.That(Math.Sqrt(Math.Pow(theta[0] - 1, 2) + Math.Pow(theta[1] + 2, 2)), Is.EqualTo(eta).Within(1e-6), "every step has length η");

        nigt.Transport(theta, point);
        double c = beta / (1 - beta);
        Assert.That(point[0], Is.EqualTo(theta1[0] + c * (theta1[0] - 1)).Within(1e-5));
        Assert.That(point[1], Is.EqualTo(theta1[1] + c * (theta1[1] + 2)).Within(1e-5));

        float[] g2 = [-1f, 0.5f];
        nigt.Step(theta, g2);
        double[] m2 = [beta * m1[0] + (1 - beta) * -1, beta * m1[1] + (1 - beta) * 0.5];
        double n2 = Math.Sqrt(m2[0] * m2[0] + m2[1] * m2[1]);
        Assert.That(theta[0], Is.EqualTo(theta1[0] - eta * m2[0] / n2).Within(1e-5));
        Assert.That(theta[1], Is.EqualTo(theta1[1] - eta * m2[1] / n2).Within(1e-5));
        Assert.That(nigt.Momentum[0], Is.EqualTo(m2[0]).Within(1e-6));
        Assert.That(nigt.Steps, Is.EqualTo(2));
    }

    [Test]
    public void Rennala_AveragesTheFirstBFreshGradients_FromAnyWorkers_AndDiscardsStaleOnes()
    {
        var agg = new RennalaAggregator(workers: 3, size: 1, batch: 3);
        Assert.That(agg.Add(0, 0, [1f]), Is.Null);
        Assert.That(agg.Add(0, 0, [2f]), Is.Null, "a fast worker may give several");
        var g = agg.Add(1, 0, [6f]);
        Assert.That(g, Is.EqualTo(new[] { 3f }), "(1 + 2 + 6) / 3; worker 2, the straggler, was not waited for");
        agg.Advance();
        Assert.That(agg.Add(2, 0, [100f]), Is.Null, "the straggler's gradient at the old point is discarded");
        Assert.That(agg.DiscardedStale, Is.EqualTo(1));
        agg.Add(0, 1, [1f]);
        agg.Add(1, 1, [1f]);
        Assert.That(agg.Add(2, 1, [4f]), Is.EqualTo(new[] { 2f }), "the stale 100 did not count");
    }

    [Test]
    public void Malenia_WeighsEveryWorkerEqually_AndWaitsForItsCondition()
    {
        var agg = new MaleniaAggregator(workers: 2, size: 1, s: 2);
        // Harmonic mean of the counts must reach S/n = 1 with every worker present.
        Assert.That(agg.Add(0, 0, [1f]), Is.Null);
        Assert.That(agg.Add(0, 0, [3f]), Is.Null);
        Assert.That(agg.Add(0, 0, [5f]), Is.Null, "worker 1 has sent nothing yet");
        var g = agg.Add(1, 0, [10f]);
        Assert.That(g, Is.EqualTo(new[] { 6.5f }), "(mean(1,3,5) + 10) / 2: worker 0's three gradients weigh as much as worker 1's one");
        Assert.That(MaleniaAggregator.ConditionMet([1, 1], 2), Is.True);
        Assert.That(MaleniaAggregator.ConditionMet([4, 1], 4), Is.False, "harmonic mean 1.6 < 4/2");
        Assert.That(MaleniaAggregator.ConditionMet([4, 4], 4), Is.True);
        Assert.That(MaleniaAggregator.ConditionMet([9, 0], 1), Is.False, "every worker must be heard");
        agg.Advance();
        Assert.That(agg.Add(1, 0, [1f]), Is.Null);
        Assert.That(agg.DiscardedStale, Is.EqualTo(1));
    }

    [Test]
    public void Synchronous_WaitsForOneGradientFromEveryWorker()
    {
        var agg = new SynchronousAggregator(workers: 2, size: 1);
        Assert.That(agg.Add(0, 0, [2f]), Is.Null);
        Assert.That(agg.Add(0, 0, [100f]), Is.Null, "a second one from the same worker is not used");
        Assert.That(agg.Add(1, 0, [4f]), Is.EqualTo(new[] { 3f }));
    }

    [Test]
    public void NigtWithGradientWorkers_LearnsCartPole_AndRennalaNeverWaitsForTheSlowOne()
    {
        // 20× slower: a margin no scheduling under load can close (at 4×, with both cores busy, a run that reached the
        // threshold in 0.4 s once counted as many gradients from the slow worker as from a starved fast one).
        var workers = Enumerable.Range(0, 3).Select(i => new NigtWorker(() => Gym.Make("CartPole-v1"), i == 2 ? 20 : 1)).ToArray();
        var r = NigtTrainer.Train(workers, (n, size) => new RennalaAggregator(n, size, batch: n), new NigtOptions { Threshold = 100, TimeLimit = TimeSpan.FromSeconds(60), Seed = 2 });
        TestContext.Out.WriteLine($"{r.Aggregator}: reached in {r.SecondsToThreshold:F1} s, {r.StepsToThreshold} steps, {r.OptimizerSteps} NIGT steps, " +
                                  $"{r.GradientsDiscardedStale}/{r.GradientsReceived} stale; per worker {string.Join(", ", r.GradientsPerWorker)}");
        Assert.That(r.SecondsToThreshold, Is.Not.Null, $"mean-20 reached 100 (final {r.FinalMeanReturn20:F1})");
        Assert.That(r.GradientsPerWorker[2], Is.LessThan(r.GradientsPerWorker[0]), $"the 20× slower worker sent fewer gradients ({string.Join(", ", r.GradientsPerWorker)})");
    }

    [Test]
    public void SimulatedClock_IsDeterministic_AndAWorkerKTimesSlowerSendsAboutKTimesFewerGradients()
    {
        // Work units, not seconds: the result cannot depend on the machine's load, so it can be asserted exactly.
        NigtResult Run() => NigtTrainer.Simulate(
            Enumerable.Range(0, 3).Select(i => new NigtWorker(() => Gym.Make("CartPole-v1"), i == 2 ? 4 : 1)).ToArray(),
            (n, size) => new RennalaAggregator(n, size, batch: n), new NigtOptions { Threshold = 100, Seed = 2 }, workLimit: 2_000_000);
        var a = Run();
        var b = Run();
        TestContext.Out.WriteLine($"{a.Aggregator}: reached at work {a.WorkToThreshold}, {a.StepsToThreshold} steps, {a.OptimizerSteps} NIGT steps; per worker {string.Join(", ", a.GradientsPerWorker)}");
        Assert.That(a.WorkToThreshold, Is.Not.Null, $"mean-20 reached 100 (final {a.FinalMeanReturn20:F1})");
        Assert.That((b.WorkToThreshold, b.StepsToThreshold, b.OptimizerSteps, b.GradientsPerWorker), Is.EqualTo((a.WorkToThreshold, a.StepsToThreshold, a.OptimizerSteps, a.GradientsPerWorker)),
            "the same seed gives the same run");
        Assert.That(a.Work, Is.EqualTo(a.WorkToThreshold), "the run ends when the threshold is reached");
        // Each worker's gradients cost about the same work (episodes grow as the policy learns, for all of them alike).
        double ratio = (a.GradientsPerWorker[0] + a.GradientsPerWorker[1]) / 2.0 / a.GradientsPerWorker[2];
        Assert.That(ratio, Is.InRange(2.5, 6.0), $"a 4× slower worker sends about 4× fewer gradients ({string.Join(", ", a.GradientsPerWorker)})");
    }

    [Test]
    public void SimulatedClock_WithAnUnreachableThreshold_StopsAtTheWorkLimit()
    {
        var workers = new[] { new NigtWorker(() => Gym.Make("CartPole-v1")), new NigtWorker(() => Gym.Make("CartPole-v1"), 2) };
        var r = NigtTrainer.Simulate(workers, (n, size) => new SynchronousAggregator(n, size), new NigtOptions { Threshold = 1e9 }, workLimit: 20_000);
        Assert.That(r.WorkToThreshold, Is.Null);
        Assert.That(r.Work, Is.GreaterThanOrEqualTo(20_000).And.LessThan(20_000 + 2 * 2 * 500), "it stops at the first arrival past the limit (one gradient: at most 2 episodes of 500 steps, at slowdown 2)");
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => NigtTrainer.Simulate([new NigtWorker(() => Gym.Make("CartPole-v1"), 0.5)],
            (n, size) => new SynchronousAggregator(n, size), new NigtOptions(), workLimit: 1000))!;
        Assert.That(e.Message, Does.Contain("slowdown must be >= 1"));
    }

    [Test]
    public void NigtOnClusterWorkers_LearnsCartPole_AndTheVectorEnvStepsAgainAfterAReset()
    {
        var (envs, workers) = ClusterEnv.Tests.Cluster.TestCluster.InProcess("CartPole-v1", [2, 2]);
        using (envs)
        {
            var r = NigtTrainer.TrainOnCluster(envs, (n, size) => new RennalaAggregator(n, size, batch: n), new NigtOptions { Threshold = 100, TimeLimit = TimeSpan.FromSeconds(90), Seed = 2 });
            TestContext.Out.WriteLine($"{r.Aggregator} on the cluster: reached in {r.SecondsToThreshold:F1} s, {r.StepsToThreshold} steps, {r.OptimizerSteps} NIGT steps; per worker {string.Join(", ", r.GradientsPerWorker)}");
            Assert.That(r.SecondsToThreshold, Is.Not.Null, $"mean-20 reached 100 (final {r.FinalMeanReturn20:F1})");
            Assert.That(r.GradientsPerWorker, Has.All.GreaterThan(0), "both cluster workers computed gradients");
            Assert.That(envs.Gradients.Outstanding, Is.Zero);
            Assert.Throws<ResetNeededException>(() => envs.Step(new int[4]), "the episodes used the envs");
            envs.Reset(seed: 1);
            envs.Step(new int[4]);
        }
    }

    [Test]
    public void AskingABusyWorkerForASecondGradient_IsRefusedByName()
    {
        var (envs, _) = ClusterEnv.Tests.Cluster.TestCluster.InProcess("CartPole-v1", [1]);
        using (envs)
        {
            var spec = ClusterEnv.Policies.PolicySpec.For(envs.SingleObservationSpace, envs.SingleActionSpace, [8]);
            var point = new ClusterEnv.Policies.ActorCritic(spec, 1).Parameters.ToArray();
            var settings = new ClusterEnv.Policies.GradientSettings(Episodes: 1, Horizon: 50);
            envs.Gradients.Request(0, 7, spec, point, settings, seed: 3);
            var e = Assert.Throws<InvalidOperationException>(() => envs.Gradients.Request(0, 8, spec, point, settings));
            Assert.That(e!.Message, Does.Contain("still computing a gradient").And.Contain("Gradients.Take"));
            Assert.That(envs.Gradients.Take(TimeSpan.FromSeconds(30), out var g), Is.True);
            Assert.That(g.Version, Is.EqualTo(7UL), "the point's version comes back");
            Assert.That(g.Gradient, Has.Length.EqualTo(point.Length));
            Assert.That(g.Gradient.Any(v => v != 0), Is.True);
            Assert.That(g.Returns, Has.Length.EqualTo(1));
            Assert.That(g.Steps, Is.EqualTo((long)g.Returns[0]), "CartPole pays 1 per step");
            var wrong = new float[3];
            envs.Gradients.Request(0, 9, spec, wrong, settings);
            Assert.That(envs.Gradients.Take(TimeSpan.FromSeconds(30), out var bad), Is.True);
            Assert.That(bad.Error, Does.Contain("3 weights"), "a point of the wrong size is named by the worker");
        }
    }

    [Test]
    public void AGradientLongerThanTheStepTimeout_IsNotCalledHung_WhileTheWorkerReportsProgress()
    {
        ClusterEnv.Tests.Cluster.TestEnvs.Register();
        var (envs, _) = ClusterEnv.Tests.Cluster.TestCluster.InProcess(ClusterEnv.Tests.Cluster.TestEnvs.Slow, [1],
            stepTimeout: TimeSpan.FromSeconds(1), envArgs: _ => new() { ["ms"] = "20" });
        using (envs)
        {
            var spec = ClusterEnv.Policies.PolicySpec.For(envs.SingleObservationSpace, envs.SingleActionSpace, [8]);
            var point = new ClusterEnv.Policies.ActorCritic(spec, 1).Parameters.ToArray();
            // 150 steps of 20 ms: 3 s of work, three times the step timeout.
            envs.Gradients.Request(0, 1, spec, point, new ClusterEnv.Policies.GradientSettings(Episodes: 1, Horizon: 150));
            GradientReply? reply = null;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (reply is null && clock.Elapsed < TimeSpan.FromMinutes(2))
                if (envs.Gradients.Take(TimeSpan.FromMilliseconds(200), out var g)) reply = g;
            Assert.That(reply, Is.Not.Null);
            Assert.That(reply!.Error, Is.Null);
            Assert.That(reply.Steps, Is.EqualTo(150));
            Assert.That(clock.Elapsed, Is.GreaterThan(TimeSpan.FromSeconds(1)), "the work outlasted the step timeout");
        }
    }
}
