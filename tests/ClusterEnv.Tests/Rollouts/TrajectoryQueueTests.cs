using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ClusterEnv.Learners.Queues;
using ClusterEnv.Rollouts;
using ClusterEnv.Tests.Cluster;

namespace ClusterEnv.Tests.Rollouts;

/// <summary>What every trajectory queue must do; run against the in-memory queue and a real redis-server.</summary>
public abstract class TrajectoryQueueContract
{
    protected abstract ITrajectoryQueue Create(int capacity, QueueFullMode mode);

    private static byte[] Item(int i) => BitConverter.GetBytes(i).Concat(Enumerable.Repeat((byte)i, i % 7)).ToArray();
    private static int Id(byte[] b) => BitConverter.ToInt32(b, 0);

    [Test]
    public void TakesInOrder_AtMostMax_AndCounts()
    {
        using var q = Create(16, QueueFullMode.Block);
        for (int i = 0; i < 5; i++) q.Add(Item(i));
        Assert.That(q.Count, Is.EqualTo(5));
        var got = new List<byte[]>();
        Assert.That(q.Take(3, got, TimeSpan.FromSeconds(1)), Is.EqualTo(3));
        Assert.That(q.Take(10, got, TimeSpan.FromSeconds(1)), Is.EqualTo(2));
        Assert.That(got.Select(Id), Is.EqualTo(new[] { 0, 1, 2, 3, 4 }));
        Assert.That(got[3], Is.EqualTo(Item(3)), "bytes come back as they went in");
        Assert.That(q.Count, Is.EqualTo(0));
    }

    [Test]
    public void TakeOnAnEmptyQueue_ReturnsNothingAfterTheWait_AndNeverHangs()
    {
        using var q = Create(4, QueueFullMode.Block);
        var sw = Stopwatch.StartNew();
        Assert.That(q.Take(2, [], TimeSpan.FromMilliseconds(150)), Is.EqualTo(0));
        Assert.That(sw.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(140)));
    }

    [Test]
    public void TakeWakesWhenARolloutArrives()
    {
        using var q = Create(4, QueueFullMode.Block);
        var got = new List<byte[]>();
        var taker = Task.Run(() => q.Take(4, got, TimeSpan.FromSeconds(30)));
        Thread.Sleep(50);
        q.Add(Item(9));
        Assert.That(taker.Wait(TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(taker.Result, Is.EqualTo(1));
        Assert.That(Id(got[0]), Is.EqualTo(9));
    }

    [Test]
    public void Full_Block_WaitsForTheLearner()
    {
        using var q = Create(2, QueueFullMode.Block);
        q.Add(Item(0));
        q.Add(Item(1));
        var adder = Task.Run(() => q.Add(Item(2)));
        Assert.That(adder.Wait(200), Is.False, "a full queue in block mode holds the adder");
        var got = new List<byte[]>();
        Assert.That(q.Take(1, got, TimeSpan.FromSeconds(5)), Is.EqualTo(1));
        Assert.That(adder.Wait(TimeSpan.FromSeconds(30)), Is.True, "taking one makes room");
        q.Take(5, got, TimeSpan.FromSeconds(5));
        Assert.That(got.Select(Id), Is.EqualTo(new[] { 0, 1, 2 }));
        Assert.That(q.Dropped, Is.EqualTo(0));
    }

    [Test]
    public void Full_DropOldest_KeepsTheFreshest_AndCountsTheDropped()
    {
        using var q = Create(3, QueueFullMode.DropOldest);
        for (int i = 0; i < 5; i++) q.Add(Item(i));
        var got = new List<byte[]>();
        q.Take(10, got, TimeSpan.FromSeconds(1));
        Assert.That(got.Select(Id), Is.EqualTo(new[] { 2, 3, 4 }));
        Assert.That(q.Dropped, Is.EqualTo(2));
    }

    [Test]
    public void Full_Reject_ThrowsNamingTheFix()
    {
        using var q = Create(1, QueueFullMode.Reject);
        q.Add(Item(0));
        var ex = Assert.Throws<TrajectoryQueueException>(() => q.Add(Item(1)))!;
        Assert.That(ex.Message, Does.Contain("full").And.Contain("1 rollouts"));
        Assert.That(q.Count, Is.EqualTo(1), "the rejected rollout is not kept");
    }

    [Test]
    public void ConcurrentProducers_AndOneConsumer_LoseNothing_AndDuplicateNothing()
    {
        using var q = Create(8, QueueFullMode.Block);
        const int producers = 4, each = 250;
        var tasks = Enumerable.Range(0, producers).Select(p => Task.Run(() =>
        {
            for (int i = 0; i < each; i++) q.Add(Item(p * each + i));
        })).ToArray();
        var got = new List<byte[]>();
        var sw = Stopwatch.StartNew();
        while (got.Count < producers * each && sw.Elapsed < TimeSpan.FromSeconds(60)) q.Take(5, got, TimeSpan.FromMilliseconds(200));
        Task.WaitAll(tasks, TimeSpan.FromSeconds(30));
        Assert.That(got.Select(Id).Order(), Is.EqualTo(Enumerable.Range(0, producers * each)));
        foreach (var g in got) Assert.That(g, Is.EqualTo(Item(Id(g))));
        // Each producer's rollouts come out in the order it added them.
        for (int p = 0; p < producers; p++)
        {
            var mine = got.Select(Id).Where(id => id / each == p).ToArray();
            Assert.That(mine, Is.Ordered);
        }
    }
}

public class InMemoryTrajectoryQueueTests : TrajectoryQueueContract
{
    protected override ITrajectoryQueue Create(int capacity, QueueFullMode mode) => new InMemoryTrajectoryQueue(capacity, mode);
}

/// <summary>
/// The same contract against a real redis-server: the one CI starts (CLUSTERENV_REDIS=host:port), else one this
/// fixture starts from PATH; skipped, saying why, when neither exists.
/// </summary>
public class RedisTrajectoryQueueTests : TrajectoryQueueContract
{
    private RedisServer? _own;
    private string _endpoint = "";
    private int _keys;

    [OneTimeSetUp]
    public void StartRedis()
    {
        if (Environment.GetEnvironmentVariable("CLUSTERENV_REDIS") is { Length: > 0 } endpoint) _endpoint = endpoint;
        else
        {
            _own = RedisServer.TryStart() ?? throw new IgnoreException("No Redis: set CLUSTERENV_REDIS=host:port or put redis-server on PATH (Debian: apt-get install redis-server).");
            _endpoint = _own.Endpoint;
        }
    }

    [OneTimeTearDown]
    public void StopRedis() => _own?.Dispose();

    protected override ITrajectoryQueue Create(int capacity, QueueFullMode mode)
    {
        var q = new RedisTrajectoryQueue(_endpoint, $"clusterenv-test:{Environment.ProcessId}:{Interlocked.Increment(ref _keys)}", capacity, mode);
        q.Clear();
        return q;
    }

    [Test]
    public void AConsumerThatRestarts_LosesNothingThatWasInRedis()
    {
        string key = $"clusterenv-test:{Environment.ProcessId}:restart";
        using (var first = new RedisTrajectoryQueue(_endpoint, key))
        {
            first.Clear();
            for (int i = 0; i < 6; i++) first.Add(BitConverter.GetBytes(i));
            var got = new List<byte[]>();
            first.Take(2, got, TimeSpan.FromSeconds(1));
            Assert.That(got.Select(b => BitConverter.ToInt32(b)), Is.EqualTo(new[] { 0, 1 }));
        } // the consumer goes away
        using var second = new RedisTrajectoryQueue(_endpoint, key);
        var rest = new List<byte[]>();
        second.Take(10, rest, TimeSpan.FromSeconds(1));
        Assert.That(rest.Select(b => BitConverter.ToInt32(b)), Is.EqualTo(new[] { 2, 3, 4, 5 }));
        second.Clear();
    }

    [Test]
    public void ARedisThatIsDown_GivesAClearErrorNamingTheEndpoint_NotAHang()
    {
        int port = TestCluster.FreePort();
        var sw = Stopwatch.StartNew();
        var ex = Assert.Throws<TrajectoryQueueException>(() => new RedisTrajectoryQueue($"127.0.0.1:{port}", connectTimeout: TimeSpan.FromSeconds(1)))!;
        Assert.That(ex.Message, Does.Contain($"127.0.0.1:{port}").And.Contain("redis-server"));
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)));
    }

    [Test]
    public void ARedisThatGoesAwayMidRun_GivesAClearErrorNamingTheEndpoint()
    {
        using var server = RedisServer.TryStart() ?? throw new IgnoreException("This test starts and kills its own redis-server; none is on PATH.");
        using var q = new RedisTrajectoryQueue(server.Endpoint, "clusterenv-test:gone", connectTimeout: TimeSpan.FromSeconds(1));
        q.Add([1, 2, 3]);
        server.Kill();
        var sw = Stopwatch.StartNew();
        var ex = Assert.Throws<TrajectoryQueueException>(() =>
        {
            for (int i = 0; i < 100; i++) q.Add([4]); // the first failure may be noticed a command late
        })!;
        Assert.That(ex.Message, Does.Contain(server.Endpoint));
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)));
        Assert.Throws<TrajectoryQueueException>(() => q.Take(1, [], TimeSpan.FromMilliseconds(100)));
    }
}

/// <summary>A redis-server child process on a free loopback port, without persistence.</summary>
internal sealed class RedisServer : IDisposable
{
    private readonly Process _process;

    private RedisServer(Process process, int port)
    {
        _process = process;
        Endpoint = $"127.0.0.1:{port}";
    }

    public string Endpoint { get; }

    public static RedisServer? TryStart()
    {
        string? path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "redis-server")).FirstOrDefault(File.Exists);
        if (path is null) return null;
        int port = TestCluster.FreePort();
        var psi = new ProcessStartInfo(path) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--bind", "127.0.0.1", "--port", port.ToString(), "--save", "", "--appendonly", "no" }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(20))
        {
            try
            {
                using var probe = new TcpClient();
                probe.Connect(IPAddress.Loopback, port);
                return new RedisServer(p, port);
            }
            catch (SocketException)
            {
                if (p.HasExited) throw new InvalidOperationException($"redis-server exited with {p.ExitCode} on port {port}.");
                Thread.Sleep(20);
            }
        }
        p.Kill();
        throw new InvalidOperationException($"redis-server did not listen on port {port} within 20 s.");
    }

    public void Kill()
    {
        if (!_process.HasExited) _process.Kill();
        _process.WaitForExit();
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
