using ClusterEnv.Common;
using ClusterEnv.Learners.Gpu;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Nn;
using ClusterEnv.Policies;
using ClusterEnv.Spaces;
using ILGPU.Runtime;

namespace ClusterEnv.Tests.Gpu;

/// <summary>
/// The device engine's kernels and its PPO update against the CPU engine, on ILGPU's CPU accelerator (the same kernel
/// code ILGPU compiles to PTX for a GPU). The CUDA path itself needs a GPU: see CudaDeviceTests.
/// </summary>
[NonParallelizable]
public class GpuEngineTests
{
    private static GpuDevice _device = null!;

    [OneTimeSetUp]
    public void Open() => _device = GpuDevice.Open("cpu");

    [OneTimeTearDown]
    public void Close() => _device.Dispose();

    private static float[] Random(int n, Rng rng, double scale = 1) => Enumerable.Range(0, n).Select(_ => (float)rng.Uniform(-scale, scale)).ToArray();

    private static MemoryBuffer1D<float, ILGPU.Stride1D.Dense> Upload(float[] data)
    {
        var b = _device.Allocate(data.Length);
        b.View.CopyFromCPU(ref data[0], data.Length);
        return b;
    }

    private static float[] Download(ILGPU.ArrayView<float> view, int n)
    {
        var r = new float[n];
        view.SubView(0, n).CopyToCPU(ref r[0], n);
        return r;
    }

    // |gpu − cpu| ≤ rel · max(|cpu|, mean |cpu|): relative, with the typical magnitude as the floor for near-zero entries.
    private static void AssertClose(float[] gpu, float[] cpu, double rel, string what)
    {
        Assert.That(gpu, Has.Length.EqualTo(cpu.Length), what);
        double floor = cpu.Average(v => Math.Abs((double)v));
        for (int i = 0; i < cpu.Length; i++)
        {
            double tol = rel * Math.Max(Math.Abs(cpu[i]), floor);
            if (Math.Abs(gpu[i] - cpu[i]) > tol)
                Assert.Fail($"{what}[{i}]: device {gpu[i]:R}, CPU {cpu[i]:R} (tolerance {tol:G3})");
        }
    }

    [TestCase(false, false, false)]
    [TestCase(true, false, false)]
    [TestCase(false, true, true)]
    [TestCase(true, true, true)]
    public void GemmKernel_EqualsTheCpuGemm(bool transA, bool transB, bool accumulate)
    {
        var rng = new Rng(5);
        int m = 37, k = 64, n = 29;
        var a = Random(m * k, rng);
        var b = Random(k * n, rng);
        var c = Random(m * n, rng);
        var expected = (float[])c.Clone();
        Gemm.Multiply(a, transA, b, transB, expected, m, k, n, accumulate);
        using var da = Upload(a);
        using var db = Upload(b);
        using var dc = Upload(c);
        _device.Gemm(da.View, transA, db.View, transB, dc.View, m, k, n, accumulate);
        _device.Synchronize();
        AssertClose(Download(dc.View, m * n), expected, 1e-5, $"C (transA {transA}, transB {transB}, accumulate {accumulate})");
    }

    [TestCase(Activation.Tanh)]
    [TestCase(Activation.ReLU)]
    public void MlpForwardAndBackward_EqualTheCpuEngine(Activation activation)
    {
        var spec = PolicySpec.For(new Box(-1, 1, [6]), new Discrete(3), [32, 32]) with { Activation = activation };
        var policy = new ActorCritic(spec, seed: 3);
        using var model = new GpuActorCritic(_device, policy);
        var rng = new Rng(8);
        int batch = 50;
        var x = Random(batch * 6, rng, 2);
        var dOut = Random(batch * 3, rng);
        var y = policy.Actor.Forward(x, batch).ToArray();
        policy.Store.ZeroGrad();
        policy.Actor.Backward(dOut);
        using var dx = Upload(x);
        using var dd = Upload(dOut);
        model.ZeroGrad();
        var gy = Download(model.Actor.Forward(dx.View, batch), batch * 3);
        model.Actor.Backward(dd.View);
        _device.Synchronize();
        AssertClose(gy, y, 1e-5, "actor output");
        var grads = new float[policy.Store.Count];
        model.DownloadGradients(grads);
        foreach (var p in policy.Store.Parameters.Where(p => p.Name.StartsWith("actor", StringComparison.Ordinal)))
            AssertClose(grads.AsSpan(p.Offset, p.Length).ToArray(), p.Grad.ToArray(), 1e-5, p.Name + " gradient");
    }

    [Test]
    public void ClipGradNormAndAdam_EqualTheCpuEngine()
    {
        var spec = PolicySpec.For(new Box(-1, 1, [4]), new Discrete(2), [16]);
        var policy = new ActorCritic(spec, seed: 1);
        using var model = new GpuActorCritic(_device, policy);
        var rng = new Rng(2);
        var adam = new Adam(policy.Store.Count, 3e-4, eps: 1e-5);
        for (int step = 0; step < 3; step++)
        {
            var g = Random(policy.Store.Count, rng, 0.3);
            model.UploadGradients(g);
            _device.ClipGradNorm(model.Gradients, 0.5);
            Adam.ClipGradNorm(g, 0.5);
            var clipped = new float[g.Length];
            model.DownloadGradients(clipped);
            AssertClose(clipped, g, 1e-5, $"clipped gradient, step {step}");
            model.AdamStep(3e-4, 1e-5);
            adam.Step(policy.Store.Values, g);
        }
        var p = new float[policy.Store.Count];
        model.Download(p);
        AssertClose(p, policy.Store.Values, 1e-5, "parameters after 3 Adam steps");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void PpoMinibatchStep_OnTheDevice_EqualsTheCpuUpdate(bool continuous)
    {
        Space action = continuous ? new Box(-1, 1, [2]) : new Discrete(3);
        var spec = PolicySpec.For(new Box(-1, 1, [5]), action, [64, 64]);
        var cpu = new ActorCritic(spec, seed: 4);
        using var model = new GpuActorCritic(_device, cpu);
        using var ppo = new GpuPpo(model);
        var rng = new Rng(6);
        int n = 256, k = spec.ActionSize;
        var obs = Random(n * 5, rng, 2);
        var discrete = new int[n];
        var floats = continuous ? new float[n * k] : [];
        var logProbs = new float[n];
        var values = new float[n];
        cpu.Act(obs, n, rng, discrete, floats, logProbs, values);
        for (int i = 0; i < n; i++) logProbs[i] += (float)rng.Uniform(-0.3, 0.3); // an older policy: ratios away from 1, some clipped
        var adv = Random(n, rng, 2);
        var ret = values.Select(v => v + (float)rng.Uniform(-1, 1)).ToArray();
        var o = new PpoOptions { NumMinibatches = 1, UpdateEpochs = 1 };
        var adam = new Adam(cpu.Store.Count, o.LearningRate, eps: o.AdamEps);
        var before = cpu.Store.Values.ToArray();
        var cpuStats = Ppo.Update(cpu, adam, o, Enumerable.Range(0, n).ToArray(), new Rng(9), obs, 5, discrete, floats, logProbs, values, adv, ret);
        var gpuStats = ppo.Update(o, o.LearningRate, Enumerable.Range(0, n).ToArray(), new Rng(9), obs, discrete, floats, logProbs, values, adv, ret);

        // Adam's first moment after one step is (1 − β1)·g: the clipped gradient itself.
        var m = new float[cpu.Store.Count];
        model.DownloadFirstMoment(m);
        AssertClose(m, adam.FirstMoment.ToArray(), 1e-4, "gradient (Adam's first moment)");
        var p = new float[cpu.Store.Count];
        model.Download(p);
        AssertClose(p, cpu.Store.Values, 1e-4, "parameters after the step");
        Assert.That(p.Zip(before).Count(t => t.First != t.Second), Is.GreaterThan(p.Length / 2), "the step moved the parameters");
        Assert.That(gpuStats.PolicyLoss, Is.EqualTo(cpuStats.PolicyLoss).Within(1e-4 * Math.Max(1, Math.Abs(cpuStats.PolicyLoss))));
        Assert.That(gpuStats.ValueLoss, Is.EqualTo(cpuStats.ValueLoss).Within(1e-4 * Math.Max(1, cpuStats.ValueLoss)));
        Assert.That(gpuStats.Entropy, Is.EqualTo(cpuStats.Entropy).Within(1e-4));
        Assert.That(gpuStats.ClipFraction, Is.EqualTo(cpuStats.ClipFraction));
        Assert.That(cpuStats.ClipFraction, Is.GreaterThan(0), "the test covers clipped samples");
    }

    [Test]
    public void FullPpoUpdate_FourEpochsOfFourMinibatches_TracksTheCpuUpdate()
    {
        var spec = PolicySpec.For(new Box(-1, 1, [4]), new Discrete(2), [64, 64]);
        var cpu = new ActorCritic(spec, seed: 2);
        using var model = new GpuActorCritic(_device, cpu);
        using var ppo = new GpuPpo(model);
        var rng = new Rng(3);
        int n = 512;
        var obs = Random(n * 4, rng);
        var actions = new int[n];
        var logProbs = new float[n];
        var values = new float[n];
        cpu.Act(obs, n, rng, actions, [], logProbs, values);
        var adv = Random(n, rng);
        var ret = values.Select(v => v + (float)rng.Uniform(-1, 1)).ToArray();
        var o = new PpoOptions();
        var adam = new Adam(cpu.Store.Count, o.LearningRate, eps: o.AdamEps);
        var before = cpu.Store.Values.ToArray();
        Ppo.Update(cpu, adam, o, Enumerable.Range(0, n).ToArray(), new Rng(4), obs, 4, actions, [], logProbs, values, adv, ret);
        ppo.Update(o, o.LearningRate, Enumerable.Range(0, n).ToArray(), new Rng(4), obs, actions, [], logProbs, values, adv, ret);
        var p = new float[cpu.Store.Count];
        model.Download(p);
        // 16 Adam steps: compare each parameter's total change, relative to the largest change.
        var dCpu = cpu.Store.Values.Zip(before, (a, b) => a - b).ToArray();
        var dGpu = p.Zip(before, (a, b) => a - b).ToArray();
        double largest = dCpu.Max(v => Math.Abs(v));
        for (int i = 0; i < p.Length; i++)
            Assert.That(dGpu[i], Is.EqualTo(dCpu[i]).Within(1e-3 * largest), $"parameter {i}");
        Assert.That(model.AdamSteps, Is.EqualTo(16));
    }
}

/// <summary>The CUDA device itself: runs where a GPU is, and says plainly why not elsewhere.</summary>
public class CudaDeviceTests
{
    [Test]
    public void CudaDevice_RunsTheKernels_OrTheTestIsSkippedWithTheReason()
    {
        GpuDevice device;
        try
        {
            device = GpuDevice.Open("cuda");
        }
        catch (InvalidOperationException e)
        {
            Assert.Ignore($"No GPU here: {e.Message}");
            return;
        }
        using (device)
        {
            var a = Enumerable.Range(0, 64 * 64).Select(i => (float)(i % 7) - 3).ToArray();
            using var da = device.Allocate(a.Length);
            using var dc = device.Allocate(a.Length);
            da.View.CopyFromCPU(ref a[0], a.Length);
            device.Gemm(da.View, false, da.View, true, dc.View, 64, 64, 64);
            device.Synchronize();
            var c = new float[a.Length];
            dc.View.CopyToCPU(ref c[0], c.Length);
            var expected = new float[a.Length];
            Gemm.Multiply(a, false, a, true, expected, 64, 64, 64);
            Assert.That(c, Is.EqualTo(expected).Within(1e-3f), "cuBLAS SGEMM, row-major");
        }
    }

    [Test]
    public void UnknownDevice_IsRefusedByName()
    {
        var e = Assert.Throws<ArgumentException>(() => GpuDevice.Open("tpu"))!;
        Assert.That(e.Message, Does.Contain("tpu").And.Contain("cuda"));
    }
}
