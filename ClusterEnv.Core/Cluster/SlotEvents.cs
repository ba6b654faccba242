namespace ClusterEnv.Cluster;

/// <summary>Routes what the slots report to the part of the vector env that owns it (the call state, the rollouts, the replacements).</summary>
internal sealed class SlotEvents(VectorCallState calls, WorkerReplacements replacements) : ISlotEvents
{
    /// <summary>Set once the rollouts component exists (it needs the slots, which need this).</summary>
    public WorkerRollouts Rollouts { get; set; } = null!;

    public void OnStreamMessage(WorkerSlot slot, int bodyField, ReadOnlySpan<byte> body) => Rollouts.OnStreamMessage(slot, bodyField, body);

    public void OnGathered(WorkerSlot slot) => calls.Done();

    public void OnLost(WorkerSlot slot, int generation, string reason) => replacements.OnLost(slot, generation, reason);

    public void OnReady(WorkerSlot slot)
    {
        replacements.OnReady(slot);
        Rollouts.OnSlotReady(slot);
    }
}
