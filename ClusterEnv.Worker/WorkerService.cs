using System.Diagnostics;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using ClusterEnv.Worker.Handlers;
using Microsoft.Extensions.Logging;

namespace ClusterEnv.Worker;

/// <summary>
/// The worker's runner: dial the hub, register, then answer each command with one reply, in order, until the hub
/// closes the stream. Commands are a closed set (<c>HubMessage.command</c>), one switch, one handler per family:
/// envs (welcome, reset, step), policy, rollouts and streams, gradients, attributes.
/// </summary>
public sealed class WorkerService : IAsyncDisposable
{
    private readonly WorkerOptions _options;
    private readonly ILogger _logger;
    private readonly HostedEnvs _envs;
    private readonly HubClient _hub;
    private readonly EnvCommands _env;
    private readonly PolicyCommands _policy;
    private readonly RolloutCommands _rollouts;
    private readonly GradientCommands _gradients;
    private readonly AttrCommands _attrs;
    private bool _closeRequested;
    private ulong? _stopStreamSeq;

    /// <summary>Creates the envs (so their spaces can be registered) without connecting yet. Logs to <paramref name="logger"/> (see <c>WorkerLog</c>).</summary>
    public WorkerService(WorkerOptions options, ILogger? logger = null)
    {
        _options = options;
        _logger = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _envs = new HostedEnvs(options);
        _hub = new HubClient(options.Hub, options.Token, options.MaxMessageSize, options.Insecure, options.ConnectTimeout);
        _env = new EnvCommands(_envs, _hub, _logger, options.WorkerId);
        _policy = new PolicyCommands(_envs, _logger, options.WorkerId);
        _rollouts = new RolloutCommands(_envs, _policy, _hub, _logger, options.WorkerId);
        _gradients = new GradientCommands(_envs, _hub);
        _attrs = new AttrCommands(_envs, _hub, options.WorkerId);
    }

    /// <summary>Runs until the hub closes the stream (returns normally) or fails (throws). Cancelling ends the stream.</summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (_options.ParentPid is int parent) _ = WatchParentAsync(parent, cts, _logger, _options.WorkerId);
        _rollouts.RunUntil(cts.Token);
        WorkerLog.Dialling(_logger, _options.WorkerId, _options.Hub, _options.NumEnvs, _options.EnvId);
        await _hub.ConnectAsync(_envs.Registration(_options), cts.Token).ConfigureAwait(false);
        WorkerLog.Registered(_logger, _options.WorkerId, _options.Hub);
        try
        {
            await ServeAsync(cts.Token).ConfigureAwait(false);
        }
        finally
        {
            if (_rollouts.IsStreaming)
            {
                cts.Cancel(); // the stream's thread stops at its next step or write
                _rollouts.StopWithoutReply();
            }
        }
    }

    private async Task ServeAsync(CancellationToken ct)
    {
        while (await _hub.ReadAsync(ct).ConfigureAwait(false) is { } command) // null: the hub ended the stream with OK
        {
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
                await _rollouts.StopAsync(stop).ConfigureAwait(false);
            }
            if (_hub.HasReplies) await _hub.FlushAsync(ct).ConfigureAwait(false);
            if (_closeRequested) await _hub.CompleteAsync().ConfigureAwait(false);
        }
    }

    private void Handle(ReadOnlySpan<byte> message)
    {
        StepCodec.ReadEnvelope(message, out ulong seq, out int command, out var body);
        try
        {
            if (_rollouts.IsStreaming && command is HubMessage.StepFieldNumber or HubMessage.ResetFieldNumber or HubMessage.RolloutFieldNumber)
                throw new InvalidOperationException("Rollouts are streaming on this worker; stop the stream before stepping, resetting or collecting lockstep rollouts.");
            switch (command)
            {
                case HubMessage.StepFieldNumber: _env.OnStep(seq, body); break;
                case HubMessage.ResetFieldNumber: _env.OnReset(seq, ResetCommand.Parser.ParseFrom(body)); break;
                case HubMessage.WelcomeFieldNumber: _env.OnWelcome(Welcome.Parser.ParseFrom(body)); break;
                case HubMessage.CloseFieldNumber: OnClose(seq); break;
                case HubMessage.PolicyFieldNumber: OnPolicy(seq, PolicyUpdate.Parser.ParseFrom(body)); break;
                case HubMessage.RolloutFieldNumber: _rollouts.OnRollout(seq, CollectRollout.Parser.ParseFrom(body)); break;
                case HubMessage.StreamFieldNumber: _rollouts.OnStream(seq, StreamRollouts.Parser.ParseFrom(body)); break;
                case HubMessage.CreditFieldNumber: _rollouts.OnCredit(Credit.Parser.ParseFrom(body)); break;
                case HubMessage.StopStreamFieldNumber: _stopStreamSeq = seq; break; // the loop awaits the stream's end
                case HubMessage.AttrFieldNumber: _attrs.OnAttr(seq, AttrCommand.Parser.ParseFrom(body)); break;
                case HubMessage.GradientFieldNumber: _gradients.OnGradient(seq, GradientCommand.Parser.ParseFrom(body)); break;
                default:
                    throw new InvalidDataException($"Unknown command field {command}; this worker handles welcome (2), reset (3), step (4), close (5), policy (6), rollout (7), stream (8), credit (9), stop_stream (10), attr (11) and gradient (12). Is the hub a newer protocol version?");
            }
        }
        catch (SubEnvException e)
        {
            _hub.Reply(seq, new WorkerMessage { Error = new WorkerError { EnvIndex = e.EnvIndex, Type = e.ErrorType, Message = e.ErrorMessage, StackTrace = e.ErrorStackTrace ?? "" } });
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _hub.Reply(seq, new WorkerMessage { Error = new WorkerError { EnvIndex = -1, Type = e.GetType().FullName ?? e.GetType().Name, Message = e.Message, StackTrace = e.StackTrace ?? "" } });
        }
    }

    private void OnPolicy(ulong seq, PolicyUpdate update)
    {
        if (!_rollouts.TryQueuePush(seq, update)) _hub.Reply(seq, new WorkerMessage { PolicyAck = _policy.Apply(update) });
    }

    private void OnClose(ulong seq)
    {
        _rollouts.StopWithoutReply();
        _envs.Dispose();
        _hub.Reply(seq, new WorkerMessage { Closed = new Closed() });
        _closeRequested = true;
    }

    // A worker started by a learner (a local pool) ends with it, even when the learner dies without a goodbye.
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

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _hub.Dispose();
        _envs.Dispose();
        return ValueTask.CompletedTask;
    }
}
