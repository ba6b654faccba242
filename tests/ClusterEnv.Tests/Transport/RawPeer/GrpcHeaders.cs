using System.Globalization;
using System.Text;

using ClusterEnv.Transport;

namespace ClusterEnv.Tests.Transport;

/// <summary>gRPC's HTTP/2 header conventions: names, the percent-encoded <c>grpc-message</c>, and <c>grpc-timeout</c>.</summary>
internal static class GrpcHeaders
{
    /// <summary>The content type of every gRPC request and response.</summary>
    public const string ContentType = "application/grpc";
    /// <summary>Status code header (in trailers, or in headers for trailers-only responses).</summary>
    public const string Status = "grpc-status";
    /// <summary>Percent-encoded status message.</summary>
    public const string Message = "grpc-message";
    /// <summary>Message encoding of this stream's compressed messages.</summary>
    public const string Encoding = "grpc-encoding";
    /// <summary>Encodings the sender can decode.</summary>
    public const string AcceptEncoding = "grpc-accept-encoding";
    /// <summary>Call deadline, relative.</summary>
    public const string Timeout = "grpc-timeout";

    /// <summary>True for <c>application/grpc</c>, <c>application/grpc+proto</c> and <c>application/grpc;...</c>.</summary>
    public static bool IsGrpcContentType(string? contentType) =>
        contentType is not null && contentType.StartsWith(ContentType, StringComparison.OrdinalIgnoreCase) &&
        (contentType.Length == ContentType.Length || contentType[ContentType.Length] is '+' or ';');


    /// <summary>Decodes a percent-encoded status message; bad escapes are kept as they are, never an error.</summary>
    public static string DecodeMessage(string? encoded)
    {
        if (string.IsNullOrEmpty(encoded) || !encoded.Contains('%')) return encoded ?? "";
        var bytes = new List<byte>(encoded.Length);
        for (int i = 0; i < encoded.Length; i++)
        {
            char c = encoded[i];
            if (c == '%' && i + 2 < encoded.Length &&
                byte.TryParse(encoded.AsSpan(i + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte b))
            {
                bytes.Add(b);
                i += 2;
            }
            else
            {
                bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(c.ToString()));
            }
        }
        return System.Text.Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>Formats a timeout as <c>grpc-timeout</c> (at most 8 digits and a unit), rounding up.</summary>
    public static string FormatTimeout(TimeSpan timeout)
    {
        long ticks = Math.Max(0, timeout.Ticks);
        long us = (ticks + 9) / 10;
        if (us < 100_000_000) return us.ToString(CultureInfo.InvariantCulture) + "u";
        long ms = (us + 999) / 1000;
        if (ms < 100_000_000) return ms.ToString(CultureInfo.InvariantCulture) + "m";
        long s = (ms + 999) / 1000;
        if (s < 100_000_000) return s.ToString(CultureInfo.InvariantCulture) + "S";
        return Math.Min((s + 3599) / 3600, 99_999_999).ToString(CultureInfo.InvariantCulture) + "H";
    }

}
