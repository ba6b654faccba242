using System.Collections;
using System.Globalization;

namespace ClusterEnv.Learners.Distributed;

/// <summary>
/// Where this learner process stands in a data-parallel world: its rank, the world size, its rank on this node, and
/// which launcher said so. Read from the variables the launchers set (see <see cref="FromEnvironment"/>).
/// </summary>
/// <param name="Rank">0 … WorldSize − 1; rank 0 publishes, logs and writes checkpoints.</param>
/// <param name="WorldSize">Learner processes in the job.</param>
/// <param name="LocalRank">Rank among the learners on this node.</param>
/// <param name="Launcher">"OpenMPI" (mpirun), "Slurm" (srun), "torchrun" (RANK/WORLD_SIZE) or "none" (a world of 1).</param>
public sealed record DistributedContext(int Rank, int WorldSize, int LocalRank, string Launcher)
{
    /// <summary>A world of one: the learner started without a launcher.</summary>
    public static DistributedContext Single { get; } = new(0, 1, 0, "none");

    /// <summary>Rank 0, the one that publishes weights, logs and writes checkpoints.</summary>
    public bool IsRoot => Rank == 0;

    /// <summary>
    /// Reads the rank and world size from OpenMPI's <c>OMPI_COMM_WORLD_RANK/SIZE</c> (mpirun), then Slurm's
    /// <c>SLURM_PROCID/SLURM_NTASKS</c> (srun), then torchrun's <c>RANK/WORLD_SIZE</c>; without any, a world of 1.
    /// </summary>
    /// <exception cref="ArgumentException">A variable is set but is not a valid rank or size (named, with its value).</exception>
    public static DistributedContext FromEnvironment(IDictionary? variables = null)
    {
        variables ??= Environment.GetEnvironmentVariables();
        string? Get(string name) => variables.Contains(name) ? variables[name] as string : null;
        DistributedContext? Try(string launcher, string rankVar, string sizeVar, string localVar)
        {
            string? rank = Get(rankVar), size = Get(sizeVar);
            if (rank is null && size is null) return null;
            if (rank is null || size is null)
                throw new ArgumentException($"{(rank is null ? sizeVar : rankVar)} is set but {(rank is null ? rankVar : sizeVar)} is not; {launcher} sets both. Start the learner through the launcher (or unset the stray variable).");
            int r = Parse(rankVar, rank), s = Parse(sizeVar, size);
            if (s < 1) throw new ArgumentException($"{sizeVar}={size}: the world size must be at least 1.");
            if (r >= s) throw new ArgumentException($"{rankVar}={rank} is not below {sizeVar}={size}.");
            int local = Get(localVar) is { } l ? Parse(localVar, l) : r;
            return new DistributedContext(r, s, local, launcher);
        }
        return Try("OpenMPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK")
               ?? TrySlurm()
               ?? Try("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK")
               ?? Single;

        // SLURM_PROCID is set in every task of a step, and in a batch script too (0 of SLURM_NTASKS): only a step
        // task (SLURM_STEP_ID set, not the batch step) is a rank.
        DistributedContext? TrySlurm()
        {
            if (Get("SLURM_PROCID") is null || Get("SLURM_STEP_ID") is not { } step || step is "batch" or "4294967294") return null;
            return Try("Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID");
        }
    }

    private static int Parse(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v
            : throw new ArgumentException($"{name}='{value}' is not a non-negative integer.");

    /// <inheritdoc />
    public override string ToString() => WorldSize == 1 ? "a world of 1" : $"rank {Rank} of {WorldSize} ({Launcher})";
}
