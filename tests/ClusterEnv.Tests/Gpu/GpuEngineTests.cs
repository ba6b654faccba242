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

    private static void AssertWithin(IEnumerable<DeviceCheck> checks, double tolerance)
    {
        foreach (var c in checks)
        {
            TestContext.Out.WriteLine($"{c.Name}: max relative error {c.MaxRelativeError:G3} over {c.Values} values");
            Assert.That(c.MaxRelativeError, Is.LessThanOrEqualTo(tolerance), $"{c.Name} (worst at index {c.WorstIndex})");
        }
    }

    [TestCase(false, false, false)]
    [TestCase(true, false, false)]
    [TestCase(false, true, true)]
    [TestCase(true, true, true)]
    public void GemmKernel_EqualsTheCpuGemm(bool transA, bool transB, bool accumulate) =>
        AssertWithin([GpuSelfCheck.Gemm(_device, transA, transB, accumulate)], 1e-5);

    [TestCase(Activation.Tanh)]
    [TestCase(Activation.ReLU)]
    public void MlpForwardAndBackward_EqualTheCpuEngine(Activation activation)
    {
        var checks = GpuSelfCheck.Mlp(_device, activation);
        Assert.That(checks, Has.Count.EqualTo(1 + 6), "the output and the gradients of 3 weight and 3 bias tensors");
        AssertWithin(checks, 1e-5);
    }

    [Test]
    public void ClipGradNormAndAdam_EqualTheCpuEngine() => AssertWithin(GpuSelfCheck.ClipAndAdam(_device), 1e-5);

    [TestCase(false)]
    [TestCase(true)]
    public void PpoMinibatchStep_OnTheDevice_EqualsTheCpuUpdate(bool continuous) => AssertWithin(GpuSelfCheck.PpoStep(_device, continuous), 1e-4);

    [Test]
    public void TheComparison_CatchesADifference()
    {
        var c = GpuSelfCheck.Compare("x", [1f, 2f, 3.01f], [1f, 2f, 3f]);
        Assert.That(c.MaxRelativeError, Is.EqualTo(0.01 / 3).Within(1e-6));
        Assert.That(c.WorstIndex, Is.EqualTo(2));
        Assert.That(GpuSelfCheck.Compare("nan", [float.NaN], [1f]).MaxRelativeError, Is.EqualTo(double.PositiveInfinity));
    }

    private static float[] Random(int n, Rng rng, double scale = 1) => Enumerable.Range(0, n).Select(_ => (float)rng.Uniform(-scale, scale)).ToArray();

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

/// <summary>The NCCL binding's loading and error paths, which need no GPU.</summary>
[NonParallelizable]
public class NcclBindingTests
{
    [Test]
    public void WithoutNccl_TheErrorNamesTheLibraryAndEveryPlaceLookedIn()
    {
        string empty = Directory.CreateTempSubdirectory("no-nccl-").FullName;
        string? saved = Environment.GetEnvironmentVariable("CLUSTERENV_CUDA_LIBS");
        try
        {
            Environment.SetEnvironmentVariable("CLUSTERENV_CUDA_LIBS", empty);
            var candidates = CudaLibraries.Candidates(["libnccl.so.2"]).ToList();
            Assert.That(candidates[0], Is.EqualTo(Path.Combine(empty, "libnccl.so.2")), "CLUSTERENV_CUDA_LIBS first");
            Assert.That(candidates[^1], Is.EqualTo("libnccl.so.2"), "the loader's own search last");
            try
            {
                NcclCollective.Load();
            }
            catch (DllNotFoundException e)
            {
                Assert.That(e.Message, Does.Contain("NCCL").And.Contain("libnccl.so.2").And.Contain(empty).And.Contain("CLUSTERENV_CUDA_LIBS"));
                return;
            }
            Assert.Ignore("libnccl.so.2 is installed here, so the missing-library path cannot be shown.");
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLUSTERENV_CUDA_LIBS", saved);
            Directory.Delete(empty);
        }
    }

    [Test]
    public void NcclResultCodes_HaveTheirNames()
    {
        Assert.That(NcclCollective.ResultName(0), Is.EqualTo("ncclSuccess"));
        Assert.That(NcclCollective.ResultName(1), Is.EqualTo("ncclUnhandledCudaError"));
        Assert.That(NcclCollective.ResultName(5), Is.EqualTo("ncclInvalidUsage"));
        Assert.That(NcclCollective.ResultName(42), Does.Contain("42"));
    }

    [Test]
    public void Nccl_OnTheCpuAccelerator_IsRefusedByName()
    {
        using var cpu = GpuDevice.Open("cpu");
        try
        {
            NcclCollective.Load();
        }
        catch (DllNotFoundException)
        {
            // Without the library Create fails at loading, which the test above covers; the device check comes first.
        }
        var e = Assert.Throws<ArgumentException>(() => NcclCollective.Create(cpu, ClusterEnv.Learners.Distributed.SingleCollective.Instance))!;
        Assert.That(e.Message, Does.Contain("CUDA"));
    }
}
