using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ClusterEnv.CommandLine;
using ClusterEnv.Transport;
using ClusterEnv.Transport.SharedMemory;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// The floor of a same-host transport: a ping-pong of step-sized messages (a step command for N sub-envs, the reply
/// with their observations) over a shared-memory channel, between two threads and between two processes, against a
/// raw loopback TCP ping-pong of the same sizes, in the same run. Round-trip µs p50 and p99, and the ratio to TCP.
/// </summary>
public static class ShmPingPong
{
    public static Command Command()
    {
        var envs = Cli.List<int>("--envs-per-worker", "message sizes of a step for this many CartPole sub-envs (one measurement each)", "1,64");
        var seconds = Cli.Option("--seconds", "seconds per measurement", 2.0).Positive();
        var spin = Cli.Option("--spin-us", "microseconds a side spins before it sleeps on the futex", 20).AtLeast(0);
        var command = new Command("shm-pingpong", "step-sized ping-pong over a shared-memory channel (threads and processes) vs raw loopback TCP")
        {
            envs, seconds, spin,
        };
        command.SetAction(p =>
        {
            if (ShmChannel.Unavailable() is { } why)
            {
                Console.WriteLine(JsonSerializer.Serialize(new { bench = "shm-pingpong", skipped = why }));
                return;
            }
            foreach (int perWorker in p.GetValue(envs)!) Measure(perWorker, p.GetValue(seconds), p.GetValue(spin));
        });
        return command;
    }

    /// <summary>The other process of <c>shm-pingpong</c>: answers every message with one of --reply bytes until the channel closes.</summary>
    public static Command EchoCommand()
    {
        var path = Cli.Option<string>("--path", "the channel file shm-pingpong created");
        var reply = Cli.Option("--reply", "bytes per answer", 64).AtLeast(0);
        var spin = Cli.Option("--spin-us", "microseconds to spin before sleeping on the futex", 20).AtLeast(0);
        var command = new Command("shm-echo", "the echo process of shm-pingpong (it starts this itself)") { path, reply, spin };
        command.SetAction(p =>
        {
            using var channel = ShmChannel.Open(p.GetValue(path)!, p.GetValue(spin));
            Echo(channel, p.GetValue(reply));
        });
        return command;
    }

    private static void Echo(ShmChannel channel, int reply)
    {
        var inBuf = new byte[4096];
        var outBuf = new byte[reply];
        try
        {
            while (true)
            {
                channel.Receive(ref inBuf);
                channel.Send(outBuf);
            }
        }
        catch (ObjectDisposedException) { } // the channel closed: done
    }

    private static void Measure(int perWorker, double seconds, int spinUs)
    {
        int request = StepCodec.StepCommandSize(1000, [perWorker], perWorker, continuous: false) + WireMessage.PrefixSize;
        int reply = StepRemote.ReplySize(perWorker, 4) + WireMessage.PrefixSize;
        var tcp = StepRemote.RawTcp(request, reply, seconds);

        StepRemote.Timing threads;
        using (var hub = ShmChannel.Create($"clusterenv-bench-{Environment.ProcessId}-t", spinMicroseconds: spinUs))
        using (var side = ShmChannel.Open(hub.Path, spinUs))
        {
            var echo = new Thread(() => Echo(side, reply)) { IsBackground = true };
            echo.Start();
            threads = PingPong(hub, request, seconds);
            hub.Close();
            echo.Join();
        }

        StepRemote.Timing processes;
        using (var hub = ShmChannel.Create($"clusterenv-bench-{Environment.ProcessId}-p", spinMicroseconds: spinUs))
        {
            var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardError = true };
            if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") psi.ArgumentList.Add(typeof(ShmPingPong).Assembly.Location);
            foreach (var a in new[] { "shm-echo", "--path", hub.Path, "--reply", reply.ToString(), "--spin-us", spinUs.ToString() }) psi.ArgumentList.Add(a);
            using var child = Process.Start(psi)!;
            processes = PingPong(hub, request, seconds);
            hub.Close();
            if (!child.WaitForExit(10_000)) child.Kill();
        }

        Console.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "shm-pingpong", envs_per_worker = perWorker, request_bytes = request, reply_bytes = reply, spin_us = spinUs,
            raw_tcp_rtt_us_p50 = tcp.P50, raw_tcp_rtt_us_p99 = tcp.P99,
            shm_threads_rtt_us_p50 = threads.P50, shm_threads_rtt_us_p99 = threads.P99,
            shm_processes_rtt_us_p50 = processes.P50, shm_processes_rtt_us_p99 = processes.P99,
            processes_p50_over_raw_tcp = Math.Round(processes.P50 / tcp.P50, 3),
        }));
    }

    private static StepRemote.Timing PingPong(ShmChannel channel, int request, double seconds)
    {
        var req = new byte[request];
        var rep = new byte[4096];
        return StepRemote.TimeRoundTrips(() =>
        {
            channel.Send(req);
            channel.Receive(ref rep);
        }, seconds);
    }
}
