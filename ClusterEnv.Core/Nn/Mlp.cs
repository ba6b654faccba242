using System.Numerics.Tensors;
using ClusterEnv.Common;

namespace ClusterEnv.Nn;

/// <summary>Hidden-layer nonlinearity of an <see cref="Mlp"/>.</summary>
public enum Activation
{
    /// <summary>tanh (CleanRL's PPO networks).</summary>
    Tanh,
    /// <summary>max(x, 0).</summary>
    ReLU,
}

/// <summary>
/// A multi-layer perceptron <c>Linear → act → … → Linear</c> (no activation after the last layer), the
/// <c>nn.Sequential(layer_init(nn.Linear(...)), nn.Tanh(), ...)</c> of CleanRL, with a hand-written backward pass.
/// Weights are (out, in) as in PyTorch and live in a <see cref="ParameterStore"/>. <see cref="Forward"/> keeps what
/// <see cref="Backward(ReadOnlySpan{float}, Span{float})"/> needs in buffers that grow to the largest batch seen and are then reused: no allocation per call.
/// </summary>
public sealed class Mlp
{
    private readonly ParameterStore _store;
    private readonly int[] _sizes;
    private readonly int[] _weight;
    private readonly int[] _bias;
    private float[] _input = [];
    private float[][] _outputs;   // post-activation output of each layer (the last one is linear)
    private float[] _deltaA = [], _deltaB = [];
    private int _batch;

    /// <summary>Declares the layers' parameters in <paramref name="store"/> (build the store before use).</summary>
    /// <param name="store">Where the parameters live.</param>
    /// <param name="name">Prefix of the parameter names, e.g. "actor".</param>
    /// <param name="sizes">Layer widths: input, hidden..., output; e.g. [4, 64, 64, 2].</param>
    /// <param name="activation">Nonlinearity after every layer but the last.</param>
    public Mlp(ParameterStore store, string name, int[] sizes, Activation activation = Activation.Tanh)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (sizes is null || sizes.Length < 2 || sizes.Any(s => s <= 0))
            throw new ArgumentException($"An MLP needs at least an input and an output size, all positive; got [{string.Join(", ", sizes ?? [])}].", nameof(sizes));
        _store = store;
        _sizes = (int[])sizes.Clone();
        Activation = activation;
        int layers = sizes.Length - 1;
        _weight = new int[layers];
        _bias = new int[layers];
        for (int l = 0; l < layers; l++)
        {
            _weight[l] = store.Declare($"{name}.{2 * l}.weight", sizes[l + 1], sizes[l]);
            _bias[l] = store.Declare($"{name}.{2 * l}.bias", sizes[l + 1]);
        }
        _outputs = new float[layers][];
        for (int l = 0; l < layers; l++) _outputs[l] = [];
    }

    /// <summary>Input width.</summary>
    public int InputSize => _sizes[0];

    /// <summary>Output width.</summary>
    public int OutputSize => _sizes[^1];

    /// <summary>The hidden nonlinearity.</summary>
    public Activation Activation { get; }

    private int Layers => _sizes.Length - 1;

    /// <summary>Orthogonal weights (gain <paramref name="hiddenGain"/>, <paramref name="outputGain"/> for the last layer) and zero biases.</summary>
    public void Initialize(Rng rng, double hiddenGain, double outputGain)
    {
        for (int l = 0; l < Layers; l++)
        {
            Init.Orthogonal(_store[_weight[l]].Values, _sizes[l + 1], _sizes[l], l == Layers - 1 ? outputGain : hiddenGain, rng);
            _store[_bias[l]].Values.Clear();
        }
    }

    /// <summary>Forward pass. input (batch, in) → output (batch, out), a buffer owned by this MLP until the next call.</summary>
    public ReadOnlySpan<float> Forward(ReadOnlySpan<float> input, int batch)
    {
        if (input.Length < batch * InputSize)
            throw new ArgumentException($"Input has {input.Length} floats; a batch of {batch} × {InputSize} needs {batch * InputSize}.", nameof(input));
        _batch = batch;
        Grow(ref _input, batch * InputSize);
        input[..(batch * InputSize)].CopyTo(_input);
        ReadOnlySpan<float> x = _input.AsSpan(0, batch * InputSize);
        for (int l = 0; l < Layers; l++)
        {
            int inSize = _sizes[l], outSize = _sizes[l + 1];
            Grow(ref _outputs[l], batch * outSize);
            var y = _outputs[l].AsSpan(0, batch * outSize);
            Gemm.Multiply(x, false, _store[_weight[l]].Values, true, y, batch, inSize, outSize);
            var b = _store[_bias[l]].Values;
            for (int r = 0; r < batch; r++) TensorPrimitives.Add(y.Slice(r * outSize, outSize), b, y.Slice(r * outSize, outSize));
            if (l < Layers - 1)
            {
                if (Activation == Activation.Tanh) Activations.Tanh(y);
                else TensorPrimitives.Max(y, 0f, y);
            }
            x = y;
        }
        return x;
    }

    /// <summary>
    /// Backward pass for the last <see cref="Forward"/>: accumulates parameter gradients from
    /// <paramref name="gradOutput"/> (batch, out), and writes the input gradient (batch, in) when
    /// <paramref name="gradInput"/> is not empty.
    /// </summary>
    public void Backward(ReadOnlySpan<float> gradOutput, Span<float> gradInput = default) => Backward(gradOutput, gradInput, null);

    /// <summary>
    /// <see cref="Backward(ReadOnlySpan{float}, Span{float})"/>, telling <paramref name="ready"/> each layer's weight and
    /// bias gradients as soon as they are final (the last layer first).
    /// </summary>
    public void Backward(ReadOnlySpan<float> gradOutput, Span<float> gradInput, IGradientReady? ready)
    {
        int batch = _batch;
        if (gradOutput.Length < batch * OutputSize)
            throw new ArgumentException($"gradOutput has {gradOutput.Length} floats; the last forward batch needs {batch * OutputSize}.", nameof(gradOutput));
        Grow(ref _deltaA, batch * _sizes.Max());
        Grow(ref _deltaB, batch * _sizes.Max());
        var delta = _deltaA.AsSpan(0, batch * OutputSize);
        gradOutput[..(batch * OutputSize)].CopyTo(delta);
        for (int l = Layers - 1; l >= 0; l--)
        {
            int inSize = _sizes[l], outSize = _sizes[l + 1];
            ReadOnlySpan<float> x = l == 0 ? _input.AsSpan(0, batch * inSize) : _outputs[l - 1].AsSpan(0, batch * inSize);
            // dW (out, in) += deltaᵀ (out, batch) · x (batch, in); db += column sums of delta.
            Gemm.Multiply(delta, true, x, false, _store[_weight[l]].Grad, outSize, batch, inSize, accumulate: true);
            var db = _store[_bias[l]].Grad;
            for (int r = 0; r < batch; r++) TensorPrimitives.Add(db, delta.Slice(r * outSize, outSize), db);
            ready?.Ready(_store[_weight[l]].Offset, _store[_weight[l]].Length + _store[_bias[l]].Length); // declared together: contiguous
            if (l == 0 && gradInput.IsEmpty) break;
            // dx (batch, in) = delta (batch, out) · W (out, in)
            var next = (l == 0 ? gradInput : (delta.Overlaps(_deltaA) ? _deltaB : _deltaA).AsSpan(0, batch * inSize));
            Gemm.Multiply(delta, false, _store[_weight[l]].Values, false, next, batch, outSize, inSize);
            if (l == 0) break;
            // Through the activation of layer l-1, whose output is x.
            if (Activation == Activation.Tanh)
            {
                for (int i = 0; i < next.Length; i++) next[i] *= 1f - x[i] * x[i];
            }
            else
            {
                for (int i = 0; i < next.Length; i++) if (x[i] <= 0f) next[i] = 0f;
            }
            delta = next;
        }
    }

    private static void Grow(ref float[] buffer, int size)
    {
        if (buffer.Length < size) buffer = new float[Math.Max(size, buffer.Length * 2)];
    }
}
