using System.Collections.Concurrent;
using System.Diagnostics;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Nn;
using ClusterEnv.Policies;

namespace ClusterEnv.Learners.Nigt;

/// <summary>Settings of a NIGT run with gradient-computing workers.</summary>
public sealed record NigtOptions
{
    /// <summary>η: the length of every optimizer step.</summary>
    public double LearningRate { get; init; } = 0.05;

    /// <summary>β: NIGT's momentum (and the transport's β/(1−β)).</summary>
    public double Beta { get; init; } = 0.9;

    /// <summary>Episodes behind one policy gradient.</summary>
    public int EpisodesPerGradient { get; init; } = 2;

    /// <summary>H: episodes are cut after this many steps (the truncated return J_H).</summary>
    public int Horizon { get; init; } = 500;

    /// <summary>γ in g_H = Σ_t (Σ_{h≥t} γ^h r_h) ∇log π(a_t|s_t).</summary>
    public double Gamma { get; init; } = 0.99;

    /// <summary>Standardise the reward-to-go over each gradient's steps (a variance-reduction baseline; off reproduces the paper's estimator).</summary>
    public bool StandardizeReturns { get; init; } = true;

    /// <summary>Hidden layer width of the policy.</summary>
    public int Hidden { get; init; } = 64;

    /// <summary>Seed of the initial weights and of each worker's sampling (worker w gets Seed·1000 + w).</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Mean return over the last 20 episodes (all workers) that ends the run as reached.</summary>
    public double Threshold { get; init; } = 195;

    /// <summary>The run ends unreached after this long.</summary>
    public TimeSpan TimeLimit { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>A gradient worker: its env (each worker may have its own MDP) and how much slower than its compute it runs.</summary>
/// <param name="MakeEnv">Creates the worker's env.</param>
/// <param name="Slowdown">1 = as fast as it computes; 4 = each gradient takes 4× its compute time (the rest idle, as on a slower machine).</param>
public sealed record NigtWorker(Func<IEnv> MakeEnv, double Slowdown = 1.0);

/// <summary>What a NIGT run did.</summary>
public sealed record NigtResult(string Aggregator, double? SecondsToThreshold, long? StepsToThreshold, long EnvSteps, long OptimizerSteps,
    long GradientsReceived, long GradientsDiscardedStale, double FinalMeanReturn20, double Seconds, long[] GradientsPerWorker);

/// <summary>
/// Rennala / Malenia / synchronous NIGT with workers that compute policy gradients (truncated REINFORCE) at the
/// current transported point and send them to an aggregator, which decides when they make a NIGT step. Workers are
/// threads of this process, each with its own env and speed; they never wait for the learner: each takes the newest
/// point, computes, sends, and starts again.
/// </summary>
public static class NigtTrainer
{
    private sealed record Point(long Version, float[] Weights);

    private sealed record Gradient(int Worker, long Version, float[] Values, List<double> Returns, long Steps);

    /// <summary>Runs until the threshold or the time limit; <paramref name="makeAggregator"/> gets (workers, parameter count).</summary>
    public static NigtResult Train(IReadOnlyList<NigtWorker> workers, Func<int, int, GradientAggregator> makeAggregator, NigtOptions o)
    {
        ArgumentNullException.ThrowIfNull(workers);
        if (workers.Count == 0) throw new ArgumentException("NIGT needs at least one gradient worker.", nameof(workers));
        var probe = workers[0].MakeEnv();
        var spec = PolicySpec.For(probe.ObservationSpace, probe.ActionSpace, [o.Hidden, o.Hidden]);
        if (spec.Continuous) throw new NotSupportedException("NigtTrainer's REINFORCE gradient is written for discrete actions.");
        var theta = new ActorCritic(spec, o.Seed).Parameters.ToArray();
        var nigt = new NigtOptimizer(theta.Length, o.LearningRate, o.Beta);
        var aggregator = makeAggregator(workers.Count, theta.Length);
        var point = new Point(0, (float[])theta.Clone());
        var inbox = new BlockingCollection<Gradient>();
        using var stop = new CancellationTokenSource();
        var perWorker = new long[workers.Count];
        var threads = workers.Select((w, i) => new Thread(() => WorkerLoop(i, w, spec, o, () => Volatile.Read(ref point), inbox, stop.Token))
        {
            IsBackground = true, Name = $"nigt-worker-{i}",
        }).ToArray();
        var clock = Stopwatch.StartNew();
        foreach (var t in threads) t.Start();
        var recent = new Queue<double>();
        double recentSum = 0;
        long steps = 0;
        double? secondsTo = null;
        long? stepsTo = null;
        try
        {
            while (clock.Elapsed < o.TimeLimit && secondsTo is null)
            {
                if (!inbox.TryTake(out var g, TimeSpan.FromMilliseconds(100))) continue;
                perWorker[g.Worker]++;
                steps += g.Steps;
                foreach (double r in g.Returns)
                {
                    recent.Enqueue(r);
                    recentSum += r;
                    if (recent.Count > 20) recentSum -= recent.Dequeue();
                }
                if (recent.Count == 20 && recentSum / 20 >= o.Threshold)
                {
                    secondsTo = clock.Elapsed.TotalSeconds;
                    stepsTo = steps;
                }
                if (aggregator.Add(g.Worker, g.Version, g.Values) is not { } ghat) continue;
                nigt.Step(theta, ghat);
                aggregator.Advance();
                var next = new float[theta.Length];
                nigt.Transport(theta, next); // workers compute the next gradients at x̃ = θ + β/(1−β)(θ − θ_prev)
                Volatile.Write(ref point, new Point(aggregator.Version, next));
            }
        }
        finally
        {
            stop.Cancel();
            foreach (var t in threads) t.Join(TimeSpan.FromSeconds(30));
        }
        return new NigtResult(aggregator.Name, secondsTo, stepsTo, steps, nigt.Steps, aggregator.Received, aggregator.DiscardedStale,
            recent.Count > 0 ? recentSum / recent.Count : double.NaN, clock.Elapsed.TotalSeconds, perWorker);
    }

    // One worker: take the newest point, run episodes, compute g_H there, idle for its slowdown, send; again.
    private static void WorkerLoop(int index, NigtWorker worker, PolicySpec spec, NigtOptions o, Func<Point> current, BlockingCollection<Gradient> inbox, CancellationToken stop)
    {
        var env = worker.MakeEnv();
        var policy = new ActorCritic(spec);
        var rng = new Rng(o.Seed * 1000L + index);
        int m = spec.ObservationSize, k = spec.ActionSize;
        var obs = new List<float>();
        var actions = new List<int>();
        var weights = new List<float>();
        var ob = new float[m];
        var act = new int[1];
        var logp = new float[1];
        var value = new float[1];
        bool first = true;
        while (!stop.IsCancellationRequested)
        {
            var p = current();
            long start = Stopwatch.GetTimestamp();
            policy.LoadParameters(p.Weights);
            obs.Clear();
            actions.Clear();
            weights.Clear();
            var returns = new List<double>();
            long steps = 0;
            for (int e = 0; e < o.EpisodesPerGradient; e++)
            {
                env.Reset(ob, seed: first ? o.Seed * 1000 + index : null);
                first = false;
                var rewards = new List<double>();
                for (int t = 0; t < o.Horizon; t++)
                {
                    policy.Act(ob, 1, rng, act, Span<float>.Empty, logp, value);
                    obs.AddRange(ob);
                    actions.Add(act[0]);
                    var r = env.Step(act[0], ob);
                    rewards.Add(r.Reward);
                    steps++;
                    if (r.Done) break;
                }
                returns.Add(rewards.Sum());
                // Reward-to-go from step t with the paper's discount from the episode's start: Σ_{h≥t} γ^h r_h.
                var togo = new double[rewards.Count];
                double acc = 0;
                for (int t = rewards.Count - 1; t >= 0; t--)
                {
                    acc += System.Math.Pow(o.Gamma, t) * rewards[t];
                    togo[t] = acc;
                }
                foreach (double g in togo) weights.Add((float)g);
            }
            int n = actions.Count;
            if (o.StandardizeReturns && n > 1)
            {
                double mean = weights.Average(), var = weights.Sum(w => (w - mean) * (w - mean)) / (n - 1), sd = System.Math.Sqrt(var) + 1e-8;
                for (int i = 0; i < n; i++) weights[i] = (float)((weights[i] - mean) / sd);
            }
            // Loss −(1/E)·Σ_t G_t log π(a_t|s_t): its gradient is the negative of g_H, which NIGT descends.
            policy.Store.ZeroGrad();
            var head = policy.Actor.Forward(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(obs), n);
            var dHead = new float[n * k];
            for (int i = 0; i < n; i++)
                Categorical.Backward(head.Slice(i * k, k), actions[i], -weights[i] / o.EpisodesPerGradient, 0, dHead.AsSpan(i * k, k));
            policy.Actor.Backward(dHead);
            var grad = policy.Store.Grads.ToArray();
            if (worker.Slowdown > 1)
            {
                double busy = Stopwatch.GetElapsedTime(start).TotalSeconds;
                if (stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(busy * (worker.Slowdown - 1)))) return;
            }
            try { inbox.Add(new Gradient(index, p.Version, grad, returns, steps), stop); }
            catch (OperationCanceledException) { return; }
        }
    }
}
