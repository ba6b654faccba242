using ClusterEnv.Nn;
using ClusterEnv.Policies;
using ILGPU;
using ILGPU.Runtime;

namespace ClusterEnv.Learners.Gpu;

/// <summary>
/// An <see cref="ActorCritic"/>'s networks on a device: the parameters, their gradients and Adam's moments live in
/// device memory in the same flat order as the host policy's <see cref="ParameterStore"/>, so weights move between
/// the two in one copy (<see cref="Upload"/>, <see cref="Download"/>) and every rank's gradient is one buffer to all-reduce.
/// </summary>
public sealed class GpuActorCritic : IDisposable
{
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _params, _grads, _m, _v;
    private int _adamSteps;

    /// <summary>Builds the device copy of <paramref name="policy"/> (its current weights) on <paramref name="device"/>.</summary>
    public GpuActorCritic(GpuDevice device, ActorCritic policy)
    {
        Device = device ?? throw new ArgumentNullException(nameof(device));
        ArgumentNullException.ThrowIfNull(policy);
        Spec = policy.Spec;
        int count = policy.Store.Count;
        _params = device.Allocate(count);
        _grads = device.Allocate(count);
        _m = device.Allocate(count);
        _v = device.Allocate(count);
        var offsets = policy.Store.Parameters.ToDictionary(p => p.Name, p => (p.Offset, p.Length));
        int act = Spec.Activation == Activation.Tanh ? 1 : 2;
        Actor = new GpuMlp(this, "actor", [Spec.ObservationSize, .. Spec.Hidden, Spec.ActionSize], act, offsets);
        Critic = new GpuMlp(this, "critic", [Spec.ObservationSize, .. Spec.Hidden, 1], act, offsets);
        if (Spec.Continuous)
        {
            var (o, n) = offsets["actor_logstd"];
            LogStdOffset = o;
            LogStdLength = n;
        }
        Upload(policy.Parameters);
    }

    /// <summary>The device.</summary>
    public GpuDevice Device { get; }

    /// <summary>The policy's spec.</summary>
    public PolicySpec Spec { get; }

    /// <summary>The actor network.</summary>
    public GpuMlp Actor { get; }

    /// <summary>The critic network.</summary>
    public GpuMlp Critic { get; }

    /// <summary>Parameters in device memory (host order).</summary>
    public ArrayView<float> Parameters => _params.View;

    /// <summary>Gradients in device memory (host order).</summary>
    public ArrayView<float> Gradients => _grads.View;

    internal int LogStdOffset { get; } = -1;

    internal int LogStdLength { get; }

    internal ArrayView<float> LogStd => _params.View.SubView(LogStdOffset, LogStdLength);

    internal ArrayView<float> LogStdGrad => _grads.View.SubView(LogStdOffset, LogStdLength);

    /// <summary>Copies host weights to the device.</summary>
    public void Upload(ReadOnlySpan<float> parameters)
    {
        if (parameters.Length != _params.Length) throw new ArgumentException($"Got {parameters.Length} parameters; this policy has {_params.Length}.", nameof(parameters));
        _params.View.CopyFromCPU(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(parameters), parameters.Length);
    }

    /// <summary>Copies the device weights to <paramref name="parameters"/> (e.g. the host policy that acts).</summary>
    public void Download(Span<float> parameters)
    {
        if (parameters.Length != _params.Length) throw new ArgumentException($"Got room for {parameters.Length} parameters; this policy has {_params.Length}.", nameof(parameters));
        _params.View.CopyToCPU(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(parameters), parameters.Length);
    }

    /// <summary>Copies the device gradients to the host (tests, and host-side all-reduce).</summary>
    public void DownloadGradients(Span<float> grads) => _grads.View.CopyToCPU(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(grads), grads.Length);

    /// <summary>Copies host gradients to the device.</summary>
    public void UploadGradients(ReadOnlySpan<float> grads) => _grads.View.CopyFromCPU(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(grads), grads.Length);

    /// <summary>Copies Adam's first moment to the host (tests; checkpoints).</summary>
    public void DownloadFirstMoment(Span<float> m) => _m.View.CopyToCPU(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(m), m.Length);

    /// <summary>Zeroes the gradients.</summary>
    public void ZeroGrad() => _grads.MemSetToZero();

    /// <summary>One Adam step (torch.optim.Adam, as <see cref="Nn.Adam.Step"/>) with the given learning rate and epsilon.</summary>
    public void AdamStep(double learningRate, double eps, double beta1 = 0.9, double beta2 = 0.999)
    {
        _adamSteps++;
        double c1 = 1 - Math.Pow(beta1, _adamSteps), c2 = 1 - Math.Pow(beta2, _adamSteps);
        Device.Adam(_params.View, _grads.View, _m.View, _v.View,
            new AdamScalars((float)beta1, (float)beta2, (float)(learningRate / c1), (float)Math.Sqrt(c2), (float)eps, (int)_params.Length));
    }

    /// <summary>Adam's step count.</summary>
    public int AdamSteps => _adamSteps;

    /// <inheritdoc />
    public void Dispose()
    {
        Actor.Dispose();
        Critic.Dispose();
        _params.Dispose();
        _grads.Dispose();
        _m.Dispose();
        _v.Dispose();
    }
}

/// <summary>
/// <see cref="Mlp"/> on a device: forward keeps each layer's output for backward in buffers that grow to the largest
/// batch seen; backward accumulates the weight and bias gradients into the owner's gradient buffer.
/// </summary>
public sealed class GpuMlp : IDisposable
{
    private readonly GpuActorCritic _owner;
    private readonly int[] _sizes;
    private readonly int _activation;
    private readonly (int Offset, int Length)[] _weight, _bias;
    private MemoryBuffer1D<float, Stride1D.Dense>? _input;
    private readonly MemoryBuffer1D<float, Stride1D.Dense>?[] _outputs;
    private MemoryBuffer1D<float, Stride1D.Dense>? _deltaA, _deltaB;
    private int _batch;

    internal GpuMlp(GpuActorCritic owner, string name, int[] sizes, int activation, IReadOnlyDictionary<string, (int Offset, int Length)> offsets)
    {
        _owner = owner;
        _sizes = sizes;
        _activation = activation;
        int layers = sizes.Length - 1;
        _weight = new (int, int)[layers];
        _bias = new (int, int)[layers];
        for (int l = 0; l < layers; l++)
        {
            _weight[l] = offsets[$"{name}.{2 * l}.weight"];
            _bias[l] = offsets[$"{name}.{2 * l}.bias"];
        }
        _outputs = new MemoryBuffer1D<float, Stride1D.Dense>?[layers];
    }

    private GpuDevice Device => _owner.Device;

    private int Layers => _sizes.Length - 1;

    /// <summary>Output width.</summary>
    public int OutputSize => _sizes[^1];

    private ArrayView<float> W(int l) => _owner.Parameters.SubView(_weight[l].Offset, _weight[l].Length);

    private ArrayView<float> B(int l) => _owner.Parameters.SubView(_bias[l].Offset, _bias[l].Length);

    private ArrayView<float> GW(int l) => _owner.Gradients.SubView(_weight[l].Offset, _weight[l].Length);

    private ArrayView<float> GB(int l) => _owner.Gradients.SubView(_bias[l].Offset, _bias[l].Length);

    /// <summary>Forward pass on a device input (batch, in); returns the output view (batch, out), valid until the next call.</summary>
    public ArrayView<float> Forward(ArrayView<float> input, int batch)
    {
        _batch = batch;
        Grow(ref _input, (long)batch * _sizes[0]);
        _input!.View.SubView(0, (long)batch * _sizes[0]).CopyFrom(input.SubView(0, (long)batch * _sizes[0]));
        var x = _input.View.SubView(0, (long)batch * _sizes[0]);
        for (int l = 0; l < Layers; l++)
        {
            int inSize = _sizes[l], outSize = _sizes[l + 1];
            Grow(ref _outputs[l], (long)batch * outSize);
            var y = _outputs[l]!.View.SubView(0, (long)batch * outSize);
            Device.Gemm(x, false, W(l), true, y, batch, inSize, outSize);
            Device.BiasActivation(y, B(l), outSize, l < Layers - 1 ? _activation : 0);
            x = y;
        }
        return x;
    }

    /// <summary>Backward for the last forward: accumulates parameter gradients from <paramref name="gradOutput"/> (batch, out).</summary>
    public void Backward(ArrayView<float> gradOutput)
    {
        int batch = _batch, widest = _sizes.Max();
        Grow(ref _deltaA, (long)batch * widest);
        Grow(ref _deltaB, (long)batch * widest);
        var delta = _deltaA!.View.SubView(0, (long)batch * OutputSize);
        delta.CopyFrom(gradOutput.SubView(0, (long)batch * OutputSize));
        bool inA = true;
        for (int l = Layers - 1; l >= 0; l--)
        {
            int inSize = _sizes[l], outSize = _sizes[l + 1];
            var x = l == 0 ? _input!.View.SubView(0, (long)batch * inSize) : _outputs[l - 1]!.View.SubView(0, (long)batch * inSize);
            // dW (out, in) += deltaᵀ · x; db += column sums of delta.
            Device.Gemm(delta, true, x, false, GW(l), outSize, batch, inSize, accumulate: true);
            Device.ColumnSumAdd(delta, GB(l), batch, outSize);
            if (l == 0) break;
            var next = (inA ? _deltaB! : _deltaA!).View.SubView(0, (long)batch * inSize);
            Device.Gemm(delta, false, W(l), false, next, batch, outSize, inSize);
            Device.ActivationBackward(next, x, _activation);
            delta = next;
            inA = !inA;
        }
    }

    private void Grow(ref MemoryBuffer1D<float, Stride1D.Dense>? buffer, long size)
    {
        if (buffer is not null && buffer.Length >= size) return;
        long n = Math.Max(size, buffer is null ? 0 : buffer.Length * 2);
        buffer?.Dispose();
        buffer = Device.Allocate(n);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _input?.Dispose();
        foreach (var o in _outputs) o?.Dispose();
        _deltaA?.Dispose();
        _deltaB?.Dispose();
    }
}
