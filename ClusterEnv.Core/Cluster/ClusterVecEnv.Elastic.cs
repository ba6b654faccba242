using System.Collections.Concurrent;
using System.Diagnostics;
using ClusterEnv.Transport.Protos;

namespace ClusterEnv.Cluster;

// Elastic membership while rollouts stream (ClusterOptions.ReplaceLostWorkers): a lost worker is replaced by a worker
// registering under its id; the replacement takes the same sub-env slots, is reset with fresh seeds, gets the current
// policy at the learner's next publish and then streams. The other workers never stop.
public sealed partial class ClusterVecEnv
{
    private readonly ConcurrentDictionary<string, long> _replacingSince = new(); // lost worker id → Stopwatch timestamp of the loss
    private readonly ConcurrentQueue<double> _replaceSeconds = new();
    private int _workersLost, _workersReplaced;

    /// <summary>Workers lost while streaming and handed to a replacement.</summary>
    public int WorkersLost => Volatile.Read(ref _workersLost);

    /// <summary>Replacements that took over and stream again.</summary>
    public int WorkersReplaced => Volatile.Read(ref _workersReplaced);

    /// <summary>Seconds from each loss to its replacement streaming again, in order.</summary>
    public IReadOnlyList<double> ReplaceSeconds => [.. _replaceSeconds];

    /// <summary>How many times worker <paramref name="workerIndex"/>'s slot has been taken over by a replacement (0: the original worker).</summary>
    public int WorkerGeneration(int workerIndex) => _slots[workerIndex].Generation;

    // On the lost worker's read loop. True when a replacement is on its way and the loss is not fatal.
    private bool TryReplace(WorkerChannel s, string reason)
    {
        if (!_options.ReplaceLostWorkers || _state == State.Closed) return false;
        // A call waits for this worker's answer: a lockstep Step or Reset goes on without it (End waits for the
        // replacement); a rollout collection or the end of a stream cannot, so the loss wakes it, by name.
        if (Volatile.Read(ref s.Gathering) > 0 && !(_stream is null && _interruptible)) return false;
        if (Volatile.Read(ref _workersLost) >= _options.MaxReplacements) return false;
        if (!_replacingSince.TryAdd(s.Id, Stopwatch.GetTimestamp())) return false;
        Interlocked.Increment(ref _workersLost);
        ReleaseGather(s);
        _ = Task.Run(() =>
        {
            string? why = null;
            try
            {
                if (!_fleet.Launcher.Replace(s.Id) && _fleet.Launcher is not ExternalWorkers)
                    why = $"{_fleet.Launcher.Description} could not start a replacement";
            }
            catch (Exception e)
            {
                why = $"starting a replacement failed ({e.GetType().Name}: {e.Message})";
            }
            if (why is null) return; // external workers may re-register by themselves until ReplaceTimeout
            _replacingSince.TryRemove(s.Id, out _);
            Interlocked.CompareExchange(ref _fatal, new WorkerLostException(s.Id, $"{reason}; {why}", _fleet.Describe(s.Id)), null);
        });
        return true;
    }

    // The fleet asks here about a worker registering after all expected ones did.
    private bool TryAdmitReplacement(WorkerConnection c, out string? refusal)
    {
        refusal = null;
        int w = Array.FindIndex(_slots, s => s.Id == c.Id);
        if (w < 0 || !_replacingSince.ContainsKey(c.Id)) return false; // not a replacement: the fleet refuses it as usual
        var old = _slots[w];
        if (c.NumEnvs != old.Count)
            refusal = $"Worker '{c.Id}' replaces one that hosted {old.Count} envs but brings {c.NumEnvs}; start it with --num-envs {old.Count}.";
        else if (c.Registration.EnvId != _options.EnvId)
            refusal = $"Worker '{c.Id}' hosts '{c.Registration.EnvId}' but this vector env runs '{_options.EnvId}'.";
        else if (!c.ObservationSpace.Equals(SingleObservationSpace) || !c.ActionSpace.Equals(SingleActionSpace))
            refusal = $"Worker '{c.Id}' has spaces {c.ObservationSpace} / {c.ActionSpace}; the others have {SingleObservationSpace} / {SingleActionSpace}.";
        if (refusal is not null) return true;
        var fresh = new WorkerChannel(c, NextSeq)
        {
            Offset = old.Offset, Count = old.Count, Generation = old.Generation + 1, NeedsStream = 1,
            StreamReceived = Interlocked.Read(ref old.StreamReceived), // the slot's count goes on across replacements
        };
        _ = Task.Run(() => TakeOver(w, fresh));
        return true;
    }

    // Once the hub has answered the replacement's registration: it takes the slot, is welcomed and reset with fresh
    // seeds (its replies are read like any other worker's); its stream starts with its first push (PushPolicy).
    private async Task TakeOver(int w, WorkerChannel fresh)
    {
        try
        {
            await fresh.Connection.Started.WaitAsync(_options.ConnectTimeout).ConfigureAwait(false);
        }
        catch (Exception)
        {
            return; // its stream ended before it started: the replacement deadline will say so
        }
        fresh.Connection.Attach(this);
        fresh.Connection.Drained = fresh.SendPendingPush;
        Volatile.Write(ref _slots[w], fresh); // replies find their channel by connection from now on
        fresh.Connection.Send(WelcomeFor(fresh));
        var reset = new ResetCommand();
        int seedBase = Random.Shared.Next(1, int.MaxValue / 2);
        for (int i = 0; i < fresh.Count; i++)
        {
            reset.HasSeed.Add(true);
            reset.Seeds.Add(seedBase + i);
        }
        fresh.SendTracked(new HubMessage { Reset = reset }, WorkerMessage.ResetFieldNumber, gather: false);
        if (Volatile.Read(ref _latestPush) is { } push && push.Bytes <= fresh.Connection.MaxCommandSize)
        {
            fresh.QueuePush(push.Message, push.Version, push.Bytes);
            StartReplacementStream(fresh);
        }
    }

    // From PushPolicy: a replacement's first push is queued, so its stream may start (the push goes first on the wire).
    private void StartReplacementStream(WorkerChannel s)
    {
        if (Volatile.Read(ref s.NeedsStream) == 0 || _stream is not { } stream) return;
        if (Interlocked.Exchange(ref s.NeedsStream, 0) == 0) return;
        StartStream(s, stream);
        if (_replacingSince.TryRemove(s.Id, out long since))
        {
            _replaceSeconds.Enqueue(Stopwatch.GetElapsedTime(since).TotalSeconds);
            Interlocked.Increment(ref _workersReplaced);
        }
    }

    // A lockstep Step or Reset stops waiting for a lost worker that is being replaced (End then waits for the
    // replacement instead). Called from the loss and from End, whichever comes first; the exchange makes it once.
    private void ReleaseGather(WorkerChannel s)
    {
        int waiting = Interlocked.Exchange(ref s.Gathering, 0);
        for (int i = 0; i < waiting; i++)
            if (Interlocked.Decrement(ref _pending) == 0) _replied.Set();
    }

    // Lockstep: every worker being replaced has taken its slot and answered its reset (fresh seeds) before the call
    // goes on, or ReplaceTimeout ends the run by name. Returns the slots taken over, whose envs start new episodes.
    private bool AwaitReplacements()
    {
        if (_replacingSince.IsEmpty) return false;
        bool any = false;
        for (int w = 0; w < _slots.Length; w++)
        {
            if (!_replacingSince.ContainsKey(_slots[w].Id)) continue;
            while (true)
            {
                var s = Volatile.Read(ref _slots[w]);
                if (!Volatile.Read(ref s.Lost) && Volatile.Read(ref s.ResetAnswered))
                {
                    if (_replacingSince.TryRemove(s.Id, out long since))
                    {
                        _replaceSeconds.Enqueue(Stopwatch.GetElapsedTime(since).TotalSeconds);
                        Interlocked.Increment(ref _workersReplaced);
                    }
                    _interrupted[w] = any = true;
                    break;
                }
                if (Volatile.Read(ref _fatal) is { } fatal)
                {
                    Break(fatal.Message);
                    throw fatal;
                }
                ThrowIfAReplacementIsLate();
                Thread.Sleep(5);
            }
        }
        return any;
    }

    // Sub-envs of a replaced worker whose episodes were cut short: the next Step reports them truncated, with the
    // replacement's first observation, instead of stepping them.
    private bool[] _interrupted = [];

    // A lost worker whose replacement has not registered within ReplaceTimeout ends the run, by name.
    private void ThrowIfAReplacementIsLate()
    {
        long now = Stopwatch.GetTimestamp();
        foreach (var (id, since) in _replacingSince)
        {
            if (Stopwatch.GetElapsedTime(since, now) <= _options.ReplaceTimeout) continue;
            var late = new WorkerLostException(id, $"it was lost and no replacement registered within {_options.ReplaceTimeout.TotalSeconds:0.#} s (ClusterOptions.ReplaceTimeout)",
                _fleet.Describe(id));
            Interlocked.CompareExchange(ref _fatal, late, null);
            Break(late.Message);
            throw late;
        }
    }
}
