using System.Numerics.Tensors;
using ClusterEnv.Common;

namespace ClusterEnv.Nn;

/// <summary>
/// An image encoder <c>Conv → ReLU → … → Flatten → Linear → ReLU</c> on NCHW batches, the torso of CleanRL's Atari
/// agents: <see cref="Nature"/> is the DQN Nature network (32·8×8/4, 64·4×4/2, 64·3×3/1, 512 features) and
/// <see cref="Small"/> the smaller one of the 2013 DQN paper (16·8×8/4, 32·4×4/2, 256 features). The flattened
/// features are in C·H·W order, as <c>nn.Flatten()</c> after a PyTorch convolution gives them. Buffers grow to the
/// largest batch seen and are reused.
/// </summary>
public sealed class ConvEncoder
{
    private readonly ParameterStore _store;
    private readonly Conv2d[] _convs;
    private readonly int _weight, _bias;
    private readonly float[][] _outputs; // post-ReLU output of each convolution
    private float[] _features = [];      // post-ReLU output of the linear layer
    private float[] _gradA = [], _gradB = [];
    private int _batch;

    /// <summary>Declares the layers in <paramref name="store"/>: convolutions of (out channels, kernel, stride) in order, then a linear layer to <paramref name="features"/>.</summary>
    public ConvEncoder(ParameterStore store, string name, int channels, int height, int width, (int OutChannels, int Kernel, int Stride)[] convs, int features)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (convs is null || convs.Length == 0) throw new ArgumentException("A conv encoder needs at least one convolution.", nameof(convs));
        if (features <= 0) throw new ArgumentOutOfRangeException(nameof(features), features, "The encoder's feature width must be positive.");
        _store = store;
        _convs = new Conv2d[convs.Length];
        int c = channels, h = height, w = width;
        for (int l = 0; l < convs.Length; l++)
        {
            var (o, k, s) = convs[l];
            if (h < k || w < k)
                throw new ArgumentException($"Convolution {l} ({k}×{k}, stride {s}) does not fit its {h}×{w} input: a {channels}×{height}×{width} image is too small for these layers; use larger images or the smaller network.");
            _convs[l] = new Conv2d(store, $"{name}.{2 * l}", c, o, k, s, h, w);
            (c, h, w) = (o, _convs[l].OutHeight, _convs[l].OutWidth);
        }
        FlatSize = c * h * w;
        Features = features;
        _weight = store.Declare($"{name}.{2 * convs.Length + 1}.weight", features, FlatSize);
        _bias = store.Declare($"{name}.{2 * convs.Length + 1}.bias", features);
        _outputs = new float[convs.Length][];
        for (int l = 0; l < convs.Length; l++) _outputs[l] = [];
    }

    /// <summary>The Nature DQN torso: 32·8×8/4, 64·4×4/2, 64·3×3/1, then 512 features (84×84 inputs: 3,136 flattened).</summary>
    public static ConvEncoder Nature(ParameterStore store, string name, int channels, int height, int width) =>
        new(store, name, channels, height, width, [(32, 8, 4), (64, 4, 2), (64, 3, 1)], 512);

    /// <summary>The 2013 DQN torso: 16·8×8/4, 32·4×4/2, then 256 features; about a fifth of the Nature network's work.</summary>
    public static ConvEncoder Small(ParameterStore store, string name, int channels, int height, int width) =>
        new(store, name, channels, height, width, [(16, 8, 4), (32, 4, 2)], 256);

    /// <summary>Floats per input image.</summary>
    public int InputSize => _convs[0].InputSize;

    /// <summary>Width of the encoding.</summary>
    public int Features { get; }

    /// <summary>Floats after the last convolution, flattened.</summary>
    public int FlatSize { get; }

    /// <summary>The convolutions, in order.</summary>
    public IReadOnlyList<Conv2d> Convolutions => _convs;

    /// <summary>Orthogonal weights with gain √2 everywhere (CleanRL's Atari <c>layer_init</c>) and zero biases.</summary>
    public void Initialize(Rng rng)
    {
        foreach (var conv in _convs) conv.Initialize(rng, Math.Sqrt(2));
        Init.Orthogonal(_store[_weight].Values, Features, FlatSize, Math.Sqrt(2), rng);
        _store[_bias].Values.Clear();
    }

    /// <summary>Forward pass: images (batch, C, H, W) → features (batch, <see cref="Features"/>), a buffer owned by the encoder until the next call.</summary>
    public ReadOnlySpan<float> Forward(ReadOnlySpan<float> input, int batch)
    {
        _batch = batch;
        ReadOnlySpan<float> x = input;
        for (int l = 0; l < _convs.Length; l++)
        {
            Grow(ref _outputs[l], batch * _convs[l].OutputSize);
            var y = _outputs[l].AsSpan(0, batch * _convs[l].OutputSize);
            _convs[l].Forward(x, batch, y);
            TensorPrimitives.Max(y, 0f, y);
            x = y;
        }
        Grow(ref _features, batch * Features);
        var f = _features.AsSpan(0, batch * Features);
        Gemm.Multiply(x, false, _store[_weight].Values, true, f, batch, FlatSize, Features);
        var b = _store[_bias].Values;
        for (int r = 0; r < batch; r++) TensorPrimitives.Add(f.Slice(r * Features, Features), b, f.Slice(r * Features, Features));
        TensorPrimitives.Max(f, 0f, f);
        return f;
    }

    /// <summary>Backward pass for the last <see cref="Forward"/>: accumulates every parameter's gradient; writes the image gradient when <paramref name="gradInput"/> is given.</summary>
    public void Backward(ReadOnlySpan<float> gradOutput, Span<float> gradInput = default) => Backward(gradOutput, gradInput, null);

    /// <summary>
    /// <see cref="Backward(ReadOnlySpan{float}, Span{float})"/>, telling <paramref name="ready"/> each layer's weight and
    /// bias gradients as soon as they are final (the linear layer first, then the convolutions from the last).
    /// </summary>
    public void Backward(ReadOnlySpan<float> gradOutput, Span<float> gradInput, IGradientReady? ready)
    {
        int batch = _batch;
        if (gradOutput.Length < batch * Features)
            throw new ArgumentException($"gradOutput has {gradOutput.Length} floats; the last forward batch needs {batch * Features}.", nameof(gradOutput));
        int widest = Math.Max(batch * Features, _convs.Max(c => batch * c.OutputSize));
        Grow(ref _gradA, widest);
        Grow(ref _gradB, widest);
        // Through the last ReLU, then the linear layer.
        var delta = _gradA.AsSpan(0, batch * Features);
        var f = _features.AsSpan(0, batch * Features);
        for (int i = 0; i < delta.Length; i++) delta[i] = f[i] > 0f ? gradOutput[i] : 0f;
        var flat = _outputs[^1].AsSpan(0, batch * FlatSize);
        Gemm.Multiply(delta, true, flat, false, _store[_weight].Grad, Features, batch, FlatSize, accumulate: true);
        var db = _store[_bias].Grad;
        for (int r = 0; r < batch; r++) TensorPrimitives.Add(db, delta.Slice(r * Features, Features), db);
        ready?.Ready(_store[_weight].Offset, _store[_weight].Length + _store[_bias].Length);
        var next = _gradB.AsSpan(0, batch * FlatSize);
        Gemm.Multiply(delta, false, _store[_weight].Values, false, next, batch, Features, FlatSize);
        delta = next;
        for (int l = _convs.Length - 1; l >= 0; l--)
        {
            var y = _outputs[l].AsSpan(0, batch * _convs[l].OutputSize);
            for (int i = 0; i < delta.Length; i++) if (y[i] <= 0f) delta[i] = 0f; // through the ReLU after convolution l
            if (l == 0)
            {
                _convs[0].Backward(delta, gradInput);
                Tell(ready, _convs[0]);
                break;
            }
            var into = (delta.Overlaps(_gradA) ? _gradB : _gradA).AsSpan(0, batch * _convs[l].InputSize);
            _convs[l].Backward(delta, into);
            Tell(ready, _convs[l]);
            delta = into;
        }
    }

    private static void Tell(IGradientReady? ready, Conv2d conv)
    {
        if (ready is null) return;
        var (offset, length) = conv.ParameterRange;
        ready.Ready(offset, length);
    }

    private static void Grow(ref float[] buffer, int size)
    {
        if (buffer.Length < size) buffer = new float[Math.Max(size, buffer.Length * 2)];
    }
}
