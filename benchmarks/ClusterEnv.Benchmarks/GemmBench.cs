using System.CommandLine;
using ClusterEnv.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ClusterEnv.Nn;

namespace ClusterEnv.Benchmarks;

/// <summary>Single-thread GFLOP/s of <see cref="Gemm.Multiply"/> at MLP shapes (batch × in → out) and 1024³, forward layout X·Wᵀ.</summary>
public static class GemmBench
{
    public static Command Command()
    {
        var seconds = Cli.Option("--seconds", "seconds per shape and layout", 1.0).Positive();
        var command = new Command("gemm", "single-thread GFLOP/s of the matrix product at MLP shapes and 1024³") { seconds };
        command.SetAction(p => Run(p.GetValue(seconds)));
        return command;
    }

    private static void Run(double seconds)
    {
        foreach (var (m, k, n) in new[] { (64, 4, 64), (128, 64, 64), (512, 64, 64), (2048, 64, 64), (2048, 256, 256), (1024, 1024, 1024) })
        {
            var rnd = new Random(0);
            var a = Enumerable.Range(0, m * k).Select(_ => (float)rnd.NextDouble()).ToArray();
            var b = Enumerable.Range(0, k * n).Select(_ => (float)rnd.NextDouble()).ToArray();
            var c = new float[m * n];
            foreach (bool transB in new[] { true, false })
            {
                for (int i = 0; i < 3; i++) Gemm.Multiply(a, false, b, transB, c, m, k, n);
                long calls = 0;
                var sw = Stopwatch.StartNew();
                while (sw.Elapsed.TotalSeconds < seconds)
                {
                    Gemm.Multiply(a, false, b, transB, c, m, k, n);
                    calls++;
                }
                double s = sw.Elapsed.TotalSeconds;
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    bench = "gemm", kernel = Gemm.KernelName, m, k, n, layout = transB ? "X*W^T" : "X*W",
                    gflops = Math.Round(2.0 * m * k * n * calls / s / 1e9, 1),
                    us_per_call = Math.Round(s * 1e6 / calls, 2),
                }));
            }
        }
    }
}
