using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Google.Protobuf;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ClusterEnv.Cluster;

/// <summary>
/// The learner-side endpoint that workers dial: a Kestrel HTTP/2 server speaking the gRPC wire protocol for one
/// method, <c>/clusterenv.v1.WorkerHub/Connect</c>. It checks each worker's Register (protocol version, token, spaces)
/// and hands accepted streams to its owner (a <see cref="ClusterVecEnv"/>). A bad stream — wrong path or content type,
/// malformed frame, oversized message, wrong version or token — is closed with a gRPC status; the hub and every other
/// stream carry on.
/// </summary>
public sealed class ClusterHub : IAsyncDisposable, IDisposable
{
    /// <summary>The protocol version this hub speaks (<c>Register.protocol_version</c>).</summary>
    public const uint ProtocolVersion = 1;

    /// <summary>The gRPC method path workers call.</summary>
    public const string ConnectPath = "/clusterenv.v1.WorkerHub/Connect";

    private readonly WebApplication _app;
    private readonly HubOptions _options;
    private readonly byte[]? _token;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ILogger _logger;
    private Func<WorkerConnection, string?>? _admit;
    private bool _disposed;

    private ClusterHub(WebApplication app, HubOptions options, ILogger logger)
    {
        _app = app;
        _options = options;
        _logger = logger;
        _token = string.IsNullOrEmpty(options.Token) ? null : Encoding.UTF8.GetBytes(options.Token);
    }

    /// <summary>The URL workers dial, e.g. <c>http://127.0.0.1:5555</c>.</summary>
    public Uri Url { get; private set; } = null!;

    /// <summary>
    /// Starts a hub on <see cref="HubOptions.Host"/>:<see cref="HubOptions.Port"/> (port 0 picks a free one). Its log
    /// lines (registrations, refusals with the reason and the peer, losses; see <c>ClusterLog</c> for the event ids) go
    /// to <paramref name="loggerFactory"/>, category <c>ClusterEnv.Cluster.ClusterHub</c>.
    /// </summary>
    public static async Task<ClusterHub> StartAsync(HubOptions options, CancellationToken cancellationToken = default, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Logging.AddFilter(_ => false);
        // The hub is a component of the user's process, not its host: the default console lifetime would take over
        // SIGINT/SIGTERM (stop the web host, keep the process running), so a learner holding a ClusterVecEnv would
        // ignore Ctrl-C and Slurm's SIGTERM. Leave the signals to the process.
        builder.Services.AddSingleton<IHostLifetime, PassiveLifetime>();
        // Replies are decoded straight into the vector env's buffers in the socket's completion: run it inline rather
        // than hop to the thread pool, which costs tens of µs per step when the workers share the learner's cores.
        builder.WebHost.UseSockets(s => s.UnsafePreferInlineScheduling = options.InlineCompletions);
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = null; // the stream is long-lived; the limit is per message instead
            k.Limits.MinRequestBodyDataRate = null;
            k.Limits.MinResponseDataRate = null;
            k.Limits.Http2.InitialConnectionWindowSize = 4 * 1024 * 1024;
            k.Limits.Http2.InitialStreamWindowSize = 2 * 1024 * 1024;
            k.Limits.Http2.MaxStreamsPerConnection = 1024;
            k.Limits.Http2.KeepAlivePingDelay = options.HeartbeatInterval;
            k.Limits.Http2.KeepAlivePingTimeout = options.HeartbeatTimeout;
            // Connections that never open a stream (port scanners, half-open sockets, stray clients) are closed after
            // IdleTimeout instead of Kestrel's 130 s, and there are at most MaxConnections of them at once.
            k.Limits.KeepAliveTimeout = options.IdleTimeout;
            k.Limits.RequestHeadersTimeout = options.IdleTimeout;
            k.Limits.MaxConcurrentConnections = options.MaxConnections;
            k.Limits.MaxConcurrentUpgradedConnections = 0;
            var address = options.Host is "localhost" ? IPAddress.Loopback
                : options.Host is "*" or "0.0.0.0" ? IPAddress.Any
                : IPAddress.TryParse(options.Host, out var ip) ? ip
                : throw new ArgumentException($"Hub host '{options.Host}' is not an IP address; use 127.0.0.1, 0.0.0.0 (all interfaces) or a literal address.");
            k.Listen(address, options.Port, l =>
            {
                l.Protocols = HttpProtocols.Http2;
                l.Use(next => connection => CloseIfSilentAsync(connection, next, options.IdleTimeout));
                if (options.CertificatePath is { } cert)
                    l.UseHttps(new HttpsConnectionAdapterOptions
                    {
                        ServerCertificate = X509CertificateLoader.LoadPkcs12FromFile(cert, options.CertificatePassword),
                        HandshakeTimeout = options.IdleTimeout,
                    });
            });
        });
        var app = builder.Build();
        var hub = new ClusterHub(app, options, (loggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger<ClusterHub>());
        app.Run(hub.HandleAsync);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new IOException($"The hub could not listen on {options.Host}:{options.Port} ({e.Message}); pick another port, or 0 for a free one.", e);
        }
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var uri = new Uri(bound);
        string host = options.Host is "*" or "0.0.0.0" ? Dns.GetHostName() : uri.Host;
        hub.Url = new UriBuilder(uri.Scheme, host, uri.Port).Uri;
        ClusterLog.HubListening(hub._logger, hub.Url);
        return hub;
    }

    // Kestrel applies no timeout before the first bytes of a connection (its keep-alive timeout starts with the HTTP/2
    // preface), so a socket that connects and says nothing would be held until the OS gives up. Wait for the first
    // bytes at most IdleTimeout, without consuming them.
    private static async Task CloseIfSilentAsync(Microsoft.AspNetCore.Connections.ConnectionContext connection,
        Microsoft.AspNetCore.Connections.ConnectionDelegate next, TimeSpan idleTimeout)
    {
        using (var silent = new CancellationTokenSource(idleTimeout))
        {
            try
            {
                var first = await connection.Transport.Input.ReadAsync(silent.Token).ConfigureAwait(false);
                connection.Transport.Input.AdvanceTo(first.Buffer.Start);
            }
            catch (OperationCanceledException)
            {
                connection.Abort(new Microsoft.AspNetCore.Connections.ConnectionAbortedException($"No data within {idleTimeout.TotalSeconds:0.#} s of connecting."));
                return;
            }
        }
        await next(connection).ConfigureAwait(false);
    }

    /// <summary>
    /// Sets who decides on registered workers: returns null to accept one (it then belongs to the caller) or a
    /// reason to refuse it, which the worker receives as FAILED_PRECONDITION. Without a decider, workers are refused.
    /// </summary>
    internal void SetAdmission(Func<WorkerConnection, string?> admit) => _admit = admit;

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        if (!HttpMethods.IsPost(request.Method))
        {
            response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return;
        }
        if (!GrpcHeaders.IsGrpcContentType(request.ContentType))
        {
            response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
            return;
        }
        if (request.Path != ConnectPath)
        {
            Reject(context, GrpcStatusCode.Unimplemented, $"Method '{request.Path}' is not implemented; this hub serves {ConnectPath}.");
            return;
        }
        string encoding = request.Headers[GrpcHeaders.Encoding].ToString();
        if (encoding.Length > 0 && encoding is not ("identity" or "gzip" or "deflate"))
        {
            response.Headers[GrpcHeaders.AcceptEncoding] = GrpcFraming.AcceptEncoding;
            Reject(context, GrpcStatusCode.Unimplemented, $"Message encoding '{encoding}' is not supported; supported: {GrpcFraming.AcceptEncoding}.");
            return;
        }
        context.Features.Get<IHttpMinRequestBodyDataRateFeature>()?.MinDataRate = null;

        // The Register comes first, before any response headers, so that a refusal is a proper trailers-only response.
        Register registration;
        Spaces.Space obsSpace, actSpace;
        using (var registerDeadline = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token))
        {
            registerDeadline.CancelAfter(_options.RegisterTimeout);
            try
            {
                registration = await ReadRegisterAsync(request, encoding, registerDeadline.Token).ConfigureAwait(false);
                string? refusal = CheckRegistration(registration, out obsSpace, out actSpace);
                if (refusal is not null)
                {
                    var refusedWith = refusal.StartsWith("token", StringComparison.Ordinal) ? GrpcStatusCode.Unauthenticated : GrpcStatusCode.FailedPrecondition;
                    Refuse(context, registration, refusedWith, refusal[(refusal.IndexOf(':') + 2)..]);
                    return;
                }
            }
            catch (GrpcException e)
            {
                Reject(context, e.Status, e.Detail);
                return;
            }
            catch (InvalidDataException e)
            {
                Reject(context, GrpcStatusCode.Internal, $"Malformed Register message: {e.Message}");
                return;
            }
            catch (InvalidProtocolBufferException e)
            {
                Reject(context, GrpcStatusCode.Internal, $"Malformed Register message: {e.Message}");
                return;
            }
            catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
            {
                Reject(context, _stopping.IsCancellationRequested ? GrpcStatusCode.Unavailable : GrpcStatusCode.DeadlineExceeded,
                    _stopping.IsCancellationRequested ? "The hub is shutting down." : $"No Register message within {_options.RegisterTimeout.TotalSeconds:0.#} s; a worker's first message must be Register.");
                return;
            }
            catch (OperationCanceledException)
            {
                return; // the client went away before registering
            }
        }

        var worker = new WorkerConnection(context, registration, obsSpace, actSpace, _options.MaxMessageSize, (_options.HeartbeatInterval, _options.HeartbeatTimeout));
        string? reason = _admit is { } admit ? admit(worker) : "this hub has no vector env accepting workers";
        if (reason is not null)
        {
            Refuse(context, registration, GrpcStatusCode.FailedPrecondition, reason);
            return;
        }

        if (_options.DelayBeforeHeadersForTests > TimeSpan.Zero) await Task.Delay(_options.DelayBeforeHeadersForTests).ConfigureAwait(false);
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = GrpcHeaders.ContentType;
        response.Headers[GrpcHeaders.AcceptEncoding] = GrpcFraming.AcceptEncoding;
        await response.StartAsync().ConfigureAwait(false);
        await response.BodyWriter.FlushAsync().ConfigureAwait(false); // put the headers on the wire now, so the worker's call completes
        worker.MarkStarted(); // the owner may send commands from now on (not earlier: they would race the headers above)
        ClusterLog.WorkerRegistered(_logger, worker.Id, worker.RemoteEndPoint, registration.Host, registration.Pid, registration.Runtime, worker.NumEnvs, registration.EnvId);
        var (status, message) = await worker.RunAsync(_stopping.Token).ConfigureAwait(false);
        if (context.RequestAborted.IsCancellationRequested) return; // reset: nobody to send trailers to
        response.AppendTrailer(GrpcHeaders.Status, ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (!string.IsNullOrEmpty(message)) response.AppendTrailer(GrpcHeaders.Message, GrpcHeaders.EncodeMessage(message));
    }

    private async Task<Register> ReadRegisterAsync(HttpRequest request, string encoding, CancellationToken ct)
    {
        var reader = request.BodyReader;
        while (true)
        {
            var read = await reader.ReadAsync(ct).ConfigureAwait(false);
            var buffer = read.Buffer;
            if (GrpcFraming.TryReadMessage(ref buffer, _options.MaxMessageSize, out var payload, out bool compressed))
            {
                var bytes = compressed ? GrpcFraming.Decompress(payload, encoding, _options.MaxMessageSize) : System.Buffers.BuffersExtensions.ToArray(payload);
                reader.AdvanceTo(buffer.Start);
                var message = WorkerMessage.Parser.ParseFrom(bytes);
                if (message.BodyCase != WorkerMessage.BodyOneofCase.Register)
                    throw new GrpcException(GrpcStatusCode.FailedPrecondition, $"The first message on a stream must be Register; got {message.BodyCase}.");
                return message.Register;
            }
            reader.AdvanceTo(buffer.Start, buffer.End);
            if (read.IsCompleted)
                throw new GrpcException(GrpcStatusCode.Internal, buffer.IsEmpty ? "The stream ended before a Register message." : "The stream ended inside the Register message.");
        }
    }

    // Returns null when acceptable, else "token: ..." or "other: ..." (the prefix picks the status).
    private string? CheckRegistration(Register r, out Spaces.Space obs, out Spaces.Space act)
    {
        obs = act = null!;
        if (r.ProtocolVersion != ProtocolVersion)
            return $"other: Protocol version {r.ProtocolVersion} is not supported; this hub speaks version {ProtocolVersion}. Use a worker built from the same ClusterEnv release.";
        if (_token is not null)
        {
            var given = Encoding.UTF8.GetBytes(r.Token ?? "");
            if (!CryptographicOperations.FixedTimeEquals(given, _token))
                return r.Token is null or "" ? "token: The hub requires a token and the worker sent none; pass --token-file (or set CLUSTERENV_TOKEN)."
                                             : "token: The worker's token does not match the hub's; pass the hub's token with --token-file (or CLUSTERENV_TOKEN).";
        }
        if (string.IsNullOrWhiteSpace(r.WorkerId)) return "other: Register has an empty worker_id; give every worker a unique id.";
        if (r.NumEnvs == 0) return $"other: Worker '{r.WorkerId}' registered with num_envs 0; host at least one env.";
        try
        {
            obs = SpaceCodec.FromProto(r.ObservationSpace);
            act = SpaceCodec.FromProto(r.ActionSpace);
        }
        catch (InvalidDataException e)
        {
            return $"other: Worker '{r.WorkerId}' sent an invalid space: {e.Message}";
        }
        return null;
    }

    /// <summary>The latest workers that registered and were refused (at most 32, oldest first), so a learner waiting for workers can say why they did not come.</summary>
    public IReadOnlyList<WorkerRefusal> Refusals
    {
        get { lock (_refusals) return [.. _refusals]; }
    }

    private readonly Queue<WorkerRefusal> _refusals = new();

    private void Refuse(HttpContext context, Register registration, GrpcStatusCode status, string reason)
    {
        string peer = $"{context.Connection.RemoteIpAddress}:{context.Connection.RemotePort}";
        ClusterLog.WorkerRefused(_logger, registration.WorkerId, peer, status, reason);
        lock (_refusals)
        {
            _refusals.Enqueue(new WorkerRefusal(registration.WorkerId, peer, status, reason));
            if (_refusals.Count > 32) _refusals.Dequeue();
        }
        TrailersOnly(context, status, reason);
    }

    // A stream closed before it registered (unknown method, bad encoding, malformed or missing Register).
    private void Reject(HttpContext context, GrpcStatusCode status, string message)
    {
        ClusterLog.StreamRejected(_logger, $"{context.Connection.RemoteIpAddress}:{context.Connection.RemotePort}", status, message);
        TrailersOnly(context, status, message);
    }

    private static void TrailersOnly(HttpContext context, GrpcStatusCode status, string message)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = GrpcHeaders.ContentType;
        response.Headers[GrpcHeaders.Status] = ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture);
        response.Headers[GrpcHeaders.Message] = GrpcHeaders.EncodeMessage(message);
    }

    // An IHostLifetime that registers no signal handlers: the process keeps the default behaviour of SIGINT/SIGTERM.
    private sealed class PassiveLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>Stops accepting workers and ends every open stream (status UNAVAILABLE).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        _stopping.Cancel();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try { await _app.StopAsync(timeout.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}

/// <summary>A worker the hub refused: the id it registered with, its address, the status it was sent and why.</summary>
public sealed record WorkerRefusal(string WorkerId, string Peer, GrpcStatusCode Status, string Reason)
{
    /// <inheritdoc />
    public override string ToString() => $"'{WorkerId}' from {Peer}: {Status}, {Reason}";
}
