using System.Diagnostics;
using ClusterEnv.Common;
using ClusterEnv.Policies;
using ClusterEnv.Rollouts;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using Microsoft.Extensions.Logging;

namespace ClusterEnv.Worker.Handlers;

/// <summary>
/// Worker-side acting: a lockstep rollout (one reply), or a stream of rollouts on the worker's own thread that never
/// waits for the learner beyond its credit. While a stream runs, its acting loop owns the envs, the policy and the
/// actor; the command loop only hands it credit, pushes and the stop.
/// </summary>
internal sealed class RolloutCommands(HostedEnvs envs, PolicyCommands policy, HubClient hub, ILogger logger, string workerId)
{
    private Rng? _rng;
    private RolloutBatch? _rollout;
    private RolloutStream? _stream;
    private CancellationToken _run;

    /// <summary>True while a stream runs (lockstep commands are refused then).</summary>
    public bool IsStreaming => _stream is not null;

    /// <summary>The worker's run token: the stream's thread stops at its next step or write when it is cancelled.</summary>
    public void RunUntil(CancellationToken run) => _run = run;

    public void OnRollout(ulong seq, CollectRollout cmd)
    {
        var p = policy.Require();
        var batch = Buffer(p, cmd.Steps);
        var actor = envs.ReadyActor();
        var throttle = envs.Throttle();
        actor.Act(p, policy.Version, batch, Rng(cmd.Seed), done => { if (throttle.Due()) hub.SendProgress(seq, done); });
        hub.Reply(seq, new WorkerMessage { Rollout = batch.ToProto(policy.Version, p.LogStd, ObservationCodec.WireTypeOf(envs.Vec.SingleObservationSpace)) });
    }

    private Rng Rng(ulong seed) => _rng ??= new Rng(seed != 0 ? (long)seed : workerId.Aggregate(17L, (h, c) => h * 31 + c));

    // Refuses, before any work, a rollout that could not be sent back (the learner checks too; this covers older learners).
    private RolloutBatch Buffer(ActorCritic p, uint steps)
    {
        var vec = envs.Vec;
        int n = vec.NumEnvs, m = vec.ObservationSize, k = p.Spec.ActionSize;
        bool continuous = p.Spec.Continuous;
        long limit = hub.MaxReplySize;
        var (fixedBytes, perStep) = RolloutBatch.MessageSize(n, m, continuous, continuous ? k : 1, k, ObservationCodec.ElementSize(ObservationCodec.WireTypeOf(vec.SingleObservationSpace)));
        long atLeast = fixedBytes + (long)steps * perStep;
        if (steps == 0 || (limit > 0 && atLeast > limit) || (steps + 1L) * n * Math.Max(m, k) > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"A rollout of {steps:N0} steps of {n} envs would be at least {atLeast:N0} bytes; the hub accepts {limit:N0}. " +
                $"Collect at most {(limit > fixedBytes ? (limit - fixedBytes) / perStep : 0):N0} steps per call, or raise HubOptions.MaxMessageSize.");
        if (_rollout is null || _rollout.Steps != steps || _rollout.DistributionSize != k || _rollout.Continuous != continuous)
            _rollout = envs.ReadyActor().CreateBatch((int)steps, p.Spec);
        return _rollout;
    }

    // ---- streaming ----

    private sealed class RolloutStream(ulong seq)
    {
        public readonly ulong Seq = seq;
        public int Credit;
        public volatile bool Stop;
        public ulong StopSeq;
        public readonly SemaphoreSlim Wake = new(0);
        public readonly System.Collections.Concurrent.ConcurrentQueue<(ulong Seq, PolicyUpdate Update)> Pushes = new();
        public Task Loop = Task.CompletedTask;
        public uint Sent;
    }

    private sealed class StreamStopped : Exception;

    public void OnStream(ulong seq, StreamRollouts cmd)
    {
        if (_stream is not null) throw new InvalidOperationException("A rollout stream is already running on this worker; stop it (StopStream) before starting another.");
        Buffer(policy.Require(), cmd.Steps);
        var actor = envs.ReadyActor();
        Rng(cmd.Seed);
        var stream = new RolloutStream(seq) { Credit = (int)Math.Min(cmd.Credit, int.MaxValue) };
        _stream = stream;
        WorkerLog.StreamStarted(logger, workerId, cmd.Steps, cmd.Credit);
        stream.Loop = Task.Factory.StartNew(() => RunStream(stream, actor), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>A push while a stream runs is applied and acknowledged between its rollouts; otherwise at once. False when the caller should apply it now.</summary>
    public bool TryQueuePush(ulong seq, PolicyUpdate update)
    {
        if (_stream is not { } stream) return false;
        stream.Pushes.Enqueue((seq, update));
        stream.Wake.Release();
        return true;
    }

    public void OnCredit(Credit credit)
    {
        if (_stream is not { } stream) return; // the stream ended while the credit was on its way
        Interlocked.Add(ref stream.Credit, (int)Math.Min(credit.Rollouts, int.MaxValue));
        stream.Wake.Release();
    }

    /// <summary>Close, or the connection ending, stops a running stream without a StreamEnded (nobody waits for it).</summary>
    public void StopWithoutReply()
    {
        if (_stream is not { } stream) return;
        stream.Stop = true;
        stream.Wake.Release();
        try { stream.Loop.Wait(TimeSpan.FromSeconds(30)); }
        catch (AggregateException) { }
        _stream = null;
    }

    /// <summary>The command loop waits here: after StreamEnded the learner may send anything again.</summary>
    public async Task StopAsync(ulong seq)
    {
        if (_stream is not { } stream)
        {
            hub.Reply(seq, new WorkerMessage { StreamEnded = new StreamEnded() });
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
    private void RunStream(RolloutStream stream, RolloutActor actor)
    {
        var batch = _rollout!;
        long waitingSince = 0; // when the worker ran out of credit (0: it has not)
        try
        {
            while (!stream.Stop && !_run.IsCancellationRequested)
            {
                ApplyPushes(stream);
                if (Volatile.Read(ref stream.Credit) <= 0)
                {
                    if (waitingSince == 0) waitingSince = Stopwatch.GetTimestamp();
                    stream.Wake.Wait(_run);
                    continue;
                }
                Interlocked.Decrement(ref stream.Credit);
                // Reported with the rollout: a worker that waits for credit while its learner waits for rollouts tells
                // the learner that its window does not cover the round trip (StreamingRolloutSource widens it).
                uint creditWaitUs = waitingSince == 0 ? 0 : (uint)Math.Min(uint.MaxValue, Stopwatch.GetElapsedTime(waitingSince).TotalMicroseconds);
                waitingSince = 0;
                var p = policy.Policy!;
                batch.Index = stream.Sent;
                try
                {
                    var throttle = envs.Throttle();
                    actor.Act(p, policy.Version, batch, _rng!, done =>
                    {
                        if (stream.Stop) throw new StreamStopped();
                        if (throttle.Due()) hub.WriteNow(new WorkerMessage { Seq = stream.Seq, Progress = new Progress { StepsDone = (uint)done } });
                    });
                }
                catch (StreamStopped)
                {
                    break; // the rollout in progress is dropped: it was never sent, so it is neither lost nor counted twice
                }
                var result = batch.ToProto(policy.Version, p.LogStd, ObservationCodec.WireTypeOf(envs.Vec.SingleObservationSpace));
                result.Index = stream.Sent;
                result.CreditWaitUs = creditWaitUs;
                hub.WriteNow(new WorkerMessage { Seq = stream.Seq, Rollout = result });
                stream.Sent++;
            }
            Finish(stream);
        }
        catch (OperationCanceledException) when (_run.IsCancellationRequested) { }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // An env or policy failure ends the stream; the learner hears it as an error reply to the stream command.
            WorkerLog.StreamFailed(logger, workerId, e.Message);
            try
            {
                hub.WriteNow(new WorkerMessage { Seq = stream.Seq, Error = new WorkerError { EnvIndex = -1, Type = e.GetType().FullName ?? e.GetType().Name, Message = e.Message, StackTrace = e.StackTrace ?? "" } });
                while (!stream.Stop && !_run.IsCancellationRequested)
                {
                    ApplyPushes(stream);
                    stream.Wake.Wait(_run);
                }
                Finish(stream);
            }
            catch (Exception) when (_run.IsCancellationRequested) { }
        }
    }

    // Pushes that arrived meanwhile are acknowledged before the stream's end, which the learner waits for.
    private void Finish(RolloutStream stream)
    {
        ApplyPushes(stream);
        if (stream.StopSeq != 0) hub.WriteNow(new WorkerMessage { Seq = stream.StopSeq, StreamEnded = new StreamEnded { RolloutsSent = stream.Sent } });
    }

    private void ApplyPushes(RolloutStream stream)
    {
        while (stream.Pushes.TryDequeue(out var push))
            hub.WriteNow(new WorkerMessage { Seq = push.Seq, PolicyAck = policy.Apply(push.Update) });
    }
}
