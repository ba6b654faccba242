namespace ClusterEnv.Cluster;

/// <summary>Where and how the hub listens. Validated once by <see cref="Validate"/>.</summary>
public sealed record HubOptions
{
    /// <summary>Address to listen on: 127.0.0.1 (default, this machine only), 0.0.0.0 (all interfaces) or a literal IP.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (see <see cref="Transport.ClusterHub.Url"/>).</summary>
    public int Port { get; init; }

    /// <summary>Shared secret every worker must present in its Register; null or empty accepts any worker.</summary>
    public string? Token { get; init; }

    /// <summary>Largest message accepted from a worker, in bytes (gRPC's RESOURCE_EXHAUSTED beyond it).</summary>
    public int MaxMessageSize { get; init; } = 64 * 1024 * 1024;

    /// <summary>
    /// Offer workers on this host (same boot id, same user) a shared-memory channel (/dev/shm): after the Welcome,
    /// commands and replies travel through it instead of the gRPC stream, which stays open to tell that both sides
    /// live. On by default. Workers elsewhere, workers that do not ask for it (the Python and Node workers), and hosts
    /// without /dev/shm or futexes keep gRPC (the last said once in the log). False: gRPC for every worker.
    /// </summary>
    public bool SharedMemory { get; init; } = true;

    /// <summary>How long a new stream may take to send its Register.</summary>
    public TimeSpan RegisterTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// After this long without a frame from a worker the hub sends it an HTTP/2 PING. This finds workers that stop
    /// answering without closing their socket (a stopped or frozen process, a vanished host); a process that exits or
    /// crashes is found at once, because its socket is reset.
    /// </summary>
    /// <remarks>
    /// A silent worker is reported lost between <c>HeartbeatInterval + HeartbeatTimeout</c> and that plus 3 s, because
    /// Kestrel evaluates its PING timers on its once-a-second heartbeat: 4–7 s with the defaults (6.7 s measured).
    /// </remarks>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A connection whose PING is not answered within this time is closed and its worker reported lost (see <see cref="HeartbeatInterval"/>).</summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// A connection that has no open stream — it never registered, or its worker left — is closed after this long
    /// (also the limit for a TLS handshake and for request headers).
    /// </summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Most TCP connections the hub holds at once (each worker needs one); further ones are refused at once.</summary>
    public int MaxConnections { get; init; } = 1024;

    /// <summary>A PKCS#12 certificate file: when set the hub serves TLS (https) instead of cleartext HTTP/2.</summary>
    public string? CertificatePath { get; init; }

    /// <summary>Password of <see cref="CertificatePath"/>.</summary>
    public string? CertificatePassword { get; init; }

    /// <summary>Run socket completions inline on the I/O thread (lower step latency; leave on unless a custom sink blocks).</summary>
    public bool InlineCompletions { get; init; } = true;

    /// <summary>
    /// Accept workers without a token although the hub listens on an address other machines can reach (an open door:
    /// any process that reaches the port may join and feed the learner). Off by default; say so only on a network you trust.
    /// </summary>
    public bool AllowAnyWorker { get; init; }

    /// <summary>True when <see cref="Host"/> is reachable only from this machine.</summary>
    public bool IsLoopback => Host is "localhost" || (System.Net.IPAddress.TryParse(Host, out var ip) && System.Net.IPAddress.IsLoopback(ip));

    /// <summary>
    /// Throws naming the fix when the hub would listen beyond this machine with no token and no explicit
    /// <see cref="AllowAnyWorker"/>. Checked when the hub starts, once a launcher that starts its own workers has
    /// given it a generated token.
    /// </summary>
    public void ThrowIfOpenDoor()
    {
        if (IsLoopback || !string.IsNullOrEmpty(Token) || AllowAnyWorker) return;
        throw new ArgumentException($"The hub would listen on {Host}, reachable from other machines, with no token: any process that reaches the port could join and feed the learner. " +
                                    "Set HubOptions.Token (Train: --token-file FILE, the same file the workers read), or HubOptions.AllowAnyWorker (Train: --allow-any-worker) on a network you trust.");
    }

    /// <summary>Tests only: widens the window between admitting a worker and sending its response headers.</summary>
    internal TimeSpan DelayBeforeHeadersForTests { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Host)) throw new ArgumentException("HubOptions.Host is empty; use 127.0.0.1 or 0.0.0.0.");
        if (Port is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(Port), Port, "HubOptions.Port must be 0 (any free port) or 1-65535.");
        if (MaxMessageSize < 1024) throw new ArgumentOutOfRangeException(nameof(MaxMessageSize), MaxMessageSize, "HubOptions.MaxMessageSize must be at least 1024 bytes.");
        if (RegisterTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RegisterTimeout), RegisterTimeout, "RegisterTimeout must be positive.");
        if (HeartbeatInterval < TimeSpan.FromSeconds(1))
            throw new ArgumentOutOfRangeException(nameof(HeartbeatInterval), HeartbeatInterval, "HubOptions.HeartbeatInterval must be at least 1 s (Kestrel's PING timers tick once a second).");
        if (HeartbeatTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(HeartbeatTimeout), HeartbeatTimeout, "HubOptions.HeartbeatTimeout must be positive.");
        if (IdleTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(IdleTimeout), IdleTimeout, "HubOptions.IdleTimeout must be positive.");
        if (MaxConnections < 1) throw new ArgumentOutOfRangeException(nameof(MaxConnections), MaxConnections, "HubOptions.MaxConnections must be at least 1 (one per worker, plus room for reconnects).");
        if (CertificatePath is not null && !File.Exists(CertificatePath))
            throw new FileNotFoundException($"HubOptions.CertificatePath '{CertificatePath}' does not exist; give a PKCS#12 (.pfx) file or leave it null for cleartext.", CertificatePath);
    }
}
