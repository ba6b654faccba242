using ClusterEnv.Common;

namespace ClusterEnv.Nn;

/// <summary>
/// A 2-D convolution without padding, <c>torch.nn.Conv2d(in, out, kernel, stride)</c>, on NCHW batches: weights
/// (out, in, k, k) and a bias per output channel in a <see cref="ParameterStore"/>. Each image is unrolled (im2col)
/// into a (in·k·k) × (outH·outW) matrix and multiplied by the weights with <see cref="Gemm"/>, so the convolution runs
/// on the same vectorised kernel as the linear layers. The backward pass unrolls the image again instead of keeping
/// every image's unrolled matrix (a Nature-CNN batch of 256 would hold 100 MB), and folds the input gradient back
/// (col2im). Buffers grow to the largest batch seen and are reused: no allocation per call once warm.
/// </summary>
public sealed class Conv2d
{
    private readonly ParameterStore _store;
    private readonly int _weight, _bias;
    private float[] _input = [];
    private float[] _col = [];
    private float[] _gradCol = [];
    private int _batch;

    /// <summary>Declares the layer's parameters in <paramref name="store"/> (build the store before use).</summary>
    /// <param name="store">Where the parameters live.</param>
    /// <param name="name">Prefix of the parameter names, e.g. "encoder.0".</param>
    /// <param name="inChannels">Channels of the input.</param>
    /// <param name="outChannels">Channels of the output (filters).</param>
    /// <param name="kernel">Side of the square kernel.</param>
    /// <param name="stride">Step between kernel positions, in both directions.</param>
    /// <param name="height">Height of the input.</param>
    /// <param name="width">Width of the input.</param>
    public Conv2d(ParameterStore store, string name, int inChannels, int outChannels, int kernel, int stride, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (inChannels <= 0 || outChannels <= 0 || kernel <= 0 || stride <= 0)
            throw new ArgumentException($"Conv2d needs positive channels, kernel and stride; got in {inChannels}, out {outChannels}, kernel {kernel}, stride {stride}.");
        if (height < kernel || width < kernel)
            throw new ArgumentException($"A {kernel}×{kernel} kernel does not fit a {height}×{width} input (no padding); use a smaller kernel or a larger image.");
        _store = store;
        InChannels = inChannels;
        OutChannels = outChannels;
        Kernel = kernel;
        Stride = stride;
        Height = height;
        Width = width;
        OutHeight = (height - kernel) / stride + 1;
        OutWidth = (width - kernel) / stride + 1;
        _weight = store.Declare($"{name}.weight", outChannels, inChannels, kernel, kernel);
        _bias = store.Declare($"{name}.bias", outChannels);
    }

    /// <summary>Input channels.</summary>
    public int InChannels { get; }

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <summary>Kernel side.</summary>
    public int Kernel { get; }

    /// <summary>Stride.</summary>
    public int Stride { get; }

    /// <summary>Input height.</summary>
    public int Height { get; }

    /// <summary>Input width.</summary>
    public int Width { get; }

    /// <summary>Output height: (height − kernel) / stride + 1.</summary>
    public int OutHeight { get; }

    /// <summary>Output width: (width − kernel) / stride + 1.</summary>
    public int OutWidth { get; }

    /// <summary>Floats per input image (C·H·W).</summary>
    public int InputSize => InChannels * Height * Width;

    /// <summary>Floats per output image (C'·H'·W').</summary>
    public int OutputSize => OutChannels * OutHeight * OutWidth;

    private int Patch => InChannels * Kernel * Kernel;
    private int Positions => OutHeight * OutWidth;

    /// <summary>Multiply-adds of one image's forward pass (its backward costs twice as many).</summary>
    public long MultiplyAdds => (long)OutChannels * Patch * Positions;

    /// <summary>Orthogonal weights over (out, in·k·k) with <paramref name="gain"/>, as CleanRL's <c>layer_init</c>, and zero biases.</summary>
    public void Initialize(Rng rng, double gain)
    {
        Init.Orthogonal(_store[_weight].Values, OutChannels, Patch, gain, rng);
        _store[_bias].Values.Clear();
    }

    /// <summary>Forward pass: input (batch, C, H, W) → <paramref name="output"/> (batch, C', H', W'). Keeps the input for <see cref="Backward"/>.</summary>
    public void Forward(ReadOnlySpan<float> input, int batch, Span<float> output)
    {
        if (input.Length < batch * InputSize)
            throw new ArgumentException($"Input has {input.Length} floats; a batch of {batch} × {InChannels}×{Height}×{Width} needs {batch * InputSize}.", nameof(input));
        if (output.Length < batch * OutputSize)
            throw new ArgumentException($"Output has room for {output.Length} floats; a batch of {batch} × {OutChannels}×{OutHeight}×{OutWidth} needs {batch * OutputSize}.", nameof(output));
        _batch = batch;
        Grow(ref _input, batch * InputSize);
        input[..(batch * InputSize)].CopyTo(_input);
        Grow(ref _col, Patch * Positions);
        var col = _col.AsSpan(0, Patch * Positions);
        var w = _store[_weight].Values;
        var bias = _store[_bias].Values;
        for (int b = 0; b < batch; b++)
        {
            Unroll(_input.AsSpan(b * InputSize, InputSize), col);
            var y = output.Slice(b * OutputSize, OutputSize);
            // y (C', H'W') = W (C', Ckk) · col (Ckk, H'W')
            Gemm.Multiply(w, false, col, false, y, OutChannels, Patch, Positions);
            for (int c = 0; c < OutChannels; c++)
                System.Numerics.Tensors.TensorPrimitives.Add(y.Slice(c * Positions, Positions), bias[c], y.Slice(c * Positions, Positions));
        }
    }

    /// <summary>Where the layer's weight and bias sit in the store's flat buffers (declared together, so one range).</summary>
    internal (int Offset, int Length) ParameterRange => (_store[_weight].Offset, _store[_weight].Length + _store[_bias].Length);

    /// <summary>
    /// Backward pass for the last <see cref="Forward"/>: accumulates the weight and bias gradients from
    /// <paramref name="gradOutput"/> (batch, C', H', W') and writes the input gradient (batch, C, H, W) when
    /// <paramref name="gradInput"/> is not empty.
    /// </summary>
    public void Backward(ReadOnlySpan<float> gradOutput, Span<float> gradInput = default)
    {
        int batch = _batch;
        if (gradOutput.Length < batch * OutputSize)
            throw new ArgumentException($"gradOutput has {gradOutput.Length} floats; the last forward batch needs {batch * OutputSize}.", nameof(gradOutput));
        if (!gradInput.IsEmpty && gradInput.Length < batch * InputSize)
            throw new ArgumentException($"gradInput has room for {gradInput.Length} floats; the last forward batch needs {batch * InputSize}.", nameof(gradInput));
        var col = _col.AsSpan(0, Patch * Positions);
        Grow(ref _gradCol, gradInput.IsEmpty ? 0 : Patch * Positions);
        var w = _store[_weight].Values;
        var dw = _store[_weight].Grad;
        var db = _store[_bias].Grad;
        for (int b = 0; b < batch; b++)
        {
            var dy = gradOutput.Slice(b * OutputSize, OutputSize);
            Unroll(_input.AsSpan(b * InputSize, InputSize), col);
            // dW (C', Ckk) += dy (C', H'W') · colᵀ (H'W', Ckk)
            Gemm.Multiply(dy, false, col, true, dw, OutChannels, Positions, Patch, accumulate: true);
            for (int c = 0; c < OutChannels; c++) db[c] += System.Numerics.Tensors.TensorPrimitives.Sum(dy.Slice(c * Positions, Positions));
            if (gradInput.IsEmpty) continue;
            // dcol (Ckk, H'W') = Wᵀ (Ckk, C') · dy (C', H'W'), folded back onto the image.
            var dcol = _gradCol.AsSpan(0, Patch * Positions);
            Gemm.Multiply(w, true, dy, false, dcol, Patch, OutChannels, Positions);
            Fold(dcol, gradInput.Slice(b * InputSize, InputSize));
        }
    }

    // im2col: row (c·k + i)·k + j of `col` holds, for every output position (oh, ow), the input at (c, oh·s + i, ow·s + j).
    private void Unroll(ReadOnlySpan<float> image, Span<float> col)
    {
        int k = Kernel, s = Stride, oh = OutHeight, ow = OutWidth, h = Height, w = Width;
        int row = 0;
        for (int c = 0; c < InChannels; c++)
        for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++, row++)
        {
            var dst = col.Slice(row * oh * ow, oh * ow);
            for (int y = 0; y < oh; y++)
            {
                var src = image.Slice(c * h * w + (y * s + i) * w + j);
                var d = dst.Slice(y * ow, ow);
                if (s == 1) src[..ow].CopyTo(d);
                else for (int x = 0; x < ow; x++) d[x] = src[x * s];
            }
        }
    }

    // col2im: the transpose of Unroll, adding every entry of `col` back onto the input position it was read from.
    private void Fold(ReadOnlySpan<float> col, Span<float> image)
    {
        image.Clear();
        int k = Kernel, s = Stride, oh = OutHeight, ow = OutWidth, h = Height, w = Width;
        int row = 0;
        for (int c = 0; c < InChannels; c++)
        for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++, row++)
        {
            var src = col.Slice(row * oh * ow, oh * ow);
            for (int y = 0; y < oh; y++)
            {
                var dst = image.Slice(c * h * w + (y * s + i) * w + j);
                var v = src.Slice(y * ow, ow);
                if (s == 1) System.Numerics.Tensors.TensorPrimitives.Add(dst[..ow], v, dst[..ow]);
                else for (int x = 0; x < ow; x++) dst[x * s] += v[x];
            }
        }
    }

    private static void Grow(ref float[] buffer, int size)
    {
        if (buffer.Length < size) buffer = new float[Math.Max(size, buffer.Length * 2)];
    }
}
