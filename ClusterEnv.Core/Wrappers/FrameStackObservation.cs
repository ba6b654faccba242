using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Wrappers;

/// <summary>How <see cref="FrameStackObservation"/> fills the stack at a reset (Gymnasium's <c>padding_type</c>).</summary>
public enum FramePadding
{
    /// <summary>With copies of the reset observation ("reset", Gymnasium's default).</summary>
    Reset,
    /// <summary>With the space's zero ("zero": 0 clipped into each element's bounds).</summary>
    Zero,
    /// <summary>With an observation you give.</summary>
    Custom,
}

/// <summary>
/// Gymnasium's <c>FrameStackObservation</c>: the last <c>stack_size</c> observations, oldest first, in the space
/// <c>batch_space(space, stack_size)</c>; after a reset the older slots hold the padding (<see cref="FramePadding"/>).
/// Keeps one ring of frames and writes the stack in order, so a step copies each frame once.
/// </summary>
public sealed class FrameStackObservation : EnvWrapper, IByteObservationEnv
{
    private readonly Space _space;
    private readonly int _stack, _frame;
    private readonly float[] _ring, _padding;
    private readonly FramePadding _paddingType;
    private int _newest;
    // Images: the ring holds bytes from the wrapped env's byte path, widened only when a float observation is asked for.
    private readonly IByteObservationEnv? _byteInner;
    private readonly byte[] _byteRing = [], _bytePadding = [], _byteStack = [];

    /// <summary>Wraps <paramref name="env"/>, stacking <paramref name="stackSize"/> observations.</summary>
    /// <param name="env">The env; its observation space must be a Box, Discrete, MultiDiscrete or MultiBinary (flatten Dict and Tuple spaces first).</param>
    /// <param name="stackSize">Observations per stack, ≥ 1.</param>
    /// <param name="padding">What fills the stack at a reset.</param>
    /// <param name="customPadding">The observation to pad with when <paramref name="padding"/> is <see cref="FramePadding.Custom"/>; it must belong to the space.</param>
    public FrameStackObservation(IEnv env, int stackSize, FramePadding padding = FramePadding.Reset, float[]? customPadding = null) : base(env)
    {
        if (stackSize <= 0) throw new ArgumentOutOfRangeException(nameof(stackSize), stackSize, "The stack_size needs to be greater than zero.");
        var inner = env.ObservationSpace;
        if (inner is DictSpace or TupleSpace)
            throw new ArgumentException($"FrameStackObservation stacks array observations; {inner} is structured. Wrap the env in FlattenObservation first.");
        _stack = stackSize;
        _frame = inner.EncodedSize;
        _space = SpaceBatching.BatchSpace(inner, stackSize);
        _byteInner = ByteObservations.Of(env);
        _ring = _byteInner is null ? new float[stackSize * _frame] : [];
        _padding = new float[_frame];
        if (_byteInner is not null)
        {
            _byteRing = new byte[stackSize * _frame];
            _bytePadding = new byte[_frame];
            _byteStack = new byte[stackSize * _frame];
        }
        _paddingType = padding;
        switch (padding)
        {
            case FramePadding.Zero:
                ZeroOf(inner, _padding);
                break;
            case FramePadding.Custom:
                if (customPadding is null || customPadding.Length != _frame)
                    throw new ArgumentException($"Custom padding needs an observation of {_frame} values for {inner}; got {(customPadding is null ? "none" : customPadding.Length.ToString(System.Globalization.CultureInfo.InvariantCulture))}.", nameof(customPadding));
                if (!inner.Contains(SpaceLayout.Of(inner).Unpack(customPadding)))
                    throw new ArgumentException($"The custom padding is not an observation of {inner}.", nameof(customPadding));
                customPadding.CopyTo(_padding, 0);
                break;
            case FramePadding.Reset:
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(padding), padding, "Padding is Reset, Zero or Custom.");
        }
        if (_byteInner is not null) Pixels.ToBytes(_padding, _bytePadding);
    }

    /// <summary>Observations per stack.</summary>
    public int StackSize => _stack;

    /// <inheritdoc />
    public override Space ObservationSpace => _space;

    /// <inheritdoc />
    public override EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null)
    {
        if (_byteInner is not null)
        {
            var bytesInfo = ResetBytes(_byteStack, seed, options);
            Pixels.ToFloat(_byteStack, observation);
            return bytesInfo;
        }
        _newest = _stack - 1;
        var info = Env.Reset(_ring.AsSpan(_newest * _frame, _frame), seed, options);
        var pad = _paddingType == FramePadding.Reset ? _ring.AsSpan(_newest * _frame, _frame) : _padding;
        for (int i = 0; i < _stack - 1; i++) pad.CopyTo(_ring.AsSpan(i * _frame, _frame));
        Write(observation);
        return info;
    }

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        if (_byteInner is not null)
        {
            var bytesResult = StepBytes(action, _byteStack);
            Pixels.ToFloat(_byteStack, observation);
            return bytesResult;
        }
        int slot = (_newest + 1) % _stack;
        var r = Env.Step(action, _ring.AsSpan(slot * _frame, _frame));
        _newest = slot;
        Write(observation);
        return r;
    }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The wrapped env does not observe images.</exception>
    public EnvInfo ResetBytes(Span<byte> observation, long? seed = null, ResetOptions? options = null)
    {
        var inner = RequireBytes();
        _newest = _stack - 1;
        var info = inner.ResetBytes(_byteRing.AsSpan(_newest * _frame, _frame), seed, options);
        var pad = _paddingType == FramePadding.Reset ? _byteRing.AsSpan(_newest * _frame, _frame) : _bytePadding;
        for (int i = 0; i < _stack - 1; i++) pad.CopyTo(_byteRing.AsSpan(i * _frame, _frame));
        WriteStack<byte>(_byteRing, observation);
        return info;
    }

    /// <inheritdoc />
    public StepResult StepBytes(EnvAction action, Span<byte> observation)
    {
        var inner = RequireBytes();
        int slot = (_newest + 1) % _stack;
        var r = inner.StepBytes(action, _byteRing.AsSpan(slot * _frame, _frame));
        _newest = slot;
        WriteStack<byte>(_byteRing, observation);
        return r;
    }

    private IByteObservationEnv RequireBytes() =>
        _byteInner ?? throw new InvalidOperationException($"{Env} does not observe images; FrameStackObservation has no byte observations over it. Use Reset and Step.");

    private void Write(Span<float> observation) => WriteStack<float>(_ring, observation);

    private void WriteStack<T>(T[] ring, Span<T> observation)
    {
        for (int k = 0; k < _stack; k++) // oldest first: the slot after the newest
        {
            int slot = (_newest + 1 + k) % _stack;
            ring.AsSpan(slot * _frame, _frame).CopyTo(observation.Slice(k * _frame, _frame));
        }
    }

    // Gymnasium's create_zero_array: 0 clipped into each element's bounds (a Discrete's start).
    private static void ZeroOf(Space space, Span<float> row)
    {
        switch (space)
        {
            case Box b:
                var lo = b.Low64;
                var hi = b.High64;
                for (int i = 0; i < row.Length; i++) row[i] = lo[i] > 0 ? (float)lo[i] : hi[i] < 0 ? (float)hi[i] : 0f;
                break;
            case Discrete d:
                row[0] = d.Start;
                break;
            case MultiDiscrete m:
                for (int i = 0; i < row.Length; i++) row[i] = m.Start[i];
                break;
            default:
                row.Clear();
                break;
        }
    }
}
