using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;

namespace ClusterEnv.Transport;

/// <summary>
/// gRPC's Length-Prefixed-Message framing (grpc/grpc doc/PROTOCOL-HTTP2.md): one compressed-flag byte, a 4-byte
/// big-endian length, then the payload. Message boundaries are unrelated to HTTP/2 DATA frames, so reading works on a
/// buffered <see cref="ReadOnlySequence{T}"/> (a PipeReader's buffer), never per frame. Compressed messages are
/// decoded per message: <c>gzip</c>, and <c>deflate</c> which in gRPC/HTTP is the zlib format (RFC 1950).
/// </summary>
public static class GrpcFraming
{
    /// <summary>Bytes before every payload.</summary>
    public const int HeaderSize = 5;

    /// <summary>grpc-core's default receive limit (4 MiB).</summary>
    public const int DefaultMaxMessageSize = 4 * 1024 * 1024;

    /// <summary>What this implementation decodes, for <c>grpc-accept-encoding</c>.</summary>
    public const string AcceptEncoding = "identity,deflate,gzip";

    /// <summary>Writes one uncompressed message (header and payload) to <paramref name="writer"/>.</summary>
    public static void WriteMessage(IBufferWriter<byte> writer, ReadOnlySpan<byte> payload)
    {
        var span = writer.GetSpan(HeaderSize + payload.Length);
        span[0] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(span[1..], (uint)payload.Length);
        payload.CopyTo(span[HeaderSize..]);
        writer.Advance(HeaderSize + payload.Length);
    }

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
    /// <exception cref="GrpcException">INTERNAL for a flag other than 0/1; RESOURCE_EXHAUSTED over the size limit.</exception>
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
            _ => throw new GrpcException(GrpcStatusCode.Internal, $"Invalid compressed-flag byte {header[0]} in a gRPC message header; it must be 0 or 1."),
        };
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (length > (uint)maxMessageSize)
            throw new GrpcException(GrpcStatusCode.ResourceExhausted, $"Received message larger than max ({length} vs. {maxMessageSize}).");
        if (buffer.Length < HeaderSize + length) return false;
        message = buffer.Slice(HeaderSize, length);
        buffer = buffer.Slice(HeaderSize + length);
        return true;
    }

    /// <summary>
    /// Decodes a compressed payload sent with <c>grpc-encoding: <paramref name="encoding"/></c>, refusing output larger
    /// than <paramref name="maxMessageSize"/> (a decompression bomb gets RESOURCE_EXHAUSTED, not an out-of-memory).
    /// </summary>
    public static byte[] Decompress(ReadOnlySequence<byte> payload, string? encoding, int maxMessageSize)
    {
        if (encoding is null or "identity")
            throw new GrpcException(GrpcStatusCode.Internal, "A message has the compressed flag set but the stream declared no grpc-encoding.");
        using var input = new MemoryStream(payload.ToArray(), writable: false);
        using Stream decoder = encoding switch
        {
            "gzip" => new GZipStream(input, CompressionMode.Decompress),
            "deflate" => new ZLibStream(input, CompressionMode.Decompress),
            _ => throw new GrpcException(GrpcStatusCode.Unimplemented, $"Message encoding '{encoding}' is not supported; supported: {AcceptEncoding}."),
        };
        using var output = new MemoryStream();
        var chunk = new byte[16 * 1024];
        try
        {
            int n;
            while ((n = decoder.Read(chunk)) > 0)
            {
                if (output.Length + n > maxMessageSize)
                    throw new GrpcException(GrpcStatusCode.ResourceExhausted, $"Decompressed message larger than max ({maxMessageSize} bytes).");
                output.Write(chunk, 0, n);
            }
        }
        catch (InvalidDataException e)
        {
            throw new GrpcException(GrpcStatusCode.Internal, $"Could not decompress a '{encoding}' message: {e.Message}");
        }
        return output.ToArray();
    }
}
