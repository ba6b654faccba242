using System.Collections;
using ClusterEnv.Learners.Distributed;

namespace ClusterEnv.Tests.Distributed;

public class DistributedContextTests
{
    [Test]
    public void EachLaunchersVariables_GiveTheRankAndSize_AndSayWhichLauncher()
    {
        var mpi = DistributedContext.FromEnvironment(new Hashtable { ["OMPI_COMM_WORLD_RANK"] = "1", ["OMPI_COMM_WORLD_SIZE"] = "4", ["OMPI_COMM_WORLD_LOCAL_RANK"] = "1" });
        Assert.That(mpi, Is.EqualTo(new DistributedContext(1, 4, 1, "OpenMPI")));
        var slurm = DistributedContext.FromEnvironment(new Hashtable { ["SLURM_PROCID"] = "2", ["SLURM_NTASKS"] = "3", ["SLURM_LOCALID"] = "0", ["SLURM_STEP_ID"] = "0" });
        Assert.That(slurm, Is.EqualTo(new DistributedContext(2, 3, 0, "Slurm")));
        var torchrun = DistributedContext.FromEnvironment(new Hashtable { ["RANK"] = "0", ["WORLD_SIZE"] = "2" });
        Assert.That(torchrun, Is.EqualTo(new DistributedContext(0, 2, 0, "torchrun")));
        // OpenMPI's variables win over Slurm's (mpirun inside an allocation sets both).
        var both = DistributedContext.FromEnvironment(new Hashtable
        {
            ["OMPI_COMM_WORLD_RANK"] = "0", ["OMPI_COMM_WORLD_SIZE"] = "2", ["SLURM_PROCID"] = "0", ["SLURM_NTASKS"] = "5", ["SLURM_STEP_ID"] = "0",
        });
        Assert.That(both.Launcher, Is.EqualTo("OpenMPI"));
        Assert.That(both.WorldSize, Is.EqualTo(2));
    }

    [Test]
    public void NoLauncher_OrASlurmBatchScript_IsAWorldOfOne()
    {
        Assert.That(DistributedContext.FromEnvironment(new Hashtable()), Is.EqualTo(DistributedContext.Single));
        var batch = DistributedContext.FromEnvironment(new Hashtable { ["SLURM_PROCID"] = "0", ["SLURM_NTASKS"] = "4", ["SLURM_STEP_ID"] = "batch" });
        Assert.That(batch.WorldSize, Is.EqualTo(1), "the batch script of a 4-task job is not 4 ranks");
    }

    [Test]
    public void BadVariables_AreNamed()
    {
        var ex = Assert.Throws<ArgumentException>(() => DistributedContext.FromEnvironment(new Hashtable { ["RANK"] = "2", ["WORLD_SIZE"] = "2" }))!;
        Assert.That(ex.Message, Does.Contain("RANK=2").And.Contain("WORLD_SIZE=2"));
        ex = Assert.Throws<ArgumentException>(() => DistributedContext.FromEnvironment(new Hashtable { ["OMPI_COMM_WORLD_RANK"] = "x", ["OMPI_COMM_WORLD_SIZE"] = "2" }))!;
        Assert.That(ex.Message, Does.Contain("OMPI_COMM_WORLD_RANK='x'"));
        ex = Assert.Throws<ArgumentException>(() => DistributedContext.FromEnvironment(new Hashtable { ["WORLD_SIZE"] = "2" }))!;
        Assert.That(ex.Message, Does.Contain("WORLD_SIZE is set but RANK is not"));
    }

    [Test]
    public void TorchrunStyleRanks_AreToldToUseAnMpiLauncher()
    {
        var ex = Assert.Throws<NotSupportedException>(() => Collectives.ForContext(new DistributedContext(0, 2, 0, "torchrun")))!;
        Assert.That(ex.Message, Does.Contain("mpirun -np N").And.Contain("srun --mpi=pmix"));
    }

    [Test]
    public void AMissingMpiLibrary_IsNamedWithHowToInstallIt()
    {
        string? before = Environment.GetEnvironmentVariable("CLUSTERENV_MPI_LIB");
        Environment.SetEnvironmentVariable("CLUSTERENV_MPI_LIB", "/nonexistent/libmpi.so.40");
        try
        {
            var ex = Assert.Throws<DllNotFoundException>(() => MpiCollective.Initialize())!;
            Assert.That(ex.Message, Does.Contain("/nonexistent/libmpi.so.40").And.Contain("openmpi-bin"));
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLUSTERENV_MPI_LIB", before);
        }
    }
}

public class ThreadCollectiveTests
{
    private static void OnEveryRank(ICollective[] world, Action<ICollective> body)
    {
        var tasks = world.Select(c => Task.Factory.StartNew(() => body(c), TaskCreationOptions.LongRunning)).ToArray();
        Task.WaitAll(tasks);
    }

    [Test]
    public void AllReduce_SumsMeansAndMaxes_AndEveryRankHoldsTheSameBits()
    {
        var world = ThreadCollective.Create(3);
        var results = new float[3][];
        OnEveryRank(world, c =>
        {
            // The project's usual check: rank r contributes (r+1)·(i%7+1); the sum is size(size+1)/2·(i%7+1).
            var x = Enumerable.Range(0, 1000).Select(i => (float)((c.Rank + 1) * (i % 7 + 1))).ToArray();
            c.AllReduce(x, ReduceOp.Sum);
            for (int i = 0; i < x.Length; i++) Assert.That(x[i], Is.EqualTo(6f * (i % 7 + 1)));
            var m = new[] { 0.1f * (c.Rank + 1), 1e-7f * c.Rank };
            c.AllReduce(m, ReduceOp.Mean);
            results[c.Rank] = m;
            var d = new[] { (double)c.Rank, -c.Rank };
            c.AllReduce(d, ReduceOp.Max);
            Assert.That(d, Is.EqualTo(new[] { 2.0, 0.0 }));
        });
        Assert.That(results[0], Is.EqualTo(new[] { 0.2f, 1e-7f }).Within(1e-6f));
        Assert.That(results[1], Is.EqualTo(results[0]), "bit-identical on every rank");
        Assert.That(results[2], Is.EqualTo(results[0]));
    }

    [Test]
    public void UnionMoments_OfAllMinibatchesInOneCall_NormaliseAsOneCallPerMinibatchDoes()
    {
        var world = ThreadCollective.Create(2);
        OnEveryRank(world, c =>
        {
            var rng = new ClusterEnv.Common.Rng(10 + c.Rank);
            var adv = Enumerable.Range(0, 37).Select(_ => (float)rng.Uniform(-3, 5)).ToArray();
            var indices = Enumerable.Range(0, 37).Reverse().ToArray();
            var moments = DataParallel.UnionMoments(c, adv, indices, 4);
            for (int m = 0; m < 4; m++)
            {
                int start = m * 37 / 4, end = (m + 1) * 37 / 4;
                var once = indices[start..end].Select(j => adv[j]).ToArray();
                var each = (float[])once.Clone();
                DataParallel.Normalize(once, moments[m]);
                DataParallel.NormalizeUnbiased(c, each);
                Assert.That(once, Is.EqualTo(each), $"rank {c.Rank}, minibatch {m}");
            }
        });
    }

    [Test]
    public void Broadcast_CopiesTheRootsValues()
    {
        var world = ThreadCollective.Create(2);
        OnEveryRank(world, c =>
        {
            var x = new float[] { c.Rank + 10, c.Rank + 20 };
            c.Broadcast(x, root: 1);
            Assert.That(x, Is.EqualTo(new float[] { 11, 21 }));
            var b = new byte[] { (byte)c.Rank };
            c.Broadcast(b, root: 0);
            Assert.That(b[0], Is.EqualTo(0));
        });
    }

    [Test]
    public void ARankThatLeaves_MakesTheOthersFailByName_InsteadOfWaiting()
    {
        var world = ThreadCollective.Create(2, TimeSpan.FromSeconds(30));
        world[1].Dispose(); // rank 1 is gone (it threw, or its process ended)
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var ex = Assert.Throws<CollectiveException>(() => world[0].AllReduce(new float[4], ReduceOp.Sum))!;
        Assert.That(ex.Message, Does.Contain("Rank 0").And.Contain("rank 1 left"));
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
    }

    [Test]
    public void ARankThatStopsCalling_MakesTheOthersFailAfterTheTimeout()
    {
        var world = ThreadCollective.Create(2, TimeSpan.FromMilliseconds(300));
        var ex = Assert.Throws<CollectiveException>(() => world[0].AllReduce(new float[4], ReduceOp.Sum))!;
        Assert.That(ex.Message, Does.Contain("did not complete within 0.3 s"));
    }

    [Test]
    public void DifferentLengths_AreRefusedOnEveryRank()
    {
        var world = ThreadCollective.Create(2);
        var errors = new string?[2];
        OnEveryRank(world, c =>
        {
            try { c.AllReduce(new float[c.Rank == 0 ? 4 : 5], ReduceOp.Sum); }
            catch (CollectiveException e) { errors[c.Rank] = e.Message; }
        });
        Assert.That(errors, Has.All.Contains("same lengths"));
    }
}
