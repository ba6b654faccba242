using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using ClusterEnv.Common;
using ClusterEnv.Nn;
using ClusterEnv.Policies;

namespace ClusterEnv.Learners.Checkpoints;

/// <summary>
/// What a learner needs to continue a run: the policy (weights and observation statistics), the optimizer's moments
/// and step count, the learner's random state, and its counters. Saved as a folder <c>checkpoint-NNNNNNNN</c> holding
/// <c>policy.cepolicy</c>, <c>optimizer.bin</c> (the two moments, float32) and <c>state.json</c>, written under a
/// temporary name and renamed when complete, so a run killed mid-write never leaves a half checkpoint behind. The
/// newest <c>keep</c> are kept.
/// </summary>
public sealed record TrainingCheckpoint(ActorCritic Policy, float[] FirstMoment, float[] SecondMoment, int OptimizerSteps, RngState RngState,
    long Update, long GlobalStep, IReadOnlyDictionary<string, string> Counters)
{
    private const string Prefix = "checkpoint-";

    /// <summary>Writes a checkpoint of update <paramref name="update"/> into <paramref name="directory"/> and deletes all but the newest <paramref name="keep"/>. Returns its folder.</summary>
    public static string Save(string directory, long update, long globalStep, ActorCritic policy, Adam adam, Rng rng, IReadOnlyDictionary<string, string>? counters = null, int keep = 3)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(adam);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(keep);
        Directory.CreateDirectory(directory);
        string final = Path.Combine(directory, $"{Prefix}{update:D8}");
        string temp = final + $".tmp{Environment.ProcessId}";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        var metadata = new Dictionary<string, string>();
        if (policy.Normalizer is { } n)
        {
            metadata["obs_mean"] = string.Join(",", n.Mean.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
            metadata["obs_var"] = string.Join(",", n.Var.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
            metadata["obs_clip"] = n.Clip.ToString("R", CultureInfo.InvariantCulture);
        }
        policy.Save(Path.Combine(temp, "policy.cepolicy"), metadata);
        using (var f = File.Create(Path.Combine(temp, "optimizer.bin")))
        {
            f.Write(MemoryMarshal.AsBytes(adam.FirstMoment));
            f.Write(MemoryMarshal.AsBytes(adam.SecondMoment));
        }
        var r = rng.State;
        var state = new Dictionary<string, object>
        {
            ["format"] = 1, ["update"] = update, ["global_step"] = globalStep, ["optimizer_steps"] = adam.Steps,
            ["rng"] = new[] { r.StateHigh, r.StateLow, r.IncrementHigh, r.IncrementLow, r.HasUInt32 ? 1UL : 0UL, r.UInt32 }.Select(v => v.ToString(CultureInfo.InvariantCulture)).ToArray(),
            ["counters"] = counters ?? new Dictionary<string, string>(),
        };
        File.WriteAllText(Path.Combine(temp, "state.json"), JsonSerializer.Serialize(state));
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(temp, final);
        foreach (var old in List(directory).SkipLast(keep)) Directory.Delete(old, recursive: true);
        return final;
    }

    /// <summary>The complete checkpoints in <paramref name="directory"/>, oldest first (unfinished temporary folders are ignored).</summary>
    public static IReadOnlyList<string> List(string directory) =>
        !Directory.Exists(directory) ? []
        : Directory.GetDirectories(directory, Prefix + "*").Where(d => !Path.GetFileName(d).Contains(".tmp", StringComparison.Ordinal))
            .Where(d => File.Exists(Path.Combine(d, "state.json"))).Order(StringComparer.Ordinal).ToArray();

    /// <summary>Loads <paramref name="path"/>: a checkpoint folder, or a run folder (its newest checkpoint).</summary>
    /// <exception cref="FileNotFoundException">No complete checkpoint is there; the message names the folder.</exception>
    public static TrainingCheckpoint Load(string path)
    {
        string folder = File.Exists(Path.Combine(path, "state.json")) ? path
            : List(path).LastOrDefault() ?? throw new FileNotFoundException($"No checkpoint in '{path}': expected a folder {Prefix}NNNNNNNN with state.json (written by a learner with checkpoints on), or such a folder itself.", path);
        var policy = ActorCritic.Load(Path.Combine(folder, "policy.cepolicy"), out var metadata);
        if (metadata.TryGetValue("obs_mean", out var mean) && metadata.TryGetValue("obs_var", out var var) && metadata.TryGetValue("obs_clip", out var clip))
            policy.Normalizer = new ObservationNormalizer(Floats(mean), Floats(var), float.Parse(clip, CultureInfo.InvariantCulture));
        var bytes = File.ReadAllBytes(Path.Combine(folder, "optimizer.bin"));
        int count = policy.Store.Count;
        if (bytes.Length != count * 8)
            throw new InvalidDataException($"'{folder}/optimizer.bin' has {bytes.Length} bytes; a policy of {count} parameters needs {count * 8}.");
        var moments = MemoryMarshal.Cast<byte, float>(bytes);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "state.json")));
        var root = json.RootElement;
        var rng = root.GetProperty("rng").EnumerateArray().Select(e => ulong.Parse(e.GetString()!, CultureInfo.InvariantCulture)).ToArray();
        if (rng.Length != 6)
            throw new InvalidDataException($"'{folder}/state.json' holds a random state of {rng.Length} words; this version (NumPy's PCG64) writes 6. The checkpoint comes from an older version: resume it with that version, or start the run anew.");
        var counters = root.GetProperty("counters").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
        return new TrainingCheckpoint(policy, moments[..count].ToArray(), moments[count..].ToArray(), root.GetProperty("optimizer_steps").GetInt32(),
            new RngState(rng[0], rng[1], rng[2], rng[3], rng[4] != 0, (uint)rng[5]), root.GetProperty("update").GetInt64(), root.GetProperty("global_step").GetInt64(), counters);
    }

    private static float[] Floats(string csv) => csv.Split(',').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Puts this checkpoint's weights, statistics, optimizer and random state into a learner's objects.</summary>
    public void RestoreInto(ActorCritic policy, Adam adam, Rng rng)
    {
        if (!policy.Spec.Equals(Policy.Spec))
            throw new ArgumentException($"The checkpoint holds a policy of spec {Policy.Spec.ToJson()}; this run builds {policy.Spec.ToJson()}. Resume with the same env and --hidden sizes.");
        policy.LoadParameters(Policy.Parameters);
        policy.Normalizer = Policy.Normalizer;
        adam.Restore(FirstMoment, SecondMoment, OptimizerSteps);
        rng.State = RngState;
    }
}
