using System.Diagnostics;

namespace ClusterEnv.Worker;

/// <summary>
/// When a long command (a rollout, a stream's rollout, a gradient) reports progress: at most once per interval (the
/// hub's Welcome sets it so that a healthy worker always reports well within the learner's step timeout). One for all.
/// </summary>
internal struct ProgressThrottle(long intervalTicks)
{
    private long _next = intervalTicks > 0 ? Stopwatch.GetTimestamp() + intervalTicks : long.MaxValue;

    /// <summary>True when a progress message is due now (and the next one then counts from now).</summary>
    public bool Due()
    {
        long now = Stopwatch.GetTimestamp();
        if (now < _next) return false;
        _next = now + intervalTicks;
        return true;
    }
}
