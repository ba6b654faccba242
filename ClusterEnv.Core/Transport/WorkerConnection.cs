using ClusterEnv.Cluster;
using System.Buffers;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Transport.SharedMemory;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace ClusterEnv.Transport;

/// <summary>Receives what one worker sends after registering. Called on the connection's read loop, one message at a time.</summary>
internal interface IWorkerReplySink
{
    /// <summary>A reply: its seq, the <c>WorkerMessage</c> body field number and the body bytes (valid only during the call).</summary>
    void OnReply(WorkerConnection worker, ulong seq, int bodyField, ReadOnlySpan<byte> body);

    /// <summary>The stream ended or failed; no more replies will come.</summary>
    void OnLost(WorkerConnection worker, string reason);
}

/// <summary>
/// One registered worker's duplex gRPC call on the hub: commands go out as response messages, replies come in as
/// request messages. Sends never wait on the network: a message is written at once when no write is pending, else
/// copied into a backlog that the pending write's continuation sends in order (a worker busy in a long rollout does not
/// read its stream, so its HTTP/2 window fills). Reads run on the call's own loop and are handed to the
/// <see cref="IWorkerReplySink"/>.
/// </summary>
public sealed class WorkerConnection
{
    private readonly IServerStreamWriter<WireMessage> _output;
    private readonly ServerCallContext _call;
    private readonly int _maxMessageSize;
    private readonly (TimeSpan Interval, TimeSpan Timeout) _heartbeat;
    // Guards _outgoing, _backlog, _flushing and _completed. Never held across a wait on the network.
    private readonly Lock _writeLock = new();
    private readonly WireMessage _outgoing = new([], 0); // reused for each write (gRPC serializes it before WriteAsync returns)
    private readonly Queue<WireMessage> _backlog = new();
    private readonly CancellationTokenSource _abort = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IWorkerReplySink? _sink;
    private bool _completed;
    private bool _flushing;
    private string? _closeReason;
    private StatusCode _closeStatus = StatusCode.OK;
    // Shared memory (a worker on this host): offered at registration, used for everything after the Welcome. Sends
    // that find the ring full (or are longer than one record) queue in _shmBacklog, written in order by a drain task.
    private ShmChannel? _shm;
    private bool _shmActive;
    private bool _shmDraining;
    private readonly Queue<byte[]> _shmBacklog = new();
    private Thread? _shmReader;

    internal WorkerConnection(IServerStreamWriter<WireMessage> output, ServerCallContext call, Register registration,
        Spaces.Space observationSpace, Spaces.Space actionSpace, string remoteEndPoint, int maxMessageSize, (TimeSpan Interval, TimeSpan Timeout) heartbeat = default)
    {
        _maxMessageSize = maxMessageSize;
        _output = output;
        _call = call;
        _heartbeat = heartbeat;
        Registration = registration;
        ObservationSpace = observationSpace;
        ActionSpace = actionSpace;
        RemoteEndPoint = remoteEndPoint;
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

    /// <summary>Why the stream ended, as the hub saw it (null while it is open).</summary>
    public string? LostReason { get; private set; }

    /// <summary>Completes when the stream has ended (the worker left, failed or was closed).</summary>
    internal Task Ended => _ended.Task;

    /// <summary>True once the stream has ended (the worker left, failed or was closed).</summary>
    public bool IsCompleted
    {
        get { lock (_writeLock) return _completed; }
    }

    /// <summary>True while a flush (gRPC) or a drain (shared memory) waits for the worker to read (further sends go to the backlog).</summary>
    internal bool IsBackPressured
    {
        get { lock (_writeLock) return _flushing || _shmDraining; }
    }

    /// <summary>Called (on a thread-pool thread) when a back-pressured stream has written its whole backlog.</summary>
    internal Action? Drained { get; set; }

    /// <summary>Completes once the hub has put the response headers on the wire; only then may commands be sent.</summary>
    internal Task Started => _started.Task;

    internal void MarkStarted() => _started.TrySetResult();

    /// <summary>The stream ended before the hub could answer the registration: it will never start.</summary>
    internal void MarkFailed(Exception reason)
    {
        lock (_writeLock) _completed = true;
        LostReason = $"its stream ended before the hub answered its registration ({reason.GetType().Name}: {reason.Message})";
        _started.TrySetException(reason);
        _ended.TrySetResult();
    }

    /// <inheritdoc />
    public override string ToString() => $"worker '{Id}' ({Registration.Host}, pid {Registration.Pid}, {RemoteEndPoint})";

    internal void Attach(IWorkerReplySink sink) => _sink = sink;

    /// <summary>The shared-memory channel this worker was offered (null: gRPC only).</summary>
    internal string? SharedMemoryPath => _shm?.Path;

    /// <summary>At registration: offers the worker <paramref name="channel"/>; it is used from the Welcome on, and removed when the stream ends.</summary>
    internal void OfferSharedMemory(ShmChannel channel) => _shm = channel;

    /// <summary>The channel's file is removed (a registration that failed before its stream ran).</summary>
    internal void DropSharedMemory()
    {
        _shm?.Dispose();
        _shm = null;
    }

    /// <summary>
    /// Sends the Welcome over gRPC, naming the shared-memory channel when one was offered; every later message then
    /// goes through the channel, and the worker's replies are read from it. False when the stream has ended.
    /// </summary>
    internal bool SendWelcome(HubMessage welcome)
    {
        lock (_writeLock)
        {
            if (_shm is not null) welcome.Welcome.ShmChannel = _shm.Path;
            if (!SendLocked(welcome.CalculateSize(), welcome, static (span, m) => { m.WriteTo(span); return span.Length; })) return false;
            if (_shm is null) return true;
            _shmActive = true;
            _shmReader = new Thread(ReadSharedMemory) { IsBackground = true, Name = $"shm reader {Id}" };
            _shmReader.Start();
            return true;
        }
    }

    /// <summary>Writes one generated message without waiting. False when the stream has already ended.</summary>
    internal bool Send(IMessage message) => Send(message.CalculateSize(), message, static (span, m) => { m.WriteTo(span); return span.Length; });

    /// <summary>Writes one hand-encoded message of <paramref name="size"/> bytes without waiting. False when the stream has ended.</summary>
    internal bool Send<TState>(int size, TState state, SpanWriter<TState> write) where TState : allows ref struct
    {
        lock (_writeLock) return SendLocked(size, state, write);
    }

    private bool SendLocked<TState>(int size, TState state, SpanWriter<TState> write) where TState : allows ref struct
    {
        {
            if (_completed) return false;
            if (_shmActive) return SendSharedLocked(size, state, write);
            if (_flushing)
            {
                var copy = new byte[size];
                Encode(copy, state, write);
                _backlog.Enqueue(new WireMessage(copy, size));
                return true;
            }
            Encode(_outgoing.Reset(size), state, write);
            return WriteLocked(_outgoing);
        }
    }

    internal delegate int SpanWriter<TState>(Span<byte> destination, TState state) where TState : allows ref struct;

    // Under _writeLock: straight into the ring when nothing queues ahead and it fits now; else queued for the drain task.
    private bool SendSharedLocked<TState>(int size, TState state, SpanWriter<TState> write) where TState : allows ref struct
    {
        var encoded = _outgoing.Reset(size);
        Encode(encoded, state, write);
        try
        {
            if (!_shmDraining && size <= _shm!.MaxChunk && _shm.Send(encoded, timeoutMs: 0)) return true;
        }
        catch (ObjectDisposedException)
        {
            return false; // the stream is ending
        }
        _shmBacklog.Enqueue(encoded.ToArray());
        if (!_shmDraining)
        {
            _shmDraining = true;
            _ = Task.Run(DrainSharedMemory);
        }
        return true;
    }

    // Writes the queued messages in order, waiting for room as long as it takes (a worker in a long rollout reads late);
    // then, as the gRPC drain does, tells the slot (a policy push waits for this rather than queueing behind).
    private void DrainSharedMemory()
    {
        while (true)
        {
            byte[]? next;
            lock (_writeLock)
            {
                if (_completed)
                {
                    _shmBacklog.Clear();
                    _shmDraining = false;
                    return;
                }
                if (!_shmBacklog.TryDequeue(out next))
                {
                    _shmDraining = false;
                    break;
                }
            }
            try
            {
                _shm!.Send(next);
            }
            catch (ObjectDisposedException)
            {
                lock (_writeLock)
                {
                    _shmBacklog.Clear();
                    _shmDraining = false;
                }
                return;
            }
        }
        Drained?.Invoke();
    }

    // Who reads the channel's replies: the reader thread, or the learner's thread while it waits for a gather
    // (TakeRing/PollRing/ReleaseRing), which saves the hand-off from one thread to the other on every step. Exactly one
    // side reads at a time (the ring has one consumer). The learner keeps the ring between gathers (Idle) and the
    // reader thread, parked meanwhile, takes it back once the learner has not come back for RingIdleTakeBack.
    private const int RingReader = 0, RingLearner = 1, RingLearnerIdle = 2;
    private int _ringRole;
    private volatile bool _ringWanted;
    private long _ringIdleSince;
    private readonly ManualResetEventSlim _ringReturned = new(false);
    private static readonly long RingIdleTakeBack = System.Diagnostics.Stopwatch.Frequency / 200; // 5 ms
    private byte[] _inlineBuffer = new byte[64 * 1024];

    /// <summary>
    /// The learner's thread asks to read this worker's replies itself while it waits for a gather. True when it now
    /// holds the ring (then <see cref="PollRing"/> it and <see cref="ReleaseRing"/> it); false when the worker is not
    /// on shared memory, or the reader thread holds the ring (with <paramref name="request"/>, it hands it over after
    /// its next message, for next time).
    /// </summary>
    internal bool TakeRing(bool request = true)
    {
        if (!_shmActive) return false;
        if (Interlocked.CompareExchange(ref _ringRole, RingLearner, RingLearnerIdle) == RingLearnerIdle) return true;
        if (request && Volatile.Read(ref _ringRole) == RingReader) _ringWanted = true;
        return false;
    }

    /// <summary>Messages the learner's thread read from the ring itself (the rest went through the reader thread).</summary>
    internal long RepliesReadByTheLearner;

    /// <summary>Dispatches the replies waiting in the ring now (on the learner's thread, which holds it).</summary>
    internal void PollRing()
    {
        try
        {
            int n;
            while ((n = _shm!.Receive(ref _inlineBuffer, timeoutMs: 0)) >= 0)
            {
                Dispatch(_inlineBuffer.AsSpan(0, n));
                RepliesReadByTheLearner++;
            }
        }
        catch (ObjectDisposedException)
        {
            // the channel closed: the stream has ended or is ending
        }
        catch (Exception e)
        {
            FailFromSharedMemory(e);
        }
    }

    /// <summary>
    /// The learner's thread is done reading: it keeps the ring for its next gather (<paramref name="keep"/>; the reader
    /// thread takes it back if that does not come soon) or hands it straight back (it is going to block).
    /// </summary>
    internal void ReleaseRing(bool keep)
    {
        if (keep)
        {
            Volatile.Write(ref _ringIdleSince, System.Diagnostics.Stopwatch.GetTimestamp());
            Volatile.Write(ref _ringRole, RingLearnerIdle);
        }
        else
        {
            Volatile.Write(ref _ringRole, RingReader);
            _ringReturned.Set();
        }
    }

    /// <summary>
    /// The learner's thread will not come back for the ring (the worker's rollouts stream, or first-ready steps are
    /// read on the reader thread): a ring it kept is handed straight back, not after <c>RingIdleTakeBack</c>.
    /// </summary>
    internal void ReturnRing()
    {
        if (Interlocked.CompareExchange(ref _ringRole, RingReader, RingLearnerIdle) == RingLearnerIdle) _ringReturned.Set();
    }

    // The worker's replies through the channel, on a thread of their own, handed to the sink like the gRPC loop's,
    // except while the learner's thread holds the ring. A reply the learner cannot take ends the stream with the same
    // status and reason as on gRPC.
    private void ReadSharedMemory()
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                if (_ringWanted)
                {
                    _ringWanted = false;
                    ReleaseRing(keep: true); // to the learner, until it stops coming back for it
                    if (!ParkWhileTheLearnerReads()) return;
                    continue;
                }
                int n = _shm!.Receive(ref buffer);
                Dispatch(buffer.AsSpan(0, n));
            }
        }
        catch (ObjectDisposedException)
        {
            // the channel closed: the stream has ended or is ending
        }
        catch (Exception e)
        {
            FailFromSharedMemory(e);
        }
    }

    // Waits while the learner's thread holds the ring; false once the channel has closed.
    private bool ParkWhileTheLearnerReads()
    {
        while (true)
        {
            _ringReturned.Wait(5);
            _ringReturned.Reset();
            if (_shm!.IsClosed) return false;
            int role = Volatile.Read(ref _ringRole);
            if (role == RingReader) return true;
            if (role == RingLearnerIdle && System.Diagnostics.Stopwatch.GetTimestamp() - Volatile.Read(ref _ringIdleSince) > RingIdleTakeBack &&
                Interlocked.CompareExchange(ref _ringRole, RingReader, RingLearnerIdle) == RingLearnerIdle) return true;
        }
    }

    private void FailFromSharedMemory(Exception e)
    {
        var (status, message, lostReason) = Classify(e);
        lock (_writeLock)
        {
            if (_completed) return;
            _closeStatus = status;
            _closeReason = message;
            _shmLostReason = lostReason;
        }
        _abort.Cancel();
    }

    private string? _shmLostReason;

    private static void Encode<TState>(Span<byte> destination, TState state, SpanWriter<TState> write) where TState : allows ref struct
    {
        int written = write(destination, state);
        if (written != destination.Length) throw new InvalidOperationException($"Encoder wrote {written} bytes but announced {destination.Length}.");
    }

    // Starts a write; when the worker is not reading it does not wait but hands the rest to a continuation. Under _writeLock.
    private bool WriteLocked(WireMessage message)
    {
        Task write;
        try
        {
            write = _output.WriteAsync(message);
            if (write.IsCompletedSuccessfully) return true;
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or OperationCanceledException or ObjectDisposedException)
        {
            return false; // the call is ending
        }
        _flushing = true;
        _ = DrainAsync(write);
        return true;
    }

    // Waits for the pending write, then writes the backlog, one message at a time, until nothing is left. Runs off the caller's thread.
    private async Task DrainAsync(Task write)
    {
        while (true)
        {
            bool failed;
            try
            {
                await write.ConfigureAwait(false);
                failed = false;
            }
            catch (Exception)
            {
                failed = true; // whatever ended the write ends the call too: its read loop reports the worker lost
            }
            lock (_writeLock)
            {
                if (failed || _completed)
                {
                    _backlog.Clear();
                    _flushing = false;
                    return;
                }
                if (!_backlog.TryDequeue(out var next))
                {
                    _flushing = false;
                    break;
                }
                try
                {
                    write = _output.WriteAsync(next);
                }
                catch (Exception)
                {
                    _backlog.Clear();
                    _flushing = false;
                    return;
                }
            }
        }
        Drained?.Invoke();
    }

    /// <summary>Ends the stream from the hub's side with a status; the worker sees it in the trailers.</summary>
    internal void Close(StatusCode status, string? reason)
    {
        lock (_writeLock)
        {
            if (_completed) return;
            _closeStatus = status;
            _closeReason = reason;
        }
        _abort.Cancel();
    }

    /// <summary>Reads replies until the stream ends; returns the status to end the call with.</summary>
    internal async Task<(StatusCode Status, string? Message)> RunAsync(CancellationToken hubStopping)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(hubStopping, _abort.Token);
        string lostReason = "the worker closed its stream";
        StatusCode status = StatusCode.OK;
        string? message = null;
        try
        {
            await ReadRepliesAsync(linked.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is BadWorkerDataException or InvalidDataException || (e is RpcException && !_call.CancellationToken.IsCancellationRequested))
        {
            (status, message, lostReason) = Classify(e);
        }
        catch (OperationCanceledException)
        {
            if (_call.CancellationToken.IsCancellationRequested) lostReason = "its connection was dropped (the worker process exited or crashed, or the network failed)";
            else if (hubStopping.IsCancellationRequested) (status, message, lostReason) = (StatusCode.Unavailable, "The hub is shutting down.", "the hub is shutting down");
            else
            {
                status = _closeStatus;
                message = _closeReason;
                lostReason = _shmLostReason ?? _closeReason ?? "the hub closed the stream";
            }
        }
        catch (Exception e) when (e is IOException or Microsoft.AspNetCore.Connections.ConnectionResetException or BadHttpRequestException or RpcException)
        {
            lostReason = WhyTheConnectionFailed(e);
        }
        catch (Exception e)
        {
            (status, message, lostReason) = Classify(e);
        }
        lock (_writeLock)
        {
            _completed = true;
            _backlog.Clear();
        }
        if (_shm is { } shm)
        {
            shm.Close(); // the reader thread and a drain task end; then the file goes
            _shmReader?.Join(TimeSpan.FromSeconds(5));
            shm.Dispose();
        }
        LostReason = lostReason;
        _ended.TrySetResult();
        _sink?.OnLost(this, lostReason);
        return (status, message);
    }

    // What a failed reply means: the status the stream ends with, its message, and why the worker is reported lost.
    private (StatusCode Status, string? Message, string LostReason) Classify(Exception e) => e switch
    {
        BadWorkerDataException => (StatusCode.InvalidArgument, $"Bad data: {e.Message}", $"it sent bad data ({e.Message}) and was dropped"),
        InvalidDataException => (StatusCode.Internal, $"Malformed message: {e.Message}", $"protocol error: malformed message ({e.Message})"),
        // A protocol violation, or gRPC refused what the worker sent (too large, bad compression, a broken frame).
        RpcException r => (r.StatusCode, ClusterHub.Explain(r.Status, _maxMessageSize), $"protocol error: {ClusterHub.Explain(r.Status, _maxMessageSize)}"),
        // The learner failed on this worker's reply (a bug, or out of memory): end the stream and say so, rather than
        // leave the learner waiting for a reply that was in fact delivered.
        _ => (StatusCode.Internal, "The learner could not process the worker's reply.", $"the learner failed while processing its reply ({e.GetType().Name}: {e.Message})"),
    };

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

    // Reads the request body's length-prefixed messages straight from Kestrel's pipe. grpc-dotnet's stream reader
    // allocates an async box per message (about 170 B, the hub's whole per-step cost); this one loop lives as long as
    // the stream, so its state machine is allocated once and a message that sits in one segment is never copied.
    // gRPC's own rules are kept: the size limit (RESOURCE_EXHAUSTED) and the compressed flag with the call's encoding.
    private async Task ReadRepliesAsync(CancellationToken cancellationToken)
    {
        var body = _call.GetHttpContext().Request.BodyReader;
        while (true)
        {
            var result = await body.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            try
            {
                while (TryReadMessage(ref buffer, out var message, out bool compressed))
                {
                    if (compressed) DispatchCompressed(message);
                    else if (message.IsSingleSegment) Dispatch(message.FirstSpan);
                    else DispatchCopy(message);
                }
            }
            catch
            {
                body.AdvanceTo(buffer.Start, buffer.End);
                throw;
            }
            if (result.IsCompleted)
            {
                if (!buffer.IsEmpty) throw new RpcException(new Status(StatusCode.Internal, $"The stream ended inside a message ({buffer.Length} bytes of it arrived)."));
                body.AdvanceTo(buffer.End);
                return;
            }
            body.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private bool TryReadMessage(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> message, out bool compressed)
    {
        message = default;
        compressed = false;
        if (buffer.Length < WireMessage.PrefixSize) return false;
        Span<byte> prefix = stackalloc byte[WireMessage.PrefixSize];
        buffer.Slice(0, WireMessage.PrefixSize).CopyTo(prefix);
        uint length = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(prefix[1..]);
        if (prefix[0] > 1) throw new RpcException(new Status(StatusCode.Internal, $"Malformed gRPC message prefix: compressed flag {prefix[0]} (must be 0 or 1)."));
        if (length > (uint)_maxMessageSize)
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"Received message exceeds the maximum configured message size ({length:N0} bytes)."));
        if (buffer.Length < WireMessage.PrefixSize + length) return false;
        compressed = prefix[0] == 1;
        message = buffer.Slice(WireMessage.PrefixSize, length);
        buffer = buffer.Slice(message.End);
        return true;
    }

    private byte[] _scratch = [];

    private void DispatchCopy(ReadOnlySequence<byte> message)
    {
        if (_scratch.Length < message.Length) _scratch = new byte[Math.Max((int)message.Length, _scratch.Length * 2)];
        message.CopyTo(_scratch);
        Dispatch(_scratch.AsSpan(0, (int)message.Length));
    }

    // A peer that compresses (only when configured to): the call's grpc-encoding says how. Rare, so it may allocate.
    private void DispatchCompressed(ReadOnlySequence<byte> message)
    {
        string encoding = _call.GetHttpContext().Request.Headers["grpc-encoding"].ToString() is { Length: > 0 } e ? e : "identity";
        using var input = new MemoryStream(message.ToArray());
        using Stream decompress = encoding switch
        {
            "gzip" => new System.IO.Compression.GZipStream(input, System.IO.Compression.CompressionMode.Decompress),
            "deflate" => new System.IO.Compression.ZLibStream(input, System.IO.Compression.CompressionMode.Decompress),
            _ => throw new RpcException(new Status(StatusCode.Unimplemented, $"The worker sent a message compressed with '{encoding}'; the hub accepts gzip and deflate.")),
        };
        using var output = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = decompress.Read(chunk)) > 0)
        {
            output.Write(chunk, 0, n);
            if (output.Length > _maxMessageSize)
                throw new RpcException(new Status(StatusCode.ResourceExhausted, "Received message exceeds the maximum configured message size after decompression."));
        }
        Dispatch(output.GetBuffer().AsSpan(0, (int)output.Length));
    }

    private void Dispatch(ReadOnlySpan<byte> message)
    {
        StepCodec.ReadEnvelope(message, out ulong seq, out int field, out var body);
        if (field == WorkerMessage.RegisterFieldNumber)
            throw new RpcException(new Status(StatusCode.FailedPrecondition, "The worker sent a second Register on the same stream; register once per stream."));
        if (_sink is null)
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"The worker sent a reply (field {field}, seq {seq}) before any command."));
        _sink.OnReply(this, seq, field, body);
    }
}
