using ClusterEnv.Common;
using ClusterEnv.Learners.Distributed;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Nn;
using ClusterEnv.Policies;
using ClusterEnv.Spaces;
using ILGPU;
using ILGPU.Runtime;

namespace ClusterEnv.Learners.Gpu;

/// <summary>One comparison of the device engine with the CPU engine: the worst relative error over the compared values.</summary>
/// <param name="Name">What was compared.</param>
/// <param name="MaxRelativeError">max |device − cpu| / max(|cpu|, mean |cpu|) (the mean magnitude floors near-zero values).</param>
/// <param name="Values">How many values were compared.</param>
/// <param name="WorstIndex">Where the worst one is.</param>
public sealed record DeviceCheck(string Name, double MaxRelativeError, int Values, int WorstIndex);

/// <summary>
/// The device engine checked against the CPU engine on random inputs: every kernel, an MLP's forward and backward, the
/// gradient clip and Adam, and whole PPO steps. The tests run these on ILGPU's CPU accelerator; the device check script
/// (scripts/device-check.sh) runs them on the GPU.
/// </summary>
public static class GpuSelfCheck
{
    /// <summary>Compares two arrays (see <see cref="DeviceCheck.MaxRelativeError"/>).</summary>
    public static DeviceCheck Compare(string name, ReadOnlySpan<float> device, ReadOnlySpan<float> cpu)
    {
        if (device.Length != cpu.Length) throw new ArgumentException($"{name}: {device.Length} device values, {cpu.Length} CPU values.");
        double floor = 0;
        foreach (float v in cpu) floor += Math.Abs(v);
        floor = cpu.Length > 0 ? floor / cpu.Length : 0;
        double worst = 0;
        int at = -1;
        for (int i = 0; i < cpu.Length; i++)
        {
            double scale = Math.Max(Math.Abs(cpu[i]), floor);
            double e = scale > 0 ? Math.Abs(device[i] - cpu[i]) / scale : Math.Abs(device[i] - cpu[i]);
            if (e > worst || double.IsNaN(e)) { worst = double.IsNaN(e) ? double.PositiveInfinity : e; at = i; }
        }
        return new DeviceCheck(name, worst, cpu.Length, at);
    }

    private static float[] Random(int n, Rng rng, double scale = 1)
    {
        var r = new float[n];
        for (int i = 0; i < n; i++) r[i] = (float)rng.Uniform(-scale, scale);
        return r;
    }

    private static MemoryBuffer1D<float, Stride1D.Dense> Upload(GpuDevice device, float[] data)
    {
        var b = device.Allocate(data.Length);
        b.View.CopyFromCPU(ref data[0], data.Length);
        return b;
    }

    private static float[] Download(ArrayView<float> view, int n)
    {
        var r = new float[n];
        view.SubView(0, n).CopyToCPU(ref r[0], n);
        return r;
    }

    /// <summary>GEMM (the kernel, or cuBLAS on a GPU unless <paramref name="useKernel"/>) against Gemm.Multiply.</summary>
    public static DeviceCheck Gemm(GpuDevice device, bool transA, bool transB, bool accumulate, int m = 37, int k = 64, int n = 29, bool useKernel = false)
    {
        var rng = new Rng(5);
        var a = Random(m * k, rng);
        var b = Random(k * n, rng);
        var c = Random(m * n, rng);
        var expected = (float[])c.Clone();
        Nn.Gemm.Multiply(a, transA, b, transB, expected, m, k, n, accumulate);
        using var da = Upload(device, a);
        using var db = Upload(device, b);
        using var dc = Upload(device, c);
        device.Gemm(da.View, transA, db.View, transB, dc.View, m, k, n, accumulate, useKernel);
        device.Synchronize();
        return Compare($"gemm{(useKernel ? "-kernel" : "")} {(transA ? "T" : "N")}{(transB ? "T" : "N")}{(accumulate ? " +=" : "")} {m}x{k}x{n}", Download(dc.View, m * n), expected);
    }

    /// <summary>An actor MLP's output and its parameter gradients against <see cref="Mlp"/>.</summary>
    public static IReadOnlyList<DeviceCheck> Mlp(GpuDevice device, Activation activation, int hidden = 32, int batch = 50)
    {
        var spec = PolicySpec.For(new Box(-1, 1, [6]), new Discrete(3), [hidden, hidden]) with { Activation = activation };
        var policy = new ActorCritic(spec, seed: 3);
        using var model = new GpuActorCritic(device, policy);
        var rng = new Rng(8);
        var x = Random(batch * 6, rng, 2);
        var dOut = Random(batch * 3, rng);
        var y = policy.Actor.Forward(x, batch).ToArray();
        policy.Store.ZeroGrad();
        policy.Actor.Backward(dOut);
        using var dx = Upload(device, x);
        using var dd = Upload(device, dOut);
        model.ZeroGrad();
        var gy = Download(model.Actor.Forward(dx.View, batch), batch * 3);
        model.Actor.Backward(dd.View);
        device.Synchronize();
        var grads = new float[policy.Store.Count];
        model.DownloadGradients(grads);
        var checks = new List<DeviceCheck> { Compare($"mlp-{activation} forward", gy, y) };
        foreach (var p in policy.Store.Parameters.Where(p => p.Name.StartsWith("actor", StringComparison.Ordinal)))
            checks.Add(Compare($"mlp-{activation} {p.Name} gradient", grads.AsSpan(p.Offset, p.Length), p.Grad));
        return checks;
    }

    /// <summary>Three rounds of gradient-norm clipping and Adam against the CPU engine's.</summary>
    public static IReadOnlyList<DeviceCheck> ClipAndAdam(GpuDevice device)
    {
        var spec = PolicySpec.For(new Box(-1, 1, [4]), new Discrete(2), [16]);
        var policy = new ActorCritic(spec, seed: 1);
        using var model = new GpuActorCritic(device, policy);
        var rng = new Rng(2);
        var adam = new Adam(policy.Store.Count, 3e-4, eps: 1e-5);
        var checks = new List<DeviceCheck>();
        for (int step = 0; step < 3; step++)
        {
            var g = Random(policy.Store.Count, rng, 0.3);
            model.UploadGradients(g);
            device.ClipGradNorm(model.Gradients, 0.5);
            Nn.Adam.ClipGradNorm(g, 0.5);
            var clipped = new float[g.Length];
            model.DownloadGradients(clipped);
            checks.Add(Compare($"clip-grad-norm step {step}", clipped, g));
            model.AdamStep(3e-4, 1e-5);
            adam.Step(policy.Store.Values, g);
        }
        var p = new float[policy.Store.Count];
        model.Download(p);
        checks.Add(Compare("adam parameters after 3 steps", p, policy.Store.Values));
        return checks;
    }

    /// <summary>
    /// One PPO minibatch step (NumMinibatches 1, UpdateEpochs 1) on the device and on the CPU from the same weights and
    /// batch: the clipped gradient (Adam's first moment after one step is (1 − β1)·g), the parameters after the step, and
    /// the clip fraction (which must be above 0 for the check to cover clipped samples).
    /// </summary>
    public static IReadOnlyList<DeviceCheck> PpoStep(GpuDevice device, bool continuous, int hidden = 64, int batch = 256, ICollective? collective = null)
    {
        Space action = continuous ? new Box(-1, 1, [2]) : new Discrete(3);
        var spec = PolicySpec.For(new Box(-1, 1, [5]), action, [hidden, hidden]);
        var cpu = new ActorCritic(spec, seed: 4);
        using var model = new GpuActorCritic(device, cpu);
        using var ppo = new GpuPpo(model);
        var rng = new Rng(6);
        int n = batch, k = spec.ActionSize;
        var obs = Random(n * 5, rng, 2);
        var discrete = new int[n];
        var floats = continuous ? new float[n * k] : [];
        var logProbs = new float[n];
        var values = new float[n];
        cpu.Act(obs, n, rng, discrete, floats, logProbs, values);
        for (int i = 0; i < n; i++) logProbs[i] += (float)rng.Uniform(-0.3, 0.3); // an older policy: ratios away from 1, some clipped
        var adv = Random(n, rng, 2);
        var ret = new float[n];
        for (int i = 0; i < n; i++) ret[i] = values[i] + (float)rng.Uniform(-1, 1);
        var o = new PpoOptions { NumMinibatches = 1, UpdateEpochs = 1 };
        var adam = new Adam(cpu.Store.Count, o.LearningRate, eps: o.AdamEps);
        var cpuStats = Ppo.Ppo.Update(cpu, adam, o, Enumerable.Range(0, n).ToArray(), new Rng(9), obs, 5, discrete, floats, logProbs, values, adv, ret);
        var gpuOptions = collective is null ? o : o with { Collective = collective };
        var gpuStats = ppo.Update(gpuOptions, o.LearningRate, Enumerable.Range(0, n).ToArray(), new Rng(9), obs, discrete, floats, logProbs, values, adv, ret);
        var m = new float[cpu.Store.Count];
        model.DownloadFirstMoment(m);
        var p = new float[cpu.Store.Count];
        model.Download(p);
        string kind = continuous ? "gaussian" : "categorical";
        return
        [
            Compare($"ppo-{kind} gradient", m, adam.FirstMoment),
            Compare($"ppo-{kind} parameters after the step", p, cpu.Store.Values),
            Compare($"ppo-{kind} losses and entropy", [(float)gpuStats.PolicyLoss, (float)gpuStats.ValueLoss, (float)gpuStats.Entropy],
                [(float)cpuStats.PolicyLoss, (float)cpuStats.ValueLoss, (float)cpuStats.Entropy]),
            new DeviceCheck($"ppo-{kind} clip fraction {gpuStats.ClipFraction:F4} vs {cpuStats.ClipFraction:F4}",
                cpuStats.ClipFraction > 0 ? Math.Abs(gpuStats.ClipFraction - cpuStats.ClipFraction) : double.PositiveInfinity, 1, 0),
        ];
    }
}
