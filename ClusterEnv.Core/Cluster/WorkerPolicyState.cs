namespace ClusterEnv.Cluster;

/// <summary>
/// What one worker acts with, and what it cost to get it there: the policy version last pushed and last acknowledged,
/// how many pushes and bytes, and the push latency (send to acknowledgement). Updated as acknowledgements arrive.
/// </summary>
public sealed class WorkerPolicyState
{
    private readonly Lock _lock = new();

    /// <summary>The version most recently sent to the worker (0: none yet).</summary>
    public ulong PushedVersion { get; private set; }

    /// <summary>The version the worker acknowledged acting with (0: none yet).</summary>
    public ulong ActiveVersion { get; private set; }

    /// <summary>Weight pushes sent.</summary>
    public int Pushes { get; private set; }

    /// <summary>Bytes of the pushes (gRPC messages, weights and spec).</summary>
    public long BytesPushed { get; private set; }

    /// <summary>Milliseconds from sending the last acknowledged push to its acknowledgement.</summary>
    public double LastPushLatencyMs { get; private set; }

    /// <summary>Why the worker refused the last push (it then keeps acting with its old version); null when it accepted.</summary>
    public string? LastError { get; private set; }

    /// <summary>Pushes the worker has not acknowledged yet.</summary>
    public int Unacknowledged { get; private set; }

    internal void Sent(ulong version, long bytes)
    {
        lock (_lock)
        {
            PushedVersion = version;
            Pushes++;
            BytesPushed += bytes;
            Unacknowledged++;
        }
    }

    internal void Acknowledged(ulong activeVersion, string? error, double latencyMs)
    {
        lock (_lock)
        {
            ActiveVersion = activeVersion;
            LastError = string.IsNullOrEmpty(error) ? null : error;
            LastPushLatencyMs = latencyMs;
            Unacknowledged--;
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"pushed v{PushedVersion}, active v{ActiveVersion}, {Pushes} pushes, {BytesPushed:N0} B" + (LastError is null ? "" : $", last error: {LastError}");
}
