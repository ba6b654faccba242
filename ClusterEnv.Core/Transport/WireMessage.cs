using System.Buffers;
using Grpc.Core;

namespace ClusterEnv.Transport;

/// <summary>
/// One protobuf message as its encoded bytes. The hub's and the worker's gRPC calls carry these instead of the
/// generated classes, so the hot messages go through this project's allocation-free codec (<see cref="StepCodec"/>)
/// and everything else through Google.Protobuf, with gRPC doing the framing, compression, limits and status.
/// </summary>
public sealed class WireMessage
{
    /// <summary>Bytes gRPC puts before every message on the wire (compressed flag and length).</summary>
    public const int PrefixSize = 5;

    private byte[] _buffer = [];
    private int _offset;
    private bool _pooled;

    /// <summary>Wraps <paramref name="length"/> bytes of <paramref name="buffer"/> (not copied).</summary>
    public WireMessage(byte[] buffer, int length) => Set(buffer, 0, length);

    private WireMessage(byte[] pooled, int length, bool isPooled) : this(pooled, length) => _pooled = isPooled;

    /// <summary>The message's size in bytes.</summary>
    public int Length { get; private set; }

    /// <summary>The encoded message.</summary>
    public ReadOnlySpan<byte> Span => _buffer.AsSpan(_offset, Length);

    /// <summary>Points this message at <paramref name="length"/> bytes of <paramref name="buffer"/> from <paramref name="offset"/> (not copied).</summary>
    public void Set(byte[] buffer, int offset, int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((long)offset + length, buffer.Length);
        Release();
        _buffer = buffer;
        _offset = offset;
        Length = length;
    }

    /// <summary>Room for a message of <paramref name="length"/> bytes to be encoded into (reusing the buffer when it is large enough).</summary>
    public Span<byte> Reset(int length)
    {
        if (_buffer.Length < length)
        {
            Release();
            _buffer = new byte[Math.Max(length, _buffer.Length * 2)];
        }
        _offset = 0;
        Length = length;
        return _buffer.AsSpan(0, length);
    }

    /// <summary>Gives a received message's buffer back to the pool; the message must not be read afterwards.</summary>
    public void Release()
    {
        if (!_pooled) return;
        _pooled = false;
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
        _offset = Length = 0;
    }

    /// <summary>gRPC's marshaller: writes the bytes as they are; reads a message into a pooled buffer (see <see cref="Release"/>).</summary>
    public static readonly Marshaller<WireMessage> Marshaller = Marshallers.Create<WireMessage>(Serialize, Deserialize);

    private static void Serialize(WireMessage message, SerializationContext context)
    {
        context.SetPayloadLength(message.Length);
        var writer = context.GetBufferWriter();
        message.Span.CopyTo(writer.GetSpan(message.Length));
        writer.Advance(message.Length);
        context.Complete();
    }

    private static WireMessage Deserialize(DeserializationContext context)
    {
        var payload = context.PayloadAsReadOnlySequence();
        int length = checked((int)payload.Length);
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        payload.CopyTo(buffer);
        return new WireMessage(buffer, length, isPooled: true);
    }
}
