using ClusterEnv.Rollouts;
using StackExchange.Redis;

namespace ClusterEnv.Learners.Queues;

/// <summary>
/// A trajectory queue in a Redis list, as in the seed article: each rollout is the protobuf bytes of its
/// <c>RolloutResult</c>, pushed on the right (RPUSH) and popped in batches from the left (LPOP key count, Redis ≥ 6.2).
/// The list outlives the learner: a consumer that restarts with the same key takes what was left, so nothing in Redis
/// is lost. Every Redis failure surfaces as a <see cref="TrajectoryQueueException"/> naming the endpoint and the key,
/// within the connection's timeouts; nothing waits forever.
/// </summary>
public sealed class RedisTrajectoryQueue : ITrajectoryQueue
{
    private readonly ConnectionMultiplexer _redis;
    private readonly IDatabase _db;
    private readonly RedisKey _key;
    private readonly string _endpoint;
    private long _dropped;

    /// <summary>
    /// Connects to <paramref name="endpoint"/> ("host:port", or any StackExchange.Redis configuration string) and
    /// uses the list at <paramref name="key"/>. <paramref name="capacity"/> bounds the list (0: unbounded); a full list
    /// applies <paramref name="fullMode"/>.
    /// </summary>
    /// <exception cref="TrajectoryQueueException">Redis cannot be reached within <paramref name="connectTimeout"/>.</exception>
    public RedisTrajectoryQueue(string endpoint, string key = "clusterenv:rollouts", int capacity = 0, QueueFullMode fullMode = QueueFullMode.Block,
        TimeSpan? connectTimeout = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(endpoint);
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        _endpoint = endpoint;
        _key = key;
        Capacity = capacity;
        FullMode = fullMode;
        int timeoutMs = (int)(connectTimeout ?? TimeSpan.FromSeconds(5)).TotalMilliseconds;
        var config = ConfigurationOptions.Parse(endpoint);
        config.AbortOnConnectFail = true;
        config.ConnectTimeout = timeoutMs;
        config.SyncTimeout = timeoutMs;
        config.AsyncTimeout = timeoutMs;
        config.ConnectRetry = 1;
        try
        {
            _redis = ConnectionMultiplexer.Connect(config);
        }
        catch (RedisConnectionException e)
        {
            throw new TrajectoryQueueException($"Could not connect to Redis at {endpoint} within {timeoutMs / 1000.0:0.#} s: {FirstLine(e.Message)} " +
                                               "Is redis-server running there (redis-cli -h HOST -p PORT ping)?", e);
        }
        _db = _redis.GetDatabase();
    }

    /// <summary>The longest the list may grow (0: unbounded).</summary>
    public int Capacity { get; }

    /// <summary>What a full list does with one more rollout.</summary>
    public QueueFullMode FullMode { get; }

    /// <inheritdoc />
    public string Description => $"redis {_endpoint} key '{_key}'" + (Capacity > 0 ? $" (capacity {Capacity})" : "");

    /// <inheritdoc />
    public long Count => Call("LLEN", () => _db.ListLength(_key));

    /// <inheritdoc />
    public long Dropped => Interlocked.Read(ref _dropped);

    // Bounded adds are one atomic script each, so that concurrent adders never pop each other's rollouts:
    // -1 when full (nothing added), else the number of rollouts dropped from the head to make room (0 or 1).
    private const string BoundedPush = """
        local n = redis.call('LLEN', KEYS[1])
        if n < tonumber(ARGV[2]) then redis.call('RPUSH', KEYS[1], ARGV[1]) return 0 end
        if ARGV[3] == '1' then redis.call('LPOP', KEYS[1]) redis.call('RPUSH', KEYS[1], ARGV[1]) return 1 end
        return -1
        """;

    /// <inheritdoc />
    public void Add(ReadOnlySpan<byte> rollout)
    {
        var value = (RedisValue)rollout.ToArray();
        if (Capacity == 0)
        {
            Call("RPUSH", () => _db.ListRightPush(_key, value));
            return;
        }
        RedisValue[] args = [value, Capacity, FullMode == QueueFullMode.DropOldest ? "1" : "0"];
        int pause = 0;
        while (true)
        {
            long result = (long)Call("EVAL (bounded RPUSH)", () => _db.ScriptEvaluate(BoundedPush, [_key], args));
            if (result >= 0)
            {
                if (result > 0) Interlocked.Add(ref _dropped, result);
                return;
            }
            if (FullMode == QueueFullMode.Reject)
                throw new TrajectoryQueueException($"The Redis trajectory queue at {_endpoint} key '{_key}' is full ({Capacity} rollouts) and rejects more; the learner is not keeping up. " +
                                                   "Raise the capacity, grant less credit, or use QueueFullMode.Block or DropOldest.");
            Thread.Sleep(pause); // Block: wait for the learner to make room
            pause = Math.Min(2, pause + 1);
        }
    }

    /// <inheritdoc />
    public int Take(int max, List<byte[]> into, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        long deadline = Environment.TickCount64 + (long)wait.TotalMilliseconds;
        int pause = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var values = Call("LPOP", () => _db.ListLeftPop(_key, max));
            if (values is { Length: > 0 })
            {
                foreach (var v in values) into.Add((byte[])v!);
                return values.Length;
            }
            if (Environment.TickCount64 >= deadline) return 0;
            // StackExchange.Redis multiplexes one connection and does not do blocking pops; poll, backing off to 2 ms.
            Thread.Sleep(pause);
            pause = Math.Min(2, pause + 1);
        }
    }

    /// <summary>Deletes the list (tests and fresh runs); what was in it is gone.</summary>
    public void Clear() => Call("DEL", () => _db.KeyDelete(_key));

    private T Call<T>(string command, Func<T> call)
    {
        try
        {
            return call();
        }
        catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException)
        {
            throw new TrajectoryQueueException($"Redis at {_endpoint} failed on {command} '{_key}': {FirstLine(e.Message)} Is redis-server still running there?", e);
        }
    }

    private static string FirstLine(string message)
    {
        int end = message.IndexOfAny(['\r', '\n']);
        var line = end < 0 ? message : message[..end];
        return line.EndsWith('.') ? line : line + ".";
    }

    /// <inheritdoc />
    public void Dispose() => _redis.Dispose();
}
