namespace ClusterEnv.Cluster;

/// <summary>
/// What one worker acts with, and what it cost to get it there: the policy version last pushed and last acknowledged,
/// how many pushes and bytes, and the push latency (send to acknowledgement). Updated as acknowledgements arrive.
/// </summary>
public sealed class WorkerPolicyState
{
    private readonly Lock _lock = new();

    /// <summary>The version most recently pushed to the worker, sent or still queued (0: none yet).</summary>
    public ulong PushedVersion { get; private set; }

    /// <summary>The version the worker acknowledged acting with (0: none yet).</summary>
    public ulong ActiveVersion { get; private set; }

    /// <summary>Weight pushes written to the worker's stream.</summary>
    public int Pushes { get; private set; }

    /// <summary>Bytes of the pushes (gRPC messages, weights and spec).</summary>
    public long BytesPushed { get; private set; }

    /// <summary>Milliseconds from sending the last acknowledged push to its acknowledgement.</summary>
    public double LastPushLatencyMs { get; private set; }

    /// <summary>Why the worker refused the last push (it then keeps acting with its old version); null when it accepted.</summary>
    public string? LastError { get; private set; }

    /// <summary>Pushes replaced by a newer one before they were sent (the worker's stream was back-pressured).</summary>
    public int Coalesced { get; private set; }

    /// <summary>Pushes the worker has not acknowledged yet, counting one still queued.</summary>
    public int Unacknowledged
    {
        get { lock (_lock) return _inFlight + (_queued ? 1 : 0); }
    }

    private int _inFlight;
    private bool _queued;
    private int _worker;

    /// <summary>
    /// The acknowledgement state and the worker it belongs to (0 for the first, +1 per replacement, as the slot's
    /// generation), read together: a replacement that takes the slot between two separate reads cannot make its fresh
    /// state pass for the old worker's answer.
    /// </summary>
    internal (int Worker, int Unacknowledged, ulong ActiveVersion, string? LastError) Snapshot()
    {
        lock (_lock) return (_worker, _inFlight + (_queued ? 1 : 0), ActiveVersion, LastError);
    }

    /// <summary>Called after an acknowledgement or a new worker changed what is outstanding (on the read loop: keep it short).</summary>
    internal Action? Changed { get; set; }

    internal void Queued(ulong version, bool replaced)
    {
        lock (_lock)
        {
            PushedVersion = version;
            _queued = true;
            if (replaced) Coalesced++;
        }
    }

    internal void Sent(long bytes)
    {
        lock (_lock)
        {
            _queued = false;
            Pushes++;
            BytesPushed += bytes;
            _inFlight++;
        }
    }

    // A replacement took the slot: nothing in flight will be acknowledged, and it acts with nothing until its first push
    // (a push queued for it stays queued). The counters go on.
    internal void NewWorker()
    {
        lock (_lock)
        {
            _worker++;
            _inFlight = 0;
            ActiveVersion = 0;
            LastError = null;
            if (!_queued) PushedVersion = 0;
        }
        Changed?.Invoke();
    }

    internal void Acknowledged(ulong activeVersion, string? error, double latencyMs)
    {
        lock (_lock)
        {
            ActiveVersion = activeVersion;
            LastError = string.IsNullOrEmpty(error) ? null : error;
            LastPushLatencyMs = latencyMs;
            _inFlight--;
        }
        Changed?.Invoke();
    }

    /// <inheritdoc />
    public override string ToString() => $"pushed v{PushedVersion}, active v{ActiveVersion}, {Pushes} pushes ({Coalesced} coalesced), {BytesPushed:N0} B" + (LastError is null ? "" : $", last error: {LastError}");
}
