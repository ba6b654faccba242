using System.Collections.Concurrent;
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

// Workers that compute policy gradients (Rennala / Malenia NIGT): a request goes to one worker and returns at once;
// replies arrive in TakeGradient's queue as they come, tagged with the point's version, so a learner keeps every
// worker busy and never waits for the slowest one.
public sealed partial class ClusterVecEnv
{
    private readonly BlockingCollection<GradientReply> _gradients = new();
    private readonly ConcurrentDictionary<int, (WorkerChannel Channel, long Since)> _gradientAsked = new(); // outstanding requests by slot

    /// <summary>
    /// Asks worker <paramref name="workerIndex"/> for one truncated-REINFORCE policy gradient at <paramref name="point"/>
    /// (the weights of <paramref name="spec"/>), computed from episodes on its envs; returns at once. The reply comes
    /// through <see cref="TakeGradient"/>. The envs are used for the episodes, so stepping afterwards needs a reset.
    /// </summary>
    public void RequestGradient(int workerIndex, ulong version, PolicySpec spec, ReadOnlySpan<float> point, GradientSettings settings, ulong seed = 0)
    {
        ThrowIfUnusable();
        ArgumentOutOfRangeException.ThrowIfNegative(workerIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(workerIndex, _slots.Length);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(settings);
        if (_stream is not null) throw new InvalidOperationException("Rollouts are streaming from the workers; stop the stream before asking for gradients.");
        var cmd = new GradientCommand
        {
            Version = version, SpecJson = spec.ToJson(), Episodes = (uint)settings.Episodes, Horizon = (uint)settings.Horizon, Gamma = settings.Gamma,
            StandardizeReturns = settings.StandardizeReturns, Seed = seed,
            Point = new Tensor { Dtype = Transport.Protos.DType.Float32, Shape = { point.Length }, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(point)) },
        };
        if (!_gradientAsked.TryAdd(workerIndex, (_slots[workerIndex], System.Diagnostics.Stopwatch.GetTimestamp())))
            throw new InvalidOperationException($"Worker {workerIndex} ('{_slots[workerIndex].Id}') is still computing a gradient; take its reply (TakeGradient) before asking it again.");
        _needsReset = true;
        _slots[workerIndex].SendTracked(new HubMessage { Gradient = cmd }, WorkerMessage.GradientResultFieldNumber, gather: false);
    }

    /// <summary>Gradient requests not answered yet.</summary>
    public int GradientsOutstanding => _gradientAsked.Count;

    /// <summary>
    /// The next gradient any worker sent, waiting up to <paramref name="wait"/>; false when none came. A worker lost
    /// and replaced meanwhile gives a reply with <see cref="GradientReply.Replaced"/> set. Throws when a worker was lost
    /// for good, or has been silent on a request — no reply and no progress — for <see cref="ClusterOptions.StepTimeout"/>.
    /// </summary>
    public bool TakeGradient(TimeSpan wait, out GradientReply reply)
    {
        if (Volatile.Read(ref _fatal) is { } fatal) throw fatal;
        if (_gradients.TryTake(out reply!, wait))
        {
            _gradientAsked.TryRemove(reply.WorkerIndex, out _);
            return true;
        }
        if (Volatile.Read(ref _fatal) is { } late) throw late;
        long timeout = (long)(_options.StepTimeout.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        foreach (var (w, asked) in _gradientAsked)
        {
            var now = Volatile.Read(ref _slots[w]);
            if (now != asked.Channel && !now.Lost)
            {
                _gradientAsked.TryRemove(w, out _);
                reply = new GradientReply(w, 0, [], [], 0, Replaced: true);
                return true;
            }
            if (now == asked.Channel && System.Diagnostics.Stopwatch.GetTimestamp() - Math.Max(asked.Since, Volatile.Read(ref now.LastHeard)) > timeout && !_replacingSince.ContainsKey(now.Id))
            {
                var hung = new WorkerTimeoutException($"Worker '{now.Id}' has not answered a gradient request in {_options.StepTimeout.TotalSeconds:0.###} s (ClusterOptions.StepTimeout); it may be hung in its env.", [now.Id]);
                Interlocked.CompareExchange(ref _fatal, hung, null);
                throw hung;
            }
        }
        return false;
    }

    private void OnGradientReply(WorkerChannel s, int bodyField, ReadOnlySpan<byte> body)
    {
        int w = Array.IndexOf(_slots, s);
        if (bodyField == WorkerMessage.ErrorFieldNumber)
        {
            var e = WorkerError.Parser.ParseFrom(body);
            _gradients.Add(new GradientReply(w, 0, [], [], 0, $"worker '{s.Id}': {e.Type}: {e.Message}"));
            return;
        }
        var r = GradientResult.Parser.ParseFrom(body);
        _gradients.Add(new GradientReply(w, r.Version, MemoryMarshal.Cast<byte, float>(r.Gradient.Data.Span).ToArray(), [.. r.Returns], (long)r.Steps));
    }
}
