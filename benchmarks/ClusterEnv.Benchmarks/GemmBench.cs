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

    /// <summary>
    /// Single-thread GFLOP/s of <see cref="Conv2d"/> forward + backward (weights and input gradients) at the Nature CNN's
    /// three layers (84×84×4 input), beside the GEMM alone at each layer's product shape in the same run: the cost
    /// of unrolling and folding images around the same kernel.
    /// </summary>
    public static Command ConvCommand()
    {
        var seconds = Cli.Option("--seconds", "seconds per layer", 1.0).Positive();
        var batch = Cli.Option("--batch", "images per call", 32).AtLeast(1);
        var command = new Command("conv", "single-thread GFLOP/s of Conv2d forward+backward at the Nature CNN's layers vs the GEMM at the same shapes") { seconds, batch };
        command.SetAction(p => RunConv(p.GetValue(seconds), p.GetValue(batch)));
        return command;
    }

    private static void RunConv(double seconds, int batch)
    {
        foreach (var (cin, cout, k, s, h) in new[] { (4, 32, 8, 4, 84), (32, 64, 4, 2, 20), (64, 64, 3, 1, 9) })
        {
            var store = new ParameterStore();
            var conv = new Conv2d(store, "conv", cin, cout, k, s, h, h);
            store.Build();
            conv.Initialize(new ClusterEnv.Common.Rng(0), Math.Sqrt(2));
            var rnd = new Random(0);
            var x = Enumerable.Range(0, batch * conv.InputSize).Select(_ => (float)rnd.NextDouble()).ToArray();
            var y = new float[batch * conv.OutputSize];
            var gx = new float[x.Length];
            double convSeconds = Time(() =>
            {
                conv.Forward(x, batch, y);
                conv.Backward(y, gx);
            }, seconds, out long convCalls);
            double convGflops = 3.0 * 2 * conv.MultiplyAdds * batch * convCalls / convSeconds / 1e9; // forward, then dW and dX

            // The three products of one image, alone: W·col, dy·colᵀ, Wᵀ·dy.
            int m = cout, kk = cin * k * k, n = conv.OutHeight * conv.OutWidth;
            var w = new float[m * kk];
            var col = new float[kk * n];
            var outBuf = new float[m * n];
            var dw = new float[m * kk];
            var dcol = new float[kk * n];
            double gemmSeconds = Time(() =>
            {
                for (int b = 0; b < batch; b++)
                {
                    Gemm.Multiply(w, false, col, false, outBuf, m, kk, n);
                    Gemm.Multiply(outBuf, false, col, true, dw, m, n, kk, accumulate: true);
                    Gemm.Multiply(w, true, outBuf, false, dcol, kk, m, n);
                }
            }, seconds, out long gemmCalls);
            double gemmGflops = 3.0 * 2 * conv.MultiplyAdds * batch * gemmCalls / gemmSeconds / 1e9;
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                bench = "conv", kernel = Gemm.KernelName, batch, in_channels = cin, out_channels = cout, kernel_size = k, stride = s, input = $"{h}x{h}",
                gemm_shape = $"{m}x{kk}x{n}",
                conv_fwd_bwd_gflops = Math.Round(convGflops, 1),
                gemm_same_shapes_gflops = Math.Round(gemmGflops, 1),
                conv_over_gemm = Math.Round(convGflops / gemmGflops, 2),
                ms_per_batch = Math.Round(convSeconds * 1e3 / convCalls, 2),
            }));
        }
    }

    private static double Time(Action call, double seconds, out long calls)
    {
        for (int i = 0; i < 2; i++) call();
        calls = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            call();
            calls++;
        }
        return sw.Elapsed.TotalSeconds;
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
