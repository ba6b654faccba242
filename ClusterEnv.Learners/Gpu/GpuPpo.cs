using ClusterEnv.Common;
using ClusterEnv.Learners.Distributed;
using ClusterEnv.Learners.Ppo;
using ILGPU;
using ILGPU.Runtime;

namespace ClusterEnv.Learners.Gpu;

/// <summary>
/// A collective that all-reduces device memory in place (NCCL); others all-reduce through the host.
/// </summary>
public interface IDeviceCollective : ICollective
{
    /// <summary>In-place all-reduce of <paramref name="count"/> floats at device address <paramref name="buffer"/> on <paramref name="stream"/>.</summary>
    void AllReduceDevice(IntPtr buffer, long count, ReduceOp op, IntPtr stream);
}

/// <summary>
/// <see cref="Ppo"/>'s update (CleanRL's PPO: shuffled minibatches, clipped surrogate, clipped value loss, entropy bonus,
/// gradient clipping, Adam) with the networks, gradients and optimizer on a device. The minibatch goes in and seven
/// numbers per sample come out; nothing else crosses. Shuffling and advantage normalisation stay on the host, with the
/// same random stream as the CPU update, so both take the same minibatches.
/// </summary>
public sealed class GpuPpo : IDisposable
{
    private readonly GpuActorCritic _model;
    private readonly int _obsSize, _k;
    private MemoryBuffer1D<float, Stride1D.Dense>? _obs, _oldLogProbs, _oldValues, _adv, _returns, _dHead, _dValue, _metrics, _floatActions, _dLogStdRows;
    private MemoryBuffer1D<int, Stride1D.Dense>? _actions;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PpoScalars, Stride>? _categorical;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PpoScalars, Stride>? _gaussian;
    private float[] _hostGrads = [];

    /// <summary>Runs updates of <paramref name="model"/>.</summary>
    public GpuPpo(GpuActorCritic model)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _obsSize = model.Spec.ObservationSize;
        _k = model.Spec.ActionSize;
    }

    /// <summary>
    /// One PPO update over a batch (the arguments of the CPU update, flat host arrays indexed by sample);
    /// <paramref name="learningRate"/> is this update's (annealed) rate.
    /// </summary>
    public PpoMetrics Update(PpoOptions o, double learningRate, int[] indices, Rng rng, float[] obs, int[] discreteActions, float[] continuousActions,
        float[] oldLogProbs, float[] oldValues, float[] advantages, float[] returns)
    {
        var dp = o.Collective ?? SingleCollective.Instance;
        var dev = _model.Device;
        bool continuous = _model.Spec.Continuous;
        int count = indices.Length, maxMb = (count + o.NumMinibatches - 1) / o.NumMinibatches;
        EnsureBuffers(maxMb, continuous);
        var mbObs = new float[maxMb * _obsSize];
        var mbAdv = new float[maxMb];
        var mbOldLp = new float[maxMb];
        var mbOldV = new float[maxMb];
        var mbRet = new float[maxMb];
        var mbAct = new int[maxMb];
        var mbFloatAct = continuous ? new float[maxMb * _k] : [];
        var metrics = new float[maxMb * 7];
        double pgLoss = 0, vLoss = 0, entropy = 0, oldKl = 0, kl = 0, clipped = 0, clipCount = 0;
        for (int epoch = 0; epoch < o.UpdateEpochs; epoch++)
        {
            Ppo.Ppo.Shuffle(indices, rng);
            // Over several ranks: every minibatch's union moments in one all-reduce per epoch.
            var moments = o.NormalizeAdvantages && dp.WorldSize > 1 ? DataParallel.UnionMoments(dp, advantages, indices, o.NumMinibatches) : null;
            for (int m = 0; m < o.NumMinibatches; m++)
            {
                int start = (int)((long)m * count / o.NumMinibatches), end = (int)((long)(m + 1) * count / o.NumMinibatches), B = end - start;
                if (B == 0 && dp.WorldSize == 1) continue;
                for (int b = 0; b < B; b++)
                {
                    int j = indices[start + b];
                    obs.AsSpan(j * _obsSize, _obsSize).CopyTo(mbObs.AsSpan(b * _obsSize, _obsSize));
                    mbAdv[b] = advantages[j];
                    mbOldLp[b] = oldLogProbs[j];
                    mbOldV[b] = oldValues[j];
                    mbRet[b] = returns[j];
                    if (continuous) continuousActions.AsSpan(j * _k, _k).CopyTo(mbFloatAct.AsSpan(b * _k, _k));
                    else mbAct[b] = discreteActions[j];
                }
                if (o.NormalizeAdvantages)
                {
                    if (dp.WorldSize == 1) Ppo.Ppo.NormalizeUnbiased(mbAdv.AsSpan(0, B));
                    else DataParallel.Normalize(mbAdv.AsSpan(0, B), moments![m]); // over the union of the ranks' minibatches
                }
                // The minibatch in.
                Upload(_obs!, mbObs.AsSpan(0, B * _obsSize));
                Upload(_adv!, mbAdv.AsSpan(0, B));
                Upload(_oldLogProbs!, mbOldLp.AsSpan(0, B));
                Upload(_oldValues!, mbOldV.AsSpan(0, B));
                Upload(_returns!, mbRet.AsSpan(0, B));
                if (continuous) Upload(_floatActions!, mbFloatAct.AsSpan(0, B * _k));
                else _actions!.View.SubView(0, Math.Max(B, 1)).CopyFromCPU(ref mbAct[0], Math.Max(B, 1));

                _model.ZeroGrad();
                if (B > 0)
                {
                    var x = _obs!.View.SubView(0, (long)B * _obsSize);
                    var head = _model.Actor.Forward(x, B);
                    var values = _model.Critic.Forward(x, B);
                    var s = new PpoScalars(o.ClipCoef, o.VfCoef, o.EntCoef, o.ClipValueLoss ? 1 : 0, B, _k);
                    if (continuous)
                    {
                        _gaussian ??= dev.Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PpoScalars, Stride>(GpuKernels.PpoGaussian);
                        var g = dev.Grid(B);
                        _gaussian(g.Threads, head, _model.LogStd, _floatActions!.View, values, _oldLogProbs!.View, _oldValues!.View, _adv!.View, _returns!.View,
                            _dHead!.View, _dLogStdRows!.View, _dValue!.View, _metrics!.View, s, g);
                        dev.ColumnSumAdd(_dLogStdRows!.View, _model.LogStdGrad, B, _k);
                    }
                    else
                    {
                        _categorical ??= dev.Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>,
                            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PpoScalars, Stride>(GpuKernels.PpoCategorical);
                        var g = dev.Grid(B);
                        _categorical(g.Threads, head, values, _actions!.View, _oldLogProbs!.View, _oldValues!.View, _adv!.View, _returns!.View, _dHead!.View, _dValue!.View, _metrics!.View, s, g);
                    }
                    _model.Actor.Backward(_dHead!.View);
                    _model.Critic.Backward(_dValue!.View);
                }
                AllReduceGradients(dp);
                dev.ClipGradNorm(_model.Gradients, o.MaxGradNorm);
                _model.AdamStep(learningRate, o.AdamEps);
                // The metrics out.
                pgLoss = vLoss = entropy = oldKl = kl = 0;
                if (B > 0) _metrics!.View.SubView(0, (long)B * 7).CopyToCPU(ref metrics[0], (long)B * 7);
                for (int b = 0; b < B; b++)
                {
                    pgLoss += metrics[b * 7];
                    vLoss += metrics[b * 7 + 1];
                    entropy += metrics[b * 7 + 2];
                    oldKl += metrics[b * 7 + 3];
                    kl += metrics[b * 7 + 4];
                    clipped += metrics[b * 7 + 5];
                }
                int per = Math.Max(B, 1);
                pgLoss /= per; vLoss /= per; entropy /= per; oldKl /= per; kl /= per;
                clipCount += B;
            }
            if (o.TargetKl is double target && DataParallel.Mean(dp, kl) > target) break;
        }
        dev.Synchronize();
        return new PpoMetrics
        {
            PolicyLoss = pgLoss, ValueLoss = vLoss, Entropy = entropy, OldApproxKl = oldKl, ApproxKl = kl,
            ClipFraction = clipCount > 0 ? clipped / clipCount : 0,
        };
    }

    // Between backward and clipping, as on the CPU: in device memory with NCCL, else through the host.
    private void AllReduceGradients(ICollective dp)
    {
        var grads = _model.Gradients;
        if (dp is IDeviceCollective device) // in device memory, even for a world of 1 (the device check runs that path)
        {
            device.AllReduceDevice(GpuDevice.Address(grads), grads.Length, ReduceOp.Mean, _model.Device.Stream);
            return;
        }
        if (dp.WorldSize == 1) return;
        if (_hostGrads.Length != grads.Length) _hostGrads = new float[grads.Length];
        _model.DownloadGradients(_hostGrads);
        dp.AllReduce(_hostGrads, ReduceOp.Mean);
        _model.UploadGradients(_hostGrads);
    }

    private static void Upload(MemoryBuffer1D<float, Stride1D.Dense> buffer, ReadOnlySpan<float> data)
    {
        if (data.Length > 0) buffer.View.SubView(0, data.Length).CopyFromCPU(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(data), data.Length);
    }

    private void EnsureBuffers(int maxMb, bool continuous)
    {
        if (_obs is not null && _adv!.Length >= maxMb) return;
        DisposeBuffers();
        var dev = _model.Device;
        int n = Math.Max(maxMb, 1);
        _obs = dev.Allocate((long)n * _obsSize);
        _adv = dev.Allocate(n);
        _oldLogProbs = dev.Allocate(n);
        _oldValues = dev.Allocate(n);
        _returns = dev.Allocate(n);
        _dHead = dev.Allocate((long)n * _k);
        _dValue = dev.Allocate(n);
        _metrics = dev.Allocate((long)n * 7);
        _actions = dev.Accelerator.Allocate1D<int>(n);
        if (continuous)
        {
            _floatActions = dev.Allocate((long)n * _k);
            _dLogStdRows = dev.Allocate((long)n * _k);
        }
    }

    private void DisposeBuffers()
    {
        foreach (var b in new[] { _obs, _oldLogProbs, _oldValues, _adv, _returns, _dHead, _dValue, _metrics, _floatActions, _dLogStdRows }) b?.Dispose();
        _actions?.Dispose();
    }

    /// <inheritdoc />
    public void Dispose() => DisposeBuffers();
}
