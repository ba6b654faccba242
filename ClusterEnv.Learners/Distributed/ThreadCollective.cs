namespace ClusterEnv.Learners.Distributed;

/// <summary>A collective call that failed: names the rank, the operation and the backend's reason.</summary>
public sealed class CollectiveException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A world whose ranks are threads of this process (one instance per rank, from <see cref="Create"/>): for tests of
/// data-parallel learners and for several learners sharing one machine without MPI. Every rank reduces the same
/// staged values in rank order, so all ranks end with the same bits. A rank that stops calling (it threw, or exited)
/// makes the others fail after <see cref="Timeout"/> with a named error instead of waiting forever.
/// </summary>
public sealed class ThreadCollective : ICollective
{
    private sealed class World(int size, TimeSpan timeout)
    {
        public readonly Barrier Barrier = new(size);
        public readonly float[][] Floats = new float[size][];
        public readonly double[][] Doubles = new double[size][];
        public readonly byte[][] Bytes = new byte[size][];
        public readonly TimeSpan Timeout = timeout;
        public volatile string? Failed;
    }

    private readonly World _world;

    private ThreadCollective(World world, int rank)
    {
        _world = world;
        Rank = rank;
    }

    /// <summary>One collective per rank of a world of <paramref name="worldSize"/> threads.</summary>
    public static ThreadCollective[] Create(int worldSize, TimeSpan? timeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        var world = new World(worldSize, timeout ?? TimeSpan.FromSeconds(120));
        for (int r = 0; r < worldSize; r++)
        {
            world.Floats[r] = [];
            world.Doubles[r] = [];
            world.Bytes[r] = [];
        }
        return Enumerable.Range(0, worldSize).Select(r => new ThreadCollective(world, r)).ToArray();
    }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int WorldSize => _world.Floats.Length;

    /// <inheritdoc />
    public string Backend => "threads";

    /// <summary>How long a rank waits for the others at a collective before it fails.</summary>
    public TimeSpan Timeout => _world.Timeout;

    /// <inheritdoc />
    public void AllReduce(Span<float> values, ReduceOp op) => AllReduce(_world.Floats, values, op);

    /// <inheritdoc />
    public void AllReduce(Span<double> values, ReduceOp op) => AllReduce(_world.Doubles, values, op);

    /// <inheritdoc />
    public void Broadcast(Span<float> values, int root) => Broadcast(_world.Floats, values, root);

    /// <inheritdoc />
    public void Broadcast(Span<byte> bytes, int root) => Broadcast(_world.Bytes, bytes, root);

    // Every rank stages its values, then reduces all ranks' in rank order (the same bits everywhere).
    private void AllReduce<T>(T[][] slots, Span<T> values, ReduceOp op) where T : System.Numerics.INumber<T>
    {
        Stage(ref slots[Rank], values);
        Wait("AllReduce", values.Length);
        CheckLengths(slots, values.Length, "AllReduce");
        for (int i = 0; i < values.Length; i++)
        {
            T acc = slots[0][i];
            for (int r = 1; r < WorldSize; r++)
            {
                T x = slots[r][i];
                acc = op switch { ReduceOp.Max => T.Max(acc, x), ReduceOp.Min => T.Min(acc, x), _ => acc + x };
            }
            values[i] = op == ReduceOp.Mean ? acc / T.CreateChecked(WorldSize) : acc;
        }
        Wait("AllReduce", values.Length); // nobody restages before everyone has read
    }

    private void Broadcast<T>(T[][] slots, Span<T> values, int root)
    {
        CheckRoot(root);
        if (Rank == root) Stage(ref slots[root], values);
        Wait("Broadcast", values.Length);
        if (slots[root].Length < values.Length) throw Mismatch("Broadcast", values.Length, slots[root].Length);
        if (Rank != root) slots[root].AsSpan(0, values.Length).CopyTo(values);
        Wait("Broadcast", values.Length);
    }

    /// <inheritdoc />
    public void Barrier() => Wait("Barrier", 0);

    /// <inheritdoc />
    public void Dispose()
    {
        // A rank that leaves early makes the others fail at their next collective, by name, instead of waiting.
        _world.Failed ??= $"rank {Rank} left the world";
        try { _world.Barrier.RemoveParticipant(); } catch (InvalidOperationException) { }
    }

    private static void Stage<T>(ref T[] slot, ReadOnlySpan<T> values)
    {
        if (slot.Length != values.Length) slot = new T[values.Length];
        values.CopyTo(slot);
    }

    private void Wait(string op, int length)
    {
        if (_world.Failed is { } failed) throw new CollectiveException($"Rank {Rank}: {op} of {length} values cannot complete: {failed}.");
        bool ok;
        try { ok = _world.Barrier.SignalAndWait(_world.Timeout); }
        catch (BarrierPostPhaseException e) { throw new CollectiveException($"Rank {Rank}: {op} failed: {e.Message}", e); }
        if (!ok)
        {
            _world.Failed ??= $"rank {Rank} waited {_world.Timeout.TotalSeconds:0.#} s at a {op}";
            throw new CollectiveException($"Rank {Rank}: {op} of {length} values did not complete within {_world.Timeout.TotalSeconds:0.#} s; another rank stopped calling collectives (it failed or took a different path).");
        }
        if (_world.Failed is { } after) throw new CollectiveException($"Rank {Rank}: {op} of {length} values cannot complete: {after}.");
    }

    private void CheckLengths<T>(T[][] staged, int length, string op)
    {
        for (int r = 0; r < staged.Length; r++)
            if (staged[r].Length != length) throw Mismatch(op, length, staged[r].Length, r);
    }

    private CollectiveException Mismatch(string op, int mine, int theirs, int other = -1) =>
        new($"Rank {Rank}: {op} of {mine} values, but rank {(other >= 0 ? other : 0)} gave {theirs}; every rank must call the same collectives with the same lengths.");

    private void CheckRoot(int root)
    {
        if (root < 0 || root >= WorldSize) throw new ArgumentOutOfRangeException(nameof(root), root, $"The root must be a rank of this world of {WorldSize}.");
    }
}
