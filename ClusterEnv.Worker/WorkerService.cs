using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Policies;
using ClusterEnv.Rollouts;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;

namespace ClusterEnv.Worker;

/// <summary>
/// The worker's service loop: dial the hub, register, then answer each command with one reply, in order, until the
/// hub closes the stream. Commands are a closed set (<c>HubMessage.command</c>) with one handler each.
/// </summary>
public sealed class WorkerService : IAsyncDisposable
{
    private readonly WorkerOptions _options;
    private readonly ILogger _logger;
    private readonly List<IEnv> _envs;
    private readonly GrpcChannel _channel;
    private AsyncDuplexStreamingCall<WireMessage, WireMessage>? _call;
    private SyncVectorEnv? _vec;
    private int[] _intActions = [];
    private float[] _floatActions = [];
    // Replies encoded since the last flush, back to back in _out; _replyEnds[i] is where reply i ends.
    private byte[] _out = new byte[64 * 1024];
    private int _outLength;
    private readonly List<int> _replyEnds = [];
    private readonly WireMessage _sending = new([], 0);
    private bool _closeRequested;
    private CancellationToken _runToken;
    private long _progressInterval;   // Stopwatch ticks between Progress messages in a rollout (0: none); from Welcome
    private long _maxReplySize;       // the hub's limit on one reply (0: unknown); from Welcome

    /// <summary>Creates the envs (so their spaces can be registered) without connecting yet. Logs to <paramref name="logger"/> (see <c>WorkerLog</c>).</summary>
    public WorkerService(WorkerOptions options, ILogger? logger = null)
    {
        _options = options;
        _logger = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        foreach (var path in options.Assemblies) LoadEnvAssembly(path);
        var kwargs = options.EnvArgs.ToDictionary(kv => kv.Key, kv => ParseArg(kv.Value));
        _envs = [];
        try
        {
            for (int i = 0; i < options.NumEnvs; i++) _envs.Add(Gym.Make(options.EnvId, kwargs.Count == 0 ? null : kwargs));
        }
        catch
        {
            foreach (var e in _envs) e.Dispose();
            throw;
        }
        _channel = CreateChannel(options);
    }

    // One HTTP/2 connection with keepalive PINGs (a learner that vanishes is noticed in seconds), no request-size
    // limit from us, and the worker's receive limit on commands.
    private static GrpcChannel CreateChannel(WorkerOptions options)
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
        if (options.Insecure) handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        return GrpcChannel.ForAddress(options.Hub, new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = options.MaxMessageSize,
            MaxSendMessageSize = null,
            ThrowOperationCanceledOnCancellation = false,
            // The client's own reconnect backoff starts at 1 s by default; a worker started before its hub should
            // register within a fraction of a second of the hub coming up.
            InitialReconnectBackoff = TimeSpan.FromMilliseconds(100),
            MaxReconnectBackoff = TimeSpan.FromSeconds(1),
            DisposeHttpClient = true,
        });
    }

    /// <summary>Runs until the hub closes the stream (returns normally) or fails (throws). Cancelling ends the stream.</summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (_options.ParentPid is int parent) _ = WatchParentAsync(parent, cts, _logger, _options.WorkerId);
        _runToken = cts.Token;
        WorkerLog.Dialling(_logger, _options.WorkerId, _options.Hub, _options.NumEnvs, _options.EnvId);
        _call = await DialAsync(cts.Token).ConfigureAwait(false);
        WorkerLog.Registered(_logger, _options.WorkerId, _options.Hub);
        try
        {
            await ServeAsync(cts).ConfigureAwait(false);
        }
        finally
        {
            if (_stream is { } stream)
            {
                cts.Cancel(); // the stream's thread stops at its next step or write
                StopStreamWithoutReply();
            }
        }
    }

    private async Task ServeAsync(CancellationTokenSource cts)
    {
        var commands = _call!.ResponseStream;
        while (true)
        {
            bool more;
            try
            {
                more = await commands.MoveNext(cts.Token).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && cts.IsCancellationRequested)
            {
                throw new OperationCanceledException(cts.Token); // our own cancellation (Ctrl-C, the parent is gone)
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Cancelled && IsConnectionFailure(e))
            {
                throw new IOException($"Lost the hub at {_options.Hub}: {e.Status.DebugException?.Message ?? e.Status.Detail}", e);
            }
            catch (RpcException e)
            {
                throw new GrpcException((GrpcStatusCode)e.StatusCode, e.Status.Detail);
            }
            if (!more) return; // the hub ended the stream with OK (after Close, or when it shut down cleanly)
            var command = commands.Current;
            try
            {
                Handle(command.Span);
            }
            finally
            {
                command.Release();
            }
            if (_stopStreamSeq is ulong stop)
            {
                _stopStreamSeq = null;
                await OnStopStreamAsync(stop).ConfigureAwait(false);
            }
            if (_replyEnds.Count > 0) await FlushRepliesAsync(cts.Token).ConfigureAwait(false);
            if (_closeRequested) await _call.RequestStream.CompleteAsync().ConfigureAwait(false);
        }
    }

    private ulong? _stopStreamSeq;

    // A stream that ended because the connection did (reset, refused, timed out), rather than with a status the hub sent.
    private static bool IsConnectionFailure(RpcException e) =>
        e.InnerException is HttpRequestException or IOException or System.Net.Sockets.SocketException || e.Status.DebugException is HttpRequestException or IOException;

    // The registry's entry for the env this worker hosts, for a learner that does not know the id.
    private static EnvSpecInfo? SpecInfo(string envId)
    {
        if (!Gym.Ids.Contains(envId)) return null;
        var spec = Gym.Spec(envId);
        var info = new EnvSpecInfo { Id = spec.Id, MaxEpisodeSteps = (uint)(spec.MaxEpisodeSteps ?? 0), Nondeterministic = spec.Nondeterministic };
        if (spec.RewardThreshold is double t)
        {
            info.HasRewardThreshold = true;
            info.RewardThreshold = t;
        }
        info.RenderModes.AddRange(spec.RenderModes);
        return info;
    }

    // Keeps dialling (with backoff) until the hub is up, then registers; a refusal comes back as the call's status.
    private async Task<AsyncDuplexStreamingCall<WireMessage, WireMessage>> DialAsync(CancellationToken ct)
    {
        var register = new WorkerMessage
        {
            Register = new Register
            {
                ProtocolVersion = 1,
                WorkerId = _options.WorkerId,
                Token = _options.Token ?? "",
                EnvId = _options.EnvId,
                NumEnvs = (uint)_options.NumEnvs,
                ObservationSpace = SpaceCodec.ToProto(_envs[0].ObservationSpace),
                ActionSpace = SpaceCodec.ToProto(_envs[0].ActionSpace),
                Host = Environment.MachineName,
                Pid = Environment.ProcessId,
                Runtime = $".NET {Environment.Version}",
                MaxMessageSize = (uint)_options.MaxMessageSize,
                EnvSpec = SpecInfo(_options.EnvId),
            },
        };
        var bytes = register.ToByteArray();
        var headers = new Metadata();
        if (!string.IsNullOrEmpty(_options.Token)) headers.Add(WorkerHubMethods.TokenHeader, _options.Token);
        var sw = Stopwatch.StartNew();
        var backoff = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            var call = _channel.CreateCallInvoker().AsyncDuplexStreamingCall(WorkerHubMethods.Connect, null, new CallOptions(headers, cancellationToken: ct));
            try
            {
                await call.RequestStream.WriteAsync(new WireMessage(bytes, bytes.Length), ct).ConfigureAwait(false);
                await call.ResponseHeadersAsync.ConfigureAwait(false);
                return call;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && IsConnectionFailure(e))
            {
                call.Dispose();
                if (sw.Elapsed >= _options.ConnectTimeout)
                    throw new IOException($"Could not reach the hub at {_options.Hub} within {_options.ConnectTimeout.TotalSeconds:0.#} s " +
                                          $"({e.Status.DebugException?.Message ?? e.Status.Detail}). Is the learner running, and is the URL right?", e);
                await Task.Delay(backoff, ct).ConfigureAwait(false);
                backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 1000));
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested)
            {
                call.Dispose();
                throw new OperationCanceledException(ct);
            }
            catch (RpcException e)
            {
                call.Dispose();
                throw new GrpcException((GrpcStatusCode)e.StatusCode, e.Status.Detail);
            }
        }
    }

    // ---------------- one handler per command ----------------

    private void Handle(ReadOnlySpan<byte> message)
    {
        StepCodec.ReadEnvelope(message, out ulong seq, out int command, out var body);
        try
        {
            if (_stream is not null && command is HubMessage.StepFieldNumber or HubMessage.ResetFieldNumber or HubMessage.RolloutFieldNumber)
                throw new InvalidOperationException("Rollouts are streaming on this worker; stop the stream before stepping, resetting or collecting lockstep rollouts.");
            switch (command)
            {
                case HubMessage.StepFieldNumber: OnStep(seq, body); break;
                case HubMessage.ResetFieldNumber: OnReset(seq, ResetCommand.Parser.ParseFrom(body)); break;
                case HubMessage.WelcomeFieldNumber: OnWelcome(Welcome.Parser.ParseFrom(body)); break;
                case HubMessage.CloseFieldNumber: OnClose(seq); break;
                case HubMessage.PolicyFieldNumber: OnPolicy(seq, PolicyUpdate.Parser.ParseFrom(body)); break;
                case HubMessage.RolloutFieldNumber: OnRollout(seq, CollectRollout.Parser.ParseFrom(body)); break;
                case HubMessage.StreamFieldNumber: OnStream(seq, StreamRollouts.Parser.ParseFrom(body)); break;
                case HubMessage.CreditFieldNumber: OnCredit(Credit.Parser.ParseFrom(body)); break;
                case HubMessage.StopStreamFieldNumber: _stopStreamSeq = seq; break; // the loop awaits the stream's end
                case HubMessage.AttrFieldNumber: OnAttr(seq, AttrCommand.Parser.ParseFrom(body)); break;
                case HubMessage.GradientFieldNumber: OnGradient(seq, GradientCommand.Parser.ParseFrom(body)); break;
                default:
                    throw new InvalidDataException($"Unknown command field {command}; this worker handles welcome (2), reset (3), step (4), close (5), policy (6), rollout (7), stream (8), credit (9), stop_stream (10), attr (11) and gradient (12). Is the hub a newer protocol version?");
            }
        }
        catch (SubEnvException e)
        {
            Reply(seq, new WorkerMessage { Error = new WorkerError { EnvIndex = e.EnvIndex, Type = e.ErrorType, Message = e.ErrorMessage, StackTrace = e.ErrorStackTrace ?? "" } });
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Reply(seq, new WorkerMessage { Error = new WorkerError { EnvIndex = -1, Type = e.GetType().FullName ?? e.GetType().Name, Message = e.Message, StackTrace = e.StackTrace ?? "" } });
        }
    }

    private void OnWelcome(Welcome welcome)
    {
        if (_vec is not null) throw new InvalidDataException("The hub sent a second Welcome.");
        _progressInterval = welcome.ProgressIntervalMs * Stopwatch.Frequency / 1000;
        _maxReplySize = welcome.MaxMessageSize;
        var envs = welcome.RecordEpisodeStatistics ? _envs.Select(e => (IEnv)new RecordEpisodeStatistics(e)).ToList() : _envs;
        _vec = new SyncVectorEnv(envs, (AutoresetMode)(int)welcome.AutoresetMode);
        var layout = ActionLayout.For(_vec.SingleActionSpace);
        if (layout.IsContinuous) _floatActions = new float[_vec.NumEnvs * layout.Size];
        else _intActions = new int[_vec.NumEnvs * layout.Size];
    }

    private void OnReset(ulong seq, ResetCommand cmd)
    {
        var vec = Welcomed();
        var seeds = new int?[vec.NumEnvs];
        for (int i = 0; i < seeds.Length && i < cmd.HasSeed.Count; i++) seeds[i] = cmd.HasSeed[i] ? checked((int)cmd.Seeds[i]) : null;
        ResetOptions? options = null;
        if (cmd.Mask.Count > 0 || cmd.Numbers.Count > 0 || cmd.Strings.Count > 0)
        {
            options = new ResetOptions();
            foreach (var (k, v) in cmd.Numbers) options[k] = v;
            foreach (var (k, v) in cmd.Strings) options[k] = v;
            if (cmd.Mask.Count > 0) options.ResetMask = cmd.Mask.ToArray();
        }
        var r = vec.Reset(seeds, options);
        _lastReset = r.Observations;
        _lastStep = null;
        var result = new ResetResult { Observations = Tensor(Transport.Protos.DType.Float32, [vec.NumEnvs, vec.ObservationSize], MemoryMarshal.AsBytes(r.Observations.AsSpan())) };
        if (r.Info.Episode.Any) result.Episode = Stats(r.Info.Episode);
        result.Info.AddRange(InfoCodec.Encode(r.Info, InfoDropped));
        Reply(seq, new WorkerMessage { Reset = result });
    }

    private void InfoDropped(string reason) => WorkerLog.InfoDropped(_logger, _options.WorkerId, reason);

    private void OnStep(ulong seq, ReadOnlySpan<byte> body)
    {
        var vec = Welcomed();
        StepCodec.ReadStepCommand(body, _intActions, _floatActions);
        var r = _floatActions.Length > 0 ? vec.Step(_floatActions) : vec.Step(_intActions);
        _lastStep = r; // the actor continues from here if a rollout comes next (no copy on the step path)
        var info = r.Info.HasExtra ? InfoCodec.ToField(InfoCodec.Encode(r.Info, InfoDropped), Transport.Protos.StepResult.InfoFieldNumber) : [];
        int size = StepCodec.StepResultSize(seq, r, vec.ObservationSize, info);
        var dest = Reserve(size);
        int written = StepCodec.WriteStepResult(dest, seq, r, vec.ObservationSize, info);
        Debug.Assert(written == size);
    }

    private ActorCritic? _gradientPolicy;
    private Rng? _gradientRng;

    // NIGT: one policy gradient at the point sent, from episodes on this worker's envs (which then need a reset).
    private void OnGradient(ulong seq, GradientCommand cmd)
    {
        var vec = Welcomed();
        var spec = PolicySpec.FromJson(cmd.SpecJson);
        if (_gradientPolicy is null || !_gradientPolicy.Spec.Equals(spec)) _gradientPolicy = new ActorCritic(spec);
        var point = MemoryMarshal.Cast<byte, float>(cmd.Point.Data.Span);
        if (point.Length != _gradientPolicy.Parameters.Length)
            throw new ArgumentException($"The gradient point has {point.Length} weights; the policy {cmd.SpecJson} has {_gradientPolicy.Parameters.Length}.");
        _gradientPolicy.LoadParameters(point);
        if (cmd.Seed != 0 || _gradientRng is null) _gradientRng = new Rng(cmd.Seed == 0 ? null : (long)cmd.Seed);
        var returns = new List<double>();
        var settings = new GradientSettings((int)Math.Max(1, cmd.Episodes), (int)Math.Max(1, cmd.Horizon), cmd.Gamma, cmd.StandardizeReturns);
        var grad = PolicyGradient.Reinforce(_gradientPolicy, vec.Envs, _gradientRng, settings, returns, out long steps,
            cmd.Seed == 0 ? null : (int)(cmd.Seed % int.MaxValue), ThrottledProgress(seq)); // the learner's deadline counts from the last progress
        _lastReset = null;
        _lastStep = null;
        var result = new GradientResult
        {
            Version = cmd.Version, Steps = (ulong)steps,
            Gradient = Tensor(Transport.Protos.DType.Float32, [grad.Length], MemoryMarshal.AsBytes(grad.AsSpan())),
        };
        result.Returns.AddRange(returns);
        Reply(seq, new WorkerMessage { GradientResult = result });
    }

    // Gymnasium's get_attr / set_attr / call on every sub-env; an error names the sub-env it came from.
    private void OnAttr(ulong seq, AttrCommand cmd)
    {
        var vec = Welcomed();
        var result = new AttrResult();
        var args = cmd.Args.Select(ValueCodec.FromProto).ToArray();
        if (cmd.Op == AttrCommand.Types.Op.Set && cmd.Values.Count != vec.NumEnvs)
            throw new ArgumentException($"SetAttr sent {cmd.Values.Count} values to a worker with {vec.NumEnvs} envs.");
        for (int i = 0; i < vec.NumEnvs; i++)
        {
            try
            {
                var env = vec.Envs[i];
                object? value = cmd.Op switch
                {
                    AttrCommand.Types.Op.Get => EnvAttributes.Get(env, cmd.Name),
                    AttrCommand.Types.Op.Call => EnvAttributes.Call(env, cmd.Name, args),
                    _ => Set(env, ValueCodec.FromProto(cmd.Values[i])),
                };
                result.Values.Add(ValueCodec.ToProto(value, $"'{cmd.Name}' of env {i}"));
            }
            catch (Exception e) when (e is not SubEnvException)
            {
                throw new SubEnvException(i, _options.WorkerId, e.GetType().FullName ?? e.GetType().Name, e.Message, e.StackTrace);
            }
        }
        Reply(seq, new WorkerMessage { AttrResult = result });

        object? Set(IEnv env, object? value)
        {
            EnvAttributes.Set(env, cmd.Name, value);
            return null;
        }
    }

    private void OnClose(ulong seq)
    {
        StopStreamWithoutReply();
        _vec?.Close();
        Reply(seq, new WorkerMessage { Closed = new Closed() });
        _closeRequested = true;
    }

    // ---- worker-side acting ----

    private ActorCritic? _policy;
    private ulong _policyVersion;
    private Rng? _actRng;
    private RolloutActor? _actor;
    private RolloutBatch? _rollout;
    private float[]? _lastReset;          // observations of the last reset command, until the actor takes them
    private VectorStepResult? _lastStep;  // the last central-inference step, until the actor takes it

    // Weights are applied between commands, so a rollout never changes policy half-way. A bad push is refused and
    // the old policy stays.
    private void OnPolicy(ulong seq, PolicyUpdate update)
    {
        if (_stream is { } stream)
        {
            stream.Pushes.Enqueue((seq, update)); // applied and acknowledged between the stream's rollouts
            stream.Wake.Release();
            return;
        }
        Reply(seq, new WorkerMessage { PolicyAck = ApplyPolicy(update) });
    }

    private PolicyAck ApplyPolicy(PolicyUpdate update)
    {
        var vec = Welcomed();
        string? error = null;
        try
        {
            var spec = PolicySpec.FromJson(update.SpecJson);
            var expected = PolicySpec.For(vec.SingleObservationSpace, vec.SingleActionSpace, spec.Hidden, spec.Activation);
            if (!spec.Equals(expected))
                error = $"The policy spec {update.SpecJson} does not fit this worker's envs ({expected.ToJson()}).";
            else
            {
                var next = _policy is not null && _policy.Spec.Equals(spec) ? _policy : new ActorCritic(spec);
                if (update.Weights is null || update.Weights.Dtype != Transport.Protos.DType.Float32 || update.Weights.Data.Length != next.Store.Count * 4)
                    error = $"The push carries {(update.Weights?.Data.Length ?? 0) / 4} float32 weights; the spec needs {next.Store.Count}.";
                else if (update.Version <= _policyVersion)
                    error = $"Version {update.Version} is not newer than the active version {_policyVersion}; versions must increase.";
                else
                {
                    try
                    {
                        var normalizer = update.ObsMean is { } mean
                            ? new ObservationNormalizer(MemoryMarshal.Cast<byte, float>(mean.Data.Span), MemoryMarshal.Cast<byte, float>((update.ObsVar ?? new Transport.Protos.Tensor()).Data.Span), update.ObsClip)
                            : null; // refuses bad statistics before anything changes
                        if (normalizer is not null && normalizer.Mean.Length != spec.ObservationSize)
                            throw new ArgumentException($"The push carries {normalizer.Mean.Length} observation statistics; the envs' observations have {spec.ObservationSize}.");
                        next.LoadParameters(MemoryMarshal.Cast<byte, float>(update.Weights.Data.Span)); // refuses NaN/∞ and leaves the policy as it was
                        next.Normalizer = normalizer;
                        _policy = next;
                        _policyVersion = update.Version;
                        WorkerLog.PolicyApplied(_logger, _options.WorkerId, _policyVersion);
                    }
                    catch (ArgumentException e)
                    {
                        error = e.Message;
                    }
                }
            }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException or NotSupportedException)
        {
            error = $"The policy spec could not be read: {e.Message}";
        }
        if (error is not null) WorkerLog.PolicyRefused(_logger, _options.WorkerId, update.Version, _policyVersion, error);
        return new PolicyAck { ActiveVersion = _policyVersion, Error = error ?? "" };
    }

    // The actor continues the episodes that commands left: from the last reset, or the last central-inference step.
    private RolloutActor ReadyActor()
    {
        var vec = Welcomed();
        _actor ??= new RolloutActor(vec);
        if (_lastStep is { } step) _actor.Begin(step.Observations, step.Terminated, step.Truncated);
        else if (_lastReset is { } reset) _actor.Begin(reset);
        _lastStep = null;
        _lastReset = null;
        if (!_actor.HasObservations) throw new ResetNeededException("Reset the vector env before collecting rollouts.");
        return _actor;
    }

    // Refuses, before any work, a rollout that could not be sent back (the learner checks too; this covers older learners).
    private RolloutBatch RolloutBuffer(ActorCritic policy, uint steps)
    {
        var vec = Welcomed();
        int n = vec.NumEnvs, m = vec.ObservationSize, k = policy.Spec.ActionSize;
        bool continuous = policy.Spec.Continuous;
        var (fixedBytes, perStep) = RolloutBatch.MessageSize(n, m, continuous, continuous ? k : 1, k);
        long atLeast = fixedBytes + (long)steps * perStep;
        if (steps == 0 || (_maxReplySize > 0 && atLeast > _maxReplySize) || (steps + 1L) * n * Math.Max(m, k) > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"A rollout of {steps:N0} steps of {n} envs would be at least {atLeast:N0} bytes; the hub accepts {_maxReplySize:N0}. " +
                $"Collect at most {(_maxReplySize > fixedBytes ? (_maxReplySize - fixedBytes) / perStep : 0):N0} steps per call, or raise HubOptions.MaxMessageSize.");
        if (_rollout is null || _rollout.Steps != steps || _rollout.DistributionSize != k || _rollout.Continuous != continuous)
            _rollout = ReadyActor().CreateBatch((int)steps, policy.Spec);
        return _rollout;
    }

    private ActorCritic RequirePolicy() =>
        _policy ?? throw new InvalidOperationException("No policy has been pushed to this worker; push one (ClusterVecEnv.PushPolicy) before collecting rollouts.");

    private void OnRollout(ulong seq, CollectRollout cmd)
    {
        var policy = RequirePolicy();
        var batch = RolloutBuffer(policy, cmd.Steps);
        var actor = ReadyActor();
        _actRng ??= new Rng(cmd.Seed != 0 ? (long)cmd.Seed : _options.WorkerId.Aggregate(17L, (h, c) => h * 31 + c));
        actor.Act(policy, _policyVersion, batch, _actRng, ThrottledProgress(seq));
        Reply(seq, new WorkerMessage { Rollout = batch.ToProto(_policyVersion, policy.LogStd) });
    }

    // Progress for a long command (a rollout, a gradient): at most one message per progress interval.
    private Action<int> ThrottledProgress(ulong seq)
    {
        long next = _progressInterval > 0 ? Stopwatch.GetTimestamp() + _progressInterval : long.MaxValue;
        return done =>
        {
            if (Stopwatch.GetTimestamp() < next) return;
            SendProgress(seq, done);
            next = Stopwatch.GetTimestamp() + _progressInterval;
        };
    }

    // ---- streaming rollouts ----

    // While a stream runs, its acting loop owns the envs, the policy and the actor; the command loop only hands it
    // credit, pushes and the stop, through this object.
    private sealed class RolloutStream(ulong seq, uint steps)
    {
        public readonly ulong Seq = seq;
        public readonly uint Steps = steps;
        public int Credit;
        public volatile bool Stop;
        public ulong StopSeq;
        public readonly SemaphoreSlim Wake = new(0);
        public readonly System.Collections.Concurrent.ConcurrentQueue<(ulong Seq, PolicyUpdate Update)> Pushes = new();
        public Task Loop = Task.CompletedTask;
        public uint Sent;
    }

    private RolloutStream? _stream;

    private sealed class StreamStopped : Exception;

    private void OnStream(ulong seq, StreamRollouts cmd)
    {
        if (_stream is not null) throw new InvalidOperationException("A rollout stream is already running on this worker; stop it (StopStream) before starting another.");
        var policy = RequirePolicy();
        RolloutBuffer(policy, cmd.Steps);
        ReadyActor();
        _actRng ??= new Rng(cmd.Seed != 0 ? (long)cmd.Seed : _options.WorkerId.Aggregate(17L, (h, c) => h * 31 + c));
        var stream = new RolloutStream(seq, cmd.Steps) { Credit = (int)Math.Min(cmd.Credit, int.MaxValue) };
        _stream = stream;
        WorkerLog.StreamStarted(_logger, _options.WorkerId, cmd.Steps, cmd.Credit);
        stream.Loop = Task.Factory.StartNew(() => RunStream(stream), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private void OnCredit(Credit credit)
    {
        if (_stream is not { } stream) return; // the stream ended while the credit was on its way
        Interlocked.Add(ref stream.Credit, (int)Math.Min(credit.Rollouts, int.MaxValue));
        stream.Wake.Release();
    }

    // Close, or the connection ending, stops a running stream without a StreamEnded (nobody waits for it).
    private void StopStreamWithoutReply()
    {
        if (_stream is not { } stream) return;
        stream.Stop = true;
        stream.Wake.Release();
        try { stream.Loop.Wait(TimeSpan.FromSeconds(30)); }
        catch (AggregateException) { }
        _stream = null;
    }

    // The command loop waits here: after StreamEnded the learner may send anything again.
    private async Task OnStopStreamAsync(ulong seq)
    {
        if (_stream is not { } stream)
        {
            Reply(seq, new WorkerMessage { StreamEnded = new StreamEnded() });
            return;
        }
        stream.StopSeq = seq;
        stream.Stop = true;
        stream.Wake.Release();
        await stream.Loop.ConfigureAwait(false);
        _stream = null;
    }

    // The acting loop of a stream, on its own thread: apply pushes between rollouts, act while there is credit, send
    // each rollout as soon as it is done. Ends on StopStream (answering it) or when the connection does.
    private void RunStream(RolloutStream stream)
    {
        var policyBatch = _rollout!;
        try
        {
            while (!stream.Stop && !_runToken.IsCancellationRequested)
            {
                ApplyStreamPushes(stream);
                if (Volatile.Read(ref stream.Credit) <= 0)
                {
                    stream.Wake.Wait(_runToken);
                    continue;
                }
                Interlocked.Decrement(ref stream.Credit);
                var policy = _policy!;
                policyBatch.Index = stream.Sent;
                try
                {
                    long nextProgress = _progressInterval > 0 ? Stopwatch.GetTimestamp() + _progressInterval : long.MaxValue;
                    _actor!.Act(policy, _policyVersion, policyBatch, _actRng!, done =>
                    {
                        if (stream.Stop) throw new StreamStopped();
                        if (Stopwatch.GetTimestamp() < nextProgress) return;
                        WriteNow(new WorkerMessage { Seq = stream.Seq, Progress = new Progress { StepsDone = (uint)done } });
                        nextProgress = Stopwatch.GetTimestamp() + _progressInterval;
                    });
                }
                catch (StreamStopped)
                {
                    break; // the rollout in progress is dropped: it was never sent, so it is neither lost nor counted twice
                }
                var result = policyBatch.ToProto(_policyVersion, policy.LogStd);
                result.Index = stream.Sent;
                WriteNow(new WorkerMessage { Seq = stream.Seq, Rollout = result });
                stream.Sent++;
            }
            ApplyStreamPushes(stream);
            if (stream.StopSeq != 0) WriteNow(new WorkerMessage { Seq = stream.StopSeq, StreamEnded = new StreamEnded { RolloutsSent = stream.Sent } });
        }
        catch (OperationCanceledException) when (_runToken.IsCancellationRequested) { }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // An env or policy failure ends the stream; the learner hears it as an error reply to the stream command.
            WorkerLog.StreamFailed(_logger, _options.WorkerId, e.Message);
            try
            {
                WriteNow(new WorkerMessage { Seq = stream.Seq, Error = new WorkerError { EnvIndex = -1, Type = e.GetType().FullName ?? e.GetType().Name, Message = e.Message, StackTrace = e.StackTrace ?? "" } });
                if (!stream.Stop) SpinWait.SpinUntil(() => stream.Stop || _runToken.IsCancellationRequested);
                ApplyStreamPushes(stream);
                if (stream.StopSeq != 0) WriteNow(new WorkerMessage { Seq = stream.StopSeq, StreamEnded = new StreamEnded { RolloutsSent = stream.Sent } });
            }
            catch (Exception) when (_runToken.IsCancellationRequested) { }
        }
    }

    private void ApplyStreamPushes(RolloutStream stream)
    {
        while (stream.Pushes.TryDequeue(out var push))
            WriteNow(new WorkerMessage { Seq = push.Seq, PolicyAck = ApplyPolicy(push.Update) });
    }

    // A reply the hub would refuse as too large would make it end this stream: send an error that says why instead, and stay connected.
    private WorkerMessage Fitting(WorkerMessage message)
    {
        int size = message.CalculateSize();
        if (_maxReplySize <= 0 || size + WireMessage.PrefixSize <= _maxReplySize || message.BodyCase == WorkerMessage.BodyOneofCase.Error) return message;
        return new WorkerMessage
        {
            Seq = message.Seq,
            Error = new WorkerError
            {
                EnvIndex = -1,
                Type = typeof(InvalidOperationException).FullName!,
                Message = $"The {message.BodyCase} reply is {size:N0} bytes, above the hub's limit of {_maxReplySize:N0} (HubOptions.MaxMessageSize); ask for less per call (shorter rollouts) or raise the limit.",
            },
        };
    }

    // Encodes and writes one message from the stream's thread, one write at a time with the command loop's.
    private void WriteNow(WorkerMessage message)
    {
        var bytes = Fitting(message).ToByteArray();
        _writeGate.Wait(_runToken);
        try
        {
            _call!.RequestStream.WriteAsync(new WireMessage(bytes, bytes.Length), _runToken).GetAwaiter().GetResult();
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private SyncVectorEnv Welcomed() => _vec ?? throw new InvalidDataException("The hub sent a command before Welcome.");

    // ---------------- replies ----------------

    private Span<byte> Reserve(int payloadSize)
    {
        int need = _outLength + payloadSize;
        if (need > _out.Length) Array.Resize(ref _out, Math.Max(need, _out.Length * 2));
        var span = _out.AsSpan(_outLength, payloadSize);
        _outLength = need;
        _replyEnds.Add(need);
        return span;
    }

    private void Reply(ulong seq, WorkerMessage message)
    {
        message.Seq = seq;
        message = Fitting(message);
        int size = message.CalculateSize();
        message.WriteTo(Reserve(size));
    }

    // Tells the learner a long command is making progress (its deadline counts from the last message). Sent at once,
    // without waiting: the acting loop must not block on the network, and a progress message still on its way makes
    // the next one redundant. Replies wait for it (one write at a time on a gRPC stream).
    private void SendProgress(ulong seq, int stepsDone)
    {
        if (!_progressWrite.IsCompleted) return;
        var message = new WorkerMessage { Seq = seq, Progress = new Progress { StepsDone = (uint)stepsDone } };
        message.WriteTo(_progress.Reset(message.CalculateSize()));
        _progressWrite = _call!.RequestStream.WriteAsync(_progress, _runToken);
    }

    private Task _progressWrite = Task.CompletedTask;
    private readonly WireMessage _progress = new([], 0);

    // Sends the replies encoded since the last flush, in order, one gRPC message each.
    private async ValueTask FlushRepliesAsync(CancellationToken ct)
    {
        await _progressWrite.ConfigureAwait(false);
        await _writeGate.WaitAsync(ct).ConfigureAwait(false); // a stream's acting thread may be writing a rollout
        try
        {
            int start = 0;
            foreach (int end in _replyEnds)
            {
                _sending.Set(_out, start, end - start);
                await _call!.RequestStream.WriteAsync(_sending, ct).ConfigureAwait(false);
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

    // One write at a time on the gRPC stream: the command loop's replies and a stream's rollouts and acks.
    private readonly SemaphoreSlim _writeGate = new(1, 1);

    private static Transport.Protos.Tensor Tensor(Transport.Protos.DType dtype, long[] shape, ReadOnlySpan<byte> data)
    {
        var t = new Transport.Protos.Tensor { Dtype = dtype, Data = ByteString.CopyFrom(data) };
        t.Shape.AddRange(shape);
        return t;
    }

    private static EpisodeStats Stats(EpisodeBatch b) => new()
    {
        Mask = Tensor(Transport.Protos.DType.Bool, [b.Mask.Length], MemoryMarshal.AsBytes(b.Mask.AsSpan())),
        Returns = Tensor(Transport.Protos.DType.Float64, [b.Mask.Length], MemoryMarshal.AsBytes(b.Return.AsSpan())),
        Lengths = Tensor(Transport.Protos.DType.Int64, [b.Mask.Length], MemoryMarshal.AsBytes(b.Length.Select(l => (long)l).ToArray().AsSpan())),
        Seconds = Tensor(Transport.Protos.DType.Float64, [b.Mask.Length], MemoryMarshal.AsBytes(b.Seconds.AsSpan())),
    };

    // ---------------- plumbing ----------------

    private static async Task WatchParentAsync(int pid, CancellationTokenSource cts, ILogger logger, string workerId)
    {
        while (!cts.IsCancellationRequested)
        {
            try
            {
                using var p = Process.GetProcessById(pid);
                if (p.HasExited) break;
            }
            catch (ArgumentException) { break; } // no such process
            try { await Task.Delay(500, cts.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
        WorkerLog.ParentGone(logger, workerId, pid);
        cts.Cancel();
    }

    private static void LoadEnvAssembly(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"--assembly '{path}' does not exist.", path);
        var asm = Assembly.LoadFrom(Path.GetFullPath(path));
        var registrars = asm.GetExportedTypes().Where(t => typeof(IEnvRegistrar).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false }).ToArray();
        if (registrars.Length == 0)
            throw new ArgumentException($"Assembly '{path}' has no public class implementing ClusterEnv.Envs.IEnvRegistrar; add one whose Register() calls Gym.Register.");
        foreach (var t in registrars) ((IEnvRegistrar)Activator.CreateInstance(t)!).Register();
    }

    private static object ParseArg(string value) =>
        bool.TryParse(value, out bool b) ? b
        : double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d
        : value;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _call?.Dispose();
        _channel.Dispose();
        if (_vec is not null) _vec.Close();
        else foreach (var e in _envs) e.Dispose();
    }
}
