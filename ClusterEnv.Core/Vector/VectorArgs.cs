using ClusterEnv.Common;
using ClusterEnv.Envs;

namespace ClusterEnv.Vector;

/// <summary>The argument checks every vector env applies to Reset, with the same messages.</summary>
internal static class VectorArgs
{
    public static void CheckSeed(long? seed, int numEnvs)
    {
        if (seed is not long s) return;
        Seeds.Check(s);
        if (s > long.MaxValue - (numEnvs - 1))
            throw new ArgumentOutOfRangeException(nameof(seed), s, $"Seed {s} + {numEnvs - 1} (sub-env seeds are seed + i) overflows a 64-bit seed; use a seed <= {long.MaxValue - (numEnvs - 1)}.");
    }

    public static void CheckSeeds(IReadOnlyList<long?> seeds, int numEnvs)
    {
        ArgumentNullException.ThrowIfNull(seeds);
        if (seeds.Count != numEnvs)
            throw new ArgumentException($"Got {seeds.Count} seeds for {numEnvs} sub-envs; pass one seed (or null) per sub-env, or a single seed.", nameof(seeds));
        foreach (var s in seeds)
            if (s is long v) Seeds.Check(v);
    }

    /// <summary>Checks <see cref="ResetOptions.ResetMask"/> and returns it (null = reset all).</summary>
    public static bool[]? CheckMask(ResetOptions? options, int numEnvs)
    {
        var mask = options?.ResetMask;
        if (mask is null) return null;
        if (mask.Length != numEnvs)
            throw new ArgumentException($"ResetMask has {mask.Length} entries, but the vector env has {numEnvs} sub-envs; pass one bool per sub-env.", nameof(options));
        if (Array.IndexOf(mask, true) < 0)
            throw new ArgumentException("ResetMask selects no sub-env; set at least one entry to true (or pass no mask to reset all).", nameof(options));
        return mask;
    }

    /// <summary>In Disabled mode, stepping a sub-env whose episode ended is an error.</summary>
    public static void CheckNotFinished(AutoresetMode mode, bool[] finished, bool[] terminated)
    {
        if (mode != AutoresetMode.Disabled) return;
        int i = Array.IndexOf(finished, true);
        if (i >= 0)
            throw new InvalidOperationException(
                $"Sub-env {i} finished its episode ({(terminated[i] ? "terminated" : "truncated")}) and autoreset is Disabled; " +
                "reset it first with Reset(options: new ResetOptions { ResetMask = mask }) where mask[i] is true.");
    }

    public static EnvironmentClosedException Closed() => new("This vector env is closed; create a new one to keep going.");

    public static ResetNeededException ResetNeeded() => new("Step was called before Reset (or after a sub-env failed); call Reset(...) first.");
}
