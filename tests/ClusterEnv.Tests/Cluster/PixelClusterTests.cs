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
    public void VectorEnvs_KeepImagesAsBytes_AndReturnThemWidened()
    {
        using var pixels = new SyncVectorEnv(Enumerable.Range(0, 2).Select(_ => (Func<IEnv>)(() => Small.Make("CartPole-v1"))), AutoresetMode.SameStep);
        Assert.That(pixels.ObservationDType, Is.EqualTo(ClusterEnv.Spaces.DType.UInt8));
        Assert.That(((IVectorEnv)pixels).ObservationDType, Is.EqualTo(ClusterEnv.Spaces.DType.UInt8));
        var (obs, _) = pixels.Reset(seed: 4);
        Assert.That(pixels.ObservationBytes.Length, Is.EqualTo(2 * pixels.ObservationSize), "one byte per pixel");
        Assert.That(pixels.ObservationBytes.ToArray().Select(b => (float)b), Is.EqualTo(obs));
        bool ended = false;
        for (int t = 0; t < 60; t++)
        {
            var r = pixels.Step([1, 1]);
            Assert.That(pixels.ObservationBytes.ToArray().Select(b => (float)b), Is.EqualTo(r.Observations), $"step {t}");
            ended |= r.Info.HasFinalObservation.Any(f => f);
        }
        Assert.That(ended, Is.True, "pushing right ends episodes: the reset frames are kept as bytes too");

        // Episode statistics (as workers wrap their envs) pass the frames on as bytes, and record the same episodes.
        using var recorded = new SyncVectorEnv(Enumerable.Range(0, 2).Select(_ => (Func<IEnv>)(() => new RecordEpisodeStatistics(Small.Make("CartPole-v1")))));
        Assert.That(ByteObservations.Of(recorded.Envs[0]), Is.Not.Null);
        using var plain = new SyncVectorEnv(Enumerable.Range(0, 2).Select(_ => (Func<IEnv>)(() => Small.Make("CartPole-v1"))));
        recorded.Reset(seed: 9);
        plain.Reset(seed: 9);
        int episodes = 0;
        for (int t = 0; t < 40; t++)
        {
            var r = recorded.Step([t % 3 == 0 ? 0 : 1, 1]);
            plain.Step([t % 3 == 0 ? 0 : 1, 1]);
            Assert.That(recorded.ObservationBytes.ToArray(), Is.EqualTo(plain.ObservationBytes.ToArray()), $"step {t}");
            for (int i = 0; i < 2; i++) if (r.Info.TryGetEpisode(i, out _)) episodes++;
        }
        Assert.That(episodes, Is.GreaterThan(0));

        using var floats = Gym.MakeVec("CartPole-v1", numEnvs: 2);
        Assert.That(floats.ObservationDType, Is.EqualTo(ClusterEnv.Spaces.DType.Float32));
        var (f, _) = floats.Reset(seed: 4);
        Assert.That(floats.ObservationBytes.ToArray(), Is.EqualTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(f.AsSpan()).ToArray()), "float32: the buffer's own bytes");
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
                Assert.That(cluster.ObservationBytes.ToArray(), Is.EqualTo(local.ObservationBytes.ToArray()), $"step {t}: the frames as bytes");
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
