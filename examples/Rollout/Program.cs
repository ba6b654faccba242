// A random-policy rollout through a vector env, printing episode statistics. By default the envs run in a local
// pool of worker processes behind a ClusterVecEnv; --local runs the same loop on an in-process SyncVectorEnv.
// Usage: dotnet run -c Release --project examples/Rollout -- [--env CartPole-v1] [--num-envs 8] [--workers 2] [--total-steps 20000] [--seed 0] [--local]
using System.CommandLine;
using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.CommandLine;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

var envOption = Cli.Option("--env", "registry id of the env", "CartPole-v1")
    .Check(id => Gym.Ids.Contains(id) ? null : $"Unknown env '{id}'. Registered: {string.Join(", ", Gym.Ids)}.");
var numEnvsOption = Cli.Option("--num-envs", "parallel envs", 8);
var workersOption = Cli.Option("--workers", "worker processes of the local pool (0: one per core)", 0);
var stepsOption = Cli.Option("--total-steps", "env steps in total", 20_000);
var seedOption = Cli.Option("--seed", "random seed", 0);
var localOption = Cli.Option("--local", "run on an in-process SyncVectorEnv instead of a cluster", false);
var root = new RootCommand("A random-policy rollout through ClusterVecEnv (or locally with --local), printing episode statistics.")
{
    envOption, numEnvsOption, workersOption, stepsOption, seedOption, localOption,
};
if (Cli.Parse(root, args, out var parsed) is int exit) return exit;
string envId = parsed.GetValue(envOption)!;
int numEnvs = parsed.GetValue(numEnvsOption), totalSteps = parsed.GetValue(stepsOption), seed = parsed.GetValue(seedOption), workers = parsed.GetValue(workersOption);
bool local = parsed.GetValue(localOption);

// The one line that differs between a local vector env and a cluster of worker processes:
using IVectorEnv envs = local
    ? Gym.MakeVec(envId, numEnvs, wrap: e => new RecordEpisodeStatistics(e))
    : new ClusterVecEnv(new ClusterOptions { EnvId = envId, NumEnvs = numEnvs, NumWorkers = workers });
Console.WriteLine($"Rollout: {envs} | obs {envs.SingleObservationSpace} | actions {envs.SingleActionSpace} | random policy");

var rng = new Rng(seed);
var actionSpace = envs.SingleActionSpace;
var intActions = new int[numEnvs * envs.ActionSize];
var floatActions = new float[numEnvs * envs.ActionSize];
envs.ActionSpace.Seed(seed);

envs.Reset(seed: seed);
var returns = new List<double>();
var lengths = new List<int>();
var clock = Stopwatch.StartNew();
long steps = 0;
while (steps < totalSteps)
{
    VectorStepResult r;
    if (actionSpace is Discrete d)
    {
        for (int i = 0; i < intActions.Length; i++) intActions[i] = d.Start + rng.NextInt(d.N);
        r = envs.Step(intActions);
    }
    else if (envs.ActionSpace is Box box)
    {
        box.Sample(floatActions);
        r = envs.Step(floatActions);
    }
    else throw new NotSupportedException($"This example samples Discrete and Box actions only, not {actionSpace}.");
    steps += numEnvs;

    for (int i = 0; i < numEnvs; i++)
    {
        if (!r.Info.TryGetEpisode(i, out var ep)) continue;
        returns.Add(ep.Return);
        lengths.Add(ep.Length);
        if (returns.Count % 50 == 0)
            Console.WriteLine($"  steps {steps,8}  episodes {returns.Count,5}  mean return (last 50) {returns.TakeLast(50).Average(),9:F2}  mean length {lengths.TakeLast(50).Average(),7:F1}");
    }
}
double seconds = clock.Elapsed.TotalSeconds;
Console.WriteLine();
Console.WriteLine($"Done: {steps} env steps in {seconds:F2} s ({steps / seconds:N0} steps/s), {returns.Count} episodes.");
if (returns.Count > 0)
    Console.WriteLine($"Episode return: mean {returns.Average():F2}, min {returns.Min():F2}, max {returns.Max():F2}; mean length {lengths.Average():F1}.");
return 0;
