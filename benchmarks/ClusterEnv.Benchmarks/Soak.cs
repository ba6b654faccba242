using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ClusterEnv.Cluster;
using ClusterEnv.CommandLine;
using ClusterEnv.Learners.Impala;
using ClusterEnv.Sync;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// The long run: IMPALA on a local pool with lost workers replaced, a worker killed every --kill-every seconds for
/// --minutes. Counts workers lost and replaced, rollouts lost (sent but neither taken nor left queued) and duplicated
/// (the same rollout bytes taken twice), hangs (an update gap longer than the step timeout), and the learner's RSS and
/// open file descriptors after warm-up and at the end. A line every 30 s, and a final JSON line.
/// </summary>
public static class Soak
{
    public static Command Command()
    {
        var minutes = Cli.Option("--minutes", "how long to train", 10.0).Positive();
        var killEvery = Cli.Option("--kill-every", "seconds between worker kills", 30.0).Positive();
        var workers = Cli.Option("--workers", "worker processes", 2).AtLeast(1);
        var envs = Cli.Option("--envs-per-worker", "sub-envs per worker", 8).AtLeast(1);
        var command = new Command("soak", "IMPALA for minutes with a worker killed every S seconds and replaced: losses, duplicates, hangs, RSS and fds")
        {
            minutes, killEvery, workers, envs,
        };
        command.SetAction(p => Run(p.GetValue(minutes), p.GetValue(killEvery), p.GetValue(workers), p.GetValue(envs)));
        return command;
    }

    private static void Run(double minutes, double killEvery, int workers, int envsPerWorker)
    {
        var options = new ClusterOptions
        {
            EnvId = "CartPole-v1", NumEnvs = workers * envsPerWorker, NumWorkers = workers, ReplaceLostWorkers = true, MaxReplacements = int.MaxValue,
            StepTimeout = TimeSpan.FromSeconds(30),
        };
        using var env = new ClusterVecEnv(options);
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(minutes));
        var clock = Stopwatch.StartNew();
        long hangs = 0;
        using var queue = new CountingQueue(new ClusterEnv.Rollouts.InMemoryTrajectoryQueue(2 * workers));
        double lastUpdate = 0, nextKill = killEvery, nextReport = 30, warmRss = 0;
        int warmFds = 0, kills = 0;
        var rng = new Random(7);
        var result = Impala.Train(env, new ImpalaOptions { Seed = 1, TotalTimesteps = long.MaxValue / 4, HistoryLimit = 1000 }, SyncStrategy.KlThreshold(0.05, 8), m =>
        {
            double now = clock.Elapsed.TotalSeconds;
            if (now - lastUpdate > options.StepTimeout.TotalSeconds) hangs++;
            lastUpdate = now;
            if (warmRss == 0 && now > 10) (warmRss, warmFds) = (RssMb(), Fds());
            if (now >= nextKill && now < minutes * 60 - 5) // no kill in the last seconds: the stop itself would see it as a loss
            {
                nextKill += killEvery;
                var pool = env.Pool!;
                var victim = pool.WorkerIds[rng.Next(pool.WorkerIds.Count)];
                try { pool.ProcessOf(victim)?.Kill(); kills++; }
                catch (InvalidOperationException) { } // already gone
            }
            if (now >= nextReport)
            {
                nextReport += 30;
                Console.Error.WriteLine($"{now:F0} s: {m.GlobalStep:N0} steps, {m.Sps:N0} SPS, mean-20 {m.MeanReturn20:F1}, lost {env.Elastic.WorkersLost}, replaced {env.Elastic.WorkersReplaced}, RSS {RssMb():F0} MB, fds {Fds()}");
            }
        }, queue, stop.Token);
        // Every rollout the fleet received went into the queue: it was taken by the learner or is still there.
        long sent = env.Rollouts.StreamedRollouts.Sum(), left = queue.Count, lost = sent - queue.Taken - left;
        var replace = env.Elastic.ReplaceSeconds.Order().ToArray();
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            bench = "soak", minutes, kill_every_s = killEvery, kills,
            workers_lost = env.Elastic.WorkersLost, workers_replaced = env.Elastic.WorkersReplaced,
            rollouts_sent = sent, rollouts_taken = queue.Taken, rollouts_left_queued = left,
            transitions_lost = lost * envsPerWorker * new ImpalaOptions().UnrollLength, // rollouts × envs per worker × T
            transitions_duplicated = queue.Duplicates * envsPerWorker * new ImpalaOptions().UnrollLength,
            stream_gaps = queue.Gaps,
            hangs,
            rss_mb_start = Math.Round(warmRss, 1), rss_mb_end = Math.Round(RssMb(), 1), fds_start = warmFds, fds_end = Fds(),
            final_mean_return_20 = Math.Round(result.FinalMeanReturn20, 1),
            replace_seconds_p50 = replace.Length > 0 ? Math.Round(replace[replace.Length / 2], 3) : (double?)null,
            replace_seconds_max = replace.Length > 0 ? Math.Round(replace[^1], 3) : (double?)null,
        }));
    }

    // The in-memory queue, counting what the learner takes and noticing a rollout taken twice. Each worker numbers the
    // rollouts of its stream 0, 1, ... (a replacement starts a new stream at 0), so a duplicate is a number at or below
    // the last one seen from that worker id: memory stays flat however long the soak runs.
    private sealed class CountingQueue(ClusterEnv.Rollouts.ITrajectoryQueue inner) : ClusterEnv.Rollouts.ITrajectoryQueue
    {
        private readonly Dictionary<string, long> _next = [];
        public long Taken { get; private set; }
        public long Duplicates { get; private set; }
        public long Gaps { get; private set; }
        public string Description => inner.Description;
        public long Count => inner.Count;
        public long Dropped => inner.Dropped;
        public void Add(ReadOnlySpan<byte> rollout) => inner.Add(rollout);

        public int Take(int max, List<byte[]> into, TimeSpan wait, CancellationToken cancellationToken = default)
        {
            int before = into.Count, n = inner.Take(max, into, wait, cancellationToken);
            for (int i = before; i < into.Count; i++)
            {
                Taken++;
                var r = ClusterEnv.Transport.Protos.RolloutResult.Parser.ParseFrom(into[i]);
                long expected = _next.GetValueOrDefault(r.WorkerId);
                if (r.Index == expected || (r.Index == 0 && expected > 0)) _next[r.WorkerId] = r.Index + 1; // the next one, or a replacement's first
                else if (r.Index < expected) Duplicates++;
                else
                {
                    Gaps++;
                    _next[r.WorkerId] = r.Index + 1;
                }
            }
            return n;
        }

        public void Dispose() => inner.Dispose();
    }

    private static double RssMb()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024;
        return double.NaN;
    }

    private static int Fds() => Directory.GetFiles("/proc/self/fd").Length;
}
