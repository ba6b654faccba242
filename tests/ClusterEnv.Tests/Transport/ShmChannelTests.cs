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
            var buf = new byte[hub.MaxMessage];
            for (int i = 0; i < count; i++)
            {
                if (i < 50) Thread.Sleep(1); // the hub fills the ring and must wait for space
                int n = worker.Receive(buf);
                Array.Reverse(buf, 0, n);
                worker.Send(buf.AsSpan(0, n));
            }
        });
        echo.Start();
        var rng = new Random(5);
        var received = new byte[hub.MaxMessage];
        var sent = new Queue<byte[]>();
        int got = 0;
        for (int i = 0; i < count; i++)
        {
            var msg = new byte[rng.Next(0, hub.MaxMessage + 1)];
            rng.NextBytes(msg);
            sent.Enqueue(msg);
            while (!hub.Send(msg, timeoutMs: 0)) // ring full: drain a reply, then retry
                Check(hub.Receive(received));
        }
        while (got < count) Check(hub.Receive(received));
        echo.Join();
        Assert.That(got, Is.EqualTo(count));

        void Check(int n)
        {
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
        Assert.That(worker.Receive(new byte[64], timeoutMs: 50), Is.EqualTo(-1));
        Assert.That(sw.ElapsedMilliseconds, Is.InRange(45, 2000));

        Exception? seen = null;
        var sleeper = new Thread(() =>
        {
            try { worker.Receive(new byte[64]); }
            catch (Exception e) { seen = e; }
        });
        sleeper.Start();
        Thread.Sleep(100); // well past the spin: it sleeps on the futex
        hub.Close();
        Assert.That(sleeper.Join(5000), Is.True, "Close wakes the sleeping side");
        Assert.That(seen, Is.InstanceOf<ObjectDisposedException>());
    }

    [Test]
    public void MessagesLeftBeforeAClose_AreStillRead()
    {
        using var hub = ShmChannel.Create(Name(), capacity: 1024);
        using var worker = ShmChannel.Open(hub.Path);
        hub.Send([1, 2, 3]);
        hub.Close();
        var buf = new byte[8];
        Assert.That(worker.Receive(buf), Is.EqualTo(3));
        Assert.That(buf[..3], Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.Throws<ObjectDisposedException>(() => worker.Receive(buf));
    }

    [Test]
    public void BadInput_IsNamed()
    {
        using var hub = ShmChannel.Create(Name(), capacity: 1024);
        var e = Assert.Throws<ArgumentException>(() => hub.Send(new byte[hub.MaxMessage + 1]))!;
        Assert.That(e.Message, Does.Contain("does not fit").And.Contain("larger capacity"));
        using var worker = ShmChannel.Open(hub.Path);
        hub.Send(new byte[100]);
        Assert.That(Assert.Throws<ArgumentException>(() => worker.Receive(new byte[10]))!.Message, Does.Contain("100 bytes"));
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
