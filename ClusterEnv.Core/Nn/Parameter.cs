namespace ClusterEnv.Nn;

/// <summary>
/// A named tensor of trainable values and its gradient, as a slice of its owner's flat buffers: a model's parameters
/// (and gradients) are one contiguous float32 array, so shipping weights to workers, Adam and the global gradient
/// norm all work on one span.
/// </summary>
public sealed class Parameter
{
    private readonly float[] _values;
    private readonly float[] _grads;

    internal Parameter(string name, int[] shape, float[] values, float[] grads, int offset)
    {
        Name = name;
        Shape = shape;
        _values = values;
        _grads = grads;
        Offset = offset;
        Length = shape.Aggregate(1, (a, d) => a * d);
    }

    /// <summary>Dotted name, e.g. "actor.0.weight".</summary>
    public string Name { get; }

    /// <summary>Shape, row-major (a Linear weight is (out, in), as in PyTorch).</summary>
    public int[] Shape { get; }

    /// <summary>Index of the first element in the owner's flat buffer.</summary>
    public int Offset { get; }

    /// <summary>Number of elements.</summary>
    public int Length { get; }

    /// <summary>The values.</summary>
    public Span<float> Values => _values.AsSpan(Offset, Length);

    /// <summary>The accumulated gradient.</summary>
    public Span<float> Grad => _grads.AsSpan(Offset, Length);

    /// <inheritdoc />
    public override string ToString() => $"{Name} ({string.Join("×", Shape)})";
}

/// <summary>Hands out parameters as consecutive slices of one flat values buffer and one flat gradient buffer.</summary>
public sealed class ParameterStore
{
    private readonly List<(string Name, int[] Shape)> _pending = [];
    private float[] _values = [];
    private float[] _grads = [];
    private readonly List<Parameter> _parameters = [];
    private bool _frozen;

    /// <summary>Reserves a parameter; call <see cref="Build"/> once all are declared.</summary>
    public int Declare(string name, params int[] shape)
    {
        if (_frozen) throw new InvalidOperationException("Parameters are already built; declare all of them before Build().");
        _pending.Add((name, shape));
        return _pending.Count - 1;
    }

    /// <summary>Allocates the flat buffers (zeros) and creates the parameters in declaration order.</summary>
    public void Build()
    {
        if (_frozen) return;
        int total = _pending.Sum(p => p.Shape.Aggregate(1, (a, d) => a * d));
        _values = new float[total];
        _grads = new float[total];
        int offset = 0;
        foreach (var (name, shape) in _pending)
        {
            var p = new Parameter(name, shape, _values, _grads, offset);
            _parameters.Add(p);
            offset += p.Length;
        }
        _frozen = true;
    }

    /// <summary>The parameter declared at <paramref name="index"/>.</summary>
    public Parameter this[int index] => _parameters[index];

    /// <summary>All parameters in declaration order.</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>All values, flat (what a worker receives).</summary>
    public float[] Values => _values;

    /// <summary>All gradients, flat.</summary>
    public float[] Grads => _grads;

    /// <summary>Total number of parameters.</summary>
    public int Count => _values.Length;

    /// <summary>Sets every gradient to zero.</summary>
    public void ZeroGrad() => Array.Clear(_grads);
}
