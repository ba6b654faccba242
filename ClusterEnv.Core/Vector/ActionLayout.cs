using ClusterEnv.Spaces;

namespace ClusterEnv.Vector;

/// <summary>
/// How one sub-env's action sits in a vector env's batch buffer, and the checks every vector env applies to a batch
/// before stepping anything: the action kind, the count, integer ranges, finiteness of floats.
/// </summary>
public sealed class ActionLayout
{
    private readonly long[] _low;
    private readonly long[] _high;
    private readonly Space _space;

    private ActionLayout(Space space, bool continuous, int size, long[] low, long[] high)
    {
        _space = space;
        IsContinuous = continuous;
        Size = size;
        _low = low;
        _high = high;
    }

    /// <summary>True for Box action spaces (float buffer); false for integer spaces (int buffer).</summary>
    public bool IsContinuous { get; }

    /// <summary>Slots per sub-env.</summary>
    public int Size { get; }

    /// <summary>The layout of <paramref name="space"/>; Tuple and Dict action spaces are not supported in a batch buffer.</summary>
    public static ActionLayout For(Space space)
    {
        ArgumentNullException.ThrowIfNull(space);
        switch (space)
        {
            case Discrete d:
                return new ActionLayout(space, false, 1, [d.Start], [(long)d.Start + d.N - 1]);
            case MultiDiscrete m:
            {
                var lo = new long[m.Nvec.Length];
                var hi = new long[m.Nvec.Length];
                for (int i = 0; i < lo.Length; i++) { lo[i] = m.Start[i]; hi[i] = (long)m.Start[i] + m.Nvec[i] - 1; }
                return new ActionLayout(space, false, lo.Length, lo, hi);
            }
            case MultiBinary b:
                return new ActionLayout(space, false, b.Size, Enumerable.Repeat(0L, b.Size).ToArray(), Enumerable.Repeat(1L, b.Size).ToArray());
            case Box box:
                return new ActionLayout(space, true, box.Size, [], []);
            default:
                throw new NotSupportedException(
                    $"Action space {space} cannot be batched into one action buffer; vector envs support Discrete, MultiDiscrete, MultiBinary and Box action spaces. Flatten the action space with a wrapper.");
        }
    }

    /// <summary>Throws a clear exception unless <paramref name="actions"/> is a valid integer batch for <paramref name="numEnvs"/> sub-envs.</summary>
    public void Check(ReadOnlySpan<int> actions, int numEnvs)
    {
        if (IsContinuous)
            throw new ArgumentException($"The action space {_space} is continuous: pass float actions (Step(ReadOnlySpan<float>)), {numEnvs * Size} values.", nameof(actions));
        CheckCount(actions.Length, numEnvs);
        int k = 0;
        for (int i = 0; i < numEnvs; i++)
        {
            for (int j = 0; j < Size; j++, k++)
            {
                int a = actions[k];
                if (a < _low[j] || a > _high[j]) ThrowOutOfRange(i, j, a);
            }
        }
    }

    /// <summary>Throws a clear exception unless <paramref name="actions"/> is a valid float batch for <paramref name="numEnvs"/> sub-envs.</summary>
    public void Check(ReadOnlySpan<float> actions, int numEnvs)
    {
        if (!IsContinuous)
            throw new ArgumentException($"The action space {_space} is discrete: pass int actions (Step(ReadOnlySpan<int>)), {numEnvs * Size} values.", nameof(actions));
        CheckCount(actions.Length, numEnvs);
        for (int k = 0; k < actions.Length; k++)
            if (!float.IsFinite(actions[k]))
                throw new ArgumentException($"Action {actions[k]} for sub-env {k / Size} (element {k % Size}) is not a finite number; continuous actions must not be NaN or ±infinity.", nameof(actions));
    }

    private void CheckCount(int length, int numEnvs)
    {
        if (length != numEnvs * Size)
            throw new ArgumentException(
                $"Got {length} action values, but {numEnvs} sub-envs × {Size} per action ({_space}) need {numEnvs * Size}; pass one action per sub-env, row-major.", "actions");
    }

    private void ThrowOutOfRange(int env, int element, int value) =>
        throw new ArgumentOutOfRangeException("actions", value,
            $"Action {value} for sub-env {env}{(Size > 1 ? $" (element {element})" : "")} is outside {_space}; valid values are {_low[element]}..{_high[element]}.");
}
