using ClusterEnv.Cluster;
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
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace ClusterEnv.Transport;

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
    private readonly Grpc.HealthCheck.HealthServiceImpl _health;
    private Func<WorkerConnection, string?>? _admit;
    private bool _disposed;

    private ClusterHub(WebApplication app, HubOptions options, Grpc.HealthCheck.HealthServiceImpl health, ILogger logger)
    {
        _health = health;
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
    /// to <paramref name="loggerFactory"/>, category <c>ClusterEnv.Transport.ClusterHub</c>.
    /// </summary>
    public static Task<ClusterHub> StartAsync(HubOptions options, CancellationToken cancellationToken = default, ILoggerFactory? loggerFactory = null) =>
        StartAsync(options, admit: null, loggerFactory, cancellationToken);

    /// <summary>
    /// Starts a hub that admits workers through <paramref name="admit"/> (<see cref="SetAdmission"/>) from its first
    /// moment: a worker that registers as soon as the port is open is decided on, not refused for want of a decider.
    /// </summary>
    internal static async Task<ClusterHub> StartAsync(HubOptions options, Func<WorkerConnection, string?>? admit, ILoggerFactory? loggerFactory,
        CancellationToken cancellationToken = default, Action<WorkerRefusal>? onRefused = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        options.ThrowIfOpenDoor();
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
        // Grpc.AspNetCore serves the one method; its messages stay encoded bytes (WireMessage) for the step codec.
        builder.Services.AddGrpc(g =>
        {
            g.MaxReceiveMessageSize = options.MaxMessageSize;
            g.MaxSendMessageSize = null;
            g.IgnoreUnknownServices = false;
        });
        // Stock tools can inspect a running hub: grpc.health.v1.Health (SERVING while it accepts workers) and server
        // reflection (grpcurl, grpc_cli, Postman list the services and their messages).
        var health = new Grpc.HealthCheck.HealthServiceImpl();
        builder.Services.AddSingleton(health);
        builder.Services.AddSingleton(new Grpc.Reflection.ReflectionServiceImpl(
            ClusterEnv.Transport.Protos.ClusterenvReflection.Descriptor.Services.Single(d => d.FullName == WorkerHubMethods.ServiceName),
            Grpc.Health.V1.Health.Descriptor, Grpc.Reflection.V1Alpha.ServerReflection.Descriptor));
        ClusterHub? hub = null; // set below, before the server starts and the service is first asked for
        builder.Services.AddSingleton(_ => new HubService(hub!));
        builder.Services.AddSingleton<Grpc.AspNetCore.Server.Model.IServiceMethodProvider<HubService>, HubService.MethodProvider>();
        var app = builder.Build();
        hub = new ClusterHub(app, options, health, (loggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger<ClusterHub>());
        hub.OnRefused = onRefused;
        hub._admit = admit;
        hub.SetServing(admit is not null);
        app.MapGrpcService<HubService>();
        app.MapGrpcService<Grpc.HealthCheck.HealthServiceImpl>();
        app.MapGrpcService<Grpc.Reflection.ReflectionServiceImpl>();
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
        if (!options.IsLoopback && string.IsNullOrEmpty(options.Token)) ClusterLog.OpenDoor(hub._logger, options.Host, hub.Url);
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
    internal void SetAdmission(Func<WorkerConnection, string?> admit)
    {
        _admit = admit;
        SetServing(true);
    }

    // The health service's answer, for the whole server ("") and for the WorkerHub service.
    private void SetServing(bool serving)
    {
        var status = serving ? Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving : Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.NotServing;
        _health.SetStatus("", status);
        _health.SetStatus(WorkerHubMethods.ServiceName, status);
    }

    // The service class Grpc.AspNetCore activates: one method, bound to WireMessage by hand (no generated base class).
    internal sealed class HubService(ClusterHub hub)
    {
        public sealed class MethodProvider : Grpc.AspNetCore.Server.Model.IServiceMethodProvider<HubService>
        {
            public void OnServiceMethodDiscovery(Grpc.AspNetCore.Server.Model.ServiceMethodProviderContext<HubService> context) =>
                context.AddDuplexStreamingMethod(WorkerHubMethods.Connect, [], (service, requests, responses, call) => service.ConnectAsync(requests, responses, call));
        }

        private Task ConnectAsync(IAsyncStreamReader<WireMessage> requests, IServerStreamWriter<WireMessage> responses, ServerCallContext call) =>
            hub.ConnectAsync(requests, responses, call);
    }

    // One worker's stream. The Register comes first, before any response headers, so that a refusal is a
    // trailers-only response (the RpcExceptions below); an accepted worker then belongs to the admission's owner.
    private async Task ConnectAsync(IAsyncStreamReader<WireMessage> requests, IServerStreamWriter<WireMessage> responses, ServerCallContext call)
    {
        var context = call.GetHttpContext();
        string peer = $"{context.Connection.RemoteIpAddress}:{context.Connection.RemotePort}";
        Register registration;
        Spaces.Space obsSpace, actSpace;
        using (var registerDeadline = CancellationTokenSource.CreateLinkedTokenSource(call.CancellationToken, _stopping.Token))
        {
            registerDeadline.CancelAfter(_options.RegisterTimeout);
            try
            {
                registration = await ReadRegisterAsync(requests, registerDeadline.Token).ConfigureAwait(false);
            }
            catch (RpcException e)
            {
                throw Rejected(peer, e.StatusCode, Explain(e.Status, _options.MaxMessageSize));
            }
            catch (InvalidProtocolBufferException e)
            {
                throw Rejected(peer, StatusCode.Internal, $"Malformed Register message: {e.Message}");
            }
            catch (InvalidDataException e)
            {
                throw Rejected(peer, StatusCode.Internal, $"Malformed gRPC frame: {e.Message}");
            }
            catch (OperationCanceledException) when (!call.CancellationToken.IsCancellationRequested)
            {
                throw _stopping.IsCancellationRequested
                    ? Rejected(peer, StatusCode.Unavailable, "The hub is shutting down.")
                    : Rejected(peer, StatusCode.DeadlineExceeded, $"No Register message within {_options.RegisterTimeout.TotalSeconds:0.#} s; a worker's first message must be Register.");
            }
        }
        // The token travels as call metadata; the Register field is still read for older peers.
        string token = call.RequestHeaders.GetValue(WorkerHubMethods.TokenHeader) is { Length: > 0 } t ? t : registration.Token;
        if (CheckRegistration(registration, token, out obsSpace, out actSpace) is { } refusal)
            throw Refused(peer, registration, refusal.StartsWith("token", StringComparison.Ordinal) ? StatusCode.Unauthenticated : StatusCode.FailedPrecondition,
                refusal[(refusal.IndexOf(':') + 2)..]);

        var worker = new WorkerConnection(responses, call, registration, obsSpace, actSpace, peer, _options.MaxMessageSize, (_options.HeartbeatInterval, _options.HeartbeatTimeout));
        string? reason = _admit is { } admit ? admit(worker) : "this hub has no vector env accepting workers";
        if (reason is not null) throw Refused(peer, registration, StatusCode.FailedPrecondition, reason);
        OfferSharedMemory(worker, registration);

        try
        {
            if (_options.DelayBeforeHeadersForTests > TimeSpan.Zero) await Task.Delay(_options.DelayBeforeHeadersForTests).ConfigureAwait(false);
            await call.WriteResponseHeadersAsync([]).ConfigureAwait(false); // on the wire now, so the worker's call completes
        }
        catch (Exception e)
        {
            worker.DropSharedMemory();
            worker.MarkFailed(e); // whoever waits for this worker to start hears it now, not at its timeout
            throw;
        }
        worker.MarkStarted(); // the owner may send commands from now on (not earlier: they would race the headers above)
        ClusterLog.WorkerRegistered(_logger, worker.Id, peer, registration.Host, registration.Pid, registration.Runtime, worker.NumEnvs, registration.EnvId);
        var (status, message) = await worker.RunAsync(_stopping.Token).ConfigureAwait(false);
        if (status != StatusCode.OK) throw new RpcException(new Status((StatusCode)status, message ?? ""));
    }

    private static readonly string? HostKey = SharedMemory.ShmChannel.HostKey();
    private static int _channels;
    private static int _staleSwept;
    private int _saidUnavailable;

    // A worker on this host, of this user, that can use shared memory (it sent the same host key) is offered a channel,
    // when HubOptions.SharedMemory asks for it. A channel that cannot be made leaves the worker on gRPC, said in the log.
    private void OfferSharedMemory(WorkerConnection worker, Register registration)
    {
        if (!_options.SharedMemory) return;
        if (HostKey is null)
        {
            if (Interlocked.Exchange(ref _saidUnavailable, 1) == 0)
                ClusterLog.SharedMemoryUnavailable(_logger, worker.Id, SharedMemory.ShmChannel.Unavailable() ?? "this host's boot id cannot be read");
            return;
        }
        if (registration.ShmHost != HostKey) return; // another host, or a worker without shared memory (Python, Node): gRPC
        try
        {
            if (Interlocked.Exchange(ref _staleSwept, 1) == 0) SharedMemory.ShmChannel.RemoveStale("clusterenv"); // files of learners that were killed
            worker.OfferSharedMemory(SharedMemory.ShmChannel.Create($"clusterenv-{Environment.ProcessId}-{Interlocked.Increment(ref _channels)}-{Guid.NewGuid():N}"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            ClusterLog.SharedMemoryUnavailable(_logger, worker.Id, e.Message);
        }
    }

    /// <summary>gRPC's own status detail, with the setting to change where there is one.</summary>
    internal static string Explain(Status status, int maxMessageSize) => status.StatusCode == StatusCode.ResourceExhausted
        ? $"{status.Detail} The hub accepts messages of at most {maxMessageSize:N0} bytes (HubOptions.MaxMessageSize)."
        : status.Detail;

    private static async Task<Register> ReadRegisterAsync(IAsyncStreamReader<WireMessage> requests, CancellationToken ct)
    {
        if (!await requests.MoveNext(ct).ConfigureAwait(false))
            throw new RpcException(new Status(StatusCode.Internal, "The stream ended before a Register message."));
        var first = requests.Current;
        try
        {
            var message = WorkerMessage.Parser.ParseFrom(first.Span);
            if (message.BodyCase != WorkerMessage.BodyOneofCase.Register)
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"The first message on a stream must be Register; got {message.BodyCase}."));
            return message.Register;
        }
        finally
        {
            first.Release();
        }
    }

    // Returns null when acceptable, else "token: ..." or "other: ..." (the prefix picks the status).
    private string? CheckRegistration(Register r, string token, out Spaces.Space obs, out Spaces.Space act)
    {
        obs = act = null!;
        if (r.ProtocolVersion != ProtocolVersion)
            return $"other: Protocol version {r.ProtocolVersion} is not supported; this hub speaks version {ProtocolVersion}. Use a worker built from the same ClusterEnv release.";
        if (_token is not null)
        {
            var given = Encoding.UTF8.GetBytes(token ?? "");
            if (!CryptographicOperations.FixedTimeEquals(given, _token))
                return token is null or "" ? "token: The hub requires a token and the worker sent none; pass --token-file (or set CLUSTERENV_TOKEN)."
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

    private RpcException Refused(string peer, Register registration, StatusCode status, string reason)
    {
        ClusterLog.WorkerRefused(_logger, registration.WorkerId, peer, (StatusCode)status, reason);
        var refusal = new WorkerRefusal(registration.WorkerId, peer, (StatusCode)status, reason);
        lock (_refusals)
        {
            _refusals.Enqueue(refusal);
            if (_refusals.Count > 32) _refusals.Dequeue();
        }
        try { OnRefused?.Invoke(refusal); }
        catch (Exception) { } // an observer's failure must not change what the worker is told
        return new RpcException(new Status(status, reason));
    }

    /// <summary>Called (on the refused stream's thread) for every worker the hub refuses, with the status it is sent and why.</summary>
    public Action<WorkerRefusal>? OnRefused { get; set; }

    // A stream closed before it registered (malformed, missing or late Register).
    private RpcException Rejected(string peer, StatusCode status, string message)
    {
        ClusterLog.StreamRejected(_logger, peer, (StatusCode)status, message);
        return new RpcException(new Status(status, message));
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
        SetServing(false);
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
public sealed record WorkerRefusal(string WorkerId, string Peer, StatusCode Status, string Reason)
{
    /// <inheritdoc />
    public override string ToString() => $"'{WorkerId}' from {Peer}: {Status}, {Reason}";
}
