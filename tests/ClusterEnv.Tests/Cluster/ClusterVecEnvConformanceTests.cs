using ClusterEnv.Cluster;
using ClusterEnv.Vector;

namespace ClusterEnv.Tests.Cluster;

/// <summary>The conformance suite against <see cref="ClusterVecEnv"/> with workers running in this process.</summary>
public class ClusterVecEnvInProcessConformanceTests : Vector.VectorEnvConformanceTests
{
    protected override IVectorEnv Create(string envId, int numEnvs, AutoresetMode mode, bool recordStatistics = true) =>
        TestCluster.InProcess(envId, TestCluster.Split(numEnvs), mode, recordStatistics).Env;
}

/// <summary>The conformance suite against <see cref="ClusterVecEnv"/> with a local pool of worker processes over gRPC (as remote workers talk).</summary>
public class ClusterVecEnvProcessConformanceTests : Vector.VectorEnvConformanceTests
{
    protected virtual HubOptions Hub => new() { SharedMemory = false };

    protected override IVectorEnv Create(string envId, int numEnvs, AutoresetMode mode, bool recordStatistics = true) =>
        new ClusterVecEnv(new ClusterOptions
        {
            EnvId = envId,
            NumEnvs = numEnvs,
            NumWorkers = Math.Min(2, numEnvs),
            AutoresetMode = mode,
            RecordEpisodeStatistics = recordStatistics,
            ConnectTimeout = TimeSpan.FromSeconds(60),
            Hub = Hub,
        });
}

/// <summary>The conformance suite against <see cref="ClusterVecEnv"/> with local worker processes on shared-memory channels (the default on this host).</summary>
public class ClusterVecEnvSharedMemoryConformanceTests : ClusterVecEnvProcessConformanceTests
{
    [SetUp]
    public void RequireSharedMemory()
    {
        if (ClusterEnv.Transport.SharedMemory.ShmChannel.Unavailable() is { } why) Assert.Ignore(why);
    }

    protected override HubOptions Hub => new();
}
