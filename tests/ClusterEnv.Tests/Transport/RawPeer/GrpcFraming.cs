using System.Buffers;
using System.Buffers.Binary;

using ClusterEnv.Transport;
using Grpc.Core;

namespace ClusterEnv.Tests.Transport;

/// <summary>
/// gRPC's Length-Prefixed-Message framing (grpc/grpc doc/PROTOCOL-HTTP2.md), for the raw test peer: one
/// compressed-flag byte, a 4-byte big-endian length, then the payload. The product leaves framing to grpc-dotnet; the
/// tests need it to send what no real client would (bad flags, oversized or truncated frames).
/// </summary>
internal static class GrpcFraming
{
    /// <summary>Bytes before every payload.</summary>
    public const int HeaderSize = 5;

    /// <summary>What this implementation decodes, for <c>grpc-accept-encoding</c>.</summary>
    public const string AcceptEncoding = "identity,deflate,gzip";

    /// <summary>Writes the 5-byte header of an uncompressed message of <paramref name="length"/> bytes.</summary>
    public static void WriteHeader(Span<byte> destination, int length, bool compressed = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        destination[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(destination[1..], (uint)length);
    }

    /// <summary>
    /// Takes one complete message off the front of <paramref name="buffer"/> when it holds one. Returns false (and
    /// leaves the buffer as it was) when more bytes are needed.
    /// </summary>
    /// <param name="buffer">Unconsumed bytes; advanced past the message on success.</param>
    /// <param name="maxMessageSize">Largest accepted payload, compressed or not.</param>
    /// <param name="message">The payload (compressed when <paramref name="compressed"/> is true).</param>
    /// <param name="compressed">The compressed flag.</param>
    /// <exception cref="RpcException">INTERNAL for a flag other than 0/1; RESOURCE_EXHAUSTED over the size limit.</exception>
    public static bool TryReadMessage(ref ReadOnlySequence<byte> buffer, int maxMessageSize, out ReadOnlySequence<byte> message, out bool compressed)
    {
        message = default;
        compressed = false;
        if (buffer.Length < HeaderSize) return false;
        Span<byte> header = stackalloc byte[HeaderSize];
        buffer.Slice(0, HeaderSize).CopyTo(header);
        compressed = header[0] switch
        {
            0 => false,
            1 => true,
            _ => throw new RpcException(new Status(StatusCode.Internal, $"Invalid compressed-flag byte {header[0]} in a gRPC message header; it must be 0 or 1.")),
        };
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (length > (uint)maxMessageSize)
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"Received message larger than max ({length} vs. {maxMessageSize})."));
        if (buffer.Length < HeaderSize + length) return false;
        message = buffer.Slice(HeaderSize, length);
        buffer = buffer.Slice(HeaderSize + length);
        return true;
    }
}
