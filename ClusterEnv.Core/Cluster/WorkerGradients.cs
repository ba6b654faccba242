using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using ClusterEnv.Policies;
using ClusterEnv.Transport.Protos;
using Google.Protobuf;

namespace ClusterEnv.Cluster;

/// <summary>A policy gradient a worker computed (or why it could not).</summary>
/// <param name="WorkerIndex">The worker, in <see cref="ClusterVecEnv.Workers"/> order.</param>
/// <param name="Version">The point's version the request carried.</param>
/// <param name="Gradient">The gradient of −J at that point (empty on error).</param>
/// <param name="Returns">The undiscounted returns of the episodes behind it.</param>
/// <param name="Steps">Env steps taken.</param>
/// <param name="Error">Null, or the worker's error.</param>
/// <param name="Replaced">The worker asked was lost and a replacement has taken its slot (ClusterOptions.ReplaceLostWorkers):
/// no gradient came; ask the slot again.</param>
public sealed record GradientReply(int WorkerIndex, ulong Version, float[] Gradient, double[] Returns, long Steps, string? Error = null, bool Replaced = false);

/// <summary>
/// Workers that compute policy gradients (Rennala / Malenia NIGT): a request goes to one worker and returns at once;
/// replies arrive in <see cref="Take"/>'s queue as they come, tagged with the point's version, so a learner keeps every
/// worker busy and never waits for the slowest one.
/// </summary>
public sealed class WorkerGradients : IReplyOwner
{
    private readonly WorkerSlot[] _slots;
    private readonly VectorCallState _calls;
    private readonly WorkerRollouts _rollouts;
    private readonly TimeSpan _stepTimeout;
    private readonly BlockingCollection<GradientReply> _replies = new();
    private readonly WorkerReplacements _replacements;
    private readonly ConcurrentDictionary<int, (int Generation, long Since, ulong Version, int Size)> _asked = new(); // outstanding requests by slot

    internal WorkerGradients(WorkerSlot[] slots, VectorCallState calls, WorkerRollouts rollouts, WorkerReplacements replacements, TimeSpan stepTimeout)
    {
        _replacements = replacements;
        _slots = slots;
        _calls = calls;
        _rollouts = rollouts;
        _stepTimeout = stepTimeout;
    }

    /// <summary>
    /// Asks worker <paramref name="workerIndex"/> for one truncated-REINFORCE policy gradient at <paramref name="point"/>
    /// (the weights of <paramref name="spec"/>), computed from episodes on its envs; returns at once. The reply comes
    /// through <see cref="Take"/>. The envs are used for the episodes, so stepping afterwards needs a reset.
    /// </summary>
    public void Request(int workerIndex, ulong version, PolicySpec spec, ReadOnlySpan<float> point, GradientSettings settings, ulong seed = 0)
    {
        _calls.ThrowIfUnusable();
        ArgumentOutOfRangeException.ThrowIfNegative(workerIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(workerIndex, _slots.Length);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(settings);
        _rollouts.ThrowIfStreaming("asking for gradients");
        var cmd = new GradientCommand
        {
            Version = version, SpecJson = spec.ToJson(), Episodes = (uint)settings.Episodes, Horizon = (uint)settings.Horizon, Gamma = settings.Gamma,
            StandardizeReturns = settings.StandardizeReturns, Seed = seed,
            Point = new Tensor { Dtype = Transport.Protos.DType.Float32, Shape = { point.Length }, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(point)) },
        };
        var s = _slots[workerIndex];
        if (!_asked.TryAdd(workerIndex, (s.Generation, Stopwatch.GetTimestamp(), version, point.Length)))
            throw new InvalidOperationException($"Worker {workerIndex} ('{s.Id}') is still computing a gradient; take its reply (envs.Gradients.Take) before asking it again.");
        _calls.NeedsReset = true;
        s.Send(new HubMessage { Gradient = cmd }, WorkerMessage.GradientResultFieldNumber, gather: false, this); // false: being replaced, and Take says so
    }

    /// <summary>Gradient requests not answered yet.</summary>
    public int Outstanding => _asked.Count;

    /// <summary>
    /// The next gradient any worker sent, waiting up to <paramref name="wait"/>; false when none came. A worker lost
    /// and replaced meanwhile gives a reply with <see cref="GradientReply.Replaced"/> set. Throws when a worker was lost
    /// for good, or has been silent on a request — no reply and no progress — for <see cref="ClusterOptions.StepTimeout"/>.
    /// </summary>
    public bool Take(TimeSpan wait, out GradientReply reply)
    {
        _calls.ThrowIfFatal();
        if (_replies.TryTake(out reply!, wait))
        {
            _asked.TryRemove(reply.WorkerIndex, out _);
            return true;
        }
        _calls.ThrowIfFatal();
        long timeout = (long)(_stepTimeout.TotalSeconds * Stopwatch.Frequency);
        foreach (var (w, asked) in _asked)
        {
            var s = _slots[w];
            var state = s.State;
            if (s.Generation != asked.Generation && state is SlotState.Ready or SlotState.Streaming)
            {
                _asked.TryRemove(w, out _);
                reply = new GradientReply(w, 0, [], [], 0, Replaced: true);
                return true;
            }
            if (s.Generation == asked.Generation && state is SlotState.Ready && Stopwatch.GetTimestamp() - Math.Max(asked.Since, Volatile.Read(ref s.LastHeard)) > timeout)
            {
                var hung = new WorkerTimeoutException($"Worker '{s.Id}' has not answered a gradient request in {_stepTimeout.TotalSeconds:0.###} s (ClusterOptions.StepTimeout); it may be hung in its env.", [s.Id]);
                _calls.Fail(hung);
                throw hung;
            }
        }
        return false;
    }

    void IReplyOwner.OnReply(WorkerSlot slot, in SlotCommand command, int bodyField, ReadOnlySpan<byte> body)
    {
        if (bodyField == WorkerMessage.ErrorFieldNumber)
        {
            var e = WorkerError.Parser.ParseFrom(body);
            _replies.Add(new GradientReply(slot.Index, 0, [], [], 0, $"worker '{slot.Id}': {e.Type}: {e.Message}"));
            return;
        }
        var r = GradientResult.Parser.ParseFrom(body);
        var gradient = r.Gradient is null ? default : MemoryMarshal.Cast<byte, float>(r.Gradient.Data.Span);
        // Checked before the learner sees it: the point asked about, one value per weight, all finite.
        if (_asked.TryGetValue(slot.Index, out var asked))
        {
            string? problem = r.Version != asked.Version ? $"a gradient at version {r.Version}; version {asked.Version} was asked for"
                : gradient.Length != asked.Size ? $"a gradient of {gradient.Length} values for a policy of {asked.Size} weights"
                : ActorCritic.IndexOfNonFinite(gradient) is int bad and >= 0 ? $"a non-finite gradient (value {bad} is {gradient[bad]})"
                : r.Returns.Any(x => !double.IsFinite(x)) ? "a non-finite episode return"
                : null;
            if (problem is not null) throw _replacements.Rejected(slot, problem); // Take reports the request as Replaced (or the loss)
        }
        _replies.Add(new GradientReply(slot.Index, r.Version, gradient.ToArray(), [.. r.Returns], (long)r.Steps));
    }
}
