namespace ClusterEnv.Learners.Distributed;

/// <summary>How an all-reduce combines the ranks' values.</summary>
public enum ReduceOp
{
    /// <summary>Element-wise sum.</summary>
    Sum,
    /// <summary>Element-wise sum divided by the world size (gradient averaging).</summary>
    Mean,
    /// <summary>Element-wise maximum.</summary>
    Max,
    /// <summary>Element-wise minimum.</summary>
    Min,
}

/// <summary>
/// The collectives a data-parallel learner needs, over all ranks of its world. Every rank must make the same calls in
/// the same order with the same lengths. Implementations: <see cref="SingleCollective"/> (a world of 1),
/// <see cref="ThreadCollective"/> (ranks as threads of one process), <see cref="MpiCollective"/> (OpenMPI), and a
/// device backend (NCCL) for GPU learners. Errors name the rank and the backend's own message.
/// </summary>
public interface ICollective : IDisposable
{
    /// <summary>This rank.</summary>
    int Rank { get; }

    /// <summary>Ranks in the world.</summary>
    int WorldSize { get; }

    /// <summary>What it runs on, for messages ("MPI (Open MPI v4.1.4)", "threads", "single").</summary>
    string Backend { get; }

    /// <summary>Combines <paramref name="values"/> over all ranks, in place; afterwards every rank holds the same bits.</summary>
    void AllReduce(Span<float> values, ReduceOp op);

    /// <summary>Combines <paramref name="values"/> over all ranks, in place; afterwards every rank holds the same bits.</summary>
    void AllReduce(Span<double> values, ReduceOp op);

    /// <summary>Copies rank <paramref name="root"/>'s <paramref name="values"/> to every rank.</summary>
    void Broadcast(Span<float> values, int root);

    /// <summary>Copies rank <paramref name="root"/>'s <paramref name="bytes"/> to every rank.</summary>
    void Broadcast(Span<byte> bytes, int root);

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();

    /// <summary>
    /// Starts an all-reduce of <paramref name="buffer"/>[<paramref name="start"/> .. + <paramref name="length"/>) in
    /// place that ends by <see cref="WaitAllReduces"/>; until then the caller must not touch that range. Every rank
    /// starts the same all-reduces in the same order. Backends without non-blocking collectives run it now (the
    /// default), which is correct, only without overlap.
    /// </summary>
    void StartAllReduce(float[] buffer, int start, int length, ReduceOp op) => AllReduce(buffer.AsSpan(start, length), op);

    /// <summary>Lets started all-reduces advance (MPI moves a non-blocking collective only inside its own calls); never waits.</summary>
    void ProgressAllReduces() { }

    /// <summary>Returns once every all-reduce started by <see cref="StartAllReduce"/> has ended (and, for <see cref="ReduceOp.Mean"/>, been scaled).</summary>
    void WaitAllReduces() { }
}

/// <summary>A world of one rank: every collective is the identity.</summary>
public sealed class SingleCollective : ICollective
{
    /// <summary>The one instance.</summary>
    public static SingleCollective Instance { get; } = new();

    /// <inheritdoc />
    public int Rank => 0;

    /// <inheritdoc />
    public int WorldSize => 1;

    /// <inheritdoc />
    public string Backend => "single";

    /// <inheritdoc />
    public void AllReduce(Span<float> values, ReduceOp op) { }

    /// <inheritdoc />
    public void AllReduce(Span<double> values, ReduceOp op) { }

    /// <inheritdoc />
    public void Broadcast(Span<float> values, int root) => CheckRoot(root);

    /// <inheritdoc />
    public void Broadcast(Span<byte> bytes, int root) => CheckRoot(root);

    /// <inheritdoc />
    public void Barrier() { }

    /// <inheritdoc />
    public void Dispose() { }

    private static void CheckRoot(int root)
    {
        if (root != 0) throw new ArgumentOutOfRangeException(nameof(root), root, "A world of 1 has only rank 0.");
    }
}
