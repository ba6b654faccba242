using System.Diagnostics;
using ClusterEnv.Transport.SharedMemory;

namespace ClusterEnv.Tests.Transport;

/// <summary>The shared-memory channel: every message arrives whole and in order across wrap-arounds and full rings; waits end by timeout or close; bad input is named.</summary>
public class ShmChannelTests
{
    private static string Name() => $"clusterenv-test-{Environment.ProcessId}-{Guid.NewGuid():N}";

    [SetUp]
    public void RequireSharedMemory()
    {
        if (ShmChannel.Unavailable() is { } why) Assert.Ignore(why);
    }

    [Test]
    public void MessagesOfEverySize_ArriveWholeAndInOrder_ThroughWrapAroundsAndAFullRing()
    {
        using var hub = ShmChannel.Create(Name(), capacity: 4096, spinMicroseconds: 5);
        using var worker = ShmChannel.Open(hub.Path, spinMicroseconds: 5);
        const int count = 20_000;
        // The worker echoes every message back with its bytes reversed; it reads slower than the hub writes at first.
        var echo = new Thread(() =>
        {
            var buf = new byte[16];
            for (int i = 0; i < count; i++)
            {
                if (i < 50) Thread.Sleep(1); // the hub fills the ring and must wait for space
                int n = worker.Receive(ref buf);
                Array.Reverse(buf, 0, n);
                worker.Send(buf.AsSpan(0, n));
            }
        });
        echo.Start();
        // The hub's writer on its own thread (a multi-record message blocks until the reader makes room); replies are
        // checked here, in order, as they come back.
        var rng = new Random(5);
        var messages = Enumerable.Range(0, count).Select(i =>
        {
            // Mostly one record; every tenth message several (up to 3× the ring's capacity), joined again by the reader.
            var m = new byte[i % 10 == 9 ? rng.Next(hub.MaxChunk, 3 * hub.Capacity) : rng.Next(0, hub.MaxChunk + 1)];
            rng.NextBytes(m);
            return m;
        }).ToArray();
        var writer = new Thread(() =>
        {
            foreach (var m in messages) hub.Send(m);
        });
        writer.Start();
        var received = new byte[16];
        var sent = new Queue<byte[]>(messages);
        int got = 0;
        while (got < count) Check(hub.Receive(ref received, timeoutMs: 30_000));
        writer.Join();
        echo.Join();
        Assert.That(got, Is.EqualTo(count));

        void Check(int n)
        {
            Assert.That(n, Is.Not.EqualTo(-1), $"no reply to message {got} within 30 s");
            var expected = sent.Dequeue();
            Assert.That(n, Is.EqualTo(expected.Length), $"message {got}");
            Assert.That(received.AsSpan(0, n).ToArray().Reverse(), Is.EqualTo(expected), $"message {got}");
            got++;
        }
    }

    [Test]
    public void AReceiveWithNothingToRead_TimesOut_AndASleepingReceiverWakesOnClose()
    {
        using var hub = ShmChannel.Create(Name(), capacity: 1024);
        using var worker = ShmChannel.Open(hub.Path);
        var sw = Stopwatch.StartNew();
        var buffer = new byte[64];
        Assert.That(worker.Receive(ref buffer, timeoutMs: 50), Is.EqualTo(-1));
        Assert.That(sw.ElapsedMilliseconds, Is.InRange(45, 2000));

        Exception? seen = null;
        var sleeper = new Thread(() =>
        {
            var b = new byte[64];
            try { worker.Receive(ref b); }
            catch (Exception e) { seen = e; }
        });
        sleeper.Start();
        Thread.Sleep(100); // well past the spin: it sleeps on the futex
        hub.Close();
        Assert.That(sleeper.Join(5000), Is.True, "Close wakes the sleeping side");
        Assert.That(seen, Is.InstanceOf<ObjectDisposedException>());
    }

    [Test]
    public void DisposingWhileAnotherThreadReceives_EndsItsWait_AndLaterCallsAreRefused_NotACrash()
    {
        // A worker's watch task closes the channel while its command loop disposes it: a call after (or during) the
        // unmapping once read freed memory and killed the process.
        using var hub = ShmChannel.Create(Name(), capacity: 1024);
        var worker = ShmChannel.Open(hub.Path);
        Exception? seen = null;
        var reader = new Thread(() =>
        {
            var b = new byte[64];
            try { while (true) worker.Receive(ref b); }
            catch (Exception e) { seen = e; }
        });
        reader.Start();
        Thread.Sleep(50);
        worker.Dispose();
        Assert.That(reader.Join(5000), Is.True, "Dispose wakes the receiver");
        Assert.That(seen, Is.InstanceOf<ObjectDisposedException>());
        worker.Close();
        Assert.That(worker.IsClosed, Is.True);
        var buf = new byte[8];
        Assert.Throws<ObjectDisposedException>(() => worker.Send([1]));
        Assert.Throws<ObjectDisposedException>(() => worker.Receive(ref buf));
        worker.Dispose();
    }

    [Test]
    public void MessagesLeftBeforeAClose_AreStillRead()
    {
        using var hub = ShmChannel.Create(Name(), capacity: 1024);
        using var worker = ShmChannel.Open(hub.Path);
        hub.Send([1, 2, 3]);
        hub.Close();
        var buf = new byte[8];
        Assert.That(worker.Receive(ref buf), Is.EqualTo(3));
        Assert.That(buf[..3], Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.Throws<ObjectDisposedException>(() => worker.Receive(ref buf));
    }

    [Test]
    public void ABufferTooSmall_Grows_AndBadInputIsNamed()
    {
        using (var hub = ShmChannel.Create(Name(), capacity: 1024))
        using (var worker = ShmChannel.Open(hub.Path))
        {
            var big = Enumerable.Range(0, 5000).Select(i => (byte)i).ToArray();
            var t = new Thread(() => hub.Send(big)); // 5000 bytes through a 1 KiB ring: records the reader joins while the writer waits
            t.Start();
            var small = new byte[10];
            Assert.That(worker.Receive(ref small), Is.EqualTo(5000));
            Assert.That(small[..5000], Is.EqualTo(big));
            t.Join();
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => ShmChannel.Create(Name(), capacity: 1000), "not a power of two");
        string notAChannel = Path.Combine(ShmChannel.Directory, Name());
        File.WriteAllBytes(notAChannel, new byte[8192]);
        try
        {
            Assert.That(Assert.Throws<InvalidDataException>(() => ShmChannel.Open(notAChannel))!.Message, Does.Contain("not a ClusterEnv shared-memory channel"));
        }
        finally
        {
            File.Delete(notAChannel);
        }
    }

    [Test]
    public void FilesOfACreatorThatIsGone_AreRemoved_AndALiveOnesAreKept()
    {
        // A pid far above any in use here: a learner that was killed without removing its channel.
        string dead = Path.Combine(ShmChannel.Directory, $"clusterenv-staletest-{int.MaxValue - 7}-x");
        File.WriteAllBytes(dead, new byte[16]);
        using var live = ShmChannel.Create($"clusterenv-staletest-{Environment.ProcessId}-y", capacity: 1024);
        Assert.That(ShmChannel.RemoveStale("clusterenv-staletest"), Is.EqualTo(1));
        Assert.That(File.Exists(dead), Is.False);
        Assert.That(File.Exists(live.Path), Is.True);
    }

    [Test]
    public void TheFile_IsTheCreatorsAlone_AndGoesWithTheCreator()
    {
        string path;
        using (var hub = ShmChannel.Create(Name(), capacity: 1024))
        {
            path = hub.Path;
            if (OperatingSystem.IsLinux()) Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
            Assert.Throws<IOException>(() => ShmChannel.Create(Path.GetFileName(path)), "a second channel of the same name");
        }
        Assert.That(File.Exists(path), Is.False);
    }
}

/// <summary>The hub and its local workers on shared-memory channels: used when asked for, on gRPC otherwise, and gone after.</summary>
public class SharedMemoryTransportTests
{
    private static string[] Channels() => Directory.GetFiles(ShmChannel.Directory, $"clusterenv-{Environment.ProcessId}-*");

    [Test]
    public void LocalWorkers_MoveToAChannelEach_ByDefault_AndTheFilesGoWithTheVectorEnv()
    {
        if (ShmChannel.Unavailable() is { } why) Assert.Ignore(why);
        var before = Channels();
        using (var envs = new ClusterEnv.Cluster.ClusterVecEnv(new ClusterEnv.Cluster.ClusterOptions
               {
                   EnvId = "CartPole-v1", NumEnvs = 4, NumWorkers = 2, // shared memory is the default
               }))
        {
            envs.Reset(seed: 3);
            using var local = ClusterEnv.Envs.Gym.MakeVec("CartPole-v1", 4);
            local.Reset(seed: 3);
            var actions = new int[4];
            for (int t = 0; t < 200; t++)
            {
                for (int i = 0; i < 4; i++) actions[i] = (t + i) % 3 == 0 ? 1 : 0;
                Assert.That(envs.Step(actions).Observations, Is.EqualTo(local.Step(actions).Observations), $"step {t}");
            }
            Assert.That(Channels().Except(before).Count(), Is.EqualTo(2), "one channel per worker");
        }
        Assert.That(Channels().Except(before), Is.Empty, "the channel files are removed when the vector env closes");
        using (var grpc = new ClusterEnv.Cluster.ClusterVecEnv(new ClusterEnv.Cluster.ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 2, NumWorkers = 1, Hub = new ClusterEnv.Cluster.HubOptions { SharedMemory = false } }))
        {
            grpc.Reset(seed: 1);
            grpc.Step(new int[2]);
            Assert.That(Channels().Except(before), Is.Empty, "with HubOptions.SharedMemory off, gRPC only");
        }
    }

    [Test]
    public void TheLearnersThreadReadsStepReplies_AndHandsTheChannelBack_AcrossPausesAndAStream()
    {
        if (ShmChannel.Unavailable() is { } why) Assert.Ignore(why);
        using var envs = new ClusterEnv.Cluster.ClusterVecEnv(new ClusterEnv.Cluster.ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 4, NumWorkers = 2 });
        using var local = ClusterEnv.Envs.Gym.MakeVec("CartPole-v1", 4);
        var actions = new int[4];
        // Pauses below and above the 5 ms after which a connection's reader thread takes its ring back from the learner.
        int[] pausesMs = [0, 0, 0, 1, 7, 0, 12, 0, 3, 0];
        for (int round = 0; round < 2; round++)
        {
            envs.Reset(seed: 10 + round);
            local.Reset(seed: 10 + round);
            for (int t = 0; t < 300; t++)
            {
                if (t % 10 == 0) Thread.Sleep(pausesMs[t / 10 % pausesMs.Length]);
                for (int i = 0; i < 4; i++) actions[i] = (t * 7 + i) % 5 < 2 ? 1 : 0;
                var remote = envs.Step(actions);
                var expected = local.Step(actions);
                Assert.That(remote.Observations, Is.EqualTo(expected.Observations), $"round {round}, step {t}");
                Assert.That(remote.Terminated, Is.EqualTo(expected.Terminated), $"round {round}, step {t}");
            }
            // Streaming in between: its rollouts are read by the workers' reader threads, whoever held the rings last.
            var r = ClusterEnv.Learners.Impala.Impala.Train(envs, new ClusterEnv.Learners.Impala.ImpalaOptions { Seed = 1, TotalTimesteps = 4_000 });
            Assert.That(r.History[^1].GlobalStep, Is.GreaterThanOrEqualTo(4_000));
        }
        long inline = envs.WorkerConnection(0).RepliesReadByTheLearner + envs.WorkerConnection(1).RepliesReadByTheLearner;
        Assert.That(inline, Is.GreaterThan(0), "some step replies were read on the learner's thread");
    }

    [Test]
    public void ImpalaOnStreamingWorkers_AndPpoOnLockstepWorkerRollouts_TrainOverTheChannels()
    {
        if (ShmChannel.Unavailable() is { } why) Assert.Ignore(why);
        var options = new ClusterEnv.Cluster.ClusterOptions
        {
            EnvId = "CartPole-v1", NumEnvs = 8, NumWorkers = 2, Hub = new ClusterEnv.Cluster.HubOptions { SharedMemory = true },
        };
        using (var envs = new ClusterEnv.Cluster.ClusterVecEnv(options))
        {
            var r = ClusterEnv.Learners.Impala.Impala.Train(envs, new ClusterEnv.Learners.Impala.ImpalaOptions { Seed = 2, TotalTimesteps = 120_000 },
                ClusterEnv.Sync.SyncStrategy.KlThreshold(0.01, maxLag: 6));
            Assert.That(r.History[^1].GlobalStep, Is.GreaterThanOrEqualTo(120_000));
            Assert.That(r.History[^1].TotalPushes, Is.GreaterThanOrEqualTo(2), "policy pushes (multi-record messages) reached both workers");
            Assert.That(r.FinalMeanReturn20, Is.GreaterThan(60), "learning happened (random is about 22)");
            envs.Reset(seed: 3);
            Assert.DoesNotThrow(() => envs.Step(new int[8]), "the stream stopped cleanly over the channel");
        }
        using (var envs = new ClusterEnv.Cluster.ClusterVecEnv(options))
        {
            var r = ClusterEnv.Learners.Ppo.Ppo.TrainOnWorkers(envs, new ClusterEnv.Learners.Ppo.PpoOptions { Seed = 1, TotalTimesteps = 8192 }, ClusterEnv.Sync.SyncStrategy.Always);
            Assert.That(r.History, Has.Count.EqualTo(8));
        }
    }
}
