using System.Buffers;
using System.IO.Compression;
using ClusterEnv.Transport;

namespace ClusterEnv.Tests.Transport;

public class GrpcFramingTests
{
    private static byte[] Frame(byte flag, byte[] payload)
    {
        var b = new byte[5 + payload.Length];
        b[0] = flag;
        b[1] = (byte)(payload.Length >> 24); b[2] = (byte)(payload.Length >> 16); b[3] = (byte)(payload.Length >> 8); b[4] = (byte)payload.Length;
        payload.CopyTo(b, 5);
        return b;
    }

    /// <summary>A sequence of several segments, split at the given offsets (as HTTP/2 DATA frames would split it).</summary>
    private static ReadOnlySequence<byte> Split(byte[] data, params int[] cuts)
    {
        var bounds = new[] { 0 }.Concat(cuts).Append(data.Length).ToArray();
        Segment? first = null, last = null;
        for (int i = 0; i + 1 < bounds.Length; i++)
        {
            var seg = new Segment(data.AsMemory(bounds[i], bounds[i + 1] - bounds[i]));
            if (first is null) first = last = seg; else last = last!.Append(seg);
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> m) => Memory = m;
        public Segment Append(ReadOnlyMemory<byte> m) => Append(new Segment(m));
        public Segment Append(Segment next) { next.RunningIndex = RunningIndex + Memory.Length; Next = next; return next; }
    }

    [Test]
    public void WriteThenRead_RoundTrips_SeveralMessagesSplitAcrossSegmentsAnywhere()
    {
        var writer = new ArrayBufferWriter<byte>();
        GrpcFraming.WriteMessage(writer, [1, 2, 3]);
        GrpcFraming.WriteMessage(writer, []);
        GrpcFraming.WriteMessage(writer, Enumerable.Range(0, 300).Select(i => (byte)i).ToArray());
        byte[] wire = writer.WrittenSpan.ToArray();
        Assert.That(wire[..5], Is.EqualTo(new byte[] { 0, 0, 0, 0, 3 }), "flag 0, big-endian length");
        for (int cut = 1; cut < wire.Length; cut += 7)
        {
            var buffer = Split(wire, cut, Math.Min(cut + 3, wire.Length - 1));
            var lengths = new List<int>();
            while (GrpcFraming.TryReadMessage(ref buffer, 1000, out var msg, out bool compressed))
            {
                Assert.That(compressed, Is.False);
                lengths.Add((int)msg.Length);
            }
            Assert.That(lengths, Is.EqualTo(new[] { 3, 0, 300 }), $"cut at {cut}");
            Assert.That(buffer.Length, Is.Zero);
        }
    }

    [Test]
    public void TryRead_IncompleteMessage_ReturnsFalseAndConsumesNothing()
    {
        var buffer = new ReadOnlySequence<byte>(Frame(0, [9, 9, 9, 9])[..7]);
        Assert.That(GrpcFraming.TryReadMessage(ref buffer, 100, out _, out _), Is.False);
        Assert.That(buffer.Length, Is.EqualTo(7));
    }

    [Test]
    public void TryRead_OversizedMessage_IsResourceExhausted_BeforeThePayloadArrives()
    {
        var buffer = new ReadOnlySequence<byte>(Frame(0, new byte[101])[..5]);
        var ex = Assert.Throws<GrpcException>(() => GrpcFraming.TryReadMessage(ref buffer, 100, out _, out _));
        Assert.That(ex!.Status, Is.EqualTo(GrpcStatusCode.ResourceExhausted));
        Assert.That(ex.Detail, Does.Contain("101 vs. 100"));
    }

    [Test]
    public void TryRead_InvalidFlag_IsInternal()
    {
        var buffer = new ReadOnlySequence<byte>(Frame(2, [1]));
        var ex = Assert.Throws<GrpcException>(() => GrpcFraming.TryReadMessage(ref buffer, 100, out _, out _));
        Assert.That(ex!.Status, Is.EqualTo(GrpcStatusCode.Internal));
    }

    [TestCase("gzip")]
    [TestCase("deflate")]
    public void Decompress_DecodesGzipAndZlibDeflate(string encoding)
    {
        byte[] original = Enumerable.Range(0, 5000).Select(i => (byte)(i % 17)).ToArray();
        var ms = new MemoryStream();
        using (Stream z = encoding == "gzip" ? new GZipStream(ms, CompressionLevel.Optimal, true) : new ZLibStream(ms, CompressionLevel.Optimal, true))
            z.Write(original);
        var buffer = new ReadOnlySequence<byte>(Frame(1, ms.ToArray()));
        Assert.That(GrpcFraming.TryReadMessage(ref buffer, 1 << 20, out var msg, out bool compressed), Is.True);
        Assert.That(compressed, Is.True);
        Assert.That(GrpcFraming.Decompress(msg, encoding, 1 << 20), Is.EqualTo(original));
    }

    [Test]
    public void Decompress_RefusesBombsUnknownEncodingsAndGarbage()
    {
        var ms = new MemoryStream();
        using (var z = new GZipStream(ms, CompressionLevel.Optimal, true)) z.Write(new byte[1 << 20]); // 1 MiB of zeros, ~1 KB compressed
        var bomb = new ReadOnlySequence<byte>(ms.ToArray());
        Assert.That(Assert.Throws<GrpcException>(() => GrpcFraming.Decompress(bomb, "gzip", 64 * 1024))!.Status, Is.EqualTo(GrpcStatusCode.ResourceExhausted));
        Assert.That(Assert.Throws<GrpcException>(() => GrpcFraming.Decompress(bomb, "snappy", 1 << 20))!.Status, Is.EqualTo(GrpcStatusCode.Unimplemented));
        Assert.That(Assert.Throws<GrpcException>(() => GrpcFraming.Decompress(bomb, null, 1 << 20))!.Status, Is.EqualTo(GrpcStatusCode.Internal));
        var garbage = new ReadOnlySequence<byte>(new byte[] { 1, 2, 3, 4, 5 });
        Assert.That(Assert.Throws<GrpcException>(() => GrpcFraming.Decompress(garbage, "deflate", 1 << 20))!.Status, Is.EqualTo(GrpcStatusCode.Internal));
    }
}
