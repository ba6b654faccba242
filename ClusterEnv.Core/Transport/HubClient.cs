using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Transport.SharedMemory;

namespace ClusterEnv.Transport;

/// <summary>
/// The worker's end of the wire (grpc-dotnet's client): dials the hub with backoff and registers, reads commands, and
/// writes replies in order. Replies of one command are encoded into one buffer and flushed after it; a worker's other
/// thread (a rollout stream) writes whole messages through the same one-at-a-time gate; progress goes out without
/// waiting. A reply the hub would refuse as too large is replaced by an error that says why, so the worker stays connected.
/// </summary>
internal sealed class HubClient : IDisposable
{
    private readonly Uri _hub;
    private readonly string? _token;
    private readonly TimeSpan _connectTimeout;
    private readonly GrpcChannel _channel;
    private AsyncDuplexStreamingCall<WireMessage, WireMessage>? _call;
    // Replies encoded since the last flush, back to back in _out; _replyEnds[i] is where reply i ends.
    private byte[] _out = new byte[64 * 1024];
    private int _outLength;
    private readonly List<int> _replyEnds = [];
    private readonly WireMessage _sending = new([], 0);
    private readonly SemaphoreSlim _writeGate = new(1, 1); // one write at a time: the command loop's and a stream's
    private readonly WireMessage _progress = new([], 0);
    private Task _progressWrite = Task.CompletedTask;
    private CancellationToken _cancel = CancellationToken.None;
    // After a Welcome that names a shared-memory channel: commands are read from it and replies written to it; the
    // gRPC stream only tells that the hub lives (its end closes the channel).
    private ShmChannel? _shm;
    private Task? _watch;
    private byte[] _shmIn = new byte[64 * 1024];
    private readonly WireMessage _shmCommand = new([], 0);
    private volatile bool _hubEndedOk;
    private volatile Exception? _hubFailure;

    public HubClient(Uri hub, string? token, int maxReceiveMessageSize, bool insecure, TimeSpan connectTimeout)
    {
        _hub = hub;
        _token = token;
        _connectTimeout = connectTimeout;
        _channel = CreateChannel(hub, maxReceiveMessageSize, insecure);
    }

    /// <summary>The hub's limit on one reply (0: unknown), from its Welcome.</summary>
    public long MaxReplySize { get; set; }

    // One HTTP/2 connection with keepalive PINGs (a learner that vanishes is noticed in seconds), no request-size
    // limit from us, and the worker's receive limit on commands.
    private static GrpcChannel CreateChannel(Uri hub, int maxReceiveMessageSize, bool insecure)
    {
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            KeepAlivePingDelay = TimeSpan.FromSeconds(1),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(3),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            InitialHttp2StreamWindowSize = 2 * 1024 * 1024,
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
        if (insecure) handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        return GrpcChannel.ForAddress(hub, new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = maxReceiveMessageSize,
            MaxSendMessageSize = null,
            ThrowOperationCanceledOnCancellation = false,
            // The client's own reconnect backoff starts at 1 s by default; a worker started before its hub should
            // register within a fraction of a second of the hub coming up.
            InitialReconnectBackoff = TimeSpan.FromMilliseconds(100),
            MaxReconnectBackoff = TimeSpan.FromSeconds(1),
            DisposeHttpClient = true,
        });
    }

    /// <summary>Keeps dialling (with backoff) until the hub is up, then registers; a refusal comes back as the call's status (<see cref="RpcException"/>).</summary>
    public async Task ConnectAsync(Register register, CancellationToken ct)
    {
        _cancel = ct;
        var bytes = new WorkerMessage { Register = register }.ToByteArray();
        var headers = new Metadata();
        if (!string.IsNullOrEmpty(_token)) headers.Add(WorkerHubMethods.TokenHeader, _token);
        var sw = Stopwatch.StartNew();
        var backoff = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            var call = _channel.CreateCallInvoker().AsyncDuplexStreamingCall(WorkerHubMethods.Connect, null, new CallOptions(headers, cancellationToken: ct));
            try
            {
                await call.RequestStream.WriteAsync(new WireMessage(bytes, bytes.Length), ct).ConfigureAwait(false);
                await call.ResponseHeadersAsync.ConfigureAwait(false);
                _call = call;
                return;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && IsConnectionFailure(e))
            {
                call.Dispose();
                if (sw.Elapsed >= _connectTimeout)
                    throw new IOException($"Could not reach the hub at {_hub} within {_connectTimeout.TotalSeconds:0.#} s " +
                                          $"({e.Status.DebugException?.Message ?? e.Status.Detail}). Is the learner running, and is the URL right?", e);
                await Task.Delay(backoff, ct).ConfigureAwait(false);
                backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 1000));
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested)
            {
                call.Dispose();
                throw new OperationCanceledException(ct);
            }
            catch (RpcException)
            {
                call.Dispose();
                throw;
            }
        }
    }

    /// <summary>True once the worker reads and writes through a shared-memory channel.</summary>
    public bool UsesSharedMemory => _shm is not null;

    /// <summary>
    /// Switches to the shared-memory channel the Welcome named: every later command is read from it and every reply
    /// written to it. The gRPC stream is watched: its end (the hub's status) closes the channel.
    /// </summary>
    public void UseSharedMemory(string path)
    {
        _shm = ShmChannel.Open(path);
        _watch = WatchHubAsync();
    }

    private async Task WatchHubAsync()
    {
        try
        {
            if (await _call!.ResponseStream.MoveNext(_cancel).ConfigureAwait(false))
                _hubFailure = new InvalidDataException("The hub sent a command over gRPC after moving this worker to shared memory.");
            else _hubEndedOk = true;
        }
        catch (Exception e)
        {
            _hubFailure = e;
        }
        _shm!.Close();
    }

    /// <summary>The next command, or null when the hub ended the stream with OK. Its bytes are valid until <see cref="WireMessage.Release"/>.</summary>
    public ValueTask<WireMessage?> ReadAsync(CancellationToken ct) =>
        _shm is not null ? new ValueTask<WireMessage?>(ReadShared(ct)) : new ValueTask<WireMessage?>(ReadStreamAsync(ct));

    private async Task<WireMessage?> ReadStreamAsync(CancellationToken ct)
    {
        var commands = _call!.ResponseStream;
        try
        {
            return await commands.MoveNext(ct).ConfigureAwait(false) ? commands.Current : null;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested)
        {
            throw new OperationCanceledException(ct); // our own cancellation (Ctrl-C, the parent is gone)
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Cancelled && IsConnectionFailure(e))
        {
            throw new IOException($"Lost the hub at {_hub}: {e.Status.DebugException?.Message ?? e.Status.Detail}", e);
        }
    }

    // Waits on the channel in short slices so a cancellation is noticed; the channel closes when the gRPC stream ends.
    private WireMessage? ReadShared(CancellationToken ct)
    {
        while (true)
        {
            int n;
            try
            {
                n = _shm!.Receive(ref _shmIn, timeoutMs: 200);
            }
            catch (ObjectDisposedException)
            {
                // The hub closes the channel as it ends the stream: how it ended (OK, a status, a broken connection)
                // is the stream's to say, and may arrive a moment after the channel's close.
                _watch?.Wait(TimeSpan.FromSeconds(5), CancellationToken.None);
                if (_hubEndedOk) return null;
                if (_hubFailure is RpcException r && r.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested) throw new OperationCanceledException(ct);
                if (_hubFailure is RpcException hubStatus && !IsConnectionFailure(hubStatus)) throw hubStatus; // the hub's status: refused, dropped, ...
                throw new IOException($"Lost the hub at {_hub}: {_hubFailure?.Message ?? "the shared-memory channel closed"}", _hubFailure);
            }
            if (n >= 0)
            {
                _shmCommand.Set(_shmIn, 0, n);
                return _shmCommand;
            }
            ct.ThrowIfCancellationRequested();
        }
    }

    // A stream that ended because the connection did (reset, refused, timed out), rather than with a status the hub sent.
    private static bool IsConnectionFailure(RpcException e) =>
        e.InnerException is HttpRequestException or IOException or System.Net.Sockets.SocketException || e.Status.DebugException is HttpRequestException or IOException;

    /// <summary>Room for one hand-encoded reply of <paramref name="size"/> bytes, sent at the next <see cref="FlushAsync"/>.</summary>
    public Span<byte> Reserve(int size)
    {
        int need = _outLength + size;
        if (need > _out.Length) Array.Resize(ref _out, Math.Max(need, _out.Length * 2));
        var span = _out.AsSpan(_outLength, size);
        _outLength = need;
        _replyEnds.Add(need);
        return span;
    }

    /// <summary>Encodes a reply to command <paramref name="seq"/>, sent at the next <see cref="FlushAsync"/>.</summary>
    public void Reply(ulong seq, WorkerMessage message)
    {
        message.Seq = seq;
        message = Fitting(message);
        message.WriteTo(Reserve(message.CalculateSize()));
    }

    /// <summary>True when replies wait for <see cref="FlushAsync"/>.</summary>
    public bool HasReplies => _replyEnds.Count > 0;

    /// <summary>Sends the replies encoded since the last flush, in order, one gRPC message each.</summary>
    public async ValueTask FlushAsync(CancellationToken ct)
    {
        await _progressWrite.ConfigureAwait(false);
        await _writeGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            int start = 0;
            foreach (int end in _replyEnds)
            {
                if (_shm is not null) SendShared(_out.AsSpan(start, end - start));
                else
                {
                    _sending.Set(_out, start, end - start);
                    await _call!.RequestStream.WriteAsync(_sending, ct).ConfigureAwait(false);
                }
                start = end;
            }
        }
        finally
        {
            _writeGate.Release();
        }
        _replyEnds.Clear();
        _outLength = 0;
    }

    /// <summary>Encodes and writes one whole message from another thread (a rollout stream's), one write at a time with the command loop's.</summary>
    public void WriteNow(WorkerMessage message)
    {
        var bytes = Fitting(message).ToByteArray();
        _writeGate.Wait(_cancel);
        try
        {
            if (_shm is not null) SendShared(bytes);
            else _call!.RequestStream.WriteAsync(new WireMessage(bytes, bytes.Length), _cancel).GetAwaiter().GetResult();
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>
    /// Tells the learner a long command is making progress (its deadline counts from the last message). Sent at once,
    /// without waiting: the acting loop must not block on the network, and a progress message still on its way makes
    /// the next one redundant. Replies wait for it.
    /// </summary>
    public void SendProgress(ulong seq, int stepsDone)
    {
        if (!_progressWrite.IsCompleted) return;
        var message = new WorkerMessage { Seq = seq, Progress = new Progress { StepsDone = (uint)stepsDone } };
        message.WriteTo(_progress.Reset(message.CalculateSize()));
        if (_shm is not null)
        {
            // Never waits: skipped while another write holds the gate or the ring is full (the next one will do).
            if (!_writeGate.Wait(0)) return;
            try { _shm.Send(_progress.Span, timeoutMs: 0); }
            catch (ObjectDisposedException) { }
            finally { _writeGate.Release(); }
            return;
        }
        _progressWrite = _call!.RequestStream.WriteAsync(_progress, _cancel);
    }

    /// <summary>Ends the worker's side of the stream (after its goodbye).</summary>
    public Task CompleteAsync() => _call!.RequestStream.CompleteAsync();

    // A reply the hub would refuse as too large would make it end this stream: an error that says why instead.
    private WorkerMessage Fitting(WorkerMessage message)
    {
        int size = message.CalculateSize();
        if (MaxReplySize <= 0 || size + WireMessage.PrefixSize <= MaxReplySize || message.BodyCase == WorkerMessage.BodyOneofCase.Error) return message;
        return new WorkerMessage
        {
            Seq = message.Seq,
            Error = new WorkerError
            {
                EnvIndex = -1,
                Type = typeof(InvalidOperationException).FullName!,
                Message = $"The {message.BodyCase} reply is {size:N0} bytes, above the hub's limit of {MaxReplySize:N0} (HubOptions.MaxMessageSize); ask for less per call (shorter rollouts) or raise the limit.",
            },
        };
    }

    // A reply into the channel, waiting for room as long as the hub needs (it reads on a thread of its own).
    private void SendShared(ReadOnlySpan<byte> message)
    {
        try
        {
            _shm!.Send(message);
        }
        catch (ObjectDisposedException)
        {
            throw new IOException($"Lost the hub at {_hub}: {_hubFailure?.Message ?? "the shared-memory channel closed"}", _hubFailure);
        }
    }

    public void Dispose()
    {
        _shm?.Dispose();
        _call?.Dispose();
        _channel.Dispose();
    }
}
