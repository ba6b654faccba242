using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ClusterEnv.CommandLine;
using ClusterEnv.Common;
using ClusterEnv.Learners.Distributed;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Nn;
using ClusterEnv.Policies;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// Data-parallel learner throughput on a fixed synthetic batch (no envs): PPO updates (forward, backward, all-reduce,
/// Adam) for --seconds. Run it under <c>mpirun -np R</c> (or alone, a world of 1); rank 0 prints one JSON line with the
/// world size, updates and samples per second over all ranks, and the all-reduce time per minibatch.
/// <c>collective-check</c> checks every collective on every rank (for <c>mpirun --oversubscribe -np 4</c>).
/// </summary>
public static class LearnerThroughput
{
    public static Command Command()
    {
        var hidden = Cli.Option("--hidden", "width of the two hidden layers (CleanRL: 64, about 9k parameters for CartPole-sized inputs)", 64);
        var batch = Cli.Option("--batch", "samples per rank per update (split into --minibatches)", 512);
        var minibatches = Cli.Option("--minibatches", "minibatches per update (one all-reduce each)", 4);
        var seconds = Cli.Option("--seconds", "how long to run", 5.0).Positive();
        var buckets = Cli.Option("--bucket-floats", "gradients all-reduced in buckets of up to this many floats while backward runs (0, the learners' default: one all-reduce after backward)", 0);
        var device = Cli.Option<string?>("--device", "run the update on a device: cuda, cuda:N, or cpu-kernels (ILGPU's CPU accelerator); default: the CPU engine");
        var command = new Command("learner-throughput", "PPO updates per second on a synthetic batch, under mpirun -np R: samples/s over all ranks and all-reduce time per minibatch")
        {
            hidden, batch, minibatches, seconds, device, buckets,
        };
        command.SetAction(p => Console.WriteLine(JsonSerializer.Serialize(
            Measure(p.GetValue(hidden), p.GetValue(batch), p.GetValue(minibatches), p.GetValue(seconds), p.GetValue(device), bucketFloats: p.GetValue(buckets)) ?? new object())));
        return command;
    }

    public static Command CheckCommand()
    {
        var command = new Command("collective-check", "checks AllReduce (sum, mean, max, float and double), Broadcast and Barrier on every rank; prints one line per rank");
        command.SetAction(_ => Check());
        return command;
    }

    private static ICollective Open() => Collectives.ForContext(DistributedContext.FromEnvironment());

    /// <summary>
    /// Runs PPO updates on a synthetic batch for about <paramref name="seconds"/> (at least 2 after one warm-up) and
    /// returns the record rank 0 prints (null on the other ranks).
    /// </summary>
    internal static object? Measure(int hidden, int batch, int minibatches, double seconds, string? deviceName, ICollective? collective = null,
        ClusterEnv.Learners.Gpu.GpuDevice? sharedDevice = null, int bucketFloats = 0)
    {
        using var inner = collective is null ? Open() : null;
        using var ownDevice = deviceName is null || sharedDevice is not null ? null : ClusterEnv.Learners.Gpu.GpuDevice.Open(deviceName == "cpu-kernels" ? "cpu" : deviceName);
        var device = deviceName is null ? null : sharedDevice ?? ownDevice;
        var dp = collective is ClusterEnv.Learners.Gpu.IDeviceCollective dc ? new TimedDeviceCollective(dc, device!) : new TimedCollective(collective ?? inner!);
        var spec = PolicySpec.For(new Spaces.Box(-1, 1, [8]), new Spaces.Discrete(4), [hidden, hidden]);
        var policy = new ActorCritic(spec, seed: 1);
        var adam = new Adam(policy.Store.Count, 2.5e-4);
        var rng = new Rng(3 + dp.Rank);
        int n = batch;
        var obs = Enumerable.Range(0, n * 8).Select(_ => (float)rng.Uniform(-1, 1)).ToArray();
        var actions = new int[n];
        var logProbs = new float[n];
        var values = new float[n];
        policy.Act(obs, n, rng, actions, Span<float>.Empty, logProbs, values);
        var adv = Enumerable.Range(0, n).Select(_ => (float)rng.Uniform(-1, 1)).ToArray();
        var ret = values.Select((v, i) => v + adv[i]).ToArray();
        var indices = Enumerable.Range(0, n).ToArray();
        var o = new PpoOptions { NumMinibatches = minibatches, UpdateEpochs = 1, Collective = dp.WorldSize > 1 || collective is not null ? dp : null, GradientBucketSize = bucketFloats };
        DataParallel.Start(dp, policy.Store.Values, n, bucketFloats);
        using var model = device is null ? null : new ClusterEnv.Learners.Gpu.GpuActorCritic(device, policy);
        using var gpu = model is null ? null : new ClusterEnv.Learners.Gpu.GpuPpo(model);
        void Update()
        {
            if (gpu is null) Ppo.Update(policy, adam, o, indices, rng, obs, 8, actions, [], logProbs, values, adv, ret);
            else gpu.Update(o, o.LearningRate, indices, rng, obs, actions, [], logProbs, values, adv, ret);
        }
        // Warm up for 2 s (kernel compilation, and .NET's tiered JIT: its background recompilation of the hot methods
        // takes a core from one rank and stalls the other at every all-reduce while it runs), then run until every rank
        // agrees the time is up (the ranks must make the same number of updates).
        var warm = Stopwatch.StartNew();
        do Update();
        while (!DataParallel.AnyStopped(dp, warm.Elapsed.TotalSeconds >= 2));
        dp.Reset();
        var clock = Stopwatch.StartNew();
        long updates = 0;
        while (updates < 2 || !DataParallel.AnyStopped(dp, clock.Elapsed.TotalSeconds >= seconds))
        {
            Update();
            updates++;
        }
        double elapsed = clock.Elapsed.TotalSeconds;
        model?.Download(policy.Store.Values);
        Collectives.CheckInSync(dp, policy.Store.Values, updates);
        if (dp.Rank != 0) return null;
        return new
        {
            bench = "learner-throughput", device = device?.Name ?? "cpu-engine", world_size = dp.WorldSize, backend = dp.Backend, hidden, parameters = policy.Store.Count,
            samples_per_rank_per_update = n, minibatches, updates = updates, updates_per_sec = Math.Round(updates / elapsed, 2),
            samples_per_sec = Math.Round(updates * (double)n * dp.WorldSize / elapsed),
            gradient_bucket_floats = device is null ? bucketFloats : (int?)null,
            // The time a minibatch waits for its gradients' average after backward: the whole all-reduce without
            // buckets, only what backward did not hide with them.
            allreduce_us_p50 = dp.WorldSize > 1 ? Math.Round(dp.GradientP50Microseconds(policy.Store.Count), 1) : 0,
            allreduces = dp.GradientCount(policy.Store.Count),
            bucketed_allreduces = dp.Started,
        };
    }

    private static void Check()
    {
        using var dp = Open();
        int size = dp.WorldSize, r = dp.Rank;
        var x = Enumerable.Range(0, 1 << 20).Select(i => (float)((r + 1) * (i % 7 + 1))).ToArray();
        dp.AllReduce(x, ReduceOp.Sum);
        float expect = size * (size + 1) / 2f;
        for (int i = 0; i < x.Length; i++)
            if (x[i] != expect * (i % 7 + 1)) throw new InvalidOperationException($"rank {r}: sum[{i}] = {x[i]}, expected {expect * (i % 7 + 1)}");
        var d = new double[] { r, -r, 0.5 * (r + 1) };
        dp.AllReduce(d.AsSpan(0, 2), ReduceOp.Max);
        dp.AllReduce(d.AsSpan(2, 1), ReduceOp.Mean);
        if (d[0] != size - 1 || d[1] != 0 || Math.Abs(d[2] - 0.5 * (size + 1) / 2) > 1e-12)
            throw new InvalidOperationException($"rank {r}: max/mean gave {string.Join(", ", d)}");
        var b = new float[] { r, r };
        dp.Broadcast(b, root: size - 1);
        if (b[0] != size - 1) throw new InvalidOperationException($"rank {r}: broadcast gave {b[0]}");
        // Non-blocking all-reduces of three ranges of one buffer, started in order, progressed, then waited for.
        var y = Enumerable.Range(0, 3000).Select(i => (float)((r + 1) * (i % 5 + 1))).ToArray();
        dp.StartAllReduce(y, 0, 1000, ReduceOp.Sum);
        dp.ProgressAllReduces();
        dp.StartAllReduce(y, 1000, 1000, ReduceOp.Mean);
        dp.StartAllReduce(y, 2000, 1000, ReduceOp.Max);
        dp.ProgressAllReduces();
        dp.WaitAllReduces();
        for (int i = 0; i < y.Length; i++)
        {
            float want = (i % 5 + 1) * (i < 1000 ? expect : i < 2000 ? expect / size : size);
            if (Math.Abs(y[i] - want) > 1e-5f * want) throw new InvalidOperationException($"rank {r}: non-blocking all-reduce [{i}] = {y[i]}, expected {want}");
        }
        dp.Barrier();
        Console.WriteLine(JsonSerializer.Serialize(new { bench = "collective-check", rank = r, world_size = size, backend = dp.Backend, ok = true }));
    }

    // Times every all-reduce (for the gradient buffer's p50) and passes everything through.
    private class TimedCollective(ICollective inner) : ICollective
    {
        protected readonly List<(int Length, double Us)> _times = [];
        public int Rank => inner.Rank;
        public int WorldSize => inner.WorldSize;
        public string Backend => inner.Backend;
        public void Reset()
        {
            _times.Clear();
            Started = 0;
        }
        public double GradientP50Microseconds(int length)
        {
            var t = _times.Where(x => x.Length == length).Select(x => x.Us).Order().ToArray();
            return t.Length == 0 ? 0 : t[t.Length / 2];
        }
        public int GradientCount(int length) => _times.Count(x => x.Length == length);
        public int Started { get; private set; }
        // Buckets: started while backward runs; the wait after it is timed as the gradient buffer's exposed all-reduce.
        public void StartAllReduce(float[] buffer, int start, int length, ReduceOp op)
        {
            Started++;
            _bucketed += length;
            inner.StartAllReduce(buffer, start, length, op);
        }
        public void ProgressAllReduces() => inner.ProgressAllReduces();
        public void WaitAllReduces()
        {
            long start = Stopwatch.GetTimestamp();
            inner.WaitAllReduces();
            _times.Add((_bucketed, Stopwatch.GetElapsedTime(start).TotalMicroseconds));
            _bucketed = 0;
        }
        private int _bucketed;
        public void AllReduce(Span<float> values, ReduceOp op)
        {
            long start = Stopwatch.GetTimestamp();
            inner.AllReduce(values, op);
            _times.Add((values.Length, Stopwatch.GetElapsedTime(start).TotalMicroseconds));
        }
        public void AllReduce(Span<double> values, ReduceOp op) => inner.AllReduce(values, op);
        public void Broadcast(Span<float> values, int root) => inner.Broadcast(values, root);
        public void Broadcast(Span<byte> bytes, int root) => inner.Broadcast(bytes, root);
        public void Barrier() => inner.Barrier();
        public void Dispose() { }
    }

    // The same for a device collective (NCCL): device all-reduces are timed to completion on the device.
    private sealed class TimedDeviceCollective(ClusterEnv.Learners.Gpu.IDeviceCollective inner, ClusterEnv.Learners.Gpu.GpuDevice device) : TimedCollective(inner), ClusterEnv.Learners.Gpu.IDeviceCollective
    {
        public void AllReduceDevice(IntPtr buffer, long count, ReduceOp op, IntPtr stream)
        {
            long start = Stopwatch.GetTimestamp();
            inner.AllReduceDevice(buffer, count, op, stream);
            device.Synchronize();
            _times.Add(((int)count, Stopwatch.GetElapsedTime(start).TotalMicroseconds));
        }
    }
}
