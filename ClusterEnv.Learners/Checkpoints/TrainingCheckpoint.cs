using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using ClusterEnv.Common;
using ClusterEnv.Nn;
using ClusterEnv.Policies;

namespace ClusterEnv.Learners.Checkpoints;

/// <summary>A checkpoint that cannot be used: missing, cut short, modified, or holding values no run could have written. The message names the folder, the file and the fault.</summary>
public sealed class CheckpointException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// What a learner needs to continue a run: the policy (weights and observation statistics), the optimizer's moments
/// and step count, the learner's random state, and its counters. Saved as a folder <c>checkpoint-NNNNNNNN</c> holding
/// <c>policy.cepolicy</c>, <c>optimizer.bin</c> (the two moments, float32), <c>state.json</c> and, written last,
/// <c>manifest.json</c> (the size and SHA-256 of each of the three). The folder is written under a temporary name and
/// renamed when complete, so a run killed mid-write never leaves a half checkpoint behind; the manifest catches what
/// happens to it afterwards (a disk filling up, a copy cut short, an edit). The newest <c>keep</c> are kept.
/// </summary>
public sealed record TrainingCheckpoint(ActorCritic Policy, float[] FirstMoment, float[] SecondMoment, int OptimizerSteps, RngState RngState,
    long Update, long GlobalStep, IReadOnlyDictionary<string, string> Counters)
{
    /// <summary>The folder it was loaded from (null for one not loaded from disk).</summary>
    public string? Folder { get; init; }

    private const string Prefix = "checkpoint-";
    private const string Manifest = "manifest.json";
    private static readonly string[] Files = ["policy.cepolicy", "optimizer.bin", "state.json"];

    /// <summary>Writes a checkpoint of update <paramref name="update"/> into <paramref name="directory"/> and deletes all but the newest <paramref name="keep"/>. Returns its folder.</summary>
    public static string Save(string directory, long update, long globalStep, ActorCritic policy, Adam adam, Rng rng, IReadOnlyDictionary<string, string>? counters = null, int keep = 3)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(adam);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(keep);
        ArgumentOutOfRangeException.ThrowIfNegative(update);
        ArgumentOutOfRangeException.ThrowIfNegative(globalStep);
        Directory.CreateDirectory(directory);
        string final = Path.Combine(directory, $"{Prefix}{update:D8}");
        string temp = final + $".tmp{Environment.ProcessId}";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        policy.Save(Path.Combine(temp, "policy.cepolicy")); // with its observation statistics and value scale
        using (var f = File.Create(Path.Combine(temp, "optimizer.bin")))
        {
            f.Write(MemoryMarshal.AsBytes(adam.FirstMoment));
            f.Write(MemoryMarshal.AsBytes(adam.SecondMoment));
        }
        var r = rng.State;
        var state = new Dictionary<string, object>
        {
            ["format"] = 2, ["update"] = update, ["global_step"] = globalStep, ["optimizer_steps"] = adam.Steps,
            ["rng"] = new[] { r.StateHigh, r.StateLow, r.IncrementHigh, r.IncrementLow, r.HasUInt32 ? 1UL : 0UL, r.UInt32 }.Select(v => v.ToString(CultureInfo.InvariantCulture)).ToArray(),
            ["counters"] = counters ?? new Dictionary<string, string>(),
        };
        File.WriteAllText(Path.Combine(temp, "state.json"), JsonSerializer.Serialize(state));
        var manifest = new Dictionary<string, object> { ["format"] = 2, ["files"] = Files.ToDictionary(name => name, name => (object)Describe(Path.Combine(temp, name))) };
        File.WriteAllText(Path.Combine(temp, Manifest), JsonSerializer.Serialize(manifest));
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(temp, final);
        foreach (var old in List(directory).SkipLast(keep)) Directory.Delete(old, recursive: true);
        return final;
    }

    private static Dictionary<string, object> Describe(string file)
    {
        using var stream = File.OpenRead(file);
        return new Dictionary<string, object> { ["bytes"] = stream.Length, ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(stream)) };
    }

    /// <summary>The checkpoints in <paramref name="directory"/>, oldest first: every finished folder (temporary folders of a write cut short are ignored), whole or not; <see cref="Load"/> checks each.</summary>
    public static IReadOnlyList<string> List(string directory) =>
        !Directory.Exists(directory) ? []
        : Directory.GetDirectories(directory, Prefix + "*").Where(d => !Path.GetFileName(d).Contains(".tmp", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToArray();

    /// <summary>
    /// Loads the checkpoint <paramref name="path"/> names: a checkpoint folder (that one only), or a folder of
    /// checkpoints or a run folder (its <c>checkpoints/</c>), newest first: a damaged one is reported through
    /// <paramref name="onDamaged"/> (folder and fault) and the next older one is tried.
    /// </summary>
    /// <exception cref="CheckpointException">The path does not exist, holds no checkpoint, or every checkpoint there is damaged; the message names each fault.</exception>
    public static TrainingCheckpoint Load(string path, Action<string>? onDamaged = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!Directory.Exists(path))
            throw new CheckpointException(File.Exists(path)
                ? $"'{path}' is a file; --resume takes a run folder, its checkpoints/ folder, or one checkpoint-NNNNNNNN folder."
                : $"'{path}' does not exist: nothing to resume from. Give the run folder of an earlier run (its --out), or leave --resume out to start anew.");
        if (Path.GetFileName(Path.TrimEndingDirectorySeparator(path)).StartsWith(Prefix, StringComparison.Ordinal))
            return LoadOne(path);
        string folder = Directory.Exists(Path.Combine(path, "checkpoints")) ? Path.Combine(path, "checkpoints") : path;
        var candidates = List(folder).Reverse().ToArray();
        if (candidates.Length == 0)
            throw new CheckpointException($"No checkpoint in '{path}': expected folders {Prefix}NNNNNNNN (written by a learner with checkpoints on) there or in its checkpoints/ folder.");
        var faults = new List<string>();
        foreach (var candidate in candidates)
        {
            try
            {
                return LoadOne(candidate);
            }
            catch (CheckpointException e)
            {
                faults.Add(e.Message);
                if (candidate != candidates[^1]) onDamaged?.Invoke($"{e.Message} Trying the next older checkpoint.");
            }
        }
        throw new CheckpointException($"Every checkpoint in '{folder}' is damaged:{Environment.NewLine}  " + string.Join(Environment.NewLine + "  ", faults) +
                                      $"{Environment.NewLine}Start the run anew (leave --resume out), or restore the folder from a copy.");
    }

    // One checkpoint folder, verified against its manifest, then parsed with a range check on every value.
    private static TrainingCheckpoint LoadOne(string folder)
    {
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(folder));
        CheckpointException Damaged(string fault, Exception? inner = null) => new($"Checkpoint '{folder}' is damaged: {fault}.", inner);
        try
        {
            VerifyManifest(folder, Damaged);
            var policy = ActorCritic.Load(Path.Combine(folder, "policy.cepolicy"), out var metadata);
            // (ActorCritic.Load refuses non-finite weights itself.)
            // (ActorCritic.Load checks the observation statistics and value scale it carries.)
            var bytes = File.ReadAllBytes(Path.Combine(folder, "optimizer.bin"));
            int count = policy.Store.Count;
            if (bytes.Length != count * 8)
                throw Damaged($"optimizer.bin has {bytes.Length} bytes; a policy of {count} parameters needs {count * 8}");
            var moments = MemoryMarshal.Cast<byte, float>(bytes);
            for (int i = 0; i < moments.Length; i++)
                if (!float.IsFinite(moments[i]) || (i >= count && moments[i] < 0))
                    throw Damaged($"optimizer.bin holds {(float.IsFinite(moments[i]) ? "a negative second moment" : "a non-finite moment")} (value {i})");
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "state.json")));
            var root = json.RootElement;
            var rng = root.GetProperty("rng").EnumerateArray().Select(e => ulong.Parse(e.GetString()!, CultureInfo.InvariantCulture)).ToArray();
            if (rng.Length != 6)
                throw Damaged($"state.json holds a random state of {rng.Length} words; this version (NumPy's PCG64) writes 6");
            long update = NonNegative(root, "update"), globalStep = NonNegative(root, "global_step"), optimizerSteps = NonNegative(root, "optimizer_steps");
            if (optimizerSteps > int.MaxValue) throw Damaged($"state.json's optimizer_steps ({optimizerSteps}) is out of range");
            var counters = root.GetProperty("counters").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
            foreach (var (key, value) in counters)
            {
                // The learners' counts must be counts; other entries (an algorithm's name, saved statistics) are free.
                bool isCount = long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out _);
                if (!isCount && key is "optimizer_updates" or "dropped_stale")
                    throw Damaged($"state.json's counter {key} ('{value}') is not a count");
            }
            return new TrainingCheckpoint(policy, moments[..count].ToArray(), moments[count..].ToArray(), (int)optimizerSteps,
                new RngState(rng[0], rng[1], rng[2], rng[3], rng[4] != 0, (uint)rng[5]), update, globalStep, counters) { Folder = folder };

            long NonNegative(JsonElement e, string property)
            {
                long v = e.GetProperty(property).GetInt64();
                return v >= 0 ? v : throw Damaged($"state.json's {property} ({v}) is negative");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or JsonException or KeyNotFoundException
                                      or FormatException or OverflowException or InvalidOperationException or ArgumentException)
        {
            throw Damaged(e is FileNotFoundException f ? $"{Path.GetFileName(f.FileName)} is missing" : e.Message.TrimEnd('.'), e);
        }
    }

    // The manifest names each file's size and SHA-256; a checkpoint without one (written before format 2) is checked by its values alone.
    private static void VerifyManifest(string folder, Func<string, Exception?, CheckpointException> damaged)
    {
        string path = Path.Combine(folder, Manifest);
        if (!File.Exists(path))
        {
            if (File.Exists(Path.Combine(folder, "state.json")))
            {
                using var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "state.json")));
                if (state.RootElement.TryGetProperty("format", out var f) && f.GetInt32() == 1)
                    return; // format 1: before manifests; the policy file has its own checksum and every value is range-checked
            }
            throw damaged($"{Manifest} is missing (a write cut short, or files removed)", null);
        }
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        var files = json.RootElement.GetProperty("files");
        foreach (var name in Files)
        {
            if (!files.TryGetProperty(name, out var expected)) throw damaged($"{Manifest} does not list {name}", null);
            string file = Path.Combine(folder, name);
            if (!File.Exists(file)) throw damaged($"{name} is missing", null);
            var actual = Describe(file);
            if ((long)actual["bytes"] != expected.GetProperty("bytes").GetInt64())
                throw damaged($"{name} has {actual["bytes"]} bytes; the manifest says {expected.GetProperty("bytes").GetInt64()} (cut short or overwritten)", null);
            if (!string.Equals((string)actual["sha256"], expected.GetProperty("sha256").GetString(), StringComparison.OrdinalIgnoreCase))
                throw damaged($"{name} does not match its SHA-256 in the manifest (modified after it was written)", null);
        }
    }


    /// <summary>Puts this checkpoint's weights, statistics, optimizer and random state into a learner's objects.</summary>
    public void RestoreInto(ActorCritic policy, Adam adam, Rng rng)
    {
        if (!policy.Spec.Equals(Policy.Spec))
            throw new ArgumentException($"The checkpoint holds a policy of spec {Policy.Spec.ToJson()}; this run builds {policy.Spec.ToJson()}. Resume with the same env and --hidden sizes.");
        policy.LoadParameters(Policy.Parameters);
        policy.Normalizer = Policy.Normalizer;
        policy.ValueScale = Policy.ValueScale;
        adam.Restore(FirstMoment, SecondMoment, OptimizerSteps);
        rng.State = RngState;
    }
}
