using ClusterEnv.Nn;

namespace ClusterEnv.Learners.Distributed;

/// <summary>
/// Averages a model's gradients over the ranks while its backward pass still runs, as PyTorch's DDP does: backward
/// tells which ranges of the flat gradient buffer are final (<see cref="IGradientReady"/>, the last layer first), the
/// ranges are gathered into buckets of adjacent gradients, and each bucket's all-reduce starts as soon as it is full
/// or the next final range is not adjacent to it (so the actor's gradients travel while the critic's backward runs).
/// <see cref="Finish"/> starts the last bucket and waits for all. The result is the same as one all-reduce of the whole
/// buffer after backward: every element is reduced once, with the same operation.
/// </summary>
public sealed class GradientBuckets : IGradientReady
{
    /// <summary>The default bucket size: 262,144 floats (1 MiB, PyTorch DDP's first bucket). A small MLP's actor and critic are a bucket each.</summary>
    public const int DefaultCapacity = 1 << 18;

    private readonly ICollective _dp;
    private readonly float[] _grads;
    private readonly int _capacity;
    private int _start = -1, _end;  // the open bucket [start, end); start < 0 when none
    private long _covered;          // gradients handed to all-reduces in this backward
    private int _started;

    /// <summary>Buckets of up to <paramref name="capacity"/> floats of <paramref name="grads"/> (the store's gradient buffer), averaged over <paramref name="dp"/>.</summary>
    public GradientBuckets(ICollective dp, float[] grads, int capacity = DefaultCapacity)
    {
        ArgumentNullException.ThrowIfNull(dp);
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _dp = dp;
        _grads = grads;
        _capacity = capacity;
    }

    /// <summary>All-reduces started in the last backward (for benchmarks and tests).</summary>
    public int LastBuckets { get; private set; }

    internal bool Covers(float[] grads, ICollective dp) => ReferenceEquals(grads, _grads) && ReferenceEquals(dp, _dp);

    /// <inheritdoc />
    public void Ready(int offset, int length)
    {
        if (length == 0) return;
        if ((uint)offset > (uint)_grads.Length || length < 0 || offset + length > _grads.Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"Gradients [{offset}, {offset + length}) are outside the buffer of {_grads.Length}.");
        if (_start >= 0 && offset + length == _start && _end - offset <= _capacity) _start = offset;  // backward walks down a network's layers
        else if (_start >= 0 && offset == _end && _end + length - _start <= _capacity) _end += length;
        else
        {
            Flush();
            (_start, _end) = (offset, offset + length);
        }
        if (_end - _start >= _capacity) Flush();
        else _dp.ProgressAllReduces();
    }

    /// <summary>Starts the last bucket and waits for every bucket's all-reduce; checks that the backward covered the whole buffer.</summary>
    public void Finish()
    {
        Flush();
        _dp.WaitAllReduces();
        LastBuckets = _started;
        long covered = _covered;
        (_covered, _started) = (0, 0);
        if (covered != _grads.Length)
            throw new InvalidOperationException($"The backward pass reported {covered} of {_grads.Length} gradients as final; every rank must all-reduce every gradient (a layer that does not tell IGradientReady?).");
    }

    private void Flush()
    {
        if (_start < 0) return;
        _dp.StartAllReduce(_grads, _start, _end - _start, ReduceOp.Mean);
        _covered += _end - _start;
        _started++;
        _start = -1;
    }
}
