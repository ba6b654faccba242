namespace ClusterEnv.Envs;

/// <summary>
/// A view of one action: int slots for Discrete / MultiDiscrete / MultiBinary action spaces, float slots for Box.
/// It never copies; build one from an array, a span or (through <see cref="EnvExtensions"/>) a single int.
/// </summary>
public readonly ref struct EnvAction
{
    /// <summary>An integer action (Discrete: one slot holding the value).</summary>
    public EnvAction(ReadOnlySpan<int> ints)
    {
        Ints = ints;
        IsContinuous = false;
    }

    /// <summary>A continuous action (Box: one slot per element).</summary>
    public EnvAction(ReadOnlySpan<float> floats)
    {
        Floats = floats;
        IsContinuous = true;
    }

    /// <summary>Integer slots (empty for a continuous action).</summary>
    public ReadOnlySpan<int> Ints { get; }

    /// <summary>Float slots (empty for an integer action).</summary>
    public ReadOnlySpan<float> Floats { get; }

    /// <summary>True when the action carries floats.</summary>
    public bool IsContinuous { get; }

    /// <summary>The single value of a Discrete action; throws with a clear message otherwise.</summary>
    public int AsDiscrete()
    {
        if (IsContinuous || Ints.Length != 1)
            throw new ArgumentException(IsContinuous
                ? $"This env takes a discrete (int) action, but got {Floats.Length} float value(s); pass an int."
                : $"This env takes one discrete action value, but got {Ints.Length}; pass exactly one int.");
        return Ints[0];
    }

    /// <summary>The float slots of a Box action of <paramref name="size"/> elements; throws with a clear message otherwise.</summary>
    public ReadOnlySpan<float> AsContinuous(int size)
    {
        if (!IsContinuous || Floats.Length != size)
            throw new ArgumentException(!IsContinuous
                ? $"This env takes a continuous action of {size} float(s), but got {Ints.Length} int value(s); pass floats."
                : $"This env takes a continuous action of {size} float(s), but got {Floats.Length}.");
        return Floats;
    }

    /// <summary>Wraps an int array.</summary>
    public static implicit operator EnvAction(int[] ints) => new(ints);

    /// <summary>Wraps a float array.</summary>
    public static implicit operator EnvAction(float[] floats) => new(floats);

    /// <summary>Wraps an int span.</summary>
    public static implicit operator EnvAction(ReadOnlySpan<int> ints) => new(ints);

    /// <summary>Wraps a float span.</summary>
    public static implicit operator EnvAction(ReadOnlySpan<float> floats) => new(floats);

    /// <inheritdoc />
    public override string ToString() =>
        IsContinuous ? "[" + string.Join(", ", Floats.ToArray()) + "]" : Ints.Length == 1 ? Ints[0].ToString() : "[" + string.Join(", ", Ints.ToArray()) + "]";
}
