using ClusterEnv.Rollouts;
using ClusterEnv.Transport.Protos;
using SpaceType = ClusterEnv.Spaces.DType;

namespace ClusterEnv.Tests.Rollouts;

/// <summary>Rollouts keep image observations as bytes: in memory, from and to the wire, and read as floats on demand.</summary>
public class RolloutBatchTests
{
    private const int T = 3, N = 2, M = 5;

    private static RolloutBatch Filled(SpaceType storage)
    {
        var b = new RolloutBatch(T, N, M, continuous: false, actionSize: 1, distributionSize: 2, storage);
        var rng = new Common.Rng(7);
        b.WriteObservations(0, Enumerable.Range(0, (T + 1) * N * M).Select(_ => (float)rng.NextInt(256)).ToArray());
        b.WriteFinalObservations(1, Enumerable.Range(0, M).Select(j => (float)(250 + j)).ToArray());
        b.HasFinalObservation[1] = true;
        for (int j = 0; j < T * N; j++) { b.DiscreteActions[j] = j % 2; b.LogProbs[j] = -0.7f; }
        Array.Fill(b.PolicyVersion, 1UL);
        return b;
    }

    [Test]
    public void ImageRollouts_HoldBytes_AndReadAsTheSameFloats()
    {
        var bytes = Filled(SpaceType.UInt8);
        var floats = Filled(SpaceType.Float32);
        Assert.That(bytes.Observations, Is.Empty, "no float copy of the images");
        Assert.That(bytes.ObservationBytes, Has.Length.EqualTo((T + 1) * N * M));
        Assert.That(floats.ObservationBytes, Is.Empty);
        var scratch = new float[(T + 1) * N * M];
        Assert.That(bytes.ObservationRows(0, (T + 1) * N, scratch).ToArray(), Is.EqualTo(floats.Observations));
        Assert.That(bytes.ObservationRows(2, 3, scratch).ToArray(), Is.EqualTo(floats.Observations.AsSpan(2 * M, 3 * M).ToArray()));
        Assert.That(bytes.FinalObservationRows(1, 1, scratch).ToArray(), Is.EqualTo(new float[] { 250, 251, 252, 253, 254 }));
        var copied = new float[3 * M];
        bytes.CopyObservations(2, 3, copied);
        Assert.That(copied, Is.EqualTo(floats.Observations.AsSpan(2 * M, 3 * M).ToArray()), "copied straight into a destination, widened");
        floats.CopyFinalObservations(1, 1, copied);
        Assert.That(copied.AsSpan(0, M).ToArray(), Is.EqualTo(new float[] { 250, 251, 252, 253, 254 }));
        Assert.That(floats.ObservationRows(1, 1, default).ToArray(), Is.EqualTo(floats.Observations.AsSpan(M, M).ToArray()), "float32 is read in place, no scratch needed");
        Assert.That(bytes.Problem(0, N), Is.Null);
        Assert.That(() => new RolloutBatch(T, N, M, false, 1, 2, SpaceType.Float64),
            Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("Float32 or UInt8"));
    }

    [Test]
    public void ImageRollouts_CrossTheWireAsBytes_AndArriveAsBytes()
    {
        var sent = Filled(SpaceType.UInt8);
        var proto = sent.ToProto(1, default, DType.Uint8);
        Assert.That(proto.Observations.Dtype, Is.EqualTo(DType.Uint8));
        Assert.That(proto.Observations.Data.Length, Is.EqualTo((T + 1) * N * M), "one byte per pixel");
        Assert.That(proto.FinalObservations.Data.ToByteArray(), Is.EqualTo(sent.FinalObservationBytes));

        // Into a wider batch (sub-envs 1..2 of 3), as a learner gathers workers' rollouts.
        var received = new RolloutBatch(T, 3, M, false, 1, 2, SpaceType.UInt8);
        received.Fill(RolloutResult.Parser.ParseFrom(Google.Protobuf.MessageExtensions.ToByteArray(proto)), 1, N);
        for (int t = 0; t <= T; t++)
            Assert.That(received.ObservationBytes.AsSpan((t * 3 + 1) * M, N * M).ToArray(), Is.EqualTo(sent.ObservationBytes.AsSpan(t * N * M, N * M).ToArray()), $"row {t}");
        Assert.That(received.HasFinalObservation[1 + 0 * 3 + 1], Is.True, "step 0, sub-env 1 of the sender is sub-env 2 here");
        Assert.That(received.FinalObservationBytes.AsSpan((0 * 3 + 2) * M, M).ToArray(), Is.EqualTo(new byte[] { 250, 251, 252, 253, 254 }));

        // A worker that sends images as float32 (an older worker) still fills a byte batch; a float batch takes bytes too.
        var asFloats = RolloutResult.Parser.ParseFrom(Google.Protobuf.MessageExtensions.ToByteArray(sent.ToProto(1, default, DType.Float32)));
        Assert.That(asFloats.Observations.Dtype, Is.EqualTo(DType.Float32));
        var narrowed = new RolloutBatch(T, N, M, false, 1, 2, SpaceType.UInt8);
        narrowed.Fill(asFloats, 0, N);
        Assert.That(narrowed.ObservationBytes, Is.EqualTo(sent.ObservationBytes));
        var widened = new RolloutBatch(T, N, M, false, 1, 2);
        widened.Fill(RolloutResult.Parser.ParseFrom(Google.Protobuf.MessageExtensions.ToByteArray(proto)), 0, N);
        Assert.That(widened.Observations, Is.EqualTo(Filled(SpaceType.Float32).Observations));
    }
}
