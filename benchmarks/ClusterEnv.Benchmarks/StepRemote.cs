using System.CommandLine;
using ClusterEnv.CommandLine;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using ClusterEnv.Cluster;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Transport;
using ClusterEnv.Vector;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// <see cref="ClusterVecEnv.Step(ReadOnlySpan{int})"/> through local worker processes with random actions, against,
/// in the same run, the local <see cref="SyncVectorEnv"/> over the same total envs and a raw loopback TCP ping-pong
/// carrying the same request and reply sizes with the same 5-byte framing (the floor: no HTTP/2, no env).
/// Per configuration: env-steps/s, round-trip µs (p50, p99), gRPC message bytes per step, learner-process bytes
/// allocated per step (all threads: learner, hub, Kestrel).
/// </summary>
public static class StepRemote
{
    public static Command Command()
    {
        var env = Cli.Option("--env", "registry id of the env (Discrete or Box actions; e.g. Hopper-v5 for an expensive MuJoCo env)", "CartPole-v1");
        var workers = Cli.List<int>("--workers", "worker counts", "1,2,4");
        var envs = Cli.List<int>("--envs-per-worker", "sub-envs per worker (one measurement each)", "1,16,64,256");
        var seconds = Cli.Option("--seconds", "seconds per configuration", 2.0).Positive();
        var inline = Cli.Option("--inline", "run the hub's socket completions inline (HubOptions.InlineCompletions)", true);
        var transports = Cli.List<string>("--transport", "grpc, shm (a shared-memory channel per worker, HubOptions.SharedMemory), or both", "grpc,shm")
            .Check(t => t.All(x => x is "grpc" or "shm") ? null : "--transport takes grpc and/or shm.");
        var pixels = Cli.Option<string?>("--pixels", "observe rendered frames, gray, resized and stacked (HEIGHTxWIDTHxSTACK, e.g. 84x84x4): uint8 images on the wire");
        var command = new Command("step-remote", "ClusterVecEnv.Step through local worker processes vs SyncVectorEnv and a raw TCP ping-pong")
        {
            env, workers, envs, seconds, inline, transports, pixels,
        };
        command.SetAction(p =>
        {
            foreach (int w in p.GetValue(workers)!)
            foreach (int perWorker in p.GetValue(envs)!)
            foreach (string transport in p.GetValue(transports)!)
                Measure(p.GetValue(env)!, w, perWorker, p.GetValue(seconds), p.GetValue(inline), transport == "shm",
                    p.GetValue(pixels) is { } px ? ClusterEnv.Wrappers.PixelObservations.Parse(px) : null);
        });
        return command;
    }

    private static void Measure(string envId, int workers, int perWorker, double seconds, bool inline, bool shm, ClusterEnv.Wrappers.PixelObservations? pixels)
    {
        int n = workers * perWorker;
        using var envs = new ClusterVecEnv(new ClusterOptions { EnvId = envId, NumEnvs = n, NumWorkers = workers, Pixels = pixels, Hub = new HubOptions { InlineCompletions = inline, SharedMemory = shm } });
        var rng = new Rng(0);
        var actions = new RandomActions(envs.SingleActionSpace, n);
        envs.Reset(seed: 0);
        var remote = Time(envs, rng, actions, seconds, out long allocated);

        // Message sizes of one step: what one worker is sent and sends back (no episode ends; +5 framing each).
        int request = StepCodec.StepCommandSize(1000, actions.Shape(perWorker), perWorker * actions.PerEnv, continuous: actions.Continuous) + WireMessage.PrefixSize;
        var obsType = ObservationCodec.WireTypeOf(envs.SingleObservationSpace);
        int reply = ReplySize(perWorker, envs.ObservationSize, obsType) + WireMessage.PrefixSize;
        int float32Reply = ReplySize(perWorker, envs.ObservationSize) + WireMessage.PrefixSize;

        using var local = pixels is null ? Gym.MakeVec(envId, n, wrap: e => new ClusterEnv.Wrappers.RecordEpisodeStatistics(e))
            : new SyncVectorEnv(Enumerable.Range(0, n).Select(_ => (Func<IEnv>)(() => new ClusterEnv.Wrappers.RecordEpisodeStatistics(pixels.Make(envId)))));
        local.Reset(seed: 0);
        var sync = Time(local, rng, actions, Math.Min(seconds, 2), out _);
        var tcp = workers == 1 ? RawTcp(request, reply, seconds) : default;
        var stalls = CpuStalls(0.5);

        Console.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "step-remote",
            env = envId,
            workers,
            envs_per_worker = perWorker,
            transport = shm ? "shm" : "grpc",
            num_envs = n,
            hub_inline_completions = inline,
            env_steps_per_sec = Math.Round(remote.Steps * n / remote.Seconds),
            rtt_us_p50 = remote.P50,
            rtt_us_p90 = remote.P90,
            rtt_us_p99 = remote.P99,
            rtt_us_p999 = remote.P999,
            local_env_steps_per_sec = Math.Round(sync.Steps * n / sync.Seconds),
            local_step_us_p50 = sync.P50,
            local_step_us_p99 = sync.P99,
            rtt_us_p95 = remote.P95,
            rtt_us_p98 = remote.P98,
            raw_tcp_rtt_us_p50 = workers == 1 ? tcp.P50 : (double?)null,
            raw_tcp_rtt_us_p99 = workers == 1 ? tcp.P99 : (double?)null,
            p50_over_raw_tcp = workers == 1 ? Math.Round(remote.P50 / tcp.P50, 2) : (double?)null,
            cpu_stalls_per_sec = stalls.PerSecond,
            cpu_stall_us_mean = stalls.MeanUs,
            wire_bytes_per_step = (request + reply) * workers,
            pixels = pixels?.ToString(),
            observation_bytes = envs.ObservationSize * ObservationCodec.ElementSize(obsType),
            wire_bytes_per_env_step = Math.Round((double)(request + reply) / perWorker, 1),
            wire_bytes_per_env_step_as_float32 = Math.Round((double)(request + float32Reply) / perWorker, 1),
            learner_bytes_allocated_per_step = Math.Round((double)allocated / remote.Steps, 1),
            vector_steps = remote.Steps,
        }));
    }

    internal static int ReplySize(int n, int obsSize, ClusterEnv.Transport.Protos.DType obsType = ClusterEnv.Transport.Protos.DType.Float32)
    {
        var r = new VectorStepResult(new float[n * obsSize], new double[n], new bool[n], new bool[n], new VectorInfo(n, obsSize));
        return StepCodec.StepResultSize(1000, r, obsSize, default, obsType);
    }

    internal readonly record struct Timing(long Steps, double Seconds, double P50, double P90, double P99, double P999, double P95 = 0, double P98 = 0);

    private static Timing Time(IVectorEnv envs, Rng rng, RandomActions actions, double seconds, out long allocated)
    {
        var warm = Stopwatch.StartNew(); // warm up: JIT tiers, connection windows (2,000 steps, or 2 s of an expensive env)
        for (int t = 0; t < 2000 && warm.Elapsed.TotalSeconds < 2; t++) actions.Step(envs, rng);
        var samples = new long[4_000_000];
        long steps = 0;
        var sw = new Stopwatch();
        long before = GC.GetTotalAllocatedBytes(precise: true);
        sw.Start();
        while (sw.Elapsed.TotalSeconds < seconds && steps < samples.Length)
        {
            long t0 = Stopwatch.GetTimestamp();
            actions.Step(envs, rng);
            samples[steps++] = Stopwatch.GetTimestamp() - t0;
        }
        sw.Stop();
        allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        return Summarise(samples, steps, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Uniform random actions for a Discrete or a bounded Box action space, into kept buffers.</summary>
    private sealed class RandomActions
    {
        private readonly int[]? _discrete;
        private readonly float[]? _continuous;
        private readonly float[] _low = [], _high = [];
        private readonly int _k;

        public RandomActions(ClusterEnv.Spaces.Space space, int n)
        {
            switch (space)
            {
                case ClusterEnv.Spaces.Discrete d:
                    (_discrete, _k, PerEnv) = (new int[n], d.N, 1);
                    break;
                case ClusterEnv.Spaces.Box b:
                    (_low, _high, PerEnv) = (b.Low.ToArray(), b.High.ToArray(), b.Low.Length);
                    if (!_low.All(float.IsFinite) || !_high.All(float.IsFinite)) throw new ArgumentException($"step-remote draws random actions from a bounded Box, not {space}.");
                    _continuous = new float[n * PerEnv];
                    break;
                default:
                    throw new ArgumentException($"step-remote draws random actions from a Discrete or a bounded Box space, not {space}.");
            }
        }

        public int PerEnv { get; }

        public bool Continuous => _continuous is not null;

        public int[] Shape(int envs) => Continuous ? [envs, PerEnv] : [envs];

        public void Step(IVectorEnv envs, Rng rng)
        {
            if (_discrete is not null)
            {
                for (int i = 0; i < _discrete.Length; i++) _discrete[i] = rng.NextInt(_k);
                envs.Step(_discrete);
                return;
            }
            var a = _continuous!;
            for (int i = 0; i < a.Length; i++) { int j = i % PerEnv; a[i] = (float)rng.Uniform(_low[j], _high[j]); }
            envs.Step(a);
        }
    }

    internal static Timing Summarise(long[] samples, long count, double seconds)
    {
        Array.Sort(samples, 0, (int)count);
        double at(double q) => Math.Round(samples[Math.Min((int)(count * q), (int)count - 1)] * 1e6 / Stopwatch.Frequency, 1);
        return new Timing(count, seconds, at(0.50), at(0.90), at(0.99), at(0.999), at(0.95), at(0.98));
    }

    /// <summary>Blocking-socket ping-pong on loopback: a request of <paramref name="request"/> bytes, a reply of <paramref name="reply"/>.</summary>
    internal static Timing RawTcp(int request, int reply, double seconds)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var server = new Thread(() =>
        {
            using var s = listener.Accept();
            s.NoDelay = true;
            var inBuf = new byte[request];
            var outBuf = new byte[reply];
            BinaryPrimitives.WriteUInt32BigEndian(outBuf.AsSpan(1), (uint)(reply - 5));
            try
            {
                while (true)
                {
                    if (!ReadExactly(s, inBuf)) return;
                    s.Send(outBuf);
                }
            }
            catch (SocketException) { }
        }) { IsBackground = true };
        server.Start();
        using var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        c.Connect(listener.LocalEndPoint!);
        var req = new byte[request];
        BinaryPrimitives.WriteUInt32BigEndian(req.AsSpan(1), (uint)(request - 5));
        var rep = new byte[reply];
        var timing = TimeRoundTrips(() =>
        {
            c.Send(req);
            ReadExactly(c, rep);
        }, seconds);
        c.Shutdown(SocketShutdown.Both);
        return timing;
    }

    /// <summary>
    /// How often the machine takes the CPU from a thread that never yields, and for how long: a single thread reads the
    /// clock in a loop for <paramref name="seconds"/> and counts the gaps over 10 µs (interrupts, the hypervisor, other
    /// threads). Every such stall inside a timed step lands in its tail, so p99 cannot beat them.
    /// </summary>
    internal static (double PerSecond, double MeanUs) CpuStalls(double seconds)
    {
        long threshold = Stopwatch.Frequency / 100_000, end = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        long last = Stopwatch.GetTimestamp(), count = 0, total = 0;
        while (last < end)
        {
            long now = Stopwatch.GetTimestamp();
            if (now - last > threshold)
            {
                count++;
                total += now - last;
            }
            last = now;
        }
        return (Math.Round(count / seconds), count == 0 ? 0 : Math.Round(total * 1e6 / Stopwatch.Frequency / count, 1));
    }

    /// <summary>3,000 warm-up round trips, then as many timed ones as fit in <paramref name="seconds"/>: p50, p90, p99, p99.9.</summary>
    internal static Timing TimeRoundTrips(Action roundTrip, double seconds)
    {
        for (int i = 0; i < 3000; i++) roundTrip();
        var samples = new long[4_000_000];
        long count = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds && count < samples.Length)
        {
            long t0 = Stopwatch.GetTimestamp();
            roundTrip();
            samples[count++] = Stopwatch.GetTimestamp() - t0;
        }
        return Summarise(samples, count, sw.Elapsed.TotalSeconds);
    }

    private static bool ReadExactly(Socket s, byte[] buffer)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = s.Receive(buffer, got, buffer.Length - got, SocketFlags.None);
            if (n == 0) return false;
            got += n;
        }
        return true;
    }
}
