using System.Globalization;
using System.Text.Json;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Learners.Checkpoints;
using ClusterEnv.Policies;
using ClusterEnv.Spaces;

/// <summary>
/// <c>Train --evaluate RUN</c>: loads a trained policy (a run folder's policy.cepolicy, a checkpoint folder, or a
/// .cepolicy file), plays N episodes with the most likely action (argmax, or the Gaussian's mean clipped to the action
/// bounds) and N sampling actions as in training, and prints and writes mean ± std of the returns.
/// </summary>
internal static class Evaluate
{
    public static int Run(string source, string? envOverride, int episodes, int seed, string? jsonPath)
    {
        ActorCritic policy;
        IReadOnlyDictionary<string, string> metadata;
        string folder;
        try
        {
            (policy, metadata, folder) = Load(source);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or CheckpointException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"--evaluate {source}: {e.Message}");
            return 2;
        }
        string? envId = envOverride ?? (metadata.TryGetValue("env", out var id) ? id : null);
        if (envId is null)
        {
            Console.Error.WriteLine($"--evaluate {source}: the policy does not name its env; add --env ID.");
            return 2;
        }
        if (!Gym.Ids.Contains(envId))
        {
            Console.Error.WriteLine($"--evaluate {source}: env '{envId}' is not registered here. Registered: {string.Join(", ", Gym.Ids)}.");
            return 2;
        }
        // A policy trained on pixels names the frames it saw (metadata "pixels", e.g. 84x84x4): its envs render them the same way.
        var pixels = metadata.TryGetValue("pixels", out var shape) ? ClusterEnv.Wrappers.PixelObservations.Parse(shape) : null;
        IEnv Make() => pixels?.Make(envId) ?? Gym.Make(envId);
        var probe = Make();
        var spec = PolicySpec.For(probe.ObservationSpace, probe.ActionSpace, []);
        if (spec.ObservationSize != policy.Spec.ObservationSize || spec.ActionSize != policy.Spec.ActionSize || spec.Continuous != policy.Spec.Continuous)
        {
            Console.Error.WriteLine($"--evaluate {source}: the policy takes observations of {policy.Spec.ObservationSize} and acts in {policy.Spec.ToJson()}; {envId} does not fit it. Give the env it was trained on with --env.");
            return 2;
        }
        var deterministic = Play(policy, Make, episodes, seed, deterministic: true);
        var stochastic = Play(policy, Make, episodes, seed, deterministic: false);
        Console.WriteLine($"{envId}, {episodes} episodes each, seeds {seed}..{seed + episodes - 1}:");
        Console.WriteLine($"  deterministic (most likely action): {deterministic.Mean:F1} ± {deterministic.Std:F1}  (min {deterministic.Min:F1}, max {deterministic.Max:F1})");
        Console.WriteLine($"  stochastic (sampled action):        {stochastic.Mean:F1} ± {stochastic.Std:F1}  (min {stochastic.Min:F1}, max {stochastic.Max:F1})");
        jsonPath ??= Path.Combine(folder, "evaluation.json");
        var json = JsonSerializer.Serialize(new
        {
            policy = Path.GetFullPath(source), env = envId, episodes, first_seed = seed,
            threshold = probe.Spec?.RewardThreshold,
            deterministic = deterministic.ToJson(), stochastic = stochastic.ToJson(),
        }, new JsonSerializerOptions { WriteIndented = true });
        File.WriteAllText(jsonPath, json + "\n");
        Console.WriteLine($"Written: {jsonPath}");
        return 0;
    }

    // A .cepolicy file, a checkpoint folder (or a run's checkpoints/), or a run folder (its final policy.cepolicy,
    // else its newest whole checkpoint).
    private static (ActorCritic, IReadOnlyDictionary<string, string>, string) Load(string source)
    {
        if (File.Exists(source))
            return (ActorCritic.Load(source, out var m), m, Path.GetDirectoryName(Path.GetFullPath(source))!);
        if (!Directory.Exists(source))
            throw new IOException($"'{source}' is neither a policy file nor a folder. Give a run folder (runs/...), a checkpoint folder or a .cepolicy file.");
        string file = Path.Combine(source, "policy.cepolicy");
        if (File.Exists(file)) return (ActorCritic.Load(file, out var m), m, source);
        var checkpoint = TrainingCheckpoint.Load(source);
        ActorCritic.Load(Path.Combine(checkpoint.Folder!, "policy.cepolicy"), out var cm);
        return (checkpoint.Policy, cm, source);
    }

    private sealed record Returns(double[] Values)
    {
        public double Mean { get; } = Values.Average();
        public double Std => Math.Sqrt(Values.Select(v => (v - Mean) * (v - Mean)).Average());
        public double Min => Values.Min();
        public double Max => Values.Max();
        public object ToJson() => new { mean = Mean, std = Std, min = Min, max = Max, returns = Values };
    }

    // Episode i starts from seed + i; stochastic actions come from a generator seeded with the same seed.
    private static Returns Play(ActorCritic policy, Func<IEnv> make, int episodes, int seed, bool deterministic)
    {
        using var env = make();
        var rng = new Rng(seed);
        int k = policy.Spec.ActionSize;
        var obs = new float[env.ObservationSpace.EncodedSize];
        int[] discrete = new int[1];
        float[] continuous = new float[k], logProb = new float[1], value = new float[1];
        var box = env.ActionSpace as Box;
        var returns = new double[episodes];
        for (int e = 0; e < episodes; e++)
        {
            env.Reset(obs, seed + e);
            double total = 0;
            while (true)
            {
                policy.Act(obs, 1, rng, discrete, continuous, logProb, value, deterministic);
                StepResult r;
                if (box is null) r = env.Step(new EnvAction(discrete), obs);
                else
                {
                    for (int i = 0; i < k; i++) continuous[i] = Math.Clamp(continuous[i], box.Low[i], box.High[i]);
                    r = env.Step(new EnvAction(continuous), obs);
                }
                total += r.Reward;
                if (r.Terminated || r.Truncated) break;
            }
            returns[e] = total;
        }
        return new Returns(returns);
    }
}
