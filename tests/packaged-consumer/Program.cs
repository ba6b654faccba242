// A user's own program, built outside the solution against the packed ClusterEnv packages (scripts/ci/packed-consumer.sh).
// (a) swaps Gym.MakeVec for ClusterVecEnv in a small loop and checks that both give the same episodes;
// (b) registers its own C# env through an IEnvRegistrar in this assembly and steps it on local workers, which load
//     this assembly by themselves (no ClusterOptions.WorkerAssemblies);
// (c) trains PPO from ClusterEnv.Learners on the cluster for a few thousand steps.
// Exits 0 when every check holds, 1 with the reason otherwise.
using ClusterEnv.Cluster;
using ClusterEnv.Envs;
using ClusterEnv.Learners.Ppo;
using ClusterEnv.Spaces;
using ClusterEnv.Vector;

new ConsumerEnvs().Register();
int failures = 0;
void Check(bool ok, string what)
{
    Console.WriteLine($"{(ok ? "ok  " : "FAIL")} {what}");
    if (!ok) failures++;
}

// (a) The one-line swap: the same loop, seed and actions on a local vector env and on a cluster.
(float[] Obs, double Return) Run(bool cluster, string envId)
{
    using IVectorEnv envs = cluster ? new ClusterVecEnv(envId, 4, numWorkers: 2) : Gym.MakeVec(envId, 4);
    var obs = (float[])envs.Reset(seed: 7).Observations.Clone();
    var actions = new int[envs.NumEnvs];
    double total = 0;
    var trace = new List<float>();
    for (int t = 0; t < 300; t++)
    {
        for (int i = 0; i < actions.Length; i++) actions[i] = ConsumerPolicy.Act(envId, obs, i, envs.ObservationSize);
        var r = envs.Step(actions);
        obs = (float[])r.Observations.Clone();
        trace.AddRange(obs);
        total += r.Rewards.Sum();
    }
    return (trace.ToArray(), total);
}

foreach (var envId in new[] { "CartPole-v1", ConsumerEnvs.CorridorId })
{
    var local = Run(cluster: false, envId);
    var remote = Run(cluster: true, envId);
    Check(local.Obs.AsSpan().SequenceEqual(remote.Obs), $"{envId}: 300 steps of 4 envs, Gym.MakeVec and ClusterVecEnv agree bit for bit (return {remote.Return:F1})");
}

using (var corridor = new ClusterVecEnv(ConsumerEnvs.CorridorId, 2))
{
    Check(corridor.Spec is { MaxEpisodeSteps: 50 }, $"{ConsumerEnvs.CorridorId}: the workers' spec has this program's time limit (max_episode_steps {corridor.Spec?.MaxEpisodeSteps})");
    Check(corridor.SingleObservationSpace is Box { Shape: [2] }, $"{ConsumerEnvs.CorridorId}: observation space {corridor.SingleObservationSpace}");
}

// (c) A learner from ClusterEnv.Learners on the cluster.
using (var envs = new ClusterVecEnv("CartPole-v1", 4, numWorkers: 2))
{
    var result = Ppo.Train(envs, new PpoOptions { Seed = 1, TotalTimesteps = 4096, NumSteps = 128 });
    Check(result.History.Count == 8, $"PPO on ClusterVecEnv: {result.History.Count} iterations of 512 steps");
}

Console.WriteLine(failures == 0 ? "packaged consumer: all checks passed" : $"packaged consumer: {failures} check(s) failed");
return failures == 0 ? 0 : 1;

/// <summary>A deterministic policy: CartPole pushes toward the lean, the corridor walks right with a wobble.</summary>
static class ConsumerPolicy
{
    public static int Act(string envId, float[] obs, int env, int size) =>
        envId == "CartPole-v1" ? (obs[env * size + 2] > 0 ? 1 : 0) : (obs[env * size] * 7 % 3 < 2 ? 1 : 0);
}

/// <summary>This program's own env, registered for this process and (through this assembly) for the workers.</summary>
public sealed class ConsumerEnvs : IEnvRegistrar
{
    public const string CorridorId = "Consumer/Corridor-v0";

    public void Register() => Gym.Register(CorridorId, () => new Corridor(), maxEpisodeSteps: 50, rewardThreshold: 1.0);
}

/// <summary>
/// A 10-cell corridor: start at a random cell in 0..3, move left (0) or right (1), reward 1 at cell 9 (terminated),
/// -0.01 per step otherwise. Observation: position / 9 and a random draw of the env's generator (so seeding shows).
/// </summary>
public sealed class Corridor : EnvBase
{
    private int _pos;

    public override Space ObservationSpace { get; } = new Box(0f, 1f, [2]);
    public override Space ActionSpace { get; } = new Discrete(2);

    protected override EnvInfo ResetCore(Span<float> observation, ResetOptions? options)
    {
        _pos = NpRandom.NextInt(4);
        Write(observation);
        return EnvInfo.Empty;
    }

    protected override StepResult StepCore(EnvAction action, Span<float> observation)
    {
        _pos = Math.Clamp(_pos + (DiscreteAction(action) == 1 ? 1 : -1), 0, 9);
        Write(observation);
        bool done = _pos == 9;
        return new StepResult(done ? 1.0 : -0.01, done, false, EnvInfo.Empty);
    }

    private void Write(Span<float> observation)
    {
        observation[0] = _pos / 9f;
        observation[1] = (float)NpRandom.NextDouble();
    }
}
