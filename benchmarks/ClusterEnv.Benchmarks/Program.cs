// Benchmarks for ClusterEnv. Each command prints one JSON object per line.
// Usage: dotnet run -c Release --project benchmarks/ClusterEnv.Benchmarks -- <command> [options]
using ClusterEnv.Benchmarks;

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine("Commands:");
    Console.WriteLine("  step-local [--env CartPole-v1] [--envs 1,64,1024] [--seconds 3]   local SyncVectorEnv stepping with random actions");
    Console.WriteLine("  step-remote [--env CartPole-v1] [--workers 1,2,4] [--envs 1,16,64,256] [--seconds 2]");
    Console.WriteLine("      ClusterVecEnv.Step through local worker processes vs SyncVectorEnv and a raw TCP ping-pong");
    Console.WriteLine("  gemm [--seconds 1]   single-thread GFLOP/s of the matrix product at MLP shapes and 1024^3");
    Console.WriteLine("  train [--env CartPole-v1] [--seeds 1,2,3,4,5] [--mode local|cluster|both] [--workers 2] [--total-steps N] [--num-envs N]");
    Console.WriteLine("      PPO with CleanRL's defaults: steps and seconds to the registry threshold, final mean-20 return, SPS");
    Console.WriteLine("  aps-sweep [--envs CartPole-v1,Acrobot-v1] [--taus always,0.001,0.01,0.05,0.1,never] [--seeds 1,2,3] [--workers 2] [--num-envs 4] [--total-steps 500000] [--out runs/aps-sweep]");
    Console.WriteLine("      PPO on worker rollouts per APS strategy: runs.csv, curves.csv, table.md and SVG plots");
    Console.WriteLine("  rollout-throughput [--workers 2] [--envs 64] [--steps 128] [--rtt-ms 0,0.5] [--seconds 3]");
    Console.WriteLine("      worker-side rollouts vs central inference stepping, with an added round-trip delay; push bytes and latency");
    return args.Length == 0 ? 2 : 0;
}

var options = BenchOptions.Parse(args.AsSpan(1));
switch (args[0])
{
    case "step-local":
        StepLocal.Run(options);
        return 0;
    case "rollout-throughput":
        RolloutThroughput.Run(options);
        return 0;
    case "aps-sweep":
        ApsSweep.Run(options);
        return 0;
    case "train":
        TrainBench.Run(options);
        return 0;
    case "gemm":
        GemmBench.Run(options);
        return 0;
    case "step-remote":
        StepRemote.Run(options);
        return 0;
    default:
        Console.Error.WriteLine($"Unknown command '{args[0]}'. Run with --help for the list.");
        return 2;
}
