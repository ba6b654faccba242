// Over 400 lines on purpose: one worker slot's whole state machine and the ledger it guards live under one lock in
// one file, so every transition and every write that reads the state can be checked side by side.
using System.Diagnostics;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using Grpc.Core;

namespace ClusterEnv.Cluster;

/// <summary>Where one worker slot is in its life. Each state says what the slot accepts; the transitions are in <see cref="WorkerSlot"/>.</summary>
internal enum SlotState
{
    /// <summary>A worker registered for this slot and the hub is answering; nothing may be written yet. Pushes are queued.</summary>
    Joining,
    /// <summary>A replacement: welcomed and sent its fresh-seed reset, not answered yet. Pushes are written; nothing streams.</summary>
    Resetting,
    /// <summary>Welcomed and reset: takes lockstep commands, pushes and the start of a stream.</summary>
    Ready,
    /// <summary>Streaming rollouts: takes pushes, credit and the stop of the stream.</summary>
    Streaming,
    /// <summary>Lost, and a replacement is on its way (ClusterOptions.ReplaceLostWorkers). Pushes are queued for it.</summary>
    Replacing,
    /// <summary>Lost for good: <see cref="WorkerSlot.Failure"/> says why.</summary>
    Failed,
    /// <summary>The vector env closed.</summary>
    Closed,
}

/// <summary>The part of the vector env that sent a command and reads its reply.</summary>
internal interface IReplyOwner
{
    /// <summary>On the worker's read loop: the reply (or the worker's error) to <paramref name="command"/>. The body is valid only during the call.</summary>
    void OnReply(WorkerSlot slot, in SlotCommand command, int bodyField, ReadOnlySpan<byte> body);
}

/// <summary>What a slot tells the fleet: its rollout stream's messages, a gathered reply, its loss, and that it became ready.</summary>
internal interface ISlotEvents
{
    void OnStreamMessage(WorkerSlot slot, int bodyField, ReadOnlySpan<byte> body);
    void OnGathered(WorkerSlot slot);
    void OnLost(WorkerSlot slot, int generation, string reason);
    void OnReady(WorkerSlot slot);
}

/// <summary>A command written and not answered yet: its seq, the reply field it expects, when it went out, whether the learner waits for it, and who reads the reply.</summary>
internal readonly record struct SlotCommand(ulong Seq, int ReplyField, long SentAt, bool Gather, IReplyOwner Owner);

/// <summary>
/// One worker's place in the vector env — a fixed range of sub-envs — and the one owner of everything about the
/// worker that fills it: the explicit <see cref="SlotState"/>, the connection and its generation (0 for the first
/// worker, one more per replacement), the ledger of commands written and not yet answered (a worker answers in order),
/// the one-slot queue of a weight push, the rollout stream's credit, and when it was last heard. Every field that two
/// threads touch is changed under <see cref="_lock"/>, which is also held while a command is registered and written,
/// so the wire order is the ledger's order. A command is accepted only in the states that allow it (a stream only from
/// <see cref="SlotState.Ready"/>, so never before a replacement's reset has been answered).
/// </summary>
/// <remarks>Threads: the learner writes commands; a pusher may write a push at any time; the connection's read loop
/// delivers replies (<see cref="Receive"/>) and the loss; the hub's admission attaches a replacement.</remarks>
internal sealed class WorkerSlot(int index, int offset, int count, ISlotEvents events, Func<ulong> nextSeq)
{
    private readonly ISlotEvents _events = events;
    private readonly Lock _lock = new();
    private readonly Queue<SlotCommand> _outstanding = new(4);
    private (HubMessage Message, ulong Version, long Bytes)? _pendingPush;
    private IReplyOwner? _ackOwner;                  // reads the acknowledgement of the queued push
    private volatile SlotState _state = SlotState.Joining; // written under _lock; read without it
    private WorkerConnection? _connection;

    public readonly int Index = index;
    public readonly int Offset = offset;
    public readonly int Count = count;

    /// <summary>The pushes this slot's workers were sent and acknowledged (kept across replacements).</summary>
    public readonly WorkerPolicyState Policy = new();

    /// <summary>0 for the worker that first registered here; one more for each replacement.</summary>
    public int Generation { get; private set; }

    /// <summary>Stopwatch timestamp of the worker's last message (reply or progress); written by the read loop.</summary>
    public long LastHeard;

    /// <summary>Outstanding commands that the learner's current call waits for.</summary>
    public int Gathering;

    /// <summary>Streaming: the StreamRollouts command's seq (0: not streaming), rollouts granted and not received, rollouts received (across replacements).</summary>
    public ulong StreamSeq;
    public int InFlight;

    /// <summary>Streaming: the rollouts this worker may hold in flight now (its credit window: the stream's credit, widened while the learner starves).</summary>
    public int CreditWindow;
    public long StreamReceived;

    /// <summary>RolloutResult.worker_id as encoded bytes, appended to every queued rollout.</summary>
    public byte[] IdField = [];

    /// <summary>Lockstep: a replacement took this slot since the last step, so its envs report truncated at the next one.</summary>
    public bool Interrupted;

    public SlotState State => _state;

    /// <summary>Why the slot failed for good (null unless <see cref="SlotState.Failed"/>).</summary>
    public Exception? Failure { get; private set; }

    public WorkerConnection Connection => Volatile.Read(ref _connection)!;

    public string Id => Connection.Id;

    /// <summary>Commands written and not yet answered (a command counts once it is on the wire).</summary>
    public int OutstandingCount
    {
        get { lock (_lock) return _outstanding.Count; }
    }

    /// <summary>Gives the slot a (new) worker: the ledger, the stream and the gather start afresh; state Joining.</summary>
    public void Attach(WorkerConnection connection)
    {
        int generation;
        lock (_lock)
        {
            if (_state is not (SlotState.Joining or SlotState.Replacing) || (_connection is not null && _state == SlotState.Joining))
                throw new InvalidOperationException($"Slot {Index} is {_state}; only a new or a replacing slot takes a worker.");
            if (_connection is not null)
            {
                Generation++;
                Policy.NewWorker();
            }
            generation = Generation;
            _connection = connection;
            _outstanding.Clear();
            Gathering = 0;
            StreamSeq = 0;
            InFlight = 0;
            IdField = [];
            Volatile.Write(ref LastHeard, Stopwatch.GetTimestamp());
            _state = SlotState.Joining;
        }
        connection.Attach(new Link(this, generation));
        connection.Drained = SendPendingPush;
    }

    /// <summary>
    /// Joining → Ready (a first worker: the learner resets it) or → Resetting (a replacement: <paramref name="reset"/>
    /// is written after the welcome and any queued push, and the slot is ready when the worker answers it). False when
    /// the stream ended first (its read loop reports the loss).
    /// </summary>
    public bool Welcome(HubMessage welcome, HubMessage? reset, IReplyOwner resetOwner)
    {
        lock (_lock)
        {
            if (_state != SlotState.Joining) return false;
            if (!_connection!.SendWelcome(welcome)) return false;
            _state = reset is null ? SlotState.Ready : SlotState.Resetting;
            WritePendingPushLocked();
            if (reset is not null) WriteLocked(reset, WorkerMessage.ResetFieldNumber, gather: false, resetOwner);
        }
        if (reset is null) _events.OnReady(this);
        return true;
    }

    /// <summary>Resetting → Ready, when the replacement answered its reset (on the read loop).</summary>
    public void ResetAnswered()
    {
        lock (_lock)
        {
            if (_state != SlotState.Resetting) return;
            _state = SlotState.Ready;
            Interrupted = true;
        }
        _events.OnReady(this);
    }

    /// <summary>Registers and writes a command for a ready slot (a queued push goes first). False when the slot is not ready (lost, replacing or streaming).</summary>
    public bool Send(HubMessage command, int replyField, bool gather, IReplyOwner owner)
    {
        lock (_lock)
        {
            if (_state != SlotState.Ready) return false;
            WritePendingPushLocked();
            WriteLocked(command, replyField, gather, owner);
            return true;
        }
    }

    /// <summary>
    /// The step's hot path, allocation-free: registers and writes a step command with this slot's rows of the actions
    /// (integer actions as INT64, or float actions). False when the slot is not ready (lost or being replaced).
    /// </summary>
    public bool SendStep(ReadOnlySpan<int> shape, ReadOnlySpan<int> ints, ReadOnlySpan<float> floats, IReplyOwner owner)
    {
        lock (_lock)
        {
            if (_state != SlotState.Ready) return false;
            WritePendingPushLocked();
            ulong seq = Register(WorkerMessage.StepFieldNumber, gather: true, owner);
            bool continuous = !floats.IsEmpty;
            int size = StepCodec.StepCommandSize(seq, shape, continuous ? floats.Length : ints.Length, continuous);
            _connection!.Send(size, new StepState(seq, shape, ints, floats), WriteStep); // false when the stream has ended: its read loop reports why
            return true;
        }
    }

    private readonly ref struct StepState(ulong seq, ReadOnlySpan<int> shape, ReadOnlySpan<int> ints, ReadOnlySpan<float> floats)
    {
        public readonly ulong Seq = seq;
        public readonly ReadOnlySpan<int> Shape = shape;
        public readonly ReadOnlySpan<int> Ints = ints;
        public readonly ReadOnlySpan<float> Floats = floats;
    }

    private static int WriteStep(Span<byte> dest, StepState st) => st.Floats.IsEmpty
        ? StepCodec.WriteStepCommand(dest, st.Seq, st.Shape, st.Ints)
        : StepCodec.WriteStepCommand(dest, st.Seq, st.Shape, st.Floats);

    /// <summary>Writes a command that gets no reply (credit) while the worker is alive.</summary>
    public void SendUntracked(HubMessage command)
    {
        lock (_lock)
        {
            if (_state is not (SlotState.Ready or SlotState.Streaming or SlotState.Resetting)) return;
            command.Seq = nextSeq();
            _connection!.Send(command);
        }
    }

    /// <summary>Ready → Streaming: writes the StreamRollouts command (a queued push first); its rollouts bypass the ledger. False unless ready.</summary>
    public bool StartStream(HubMessage command, int credit)
    {
        lock (_lock)
        {
            if (_state != SlotState.Ready) return false;
            WritePendingPushLocked();
            ulong seq = nextSeq();
            Volatile.Write(ref InFlight, credit);
            Volatile.Write(ref CreditWindow, credit);
            Volatile.Write(ref LastHeard, Stopwatch.GetTimestamp());
            Volatile.Write(ref StreamSeq, seq); // before sending: the first rollout may arrive before Send returns
            command.Seq = seq;
            _connection!.ReturnRing(); // rollouts are read on the reader thread from the first one
            _connection.Send(command);
            _state = SlotState.Streaming;
            return true;
        }
    }

    /// <summary>Streaming: registers and writes the stop of the stream (the worker answers once everything it sent has arrived). False unless streaming.</summary>
    public bool StopStream(HubMessage command, int replyField, IReplyOwner owner)
    {
        lock (_lock)
        {
            if (_state != SlotState.Streaming) return false;
            WriteLocked(command, replyField, gather: true, owner);
            return true;
        }
    }

    /// <summary>Streaming → Ready, when the worker answered the stop (on the read loop).</summary>
    public void StreamEnded()
    {
        lock (_lock)
        {
            Volatile.Write(ref StreamSeq, 0UL);
            if (_state == SlotState.Streaming) _state = SlotState.Ready;
        }
    }

    /// <summary>
    /// Queues a push (replacing a queued one, counted as coalesced) and writes it when the worker can take it: not
    /// before its welcome, not into a back-pressured stream. A joining or replacing slot keeps it for its worker.
    /// </summary>
    public void QueuePush(HubMessage message, ulong version, long bytes, IReplyOwner ackOwner)
    {
        lock (_lock)
        {
            if (_state is SlotState.Failed or SlotState.Closed) throw Failure ?? new InvalidOperationException($"Worker slot {Index} is closed.");
            Policy.Queued(version, replaced: _pendingPush is not null);
            _pendingPush = (message, version, bytes);
            _ackOwner = ackOwner;
        }
        SendPendingPush();
    }

    /// <summary>Writes the queued push unless the worker cannot take it yet (the connection's Drained callback comes back here).</summary>
    public void SendPendingPush()
    {
        lock (_lock)
        {
            if (_pendingPush is null || _connection is null || _connection.IsBackPressured) return;
            WritePendingPushLocked();
        }
    }

    private void WritePendingPushLocked()
    {
        if (_pendingPush is not { } push || _state is not (SlotState.Resetting or SlotState.Ready or SlotState.Streaming)) return;
        _pendingPush = null;
        push.Message.Seq = Register(WorkerMessage.PolicyAckFieldNumber, gather: false, _ackOwner!);
        Policy.Sent(push.Bytes); // before sending: the acknowledgement may arrive before Send returns
        _connection!.Send(push.Message);
    }

    private void WriteLocked(HubMessage command, int replyField, bool gather, IReplyOwner owner)
    {
        command.Seq = Register(replyField, gather, owner);
        _connection!.Send(command); // false when the stream has ended: its read loop reports the loss, with the reason it saw
    }

    // Before the write: the reply may race it.
    private ulong Register(int replyField, bool gather, IReplyOwner owner)
    {
        ulong seq = nextSeq();
        if (gather) Interlocked.Increment(ref Gathering);
        _outstanding.Enqueue(new SlotCommand(seq, replyField, Stopwatch.GetTimestamp(), gather, owner));
        return seq;
    }

    /// <summary>
    /// The worker is lost: one transition, under the lock, to <see cref="SlotState.Replacing"/> (when
    /// <paramref name="replacement"/> says a replacement is on its way) or <see cref="SlotState.Failed"/> with
    /// <paramref name="failure"/>, so nobody ever sees a lost slot whose fate is undecided. Returns the gathered
    /// commands it released (the learner no longer waits for them), or -1 when this generation was already handled.
    /// </summary>
    public int Lose(int generation, Func<bool> replacement, Exception failure)
    {
        lock (_lock)
        {
            if (generation != Generation || _state is SlotState.Replacing or SlotState.Failed or SlotState.Closed) return -1;
            if (replacement())
            {
                _state = SlotState.Replacing;
                Volatile.Write(ref StreamSeq, 0UL);
                return Interlocked.Exchange(ref Gathering, 0);
            }
            Failure = failure;
            _state = SlotState.Failed;
            return 0;
        }
    }

    /// <summary>Replacing (or a replacement not ready yet) → Failed: the replacement could not be started or did not come in time.</summary>
    public bool FailReplacement(Exception failure)
    {
        lock (_lock)
        {
            if (_state is not (SlotState.Replacing or SlotState.Joining or SlotState.Resetting)) return false;
            Failure = failure;
            _state = SlotState.Failed;
            return true;
        }
    }

    /// <summary>
    /// Any state → Closed; returns the connection to close, if any. A live worker is first sent
    /// <paramref name="goodbye"/> in the same locked step, so its answer (which may arrive at once) finds the slot
    /// closed and is ignored rather than taken for a reply to nothing.
    /// </summary>
    public WorkerConnection? Close(HubMessage? goodbye = null)
    {
        lock (_lock)
        {
            if (goodbye is not null && _state is SlotState.Ready or SlotState.Streaming or SlotState.Resetting)
            {
                goodbye.Seq = nextSeq();
                _connection!.Send(goodbye);
            }
            _state = SlotState.Closed;
            _pendingPush = null;
            return _connection;
        }
    }

    /// <summary>On the read loop: a message from generation <paramref name="generation"/>'s worker.</summary>
    private void Receive(int generation, ulong seq, int bodyField, ReadOnlySpan<byte> body)
    {
        SlotCommand command;
        lock (_lock)
        {
            if (generation != Generation || _state is SlotState.Closed) return; // a replaced worker's last words
            Volatile.Write(ref LastHeard, Stopwatch.GetTimestamp());
            if (seq != 0 && seq == StreamSeq) command = default;
            else if (bodyField == WorkerMessage.ProgressFieldNumber)
            {
                if (!_outstanding.TryPeek(out var head) || head.Seq != seq)
                    throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Progress for seq {seq} does not belong to the oldest pending command" +
                        (_outstanding.Count == 0 ? " (none is pending)" : $" (seq {head.Seq})") + "."));
                return;
            }
            else if (!_outstanding.TryDequeue(out command) || command.Seq != seq)
                throw new RpcException(new Status(StatusCode.FailedPrecondition, $"Reply with seq {seq} (field {bodyField}) does not answer the oldest pending command" +
                    (command.Seq == 0 ? " (none is pending)" : $" (seq {command.Seq})") + "; answer each command once, in order."));
        }
        if (command.Owner is null)
        {
            _events.OnStreamMessage(this, bodyField, body);
            return;
        }
        command.Owner.OnReply(this, command, bodyField, body);
        if (command.Gather)
        {
            Interlocked.Decrement(ref Gathering);
            _events.OnGathered(this);
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{_connection} (envs {Offset}..{Offset + Count - 1}, {State})";

    // Ties a connection to the slot's generation it was attached as, so a replaced worker's messages are ignored.
    private sealed class Link(WorkerSlot slot, int generation) : IWorkerReplySink
    {
        public void OnReply(WorkerConnection worker, ulong seq, int bodyField, ReadOnlySpan<byte> body) => slot.Receive(generation, seq, bodyField, body);

        public void OnLost(WorkerConnection worker, string reason) => slot._events.OnLost(slot, generation, reason);
    }
}
