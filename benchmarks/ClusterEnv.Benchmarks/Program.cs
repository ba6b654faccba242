// Benchmarks for ClusterEnv. Each command prints one JSON object per line; --help lists the commands and their options.
// Usage: dotnet run -c Release --project benchmarks/ClusterEnv.Benchmarks -- <command> [options]
using System.CommandLine;
using ClusterEnv.Benchmarks;
using ClusterEnv.CommandLine;

var root = new RootCommand("ClusterEnv benchmarks: each command prints one JSON object per line.")
{
    StepLocal.Command(), StepRemote.Command(), StepAsync.Command(), GemmBench.Command(), GemmBench.ConvCommand(), TrainBench.Command(), LearningSuite.Command(), PlotMetrics.Command(), ApsSweep.Command(), RolloutThroughput.Command(), AsyncThroughput.Command(), QueueThroughput.Command(), Soak.Command(), LearnerThroughput.Command(), LearnerThroughput.CheckCommand(), NigtExperiment.Command(), DeviceCheck.Command(), ShmPingPong.Command(), ShmPingPong.EchoCommand(),
};
return Cli.Run(root, args);
