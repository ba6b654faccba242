namespace ClusterEnv.Learners.Distributed;

/// <summary>Picks the collective for a <see cref="DistributedContext"/>.</summary>
public static class Collectives
{
    /// <summary>
    /// A world of 1 gets <see cref="SingleCollective"/>; ranks started by mpirun or srun get <see cref="MpiCollective"/>
    /// (whose rank and size must agree with the launcher's variables).
    /// </summary>
    public static ICollective ForContext(DistributedContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.WorldSize == 1) return SingleCollective.Instance;
        if (context.Launcher == "torchrun")
            throw new NotSupportedException($"RANK/WORLD_SIZE say {context}, but on CPUs the ranks all-reduce through MPI: launch them with " +
                                            "`mpirun -np N dotnet ...` or `srun --mpi=pmix -n N dotnet ...` instead of a torchrun-style launcher.");
        var mpi = MpiCollective.Initialize();
        if (mpi.Rank != context.Rank || mpi.WorldSize != context.WorldSize)
        {
            var (r, s) = (mpi.Rank, mpi.WorldSize);
            mpi.Dispose();
            throw new CollectiveException($"{context.Launcher}'s variables say {context}, but MPI says rank {r} of {s}. Under Slurm, start MPI ranks with `srun --mpi=pmix`.");
        }
        return mpi;
    }

    /// <summary>
    /// Checks that every rank holds the same <paramref name="weights"/> (an xxHash64 of their bits, compared with rank
    /// 0's); throws naming the rank and the update when they differ. Costs one 8-byte broadcast.
    /// </summary>
    public static ulong CheckInSync(ICollective collective, ReadOnlySpan<float> weights, long update)
    {
        ulong mine = System.IO.Hashing.XxHash64.HashToUInt64(System.Runtime.InteropServices.MemoryMarshal.AsBytes(weights));
        if (collective.WorldSize == 1) return mine;
        Span<byte> root = stackalloc byte[8];
        BitConverter.TryWriteBytes(root, mine);
        collective.Broadcast(root, 0);
        ulong theirs = BitConverter.ToUInt64(root);
        if (theirs != mine)
            throw new CollectiveException($"Rank {collective.Rank}: after update {update} its weights (hash {mine:x16}) differ from rank 0's ({theirs:x16}); " +
                                          "the ranks no longer train one model. Every rank must start from rank 0's weights and all-reduce the same gradient buffer.");
        return mine;
    }
}
