using ClusterEnv.Envs;
using ClusterEnv.Policies;
using ClusterEnv.Spaces;
using DType = ClusterEnv.Transport.Protos.DType;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Cluster;

/// <summary>Image observations through workers: uint8 on the wire (a quarter of float32), the same values as local envs.</summary>
public class PixelClusterTests
{
    private static readonly PixelObservations Small = new(42, 42, 2);

    [Test]
    public void StepResult_OfImages_TravelsAsBytes_AndDecodesToTheSameFloats()
    {
        const int n = 3, m = 2 * 42 * 42;
        var rng = new ClusterEnv.Common.Rng(1);
        var obs = Enumerable.Range(0, n * m).Select(_ => (float)rng.NextInt(256)).ToArray();
        var r = new VectorStepResult(obs, new double[n], new bool[n], new bool[n], new VectorInfo(n, m));
        int bytes = StepCodec.StepResultSize(7, r, m, default, DType.Uint8);
        int asFloats = StepCodec.StepResultSize(7, r, m);
        Assert.That(bytes, Is.LessThan(n * m + 100), "one byte per pixel, plus rewards, flags and framing (75 bytes here)");
        Assert.That(asFloats, Is.GreaterThan(4 * n * m));
        var buffer = new byte[bytes];
        Assert.That(StepCodec.WriteStepResult(buffer, 7, r, m, default, DType.Uint8), Is.EqualTo(bytes));
        Assert.That(WorkerMessage.Parser.ParseFrom(buffer).Step.Observations.Dtype, Is.EqualTo(DType.Uint8));
        var back = new float[n * m];
        StepCodec.ReadEnvelope(buffer, out _, out _, out var body);
        StepCodec.ReadStepResult(body, new StepCodec.StepTarget(back, new double[n], new bool[n], new bool[n], new VectorInfo(n, m), 0, n, m));
        Assert.That(back, Is.EqualTo(obs));
        Assert.That(ObservationCodec.WireTypeOf(new Box(0f, 255f, [2, 42, 42], ClusterEnv.Spaces.DType.UInt8)), Is.EqualTo(DType.Uint8));
        Assert.That(ObservationCodec.WireTypeOf(new Box(-1f, 1f, [4])), Is.EqualTo(DType.Float32));
        Assert.That(() => ObservationCodec.Decode(DType.Uint8, new byte[5], 6, new float[6], "x"), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("UINT8"));
    }

    [Test]
    public void PixelWorkers_ResetStepAndRollouts_MatchLocalPixelEnvs()
    {
        var (cluster, workers) = TestCluster.InProcess("CartPole-v1", [2, 1], pixels: Small);
        using (cluster)
        {
            Assert.That(cluster.SingleObservationSpace, Is.EqualTo(new Box(0f, 255f, [2, 42, 42], ClusterEnv.Spaces.DType.UInt8)));
            using var local = new SyncVectorEnv(Enumerable.Range(0, 3).Select(_ => (Func<IEnv>)(() => new RecordEpisodeStatistics(Small.Make("CartPole-v1")))));
            var (a, _) = cluster.Reset(seed: 11);
            var (b, _) = local.Reset(seed: 11);
            Assert.That(a, Is.EqualTo(b), "reset");
            var actions = new int[3];
            for (int t = 0; t < 30; t++)
            {
                for (int i = 0; i < 3; i++) actions[i] = (t + i) % 2;
                var x = cluster.Step(actions);
                var y = local.Step(actions);
                Assert.That(x.Observations, Is.EqualTo(y.Observations), $"step {t}");
                Assert.That(x.Terminated, Is.EqualTo(y.Terminated), $"step {t}");
            }

            // Workers acting with a CNN ship rollouts of the pixels as they observed them, kept as bytes on the learner.
            var policy = new ActorCritic(PolicySpec.ForImages(cluster.SingleObservationSpace, cluster.SingleActionSpace, "small"), seed: 2);
            for (int w = 0; w < cluster.Workers.Count; w++) cluster.Policies.Push(w, 1, policy.Spec, policy.Parameters);
            cluster.Policies.WaitForAcks();
            cluster.Reset(seed: 3);
            var batch = cluster.Rollouts.Collect(8);
            var (start, _) = local.Reset(seed: 3);
            Assert.That(batch.ObservationType, Is.EqualTo(ClusterEnv.Spaces.DType.UInt8));
            Assert.That(batch.ObservationBytes, Has.Length.EqualTo(9 * 3 * batch.ObservationSize));
            Assert.That(batch.Observations, Is.Empty, "no float copy of the images");
            Assert.That(batch.ObservationRows(0, 3, new float[3 * batch.ObservationSize]).ToArray(), Is.EqualTo(start), "the rollout starts at the reset");
        }
        Task.WaitAll(workers, TimeSpan.FromSeconds(20));
    }
}
