using System.CommandLine;
using ClusterEnv.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// Local <see cref="SyncVectorEnv"/> stepping on one thread with uniformly random actions (drawn inside the timed
/// loop): env-steps/s and bytes allocated per vector step, for the registry env alone (TimeLimit) and with
/// RecordEpisodeStatistics on every sub-env.
/// </summary>
public static class StepLocal
{
    public static Command Command()
    {
        var env = Cli.Option("--env", "registry id of the env (Discrete actions)", "CartPole-v1");
        var envs = Cli.List<int>("--num-envs", "sub-env counts to measure (one measurement each)", "1,64,1024");
        var seconds = Cli.Option("--seconds", "seconds per configuration", 3.0).Positive();
        var command = new Command("step-local", "local SyncVectorEnv stepping with random actions, with and without RecordEpisodeStatistics") { env, envs, seconds };
        command.SetAction(p =>
        {
            foreach (bool stats in new[] { false, true })
            foreach (int n in p.GetValue(envs)!)
                Measure(p.GetValue(env)!, n, stats, p.GetValue(seconds));
        });
        return command;
    }

    private static void Measure(string envId, int numEnvs, bool withStats, double seconds)
    {
        using var envs = Gym.MakeVec(envId, numEnvs, wrap: withStats ? e => new RecordEpisodeStatistics(e) : null);
        var d = envs.SingleActionSpace as Discrete ?? throw new NotSupportedException("step-local drives Discrete action spaces.");
        var rng = new Rng(0);
        var actions = new int[numEnvs];
        envs.Reset(seed: 0);

        // Warm up (JIT tiers, caches), then time batches until the budget is spent.
        RunSteps(envs, rng, actions, d.N, Math.Max(20_000 / numEnvs, 200));
        long stepsPerBatch = Math.Max(1_000_000 / numEnvs, 100);
        long vectorSteps = 0;
        var sw = new Stopwatch(); // created before the allocation snapshot so that it is not counted
        long allocBefore = GC.GetAllocatedBytesForCurrentThread();
        int gcBefore = GC.CollectionCount(0);
        sw.Start();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            RunSteps(envs, rng, actions, d.N, stepsPerBatch);
            vectorSteps += stepsPerBatch;
        }
        sw.Stop();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocBefore;
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "step-local",
            env = envId,
            num_envs = numEnvs,
            wrappers = withStats ? "TimeLimit+RecordEpisodeStatistics" : "TimeLimit",
            env_steps_per_sec = Math.Round(vectorSteps * numEnvs / sw.Elapsed.TotalSeconds),
            ns_per_env_step = Math.Round(sw.Elapsed.TotalNanoseconds / (vectorSteps * numEnvs), 2),
            bytes_per_step = (double)allocated / vectorSteps,
            bytes_allocated_total = allocated,
            gen0_collections = GC.CollectionCount(0) - gcBefore,
            vector_steps = vectorSteps,
            seconds = Math.Round(sw.Elapsed.TotalSeconds, 3),
        }));
    }

    private static void RunSteps(IVectorEnv envs, Rng rng, int[] actions, int n, long count)
    {
        for (long t = 0; t < count; t++)
        {
            for (int i = 0; i < actions.Length; i++) actions[i] = rng.NextInt(n);
            envs.Step(actions);
        }
    }
}
