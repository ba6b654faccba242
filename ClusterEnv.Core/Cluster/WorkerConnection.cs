using System.Buffers;
using System.IO.Pipelines;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;

namespace ClusterEnv.Cluster;

/// <summary>Receives what one worker sends after registering. Called on the connection's read loop, one message at a time.</summary>
internal interface IWorkerReplySink
{
    /// <summary>A reply: its seq, the <c>WorkerMessage</c> body field number and the body bytes (valid only during the call).</summary>
    void OnReply(WorkerConnection worker, ulong seq, int bodyField, ReadOnlySpan<byte> body);

    /// <summary>The stream ended or failed; no more replies will come.</summary>
    void OnLost(WorkerConnection worker, string reason);
}

/// <summary>
/// One registered worker's duplex stream on the hub: commands go out on the response body, replies come in on the
/// request body. Sends never wait on the network: a message is written and flushed at once when the stream is not
/// back-pressured, else copied into a backlog that the pending flush's continuation writes in order (a worker busy in
/// a long rollout does not read its stream, so its HTTP/2 window fills). Reads run on the request's own loop and are
/// handed to the <see cref="IWorkerReplySink"/>.
/// </summary>
public sealed class WorkerConnection
{
    private readonly HttpContext _context;
    private readonly PipeWriter _output;
    private readonly PipeReader _input;
    private readonly int _maxMessageSize;
    private readonly string? _encoding;
    private readonly (TimeSpan Interval, TimeSpan Timeout) _heartbeat;
    // Guards the output pipe, _backlog, _flushing and _completed. Never held across a wait on the network.
    private readonly Lock _writeLock = new();
    private readonly Queue<(byte[] Buffer, int Length)> _backlog = new();
    private readonly CancellationTokenSource _abort = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private byte[] _scratch = new byte[4096];
    private IWorkerReplySink? _sink;
    private bool _completed;
    private bool _flushing;
    private string? _closeReason;
    private GrpcStatusCode _closeStatus = GrpcStatusCode.OK;

    internal WorkerConnection(HttpContext context, Register registration, Spaces.Space observationSpace, Spaces.Space actionSpace, int maxMessageSize,
        (TimeSpan Interval, TimeSpan Timeout) heartbeat = default)
    {
        _heartbeat = heartbeat;
        _context = context;
        _output = context.Response.BodyWriter;
        _input = context.Request.BodyReader;
        _maxMessageSize = maxMessageSize;
        _encoding = context.Request.Headers[GrpcHeaders.Encoding].ToString() is { Length: > 0 } e ? e : null;
        Registration = registration;
        ObservationSpace = observationSpace;
        ActionSpace = actionSpace;
        RemoteEndPoint = $"{context.Connection.RemoteIpAddress}:{context.Connection.RemotePort}";
    }

    /// <summary>The worker's id from its Register message.</summary>
    public string Id => Registration.WorkerId;

    /// <summary>The Register message the worker sent.</summary>
    public Register Registration { get; }

    /// <summary>Number of sub-envs the worker hosts.</summary>
    public int NumEnvs => (int)Registration.NumEnvs;

    /// <summary>The worker's single observation space.</summary>
    public Spaces.Space ObservationSpace { get; }

    /// <summary>The worker's single action space.</summary>
    public Spaces.Space ActionSpace { get; }

    /// <summary>The largest command the worker accepts (from its Register; gRPC's 4 MiB default when it did not say).</summary>
    public int MaxCommandSize => Registration.MaxMessageSize > 0 ? (int)Math.Min(Registration.MaxMessageSize, int.MaxValue) : 4 * 1024 * 1024;

    /// <summary>The worker's address as the hub sees it.</summary>
    public string RemoteEndPoint { get; }

    /// <summary>True once the stream has ended (the worker left, failed or was closed).</summary>
    public bool IsCompleted
    {
        get { lock (_writeLock) return _completed; }
    }

    /// <summary>True while a flush waits for the worker to read (further sends go to the backlog).</summary>
    internal bool IsBackPressured
    {
        get { lock (_writeLock) return _flushing; }
    }

    /// <summary>Called (on a thread-pool thread) when a back-pressured stream has written its whole backlog.</summary>
    internal Action? Drained { get; set; }

    /// <summary>Completes once the hub has put the response headers on the wire; only then may commands be sent.</summary>
    internal Task Started => _started.Task;

    internal void MarkStarted() => _started.TrySetResult();

    /// <inheritdoc />
    public override string ToString() => $"worker '{Id}' ({Registration.Host}, pid {Registration.Pid}, {RemoteEndPoint})";

    internal void Attach(IWorkerReplySink sink) => _sink = sink;

    /// <summary>Writes one generated message as a gRPC frame without waiting. False when the stream has already ended.</summary>
    internal bool Send(IMessage message) => Send(message.CalculateSize(), message, static (span, m) => { m.WriteTo(span); return span.Length; });

    /// <summary>Writes one hand-encoded message of <paramref name="size"/> bytes without waiting. False when the stream has ended.</summary>
    internal bool Send<TState>(int size, TState state, SpanWriter<TState> write) where TState : allows ref struct
    {
        lock (_writeLock)
        {
            if (_completed) return false;
            if (_flushing)
            {
                var buffer = ArrayPool<byte>.Shared.Rent(GrpcFraming.HeaderSize + size);
                Encode(buffer, size, state, write);
                _backlog.Enqueue((buffer, GrpcFraming.HeaderSize + size));
                return true;
            }
            Span<byte> span;
            try { span = _output.GetSpan(GrpcFraming.HeaderSize + size); }
            catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException) { return false; } // the response already completed
            Encode(span, size, state, write);
            _output.Advance(GrpcFraming.HeaderSize + size);
            return FlushLocked();
        }
    }

    internal delegate int SpanWriter<TState>(Span<byte> destination, TState state) where TState : allows ref struct;

    private static void Encode<TState>(Span<byte> destination, int size, TState state, SpanWriter<TState> write) where TState : allows ref struct
    {
        GrpcFraming.WriteHeader(destination, size);
        int written = write(destination.Slice(GrpcFraming.HeaderSize, size), state);
        if (written != size) throw new InvalidOperationException($"Encoder wrote {written} bytes but announced {size}.");
    }

    // Starts a flush; when the worker is not reading it does not wait but hands the rest to a continuation. Under _writeLock.
    private bool FlushLocked()
    {
        ValueTask<FlushResult> flush;
        try
        {
            flush = _output.FlushAsync();
            if (flush.IsCompletedSuccessfully) return !flush.Result.IsCanceled && !flush.Result.IsCompleted;
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or OperationCanceledException or ObjectDisposedException)
        {
            return false;
        }
        _flushing = true;
        _ = DrainAsync(flush);
        return true;
    }

    // Waits for the pending flush, then writes the backlog and flushes again, until nothing is left. Runs off the caller's thread.
    private async Task DrainAsync(ValueTask<FlushResult> flush)
    {
        while (true)
        {
            bool ended;
            try
            {
                var result = await flush.ConfigureAwait(false);
                ended = result.IsCanceled || result.IsCompleted;
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or OperationCanceledException or ObjectDisposedException)
            {
                ended = true; // the connection is failing; the read loop reports the worker lost
            }
            lock (_writeLock)
            {
                if (ended || _completed)
                {
                    ReleaseBacklog();
                    _flushing = false;
                    return;
                }
                if (_backlog.Count == 0)
                {
                    _flushing = false;
                    break;
                }
                try
                {
                    while (_backlog.TryDequeue(out var item))
                    {
                        item.Buffer.AsSpan(0, item.Length).CopyTo(_output.GetSpan(item.Length));
                        _output.Advance(item.Length);
                        ArrayPool<byte>.Shared.Return(item.Buffer);
                    }
                    flush = _output.FlushAsync();
                }
                catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
                {
                    ReleaseBacklog();
                    _flushing = false;
                    return;
                }
            }
        }
        Drained?.Invoke();
    }

    private void ReleaseBacklog()
    {
        while (_backlog.TryDequeue(out var item)) ArrayPool<byte>.Shared.Return(item.Buffer);
    }

    /// <summary>Ends the stream from the hub's side with a status; the worker sees it in the trailers.</summary>
    internal void Close(GrpcStatusCode status, string? reason)
    {
        lock (_writeLock)
        {
            if (_completed) return;
            _closeStatus = status;
            _closeReason = reason;
        }
        _abort.Cancel();
    }

    /// <summary>Reads replies until the stream ends; returns the status to put in the trailers.</summary>
    internal async Task<(GrpcStatusCode Status, string? Message)> RunAsync(CancellationToken hubStopping)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(hubStopping, _abort.Token, _context.RequestAborted);
        string lostReason = "the worker closed its stream";
        GrpcStatusCode status = GrpcStatusCode.OK;
        string? message = null;
        try
        {
            while (true)
            {
                var read = await _input.ReadAsync(linked.Token).ConfigureAwait(false);
                var buffer = read.Buffer;
                try
                {
                    while (GrpcFraming.TryReadMessage(ref buffer, _maxMessageSize, out var payload, out bool compressed))
                        Dispatch(payload, compressed);
                }
                finally
                {
                    _input.AdvanceTo(buffer.Start, buffer.End);
                }
                if (read.IsCompleted)
                {
                    if (!buffer.IsEmpty)
                    {
                        (status, message) = (GrpcStatusCode.Internal, $"The stream ended inside a message ({buffer.Length} bytes of a frame).");
                        lostReason = message;
                    }
                    break;
                }
            }
        }
        catch (GrpcException e)
        {
            (status, message, lostReason) = (e.Status, e.Detail, $"protocol error: {e.Detail}");
        }
        catch (InvalidDataException e)
        {
            (status, message, lostReason) = (GrpcStatusCode.Internal, $"Malformed message: {e.Message}", $"protocol error: malformed message ({e.Message})");
        }
        catch (OperationCanceledException)
        {
            if (_context.RequestAborted.IsCancellationRequested) lostReason = "its connection was dropped (the worker process exited or crashed, or the network failed)";
            else if (hubStopping.IsCancellationRequested) (status, message, lostReason) = (GrpcStatusCode.Unavailable, "The hub is shutting down.", "the hub is shutting down");
            else
            {
                status = _closeStatus;
                message = _closeReason;
                lostReason = _closeReason ?? "the hub closed the stream";
            }
        }
        catch (Exception e) when (e is IOException or Microsoft.AspNetCore.Connections.ConnectionResetException or BadHttpRequestException)
        {
            lostReason = WhyTheConnectionFailed(e);
        }
        catch (Exception e)
        {
            // The learner failed on this worker's reply (a bug, or out of memory): end the stream and say so, rather
            // than leave the learner waiting for a reply that was in fact delivered.
            (status, message) = (GrpcStatusCode.Internal, "The learner could not process the worker's reply.");
            lostReason = $"the learner failed while processing its reply ({e.GetType().Name}: {e.Message})";
        }
        lock (_writeLock)
        {
            _completed = true;
            ReleaseBacklog();
        }
        _sink?.OnLost(this, lostReason);
        return (status, message);
    }

    // Tells a crash from a stop: a process that dies has its socket reset by the OS at once; a stopped or hung process,
    // or a vanished host, leaves the socket open and is found by the HTTP/2 PINGs going unanswered.
    private string WhyTheConnectionFailed(Exception e)
    {
        bool aborted = false;
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x.Message.Contains("keep alive", StringComparison.OrdinalIgnoreCase))
                return $"it stopped answering heartbeats (HTTP/2 PING after {_heartbeat.Interval.TotalSeconds:0.#} s of silence, unanswered for " +
                       $"{_heartbeat.Timeout.TotalSeconds:0.#} s): the worker process is stopped or frozen, or its host or the network is down";
            aborted |= x is Microsoft.AspNetCore.Connections.ConnectionResetException or System.Net.Sockets.SocketException
                or Microsoft.AspNetCore.Connections.ConnectionAbortedException;
        }
        // Reset, or closed without HTTP/2's goodbye (GOAWAY): what the OS does to the sockets of a process that ends.
        return aborted ? "its connection was closed without a goodbye: the worker process exited or crashed (or its host dropped the connection)"
                       : $"its connection failed ({e.Message})";
    }

    private void Dispatch(ReadOnlySequence<byte> payload, bool compressed)
    {
        ReadOnlySpan<byte> span;
        if (compressed) span = GrpcFraming.Decompress(payload, _encoding, _maxMessageSize);
        else if (payload.IsSingleSegment) span = payload.FirstSpan;
        else
        {
            if (_scratch.Length < payload.Length) _scratch = new byte[Math.Max((int)payload.Length, _scratch.Length * 2)];
            payload.CopyTo(_scratch);
            span = _scratch.AsSpan(0, (int)payload.Length);
        }
        StepCodec.ReadEnvelope(span, out ulong seq, out int field, out var body);
        if (field == WorkerMessage.RegisterFieldNumber)
            throw new GrpcException(GrpcStatusCode.FailedPrecondition, "The worker sent a second Register on the same stream; register once per stream.");
        if (_sink is null)
            throw new GrpcException(GrpcStatusCode.FailedPrecondition, $"The worker sent a reply (field {field}, seq {seq}) before any command.");
        _sink.OnReply(this, seq, field, body);
    }
}
