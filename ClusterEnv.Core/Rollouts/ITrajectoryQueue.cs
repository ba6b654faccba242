namespace ClusterEnv.Rollouts;

/// <summary>
/// Where workers' rollouts wait for the learner: each entry is one rollout as the protobuf bytes of its
/// <c>RolloutResult</c> message (the same bytes a worker sends), so any queue can hold them and any process can read
/// them. The fleet adds as rollouts arrive; the learner takes batches. Implementations: <see cref="InMemoryTrajectoryQueue"/>
/// (the default) and a Redis list (<c>ClusterEnv.Learners.Queues.RedisTrajectoryQueue</c>).
/// </summary>
public interface ITrajectoryQueue : IDisposable
{
    /// <summary>What and where the queue is, for messages ("memory, capacity 64", "redis 127.0.0.1:6379 key …").</summary>
    string Description { get; }

    /// <summary>Adds one rollout (copied). What happens when the queue is full depends on the implementation's full mode.</summary>
    /// <exception cref="TrajectoryQueueException">The queue is full in <see cref="QueueFullMode.Reject"/> mode, or its store failed.</exception>
    void Add(ReadOnlySpan<byte> rollout);

    /// <summary>
    /// Moves up to <paramref name="max"/> rollouts, oldest first, into <paramref name="into"/>; waits up to
    /// <paramref name="wait"/> for the first. Returns how many were taken (0 when none came in time).
    /// </summary>
    int Take(int max, List<byte[]> into, TimeSpan wait, CancellationToken cancellationToken = default);

    /// <summary>Rollouts waiting now.</summary>
    long Count { get; }

    /// <summary>Rollouts thrown away because the queue was full (<see cref="QueueFullMode.DropOldest"/>).</summary>
    long Dropped { get; }
}

/// <summary>What a bounded queue does when a rollout arrives and it is full.</summary>
public enum QueueFullMode
{
    /// <summary>The adder waits until the learner takes something: back-pressure reaches the worker's stream (the default).</summary>
    Block,
    /// <summary>The oldest waiting rollout is dropped and counted in <see cref="ITrajectoryQueue.Dropped"/>: freshest data wins.</summary>
    DropOldest,
    /// <summary>The add throws <see cref="TrajectoryQueueException"/>: a full queue is a configuration error.</summary>
    Reject,
}

/// <summary>A trajectory queue failed: full in reject mode, or its store (Redis) is unreachable; the message names which and where.</summary>
public sealed class TrajectoryQueueException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The default trajectory queue: a bounded FIFO in the learner's memory. With streaming workers and credit K per worker,
/// at most K × workers rollouts exist at once, so a capacity of at least that never fills; <see cref="FullMode"/> says
/// what happens if it does.
/// </summary>
public sealed class InMemoryTrajectoryQueue : ITrajectoryQueue
{
    private readonly Queue<byte[]> _items = new();
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _available = new(0);
    private readonly SemaphoreSlim _space;
    private long _dropped;
    private bool _disposed;

    /// <summary>A queue holding at most <paramref name="capacity"/> rollouts.</summary>
    public InMemoryTrajectoryQueue(int capacity = 256, QueueFullMode fullMode = QueueFullMode.Block)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
        FullMode = fullMode;
        _space = new SemaphoreSlim(capacity);
    }

    /// <summary>The most rollouts it holds.</summary>
    public int Capacity { get; }

    /// <summary>What a full queue does with one more rollout.</summary>
    public QueueFullMode FullMode { get; }

    /// <inheritdoc />
    public string Description => $"memory (capacity {Capacity}, {FullMode.ToString().ToLowerInvariant()} when full)";

    /// <inheritdoc />
    public long Count
    {
        get { lock (_lock) return _items.Count; }
    }

    /// <inheritdoc />
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <inheritdoc />
    public void Add(ReadOnlySpan<byte> rollout)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var copy = rollout.ToArray();
        if (!_space.Wait(0))
        {
            switch (FullMode)
            {
                case QueueFullMode.Reject:
                    throw new TrajectoryQueueException($"The trajectory queue is full ({Capacity} rollouts) and rejects more; the learner is not keeping up. " +
                                                       "Raise the capacity, grant less credit, or use QueueFullMode.Block or DropOldest.");
                case QueueFullMode.DropOldest:
                    lock (_lock)
                    {
                        // Take the oldest's permit as well as the item, so that no taker waits for an item that is gone.
                        if (_available.Wait(0))
                        {
                            _items.Dequeue();
                            Interlocked.Increment(ref _dropped);
                            _items.Enqueue(copy);
                            _available.Release();
                            return;
                        }
                    }
                    _space.Wait(); // every waiting item is being taken right now; its space frees at once
                    break;
                default:
                    _space.Wait();
                    break;
            }
        }
        lock (_lock) _items.Enqueue(copy);
        _available.Release();
    }

    /// <inheritdoc />
    public int Take(int max, List<byte[]> into, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        if (!_available.Wait(wait, cancellationToken)) return 0;
        int taken = 0;
        lock (_lock)
        {
            // One permit is ours already; take more only where a permit can be had at once.
            into.Add(_items.Dequeue());
            taken = 1;
            while (taken < max && _available.Wait(0))
            {
                into.Add(_items.Dequeue());
                taken++;
            }
        }
        _space.Release(taken);
        return taken;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _disposed = true;
    }
}
