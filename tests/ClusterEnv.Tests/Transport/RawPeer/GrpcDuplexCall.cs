using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;

using ClusterEnv.Transport;
using Grpc.Core;

namespace ClusterEnv.Tests.Transport;

/// <summary>
/// The client side of one gRPC bidirectional-streaming call over HTTP/2 with <see cref="HttpClient"/>: requests are
/// written to <see cref="RequestStream"/> (each flushed on its own), responses are read from <see cref="Responses"/>,
/// and the final status comes from the trailers (or from the headers of a trailers-only response).
/// </summary>
internal sealed class GrpcDuplexCall : IAsyncDisposable
{
    private readonly DuplexContent _content;
    private readonly CancellationTokenSource _cts;
    private HttpResponseMessage? _response;

    private GrpcDuplexCall(DuplexContent content, CancellationTokenSource cts, Stream requestStream)
    {
        _content = content;
        _cts = cts;
        RequestStream = requestStream;
    }

    /// <summary>The request body: write framed messages and flush each one.</summary>
    public Stream RequestStream { get; }

    /// <summary>The response body, available after <see cref="ReadHeadersAsync"/>.</summary>
    public PipeReader Responses { get; private set; } = null!;

    /// <summary>The response's <c>grpc-encoding</c> (null for identity).</summary>
    public string? ResponseEncoding { get; private set; }

    /// <summary>An <see cref="HttpClient"/> set up for gRPC over cleartext HTTP/2 (prior knowledge) or TLS.</summary>
    public static HttpClient CreateClient(TimeSpan? keepAlivePingDelay = null, TimeSpan? keepAlivePingTimeout = null, bool acceptAnyCertificate = false)
    {
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            KeepAlivePingDelay = keepAlivePingDelay ?? TimeSpan.FromSeconds(1),
            KeepAlivePingTimeout = keepAlivePingTimeout ?? TimeSpan.FromSeconds(3),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            InitialHttp2StreamWindowSize = 2 * 1024 * 1024,
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
        if (acceptAnyCertificate) handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        return new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan, DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
    }

    /// <summary>
    /// Starts the call and returns once the request stream is open (before the server's headers, which may wait for
    /// the first message). Then write the first message and call <see cref="ReadHeadersAsync"/>.
    /// </summary>
    public static async Task<GrpcDuplexCall> StartAsync(HttpClient client, Uri baseAddress, string path, IEnumerable<KeyValuePair<string, string>>? metadata = null,
        TimeSpan? deadline = null, CancellationToken cancellationToken = default)
    {
        var content = new DuplexContent();
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseAddress, path))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = content,
        };
        request.Headers.TE.Add(new TransferCodingWithQualityHeaderValue("trailers"));
        request.Headers.TryAddWithoutValidation(GrpcHeaders.AcceptEncoding, GrpcFraming.AcceptEncoding);
        request.Headers.UserAgent.ParseAdd("grpc-dotnet-clusterenv/1.0");
        if (deadline is { } d) request.Headers.TryAddWithoutValidation(GrpcHeaders.Timeout, GrpcHeaders.FormatTimeout(d));
        foreach (var (k, v) in metadata ?? []) request.Headers.TryAddWithoutValidation(k, v);
        content.Headers.ContentType = new MediaTypeHeaderValue(GrpcHeaders.ContentType);

        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (deadline is { } dl) cts.CancelAfter(dl + TimeSpan.FromMilliseconds(200)); // let the server's DEADLINE_EXCEEDED win
        var responseTask = client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var streamTask = content.Stream;
        var first = await Task.WhenAny(streamTask, responseTask).ConfigureAwait(false);
        if (first == responseTask && !streamTask.IsCompleted)
        {
            // The server answered (or the connection failed) before taking the body: surface that.
            var response = await responseTask.ConfigureAwait(false);
            var call0 = new GrpcDuplexCall(content, cts, Stream.Null) { _response = response };
            throw call0.StatusFromHeaders() ?? new RpcException(new Status(StatusCode.Unknown, $"The server answered HTTP {(int)response.StatusCode} before the request body was sent."));
        }
        var call = new GrpcDuplexCall(content, cts, await streamTask.ConfigureAwait(false));
        call._responseTask = responseTask;
        return call;
    }

    private Task<HttpResponseMessage>? _responseTask;

    /// <summary>Writes one uncompressed message (framed) and flushes it.</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        var header = new byte[GrpcFraming.HeaderSize];
        GrpcFraming.WriteHeader(header, payload.Length);
        await RequestStream.WriteAsync(header, cancellationToken).ConfigureAwait(false);
        await RequestStream.WriteAsync(payload, cancellationToken).ConfigureAwait(false);
        await RequestStream.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Waits for the response headers. Throws <see cref="RpcException"/> when the response is not a gRPC response
    /// or is a trailers-only error (its status and message).
    /// </summary>
    public async Task ReadHeadersAsync()
    {
        _response = await _responseTask!.ConfigureAwait(false);
        if (StatusFromHeaders() is { } error) throw error;
        if (_response.StatusCode != HttpStatusCode.OK)
            throw new RpcException(new Status(MapHttpStatus(_response.StatusCode), $"The hub answered HTTP {(int)_response.StatusCode} ({_response.ReasonPhrase}); is {_response.RequestMessage?.RequestUri} a ClusterEnv hub?"));
        if (!GrpcHeaders.IsGrpcContentType(_response.Content.Headers.ContentType?.MediaType))
            throw new RpcException(new Status(StatusCode.Unknown, $"The response has content type '{_response.Content.Headers.ContentType}', not application/grpc."));
        ResponseEncoding = _response.Headers.TryGetValues(GrpcHeaders.Encoding, out var enc) ? enc.FirstOrDefault() : null;
        if (ResponseEncoding == "identity") ResponseEncoding = null;
        Responses = PipeReader.Create(await _response.Content.ReadAsStreamAsync().ConfigureAwait(false));
    }

    private RpcException? StatusFromHeaders()
    {
        if (_response is null || !_response.Headers.TryGetValues(GrpcHeaders.Status, out var values)) return null;
        return ToException(values.FirstOrDefault(), _response.Headers.TryGetValues(GrpcHeaders.Message, out var m) ? m.FirstOrDefault() : null);
    }

    /// <summary>The call's final status, from the trailers; read it after <see cref="Responses"/> reached its end.</summary>
    public RpcException? GetStatus()
    {
        if (_response is null) return new RpcException(new Status(StatusCode.Unknown, "The call has no response."));
        if (_response.TrailingHeaders.TryGetValues(GrpcHeaders.Status, out var values))
            return ToException(values.FirstOrDefault(), _response.TrailingHeaders.TryGetValues(GrpcHeaders.Message, out var m) ? m.FirstOrDefault() : null);
        return StatusFromHeaders() ?? new RpcException(new Status(StatusCode.Unknown, "The stream ended without a grpc-status."));
    }

    private static RpcException? ToException(string? status, string? message)
    {
        if (!int.TryParse(status, out int code)) return new RpcException(new Status(StatusCode.Unknown, $"Invalid grpc-status '{status}'."));
        return code == 0 ? null : new RpcException(new Status((StatusCode)code, GrpcHeaders.DecodeMessage(message)));
    }

    private static StatusCode MapHttpStatus(HttpStatusCode s) => (int)s switch
    {
        400 => StatusCode.Internal,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.Unimplemented,
        429 or 502 or 503 or 504 => StatusCode.Unavailable,
        _ => StatusCode.Unknown,
    };

    /// <summary>Half-closes: no more requests (END_STREAM); responses keep coming.</summary>
    public void CompleteRequests() => _content.Complete();

    /// <summary>Cancels the call (RST_STREAM CANCEL).</summary>
    public void Cancel() => _cts.Cancel();

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _content.Complete();
        _cts.Cancel();
        if (Responses is not null) await Responses.CompleteAsync().ConfigureAwait(false);
        _response?.Dispose();
        _cts.Dispose();
    }

    /// <summary>A request body that hands its stream to the caller and ends when the caller half-closes.</summary>
    private sealed class DuplexContent : HttpContent
    {
        private readonly TaskCompletionSource<Stream> _stream = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<Stream> Stream => _stream.Task;

        public void Complete() => _done.TrySetResult();

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            _stream.TrySetResult(stream);
            return _done.Task;
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            cancellationToken.Register(() => _done.TrySetCanceled());
            return SerializeToStreamAsync(stream, context);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }
}
