using System.Collections.Concurrent;
using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Common;
using ClusterEnv.Spaces;
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

    /// <summary>The gradient estimator's settings, as a worker uses them.</summary>
    public GradientSettings Gradient => new(EpisodesPerGradient, Horizon, Gamma, StandardizeReturns);

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
    long GradientsReceived, long GradientsDiscardedStale, double FinalMeanReturn20, double Seconds, long[] GradientsPerWorker)
{
    /// <summary>
    /// <see cref="NigtTrainer.Simulate"/> only: the simulated time at which the threshold was reached, in work units
    /// (one unit: one env step on a worker of slowdown 1); null when not reached or not simulated.
    /// </summary>
    public double? WorkToThreshold { get; init; }

    /// <summary><see cref="NigtTrainer.Simulate"/> only: the simulated time the run lasted, in work units; NaN when not simulated.</summary>
    public double Work { get; init; } = double.NaN;
}

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
        var run = new Run(probe.ObservationSpace, probe.ActionSpace, workers.Count, makeAggregator, o);
        var point = new Point(0, run.NextPoint());
        var inbox = new BlockingCollection<Gradient>();
        using var stop = new CancellationTokenSource();
        var threads = workers.Select((w, i) => new Thread(() => WorkerLoop(i, w, run.Spec, o, () => Volatile.Read(ref point), inbox, stop.Token))
        {
            IsBackground = true, Name = $"nigt-worker-{i}",
        }).ToArray();
        foreach (var t in threads) t.Start();
        try
        {
            while (run.Going)
            {
                if (!inbox.TryTake(out var g, TimeSpan.FromMilliseconds(100))) continue;
                if (run.Add(g.Worker, g.Version, g.Values, g.Returns, g.Steps))
                    Volatile.Write(ref point, new Point(run.Version, run.NextPoint()));
            }
        }
        finally
        {
            stop.Cancel();
            foreach (var t in threads) t.Join(TimeSpan.FromSeconds(30));
        }
        return run.Result();
    }

    /// <summary>
    /// The same run with the workers of a <see cref="ClusterVecEnv"/> (one gradient worker per cluster worker, its
    /// sub-envs used in turn for the episodes): each worker is asked for a gradient at the current point, and on each
    /// answer is asked again at the newest one, so no worker waits for another. The cluster's envs need a reset afterwards.
    /// When the run fails (a worker error or loss), <paramref name="envs"/> is closed: other workers' requests are still
    /// in flight, so the vector env could not be used as it is.
    /// </summary>
    public static NigtResult TrainOnCluster(ClusterVecEnv envs, Func<int, int, GradientAggregator> makeAggregator, NigtOptions o)
    {
        ArgumentNullException.ThrowIfNull(envs);
        ArgumentNullException.ThrowIfNull(o);
        int n = envs.Workers.Count;
        var run = new Run(envs.SingleObservationSpace, envs.SingleActionSpace, n, makeAggregator, o);
        var point = run.NextPoint();
        var settings = o.Gradient;
        for (int w = 0; w < n; w++) envs.Gradients.Request(w, 0, run.Spec, point, settings, seed: (ulong)(o.Seed * 1000L + w + 1));
        try
        {
            while (run.Going)
            {
                if (!envs.Gradients.Take(TimeSpan.FromMilliseconds(100), out var g)) continue;
                if (g.Error is not null) throw new InvalidOperationException($"A gradient worker failed: {g.Error}");
                if (!g.Replaced && run.Add(g.WorkerIndex, (long)g.Version, g.Gradient, g.Returns, g.Steps)) point = run.NextPoint();
                envs.Gradients.Request(g.WorkerIndex, (ulong)run.Version, run.Spec, point, settings);
            }
            // Take the last answers, so the vector env has nothing outstanding when it is reset or closed.
            while (envs.Gradients.Outstanding > 0) envs.Gradients.Take(TimeSpan.FromMilliseconds(100), out _);
        }
        catch
        {
            envs.Dispose(); // a failed run leaves requests in flight: the vector env is not reusable
            throw;
        }
        return run.Result();
    }

    /// <summary>
    /// The same run on a simulated clock, one thread, deterministic: the workers' time is their work, not the
    /// machine's. A gradient of s env steps on a worker of slowdown k takes s·k work units; gradients arrive in the
    /// order of their finishing times, each computed at the point its worker took when it started, exactly as the
    /// threads of <see cref="Train"/> would on an idle machine with one core per worker. A loaded or small machine
    /// cannot change the result (the threaded run's waits stretch with load). The run ends at the threshold or after
    /// <paramref name="workLimit"/> work units.
    /// </summary>
    public static NigtResult Simulate(IReadOnlyList<NigtWorker> workers, Func<int, int, GradientAggregator> makeAggregator, NigtOptions o, double workLimit)
    {
        ArgumentNullException.ThrowIfNull(workers);
        ArgumentNullException.ThrowIfNull(o);
        if (workers.Count == 0) throw new ArgumentException("NIGT needs at least one gradient worker.", nameof(workers));
        if (!(workLimit > 0)) throw new ArgumentOutOfRangeException(nameof(workLimit), workLimit, "The work limit must be positive (work units: env steps of a worker of slowdown 1).");
        foreach (var w in workers)
            if (!(w.Slowdown >= 1)) throw new ArgumentOutOfRangeException(nameof(workers), w.Slowdown, "A worker's slowdown must be >= 1.");
        double now = 0;
        var probe = workers[0].MakeEnv();
        var run = new Run(probe.ObservationSpace, probe.ActionSpace, workers.Count, makeAggregator, o, () => now, workLimit);
        var envs = workers.Select(w => new[] { w.MakeEnv() }).ToArray();
        var policies = workers.Select(_ => new ActorCritic(run.Spec)).ToArray();
        var rngs = workers.Select((_, i) => new Rng(o.Seed * 1000L + i)).ToArray();
        var started = new bool[workers.Count];
        var point = new Point(0, run.NextPoint());
        var arrivals = new PriorityQueue<Gradient, (double Time, int Worker)>();
        var settings = o.Gradient;
        void Start(int i)
        {
            policies[i].LoadParameters(point.Weights);
            var returns = new List<double>();
            var grad = PolicyGradient.Reinforce(policies[i], envs[i], rngs[i], settings, returns, out long steps, started[i] ? null : o.Seed * 1000 + i);
            started[i] = true;
            arrivals.Enqueue(new Gradient(i, point.Version, grad, returns, steps), (now + steps * workers[i].Slowdown, i));
        }
        for (int i = 0; i < workers.Count; i++) Start(i);
        while (arrivals.TryDequeue(out var g, out var at))
        {
            now = at.Time;
            if (!run.Going) break;
            if (run.Add(g.Worker, g.Version, g.Values, g.Returns, g.Steps)) point = new Point(run.Version, run.NextPoint());
            if (!run.Going) break;
            Start(g.Worker);
        }
        return run.Result();
    }

    // The aggregator side of a run, whoever the workers are: the NIGT state, the aggregator, the return statistics.
    private sealed class Run
    {
        private readonly NigtOptions _o;
        private readonly float[] _theta;
        private readonly NigtOptimizer _nigt;
        private readonly GradientAggregator _aggregator;
        private readonly long[] _perWorker;
        private readonly Queue<double> _recent = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly Func<double>? _work;
        private readonly double _workLimit;
        private double _recentSum;
        private long _steps;
        private double? _secondsTo, _workTo;
        private long? _stepsTo;

        // work: the simulated clock (null: wall time only) and its limit.
        public Run(Space observation, Space action, int workers, Func<int, int, GradientAggregator> makeAggregator, NigtOptions o,
            Func<double>? work = null, double workLimit = double.PositiveInfinity)
        {
            _o = o;
            _work = work;
            _workLimit = workLimit;
            Spec = PolicySpec.For(observation, action, [o.Hidden, o.Hidden]);
            if (Spec.Continuous) throw new NotSupportedException("NIGT's REINFORCE gradient is written for discrete actions.");
            _theta = new ActorCritic(Spec, o.Seed).Parameters.ToArray();
            _nigt = new NigtOptimizer(_theta.Length, o.LearningRate, o.Beta);
            _aggregator = makeAggregator(workers, _theta.Length);
            _perWorker = new long[workers];
        }

        public PolicySpec Spec { get; }

        public long Version => _aggregator.Version;

        public bool Going => _secondsTo is null && (_work is null ? _clock.Elapsed < _o.TimeLimit : _work() < _workLimit);

        // Counts the gradient's episodes; true when it completed a NIGT step (a new point to hand out).
        public bool Add(int worker, long version, ReadOnlySpan<float> gradient, IEnumerable<double> returns, long steps)
        {
            _perWorker[worker]++;
            _steps += steps;
            foreach (double r in returns)
            {
                _recent.Enqueue(r);
                _recentSum += r;
                if (_recent.Count > 20) _recentSum -= _recent.Dequeue();
            }
            if (_recent.Count == 20 && _recentSum / 20 >= _o.Threshold && _secondsTo is null)
            {
                _secondsTo = _clock.Elapsed.TotalSeconds;
                _workTo = _work?.Invoke();
                _stepsTo = _steps;
            }
            if (_aggregator.Add(worker, version, gradient) is not { } ghat) return false;
            _nigt.Step(_theta, ghat);
            _aggregator.Advance();
            return true;
        }

        // Workers compute the next gradients at x̃ = θ + β/(1−β)(θ − θ_prev).
        public float[] NextPoint()
        {
            var next = new float[_theta.Length];
            _nigt.Transport(_theta, next);
            return next;
        }

        public NigtResult Result() => new(_aggregator.Name, _secondsTo, _stepsTo, _steps, _nigt.Steps, _aggregator.Received, _aggregator.DiscardedStale,
            _recent.Count > 0 ? _recentSum / _recent.Count : double.NaN, _clock.Elapsed.TotalSeconds, _perWorker)
        {
            WorkToThreshold = _workTo,
            Work = _work?.Invoke() ?? double.NaN,
        };
    }

    // One worker: take the newest point, run episodes, compute g_H there, idle for its slowdown, send; again.
    private static void WorkerLoop(int index, NigtWorker worker, PolicySpec spec, NigtOptions o, Func<Point> current, BlockingCollection<Gradient> inbox, CancellationToken stop)
    {
        IEnv[] env = [worker.MakeEnv()];
        var policy = new ActorCritic(spec);
        var rng = new Rng(o.Seed * 1000L + index);
        var settings = o.Gradient;
        bool first = true;
        double owed = 0; // seconds of idle time the slow worker still owes
        while (!stop.IsCancellationRequested)
        {
            var p = current();
            long start = Stopwatch.GetTimestamp();
            policy.LoadParameters(p.Weights);
            var returns = new List<double>();
            var grad = PolicyGradient.Reinforce(policy, env, rng, settings, returns, out long steps, first ? o.Seed * 1000 + index : null);
            first = false;
            if (worker.Slowdown > 1)
            {
                // Idle (Slowdown − 1) × the compute time. Waits round down to whole milliseconds (a 0.6 ms wait is
                // none at all), so the idle time owed is carried over and paid once it is worth a wait.
                owed += Stopwatch.GetElapsedTime(start).TotalSeconds * (worker.Slowdown - 1);
                if (owed >= 0.002)
                {
                    long waitStart = Stopwatch.GetTimestamp();
                    if (stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(owed))) return;
                    owed -= Stopwatch.GetElapsedTime(waitStart).TotalSeconds;
                }
            }
            try { inbox.Add(new Gradient(index, p.Version, grad, returns, steps), stop); }
            catch (OperationCanceledException) { return; }
        }
    }
}
