using ClusterEnv.Envs;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using Google.Protobuf;
using DType = ClusterEnv.Transport.Protos.DType;
using StepResult = ClusterEnv.Transport.Protos.StepResult;

namespace ClusterEnv.Tests.Transport;

/// <summary>The hand-written step codec produces and reads exactly what the generated protobuf classes do.</summary>
public class StepCodecTests
{
    [Test]
    public void StepCommand_IntActions_EncodesByteForByteAsTheGeneratedClass()
    {
        int[] actions = [0, 1, 1, 0, 7];
        var bytes = new byte[StepCodec.StepCommandSize(300, [5], 5, continuous: false)];
        Assert.That(StepCodec.WriteStepCommand(bytes, 300, [5], actions), Is.EqualTo(bytes.Length));

        var expected = new HubMessage { Seq = 300, Step = new StepCommand { Actions = new Tensor { Dtype = DType.Int64, Data = ByteString.CopyFrom(actions.SelectMany(a => BitConverter.GetBytes((long)a)).ToArray()) } } };
        expected.Step.Actions.Shape.Add(5);
        Assert.That(bytes, Is.EqualTo(expected.ToByteArray()));

        var decoded = new int[5];
        StepCodec.ReadEnvelope(bytes, out ulong seq, out int field, out var body);
        StepCodec.ReadStepCommand(body, decoded, default);
        Assert.That((seq, field, decoded), Is.EqualTo((300UL, HubMessage.StepFieldNumber, actions)));
    }

    [Test]
    public void StepCommand_FloatActions_RoundTripThroughTheGeneratedParser()
    {
        float[] actions = [0.5f, -2f, 1e-3f, 2f];
        var bytes = new byte[StepCodec.StepCommandSize(1, [2, 2], 4, continuous: true)];
        StepCodec.WriteStepCommand(bytes, 1, [2, 2], actions);
        var m = HubMessage.Parser.ParseFrom(bytes);
        Assert.That(m.Step.Actions.Shape, Is.EqualTo(new long[] { 2, 2 }));
        Assert.That(m.Step.Actions.Dtype, Is.EqualTo(DType.Float32));
        var back = new float[4];
        StepCodec.ReadEnvelope(bytes, out _, out _, out var body);
        StepCodec.ReadStepCommand(body, default, back);
        Assert.That(back, Is.EqualTo(actions));
    }

    [Test]
    public void StepResult_WithEpisodesAndFinalObservations_MatchesTheGeneratedClass_AndDecodesIntoTheRightRows()
    {
        var info = new VectorInfo(3, 2);
        info.Set(1, new EnvInfo { Episode = new EpisodeStatistics(12.5, 12, 0.25) });
        info.SetFinal(2, [9f, 8f], new EnvInfo { Episode = new EpisodeStatistics(3, 3, 0.5) });
        var r = new VectorStepResult([1, 2, 3, 4, 5, 6], [1.0, 0.0, -1.5], [false, true, false], [false, false, true], info);
        var bytes = new byte[StepCodec.StepResultSize(42, r, 2)];
        Assert.That(StepCodec.WriteStepResult(bytes, 42, r, 2), Is.EqualTo(bytes.Length));

        var parsed = WorkerMessage.Parser.ParseFrom(bytes);
        Assert.That(parsed.Seq, Is.EqualTo(42));
        Assert.That(parsed.Step.Rewards.Dtype, Is.EqualTo(DType.Float64));
        Assert.That(parsed.ToByteArray(), Is.EqualTo(bytes), "re-encoding with the generated class gives the same bytes");

        // Decode as worker 1 of a vector env whose rows 0-1 belong to another worker.
        var obs = new float[5 * 2];
        var rew = new double[5];
        var term = new bool[5];
        var trunc = new bool[5];
        var dest = new VectorInfo(5, 2);
        StepCodec.ReadEnvelope(bytes, out _, out _, out var body);
        StepCodec.ReadStepResult(body, new StepCodec.StepTarget(obs, rew, term, trunc, dest, offset: 2, count: 3, obsSize: 2));
        Assert.Multiple(() =>
        {
            Assert.That(obs, Is.EqualTo(new float[] { 0, 0, 0, 0, 1, 2, 3, 4, 5, 6 }));
            Assert.That(rew, Is.EqualTo(new[] { 0, 0, 1.0, 0.0, -1.5 }));
            Assert.That(term, Is.EqualTo(new[] { false, false, false, true, false }));
            Assert.That(trunc, Is.EqualTo(new[] { false, false, false, false, true }));
            Assert.That(dest.TryGetEpisode(3, out var e1) ? e1 : default, Is.EqualTo(new EpisodeStatistics(12.5, 12, 0.25)));
            Assert.That(dest.HasFinalObservation, Is.EqualTo(new[] { false, false, false, false, true }));
            Assert.That(dest.FinalObservation(4).ToArray(), Is.EqualTo(new[] { 9f, 8f }));
            Assert.That(dest.FinalEpisode.Return[4], Is.EqualTo(3));
            Assert.That(dest.Episode.Mask.Count(m => m), Is.EqualTo(1));
        });
    }

    [Test]
    public void StepResult_FromAnotherPeer_FieldOrderAndUnknownFieldsDoNotMatter()
    {
        var m = new StepResult
        {
            Truncated = new Tensor { Dtype = DType.Bool, Shape = { 1 }, Data = ByteString.CopyFrom(1) },
            Observations = new Tensor { Dtype = DType.Float32, Shape = { 1, 1 }, Data = ByteString.CopyFrom(BitConverter.GetBytes(2.5f)) },
            Rewards = new Tensor { Dtype = DType.Float64, Shape = { 1 }, Data = ByteString.CopyFrom(BitConverter.GetBytes(4.0)) },
            Terminated = new Tensor { Dtype = DType.Bool, Shape = { 1 }, Data = ByteString.CopyFrom(0) },
        };
        var body = m.ToByteArray().Concat(new byte[] { 0xF8, 0x01, 0x05 }).ToArray(); // + unknown varint field 31
        var obs = new float[1];
        var rew = new double[1];
        var term = new bool[1];
        var trunc = new bool[1];
        StepCodec.ReadStepResult(body, new StepCodec.StepTarget(obs, rew, term, trunc, new VectorInfo(1, 1), 0, 1, 1));
        Assert.That((obs[0], rew[0], term[0], trunc[0]), Is.EqualTo((2.5f, 4.0, false, true)));
    }

    [TestCase("wrong-dtype", "has dtype")]
    [TestCase("wrong-count", "has 2 elements")]
    [TestCase("short-data", "data bytes")]
    [TestCase("missing", "lacks one of")]
    [TestCase("truncated", "Truncated")]
    public void StepResult_Malformed_ThrowsInvalidDataNamingTheProblem(string kind, string text)
    {
        var good = new StepResult
        {
            Observations = new Tensor { Dtype = DType.Float32, Shape = { 1, 1 }, Data = ByteString.CopyFrom(new byte[4]) },
            Rewards = new Tensor { Dtype = DType.Float64, Shape = { 1 }, Data = ByteString.CopyFrom(new byte[8]) },
            Terminated = new Tensor { Dtype = DType.Bool, Shape = { 1 }, Data = ByteString.CopyFrom(0) },
            Truncated = new Tensor { Dtype = DType.Bool, Shape = { 1 }, Data = ByteString.CopyFrom(0) },
        };
        switch (kind)
        {
            case "wrong-dtype": good.Rewards.Dtype = DType.Float32; break;
            case "wrong-count": good.Rewards.Shape[0] = 2; break;
            case "short-data": good.Observations.Data = ByteString.CopyFrom(new byte[3]); break;
            case "missing": good.Truncated = null; break;
        }
        var body = good.ToByteArray();
        if (kind == "truncated") body = body[..^3];
        var ex = Assert.Throws<InvalidDataException>(() =>
            StepCodec.ReadStepResult(body, new StepCodec.StepTarget(new float[1], new double[1], new bool[1], new bool[1], new VectorInfo(1, 1), 0, 1, 1)))!;
        Assert.That(ex.Message, Does.Contain(text));
    }

    [Test]
    public void Spaces_RoundTripThroughTheWireForm()
    {
        foreach (var id in new[] { "CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0" })
        {
            var env = Gym.Make(id);
            Assert.That(SpaceCodec.FromProto(SpaceCodec.ToProto(env.ObservationSpace)), Is.EqualTo(env.ObservationSpace), id);
            Assert.That(SpaceCodec.FromProto(SpaceCodec.ToProto(env.ActionSpace)), Is.EqualTo(env.ActionSpace), id);
        }
        var multi = new ClusterEnv.Spaces.MultiDiscrete([3, 4], [1, -2]);
        Assert.That(SpaceCodec.FromProto(SpaceCodec.ToProto(multi)), Is.EqualTo(multi));
        Assert.That(() => SpaceCodec.FromProto(new Space { Discrete = new DiscreteSpace { N = 0 } }), Throws.TypeOf<InvalidDataException>());
    }
}
