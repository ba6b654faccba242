using ClusterEnv.Envs;
using ClusterEnv.Envs.ClassicControl;
using ClusterEnv.Wrappers;
using MathNet.Numerics.Statistics;

namespace ClusterEnv.Tests.Wrappers;

public class WrapperTests
{
    [Test]
    public void TimeLimit_TruncatesExactlyAtTheLimit()
    {
        using var env = new TimeLimit(new Pendulum(), 5);
        var obs = new float[3];
        env.Reset(obs, seed: 0);
        for (int t = 1; t <= 5; t++)
            Assert.That(env.Step(new[] { 0f }, obs).Truncated, Is.EqualTo(t == 5), $"step {t}");
        Assert.That(env.ElapsedSteps, Is.EqualTo(5));
        env.Reset(obs);
        Assert.That(env.ElapsedSteps, Is.Zero);
    }

    [Test]
    public void RecordEpisodeStatistics_ReportsReturnAndLengthAtTheLastStep()
    {
        using var env = new RecordEpisodeStatistics(Gym.Make("Pendulum-v1"));
        var obs = new float[3];
        env.Reset(obs, seed: 3);
        double sum = 0;
        StepResult r;
        int steps = 0;
        do
        {
            r = env.Step(new[] { 1f }, obs);
            sum += r.Reward;
            steps++;
            if (!r.Truncated) Assert.That(r.Info.Episode, Is.Null);
        } while (!r.Truncated);
        Assert.That(r.Info.Episode!.Value.Return, Is.EqualTo(sum).Within(1e-9));
        Assert.That(r.Info.Episode!.Value.Length, Is.EqualTo(200).And.EqualTo(steps));
        Assert.That(r.Info.Episode!.Value.Seconds, Is.GreaterThanOrEqualTo(0));
        Assert.That(env.ReturnQueue, Has.Count.EqualTo(1));
    }

    [Test]
    public void ClipAction_ClipsToTheBox_AndUnboundsTheActionSpace()
    {
        using var clipped = new ClipAction(new Pendulum());
        using var plain = new Pendulum();
        var o1 = new float[3];
        var o2 = new float[3];
        clipped.Reset(o1, seed: 4);
        plain.Reset(o2, seed: 4);
        var r1 = clipped.Step(new[] { 7.5f }, o1);
        var r2 = plain.Step(new[] { 2f }, o2);
        Assert.That(o1, Is.EqualTo(o2));
        Assert.That(r1.Reward, Is.EqualTo(r2.Reward));
        Assert.That(clipped.ActionSpace.ToString(), Is.EqualTo("Box(-inf, inf, (1,), float32)"));
        Assert.Throws<ArgumentException>(() => new ClipAction(new CartPole()));
    }

    [Test]
    public void NormalizeObservation_UsesRunningMeanAndVariance()
    {
        using var env = new NormalizeObservation(new Pendulum());
        var raw = new List<float[]>();
        var obs = new float[3];
        // Recover raw observations from a twin env stepped identically.
        using var twin = new Pendulum();
        var tw = new float[3];
        env.Reset(obs, seed: 8);
        twin.Reset(tw, seed: 8);
        raw.Add((float[])tw.Clone());
        for (int t = 0; t < 300; t++)
        {
            env.Step(new[] { 0.7f }, obs);
            twin.Step(new[] { 0.7f }, tw);
            raw.Add((float[])tw.Clone());
        }
        for (int k = 0; k < 3; k++)
        {
            var column = raw.Select(o => (double)o[k]).ToArray();
            Assert.That(env.ObsRms.Mean[k], Is.EqualTo(column.Mean()).Within(1e-3), $"mean of element {k}");
            Assert.That(env.ObsRms.Var[k], Is.EqualTo(column.PopulationVariance()).Within(2e-3 * (1 + column.PopulationVariance())), $"variance of element {k}");
            double expected = (tw[k] - env.ObsRms.Mean[k]) / Math.Sqrt(env.ObsRms.Var[k] + 1e-8);
            Assert.That(obs[k], Is.EqualTo((float)expected), $"normalised element {k}");
        }
    }

    [Test]
    public void NormalizeReward_DividesByTheStdOfTheDiscountedReturn()
    {
        using var env = new NormalizeReward(new TimeLimit(new CartPole(), 500), gamma: 0.9);
        var obs = new float[4];
        env.Reset(obs, seed: 0);
        double g = 0;
        var returns = new List<double>();
        for (int t = 0; t < 50; t++)
        {
            var r = env.Step(t % 2, obs);
            g = g * 0.9 * (r.Terminated ? 0 : 1) + 1.0;
            returns.Add(g);
            double var = env.ReturnRms.Var[0];
            Assert.That(r.Reward, Is.EqualTo(1.0 / Math.Sqrt(var + 1e-8)).Within(1e-12));
            if (r.Terminated) env.Reset(obs);
        }
        Assert.That(env.ReturnRms.Mean[0], Is.EqualTo(returns.Mean()).Within(1e-3));
    }

    [Test]
    public void TransformObservationAndReward_Apply()
    {
        using var env = TransformReward.Clip(TransformObservation.Clip(new Pendulum(), -0.5f, 0.5f), -0.1, 0);
        var obs = new float[3];
        env.Reset(obs, seed: 2);
        for (int t = 0; t < 50; t++)
        {
            var r = env.Step(new[] { 2f }, obs);
            Assert.That(obs, Has.All.InRange(-0.5f, 0.5f));
            Assert.That(r.Reward, Is.InRange(-0.1, 0));
        }
    }
}

public class RunningMeanStdTests
{
    [Test]
    public void UpdateFromMoments_EqualsAddingTheSamplesOneByOne()
    {
        var rng = new Random(5);
        var one = new RunningMeanStd(1);
        var batched = new RunningMeanStd(1);
        for (int b = 0; b < 20; b++)
        {
            var xs = Enumerable.Range(0, 1 + rng.Next(50)).Select(_ => rng.NextDouble() * 40 - 7).ToArray();
            foreach (var x in xs) one.Update(x);
            double mean = xs.Average(), var = xs.Select(x => (x - mean) * (x - mean)).Average();
            batched.UpdateFromMoments(mean, var, xs.Length);
        }
        Assert.That(batched.Count, Is.EqualTo(one.Count).Within(1e-9));
        Assert.That(batched.Mean[0], Is.EqualTo(one.Mean[0]).Within(1e-9));
        Assert.That(batched.Var[0], Is.EqualTo(one.Var[0]).Within(1e-9));
        batched.UpdateFromMoments(123, 4, 0);
        Assert.That(batched.Mean[0], Is.EqualTo(one.Mean[0]).Within(1e-9), "an empty batch changes nothing");
        Assert.Throws<InvalidOperationException>(() => new RunningMeanStd(3).UpdateFromMoments(0, 1, 1));
    }

    [Test]
    public void VectorUpdateFromMoments_EqualsAddingTheVectorsOneByOne()
    {
        var rng = new Random(7);
        var one = new RunningMeanStd(3);
        var batched = new RunningMeanStd(3);
        for (int b = 0; b < 10; b++)
        {
            var rows = Enumerable.Range(0, 1 + rng.Next(30)).Select(_ => new[] { (float)rng.NextDouble(), (float)(rng.NextDouble() * 50 - 25), (float)(rng.NextDouble() * 0.01) }).ToArray();
            foreach (var r in rows) one.Update(r);
            var mean = Enumerable.Range(0, 3).Select(c => rows.Average(r => (double)r[c])).ToArray();
            var var = Enumerable.Range(0, 3).Select(c => rows.Average(r => (r[c] - mean[c]) * (r[c] - mean[c]))).ToArray();
            batched.UpdateFromMoments(mean, var, rows.Length);
        }
        Assert.That(batched.Count, Is.EqualTo(one.Count).Within(1e-9));
        for (int c = 0; c < 3; c++)
        {
            Assert.That(batched.Mean[c], Is.EqualTo(one.Mean[c]).Within(1e-6 * Math.Max(1, Math.Abs(one.Mean[c]))));
            Assert.That(batched.Var[c], Is.EqualTo(one.Var[c]).Within(1e-6 * Math.Max(1e-6, one.Var[c])));
        }
        Assert.Throws<ArgumentException>(() => batched.UpdateFromMoments(new double[2], new double[2], 1));
    }
}
