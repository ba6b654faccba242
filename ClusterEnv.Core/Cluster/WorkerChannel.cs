using System.Diagnostics;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;

namespace ClusterEnv.Cluster;

/// <summary>
/// One registered worker as a vector env drives it: its sub-env range, the ledger of commands written and not yet
/// answered (a worker answers in order), the send lock that keeps the wire order equal to the ledger order, the
/// one-slot queue of a weight push waiting for a back-pressured stream, its policy state, and its streaming credit.
/// The channel matches replies to commands; what a reply means is the vector env's business. Each channel's commands
/// complete on their own: nothing here waits for another worker.
/// </summary>
internal sealed class WorkerChannel(WorkerConnection connection, Func<ulong> nextSeq)
{
    // Commands sent and not yet answered, oldest first. Guarded by itself: the learner enqueues, the read loop dequeues.
    private readonly Queue<(ulong Seq, int Field, long SentAt, bool Gather)> _outstanding = new(4);

    public readonly WorkerConnection Connection = connection;
    public int Offset;
    public int Count;
    public bool Lost;
    // Held while a command is registered and written, so the wire order is the ledger's order even when a push is
    // sent from another thread while a rollout is being collected. The read loop never takes it.
    public readonly Lock SendLock = new();
    public int Gathering;                 // outstanding commands that the current gather waits for
    public long LastHeard;                // Stopwatch timestamp of the worker's last message (reply or progress); read loop writes
    public readonly WorkerPolicyState Policy = new();
    // A push not yet written because the stream is back-pressured; a newer push replaces it. Under SendLock.
    private (HubMessage Message, ulong Version, long Bytes)? _pendingPush;
    // Streaming: the StreamRollouts command's seq (0: not streaming; its rollouts bypass the ledger), rollouts granted
    // and not yet received, rollouts received, and the worker_id field appended to each queued rollout.
    public ulong StreamSeq;
    public int InFlight;
    public long StreamReceived;
    public byte[] IdField = [];

    public string Id => Connection.Id;

    /// <summary>0 for the worker that first registered under this id; one more for each replacement.</summary>
    public int Generation;

    /// <summary>A replacement whose rollout stream starts once its first policy push is queued.</summary>
    public int NeedsStream;
    public bool ResetAnswered;            // a reset reply has been read (a replacement is ready for lockstep calls) // 1 until its stream starts (claimed once, by whichever push comes first)

    /// <summary>Commands written and not yet answered (a command counts once it is on the wire).</summary>
    public int OutstandingCount
    {
        get { lock (SendLock) lock (_outstanding) return _outstanding.Count; }
    }

    /// <summary>Registers a command before it is written (its reply may race the write) and returns its seq.</summary>
    private ulong Expect(int replyField, bool gather)
    {
        ulong seq = nextSeq();
        if (gather) Interlocked.Increment(ref Gathering);
        lock (_outstanding) _outstanding.Enqueue((seq, replyField, Stopwatch.GetTimestamp(), gather));
        return seq;
    }

    /// <summary>Under <see cref="SendLock"/>: a queued push first, then registers a command whose reply is <paramref name="replyField"/>; returns its seq for the caller to write.</summary>
    public ulong RegisterLocked(int replyField, bool gather)
    {
        WritePendingPushLocked();
        return Expect(replyField, gather);
    }

    /// <summary>
    /// Registers and writes a generated command as one step (a queued push goes first). A write to a stream that has
    /// ended is not reported here: the stream's read loop reports the loss, with the reason it saw.
    /// </summary>
    public void SendTracked(HubMessage command, int replyField, bool gather)
    {
        lock (SendLock)
        {
            command.Seq = RegisterLocked(replyField, gather);
            Connection.Send(command);
        }
    }

    /// <summary>Writes a command that gets no reply (credit), in wire order with the others.</summary>
    public void SendUntracked(HubMessage command)
    {
        lock (SendLock)
        {
            command.Seq = nextSeq();
            Connection.Send(command);
        }
    }

    /// <summary>Starts a rollout stream: its seq marks the rollouts that bypass the ledger; <paramref name="credit"/> rollouts may be in flight.</summary>
    public void StartStream(HubMessage command, int credit)
    {
        lock (SendLock)
        {
            WritePendingPushLocked();
            ulong seq = nextSeq();
            Volatile.Write(ref InFlight, credit);
            Volatile.Write(ref LastHeard, Stopwatch.GetTimestamp());
            Volatile.Write(ref StreamSeq, seq); // before sending: the first rollout may arrive before Send returns
            command.Seq = seq;
            Connection.Send(command);
        }
    }

    /// <summary>Queues a push (replacing a queued one, counted as coalesced) and writes it unless the stream is back-pressured.</summary>
    public void QueuePush(HubMessage message, ulong version, long bytes)
    {
        lock (SendLock)
        {
            Policy.Queued(version, replaced: _pendingPush is not null);
            _pendingPush = (message, version, bytes);
        }
        SendPendingPush();
    }

    /// <summary>Writes the queued push unless the stream is back-pressured (the connection's Drained callback comes back here).</summary>
    public void SendPendingPush()
    {
        lock (SendLock)
        {
            if (_pendingPush is null || Connection.IsBackPressured) return;
            WritePendingPushLocked();
        }
    }

    private void WritePendingPushLocked()
    {
        if (_pendingPush is not { } push) return;
        _pendingPush = null;
        push.Message.Seq = Expect(WorkerMessage.PolicyAckFieldNumber, gather: false);
        Policy.Sent(push.Bytes); // before sending: the acknowledgement may arrive before Send returns
        Connection.Send(push.Message);
    }

    /// <summary>On the read loop: the command this reply answers (the oldest outstanding). Throws naming the violation when it answers none.</summary>
    public (ulong Seq, int Field, long SentAt, bool Gather) TakeReply(ulong seq, int bodyField)
    {
        (ulong Seq, int Field, long SentAt, bool Gather) head;
        lock (_outstanding)
        {
            if (!_outstanding.TryDequeue(out head) || head.Seq != seq)
                throw new GrpcException(GrpcStatusCode.FailedPrecondition, $"Reply with seq {seq} (field {bodyField}) does not answer the oldest pending command" +
                    (_outstanding.Count == 0 && head.Seq == 0 ? " (none is pending)" : $" (seq {head.Seq})") + "; answer each command once, in order.");
        }
        return head;
    }

    /// <summary>On the read loop: progress must belong to the oldest outstanding command.</summary>
    public void CheckProgress(ulong seq)
    {
        lock (_outstanding)
            if (!_outstanding.TryPeek(out var head) || head.Seq != seq)
                throw new GrpcException(GrpcStatusCode.FailedPrecondition, $"Progress for seq {seq} does not belong to the oldest pending command" +
                    (_outstanding.Count == 0 ? " (none is pending)" : $" (seq {head.Seq})") + ".");
    }

    /// <inheritdoc />
    public override string ToString() => $"{Connection} (envs {Offset}..{Offset + Count - 1})";
}
