namespace ClusterEnv.Tests;

/// <summary>Once for the whole test assembly.</summary>
[SetUpFixture]
public class TestAssemblySetup
{
    /// <summary>
    /// In-process workers stand in for worker processes, but they share this process's thread pool with the hub and
    /// with each other, and some test envs block on purpose (a hung env holds its worker's thread until the test ends).
    /// On a 2-core machine the pool starts with 2 threads and adds more only about twice a second, so one blocked
    /// worker could delay a healthy one's replies past a 1 s deadline under load. Real workers each have their own
    /// process and pool; give the shared pool enough threads to behave the same.
    /// </summary>
    [OneTimeSetUp]
    public void GiveInProcessWorkersTheirOwnThreads()
    {
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), Math.Max(io, 32));
    }
}
