using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ClusterEnv.CommandLine;
using ClusterEnv.Learners.Distributed;
using ClusterEnv.Learners.Gpu;
using ClusterEnv.Nn;
using ILGPU.Runtime;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// The GPU checks of scripts/device-check.sh, as one command: every kernel and a PPO step against the CPU engine on the
/// device, NCCL's all-reduce (a world of 1) and a learner step through it, and the learner throughput of the GPU and the
/// CPU engine. One JSON line per result, on stdout and in OUT/device-check.jsonl; a failing part is recorded and the
/// rest still runs. Exit code: 0 when every check passed.
/// </summary>
public static class DeviceCheck
{
    public static Command Command()
    {
        var device = Cli.Option("--device", "cuda, cuda:N, or cpu (ILGPU's CPU accelerator: the same checks without a GPU)", "cuda");
        var outDir = Cli.Option<string?>("--out", "folder for device-check.jsonl (default: $OUT, else ./device-out)");
        var quick = Cli.Option("--quick", "small throughput runs (for trying the script without a GPU)", false);
        var command = new Command("device-check", "GPU kernels and a PPO step vs the CPU engine, NCCL all-reduce (world of 1) and a learner step through it, learner throughput GPU vs CPU engine")
        {
            device, outDir, quick,
        };
        command.SetAction(p => Run(p.GetValue(device)!, p.GetValue(outDir), p.GetValue(quick)));
        return command;
    }

    private static int Run(string deviceName, string? outDir, bool quick)
    {
        outDir ??= Environment.GetEnvironmentVariable("OUT") is { Length: > 0 } o ? o : "device-out";
        Directory.CreateDirectory(outDir);
        using var log = new StreamWriter(Path.Combine(outDir, "device-check.jsonl"), append: false) { AutoFlush = true };
        int failed = 0;
        void Emit(object record)
        {
            string line = JsonSerializer.Serialize(record);
            Console.WriteLine(line);
            log.WriteLine(line);
        }
        void Step(string name, Action body)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                body();
            }
            catch (Exception e)
            {
                failed++;
                Emit(new { check = name, ok = false, error = $"{e.GetType().Name}: {e.Message}", seconds = Math.Round(clock.Elapsed.TotalSeconds, 2) });
            }
        }
        void Checks(IEnumerable<Learners.Gpu.DeviceCheck> checks, double tolerance)
        {
            foreach (var c in checks)
            {
                bool ok = c.MaxRelativeError <= tolerance;
                if (!ok) failed++;
                Emit(new { check = c.Name, ok, max_rel_error = c.MaxRelativeError, tolerance, values = c.Values, worst_index = c.WorstIndex });
            }
        }

        GpuDevice device;
        try
        {
            device = GpuDevice.Open(deviceName);
        }
        catch (Exception e) when (e is GpuUnavailableException or ArgumentException)
        {
            Emit(new { check = "open device", ok = false, device = deviceName, error = e.Message });
            return 1;
        }
        using (device)
        {
            Emit(new { check = "open device", ok = true, device = device.Name, cuda = device.IsCuda, runtime = Environment.Version.ToString() });
            Step("kernels", () =>
            {
                foreach (bool ta in new[] { false, true })
                    foreach (bool tb in new[] { false, true })
                    {
                        Checks([GpuSelfCheck.Gemm(device, ta, tb, accumulate: ta)], 1e-5);
                        if (device.IsCuda) Checks([GpuSelfCheck.Gemm(device, ta, tb, accumulate: tb, useKernel: true)], 1e-5);
                    }
                Checks([GpuSelfCheck.Gemm(device, false, true, false, m: 512, k: 1024, n: 256)], 1e-4);
                Checks(GpuSelfCheck.Mlp(device, Activation.Tanh), 1e-5);
                Checks(GpuSelfCheck.Mlp(device, Activation.ReLU), 1e-5);
                Checks(GpuSelfCheck.ClipAndAdam(device), 1e-5);
            });
            Step("ppo step", () =>
            {
                Checks(GpuSelfCheck.PpoStep(device, continuous: false), 1e-4);
                Checks(GpuSelfCheck.PpoStep(device, continuous: true), 1e-4);
                Checks(GpuSelfCheck.PpoStep(device, continuous: false, hidden: 256, batch: 2048), 1e-4);
            });
            if (device.IsCuda)
            {
                Step("nccl", () =>
                {
                    using var nccl = NcclCollective.Create(device, SingleCollective.Instance);
                    Emit(new { check = "nccl open", ok = true, backend = nccl.Backend, world_size = nccl.WorldSize });
                    NcclAllReduce(device, nccl, 10_000_000, Emit, ref failed);
                    Checks(GpuSelfCheck.PpoStep(device, continuous: false, collective: nccl), 1e-4);
                    Emit(LearnerThroughput.Measure(64, 512, 4, quick ? 1 : 5, deviceName, nccl, device) ?? new object());
                });
            }
            Step("throughput", () =>
            {
                int hidden = quick ? 128 : 1024, batch = quick ? 2048 : 65536;
                Emit(LearnerThroughput.Measure(hidden, batch, 4, quick ? 2 : 20, deviceName, sharedDevice: device) ?? new object());
                Emit(LearnerThroughput.Measure(hidden, batch, 4, quick ? 2 : 10, null) ?? new object());
                Emit(LearnerThroughput.Measure(64, 512, 4, quick ? 1 : 5, deviceName, sharedDevice: device) ?? new object());
                Emit(LearnerThroughput.Measure(64, 512, 4, quick ? 1 : 5, null) ?? new object());
            });
        }
        Emit(new { check = "summary", ok = failed == 0, failed });
        return failed == 0 ? 0 : 1;
    }

    // In-place all-reduce of n floats in device memory: correctness (a world of 1 keeps the values) and speed.
    private static void NcclAllReduce(GpuDevice device, NcclCollective nccl, int n, Action<object> emit, ref int failed)
    {
        var host = new float[n];
        for (int i = 0; i < n; i++) host[i] = i % 1000 * 0.5f;
        using var buffer = device.Allocate(n);
        buffer.View.CopyFromCPU(ref host[0], n);
        var address = GpuDevice.Address<float>(buffer.View);
        nccl.AllReduceDevice(address, n, ReduceOp.Sum, device.Stream);
        device.Synchronize();
        const int iterations = 20;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) nccl.AllReduceDevice(address, n, ReduceOp.Mean, device.Stream);
        device.Synchronize();
        double seconds = clock.Elapsed.TotalSeconds / iterations;
        var back = new float[n];
        buffer.View.CopyToCPU(ref back[0], n);
        bool ok = back.AsSpan().SequenceEqual(host);
        if (!ok) failed++;
        emit(new
        {
            check = "nccl all-reduce", ok, floats = n, world_size = nccl.WorldSize, ms = Math.Round(seconds * 1000, 3),
            algorithm_gb_per_s = Math.Round(n * 4.0 / seconds / 1e9, 1), values_unchanged_at_world_1 = ok,
        });
    }
}
