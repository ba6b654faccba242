namespace ClusterEnv.Cluster;

/// <summary>Routes what the slots report to the part of the vector env that owns it (the call state, the rollouts, the replacements).</summary>
internal sealed class SlotEvents(VectorCallState calls, WorkerReplacements replacements) : ISlotEvents
{
    /// <summary>Set once the rollouts component exists (it needs the slots, which need this).</summary>
    public WorkerRollouts Rollouts { get; set; } = null!;

    public void OnStreamMessage(WorkerSlot slot, int bodyField, ReadOnlySpan<byte> body) => Rollouts.OnStreamMessage(slot, bodyField, body);

    /// <summary>Set once first-ready stepping exists (it needs the buffers, which come after the slots).</summary>
    public FirstReadySteps? FirstReady { get; set; }

    public void OnGathered(WorkerSlot slot)
    {
        if (FirstReady?.OnAnswered(slot) != true) calls.Done();
    }

    public void OnLost(WorkerSlot slot, int generation, string reason) => replacements.OnLost(slot, generation, reason);

    public void OnReady(WorkerSlot slot)
    {
        replacements.OnReady(slot);
        if (slot.Interrupted) FirstReady?.OnAnswered(slot); // a replacement for a worker lost during a first-ready step
        Rollouts.OnSlotReady(slot);
    }
}
