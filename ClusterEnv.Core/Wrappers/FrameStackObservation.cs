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
public sealed class FrameStackObservation : EnvWrapper
{
    private readonly Space _space;
    private readonly int _stack, _frame;
    private readonly float[] _ring, _padding;
    private readonly FramePadding _paddingType;
    private int _newest;

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
        _ring = new float[stackSize * _frame];
        _padding = new float[_frame];
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
    }

    /// <summary>Observations per stack.</summary>
    public int StackSize => _stack;

    /// <inheritdoc />
    public override Space ObservationSpace => _space;

    /// <inheritdoc />
    public override EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null)
    {
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
        int slot = (_newest + 1) % _stack;
        var r = Env.Step(action, _ring.AsSpan(slot * _frame, _frame));
        _newest = slot;
        Write(observation);
        return r;
    }

    private void Write(Span<float> observation)
    {
        for (int k = 0; k < _stack; k++) // oldest first: the slot after the newest
        {
            int slot = (_newest + 1 + k) % _stack;
            _ring.AsSpan(slot * _frame, _frame).CopyTo(observation.Slice(k * _frame, _frame));
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
