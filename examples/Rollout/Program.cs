// A random-policy rollout through a vector env, printing episode statistics. By default the envs run in a local
// pool of worker processes behind a ClusterVecEnv; --local runs the same loop on an in-process SyncVectorEnv.
// Usage: dotnet run -c Release --project examples/Rollout -- [--env CartPole-v1] [--num-envs 8] [--workers 2] [--steps 20000] [--seed 0] [--local]
using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

string envId = "CartPole-v1";
int numEnvs = 8, totalSteps = 20_000, seed = 0, workers = 0;
bool local = false;
for (int i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Flag {args[i]} needs a value.");
    switch (args[i])
    {
        case "--env": envId = Next(); break;
        case "--num-envs": numEnvs = int.Parse(Next()); break;
        case "--steps": totalSteps = int.Parse(Next()); break;
        case "--seed": seed = int.Parse(Next()); break;
        case "--workers": workers = int.Parse(Next()); break;
        case "--local": local = true; break;
        case "-h" or "--help":
            Console.WriteLine("Usage: Rollout [--env ID] [--num-envs N] [--workers N] [--steps N] [--seed N] [--local]");
            Console.WriteLine("Registered envs: " + string.Join(", ", Gym.Ids));
            return 0;
        default:
            Console.Error.WriteLine($"Unknown flag '{args[i]}'. Use --env, --num-envs, --workers, --steps, --seed, --local or --help.");
            return 2;
    }
}

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
