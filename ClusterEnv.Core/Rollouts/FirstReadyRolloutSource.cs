using ClusterEnv.Cluster;
using ClusterEnv.Common;
using ClusterEnv.Policies;
using ClusterEnv.Spaces;
using ClusterEnv.Vector;

namespace ClusterEnv.Rollouts;

/// <summary>
/// Central inference with first-ready stepping: the learner acts with its current policy (as
/// <see cref="LocalRolloutSource"/>), but on the sub-envs of a <see cref="ClusterVecEnv"/> through
/// <see cref="ClusterVecEnv.Send(ReadOnlySpan{int}, ReadOnlySpan{int})"/> / <see cref="ClusterVecEnv.Recv(int)"/>:
/// each round acts on the workers that answered first, so a slow worker holds up only its own sub-envs. Every worker
/// fills a rollout of its own sub-envs at its own pace; a rollout is ready once its T steps are in. The policy may
/// change within one rollout (it is the learner's at each step); the log-probabilities recorded are the behaviour
/// policy's, which is what V-trace corrects for, and <see cref="RolloutBatch.PolicyVersion"/> holds the version of the
/// rollout's first step (the oldest).
/// </summary>
public sealed class FirstReadyRolloutSource : IRolloutSource
{
    private readonly ClusterVecEnv _envs;
    private readonly Func<(ActorCritic Policy, ulong Version)> _current;
    private readonly Rng _rng;
    private readonly int _batchSize;
    private readonly (string Id, int Offset, int Count)[] _workers;
    private readonly int[] _workerOfEnv;
    private readonly RolloutBatch?[] _filling; // per worker: the rollout being filled
    private readonly int[] _step;              // per worker: the step of _filling awaiting its result
    private readonly bool[] _resetNext;        // per sub-env: its episode ended at the last step
    private readonly Queue<RolloutBatch> _ready = new();
    private readonly Dictionary<int, Stack<RolloutBatch>> _free = []; // by sub-envs per rollout
    private readonly int[] _ints;
    private readonly float[] _logProbs, _values;
    private float[] _floats = [], _clipped = [], _parameters = []; // sized by the first policy that acts
    private readonly Box? _box;
    private readonly bool _nextStep;

    /// <summary>
    /// Acts on <paramref name="envs"/> (reset here with <paramref name="seed"/>) with whatever
    /// <paramref name="current"/> returns at each round; each <see cref="ClusterVecEnv.Recv(int)"/> waits for at least
    /// <paramref name="batchSize"/> sub-envs (0: half of them, EnvPool's usual <c>num_envs = 2 × batch_size</c>).
    /// </summary>
    public FirstReadyRolloutSource(ClusterVecEnv envs, int steps, Func<(ActorCritic Policy, ulong Version)> current, int seed, int batchSize = 0)
    {
        ArgumentNullException.ThrowIfNull(envs);
        ArgumentNullException.ThrowIfNull(current);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        ArgumentOutOfRangeException.ThrowIfNegative(batchSize);
        if (envs.AutoresetMode == AutoresetMode.Disabled)
            throw new ArgumentException("First-ready rollouts need an autoresetting vector env; create it with AutoresetMode.NextStep (the default) or SameStep.", nameof(envs));
        int n = envs.NumEnvs;
        if (batchSize > n) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"The Recv batch ({batchSize}) is larger than the vector env ({n} sub-envs); use at most {n}, or 0 for half.");
        _envs = envs;
        _current = current;
        Steps = steps;
        _rng = new Rng(seed);
        _batchSize = batchSize == 0 ? Math.Max(1, n / 2) : batchSize;
        _workers = envs.Workers.ToArray();
        _workerOfEnv = new int[n];
        for (int w = 0; w < _workers.Length; w++) Array.Fill(_workerOfEnv, w, _workers[w].Offset, _workers[w].Count);
        _filling = new RolloutBatch?[_workers.Length];
        _step = new int[_workers.Length];
        _resetNext = new bool[n];
        _nextStep = envs.AutoresetMode == AutoresetMode.NextStep;
        _box = envs.SingleActionSpace as Box;
        _ints = new int[n];
        _logProbs = new float[n];
        _values = new float[n];
        var reset = envs.Reset(seed: seed);
        var ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = i;
        ActAndSend(reset.Observations.AsSpan(0, n * envs.ObservationSize), ids, n);
    }

    /// <inheritdoc />
    public string Description => $"first-ready, the learner acts on {_envs.NumEnvs} envs of {_workers.Length} workers, Recv batch {_batchSize}";

    /// <inheritdoc />
    public int Steps { get; }

    /// <inheritdoc />
    public long QueueDepth => _ready.Count;

    /// <summary>Sub-envs each <see cref="ClusterVecEnv.Recv(int)"/> waits for.</summary>
    public int BatchSize => _batchSize;

    /// <inheritdoc />
    public int Take(int max, List<RolloutBatch> into, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        ArgumentNullException.ThrowIfNull(into);
        while (_ready.Count == 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Round();
        }
        int taken = 0;
        while (taken < max && _ready.TryDequeue(out var b))
        {
            into.Add(b);
            taken++;
        }
        return taken;
    }

    /// <inheritdoc />
    public void Return(RolloutBatch rollout)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        if (!_free.TryGetValue(rollout.NumEnvs, out var stack)) _free[rollout.NumEnvs] = stack = new Stack<RolloutBatch>();
        stack.Push(rollout);
    }

    // One Recv: the results go into their workers' rollouts (a rollout whose T steps are in is ready), then the learner
    // acts on the returned sub-envs and sends their next step.
    private void Round()
    {
        var r = _envs.Recv(_batchSize);
        int m = _envs.ObservationSize;
        for (int k = 0; k < r.Count; k++)
        {
            int id = r.EnvIds[k], w = _workerOfEnv[id], i = id - _workers[w].Offset;
            var b = _filling[w]!;
            int idx = _step[w] * b.NumEnvs + i;
            b.Rewards[idx] = r.Rewards[k];
            b.Terminated[idx] = r.Terminated[k];
            b.Truncated[idx] = r.Truncated[k];
            _resetNext[id] = r.Terminated[k] || r.Truncated[k];
            if (r.Info.TryGetEpisode(id, out var episode)) b.Episodes.Add((_step[w], i, episode));
            if (r.Info.HasFinalObservation[id])
            {
                b.HasFinalObservation[idx] = true;
                b.WriteFinalObservations(idx, r.Info.FinalObservation(id));
            }
        }
        for (int j = 0; j < r.WorkerCount; j++)
        {
            int w = r.WorkerIndices[j];
            if (++_step[w] < Steps) continue;
            // The rollout is full: its last observation (the bootstrap) is the one the next rollout starts from.
            var b = _filling[w]!;
            int row = RowOf(r, _workers[w].Offset);
            b.WriteObservations(Steps * b.NumEnvs, r.Observations.AsSpan(row * m, b.NumEnvs * m));
            b.NextStepResets = _nextStep;
            if (!_nextStep) Array.Clear(b.StartResets);
            _ready.Enqueue(b);
            _filling[w] = null;
            _step[w] = 0;
        }
        ActAndSend(r.ObservationRows, r.EnvIds, r.Count);
    }

    private static int RowOf(ReadySteps r, int envId)
    {
        for (int k = 0; k < r.Count; k++)
            if (r.EnvIds[k] == envId) return k;
        throw new InvalidOperationException($"Sub-env {envId} is not in the Recv result.");
    }

    // Acts on `count` compact rows (row k is sub-env ids[k]; a worker's rows are together, in order) and sends the actions.
    private void ActAndSend(ReadOnlySpan<float> observations, int[] ids, int count)
    {
        var (policy, version) = _current();
        bool continuous = policy.Spec.Continuous;
        int m = _envs.ObservationSize, k = policy.Spec.ActionSize, n = _envs.NumEnvs;
        if (_parameters.Length != n * k)
        {
            _parameters = new float[n * k];
            _floats = continuous ? new float[n * k] : [];
            _clipped = continuous ? new float[n * k] : [];
        }
        policy.Act(observations[..(count * m)], count, _rng, continuous ? default : _ints.AsSpan(0, count), continuous ? _floats.AsSpan(0, count * k) : default,
            _logProbs.AsSpan(0, count), _values.AsSpan(0, count), distributionParameters: _parameters.AsSpan(0, count * k));
        for (int row = 0; row < count; row++)
        {
            int id = ids[row], w = _workerOfEnv[id], i = id - _workers[w].Offset;
            var b = _filling[w] ??= Start(w, policy, version);
            int idx = _step[w] * b.NumEnvs + i;
            b.WriteObservations(idx, observations.Slice(row * m, m));
            b.LogProbs[idx] = _logProbs[row];
            b.Values[idx] = _values[row];
            _parameters.AsSpan(row * k, k).CopyTo(b.DistributionParameters.AsSpan(idx * k, k));
            if (continuous) _floats.AsSpan(row * k, k).CopyTo(b.ContinuousActions.AsSpan(idx * k, k));
            else b.DiscreteActions[idx] = _ints[row];
        }
        if (continuous)
        {
            for (int j = 0; j < count * k; j++) _clipped[j] = Math.Clamp(_floats[j], _box!.Low[j % k], _box.High[j % k]);
            _envs.Send(_clipped.AsSpan(0, count * k), ids.AsSpan(0, count));
        }
        else _envs.Send(_ints.AsSpan(0, count), ids.AsSpan(0, count));
    }

    // A fresh rollout for worker w, acted from now on: its sub-envs whose episodes just ended reset at its first step.
    private RolloutBatch Start(int w, ActorCritic policy, ulong version)
    {
        var (_, offset, n) = _workers[w];
        var spec = policy.Spec;
        var b = _free.TryGetValue(n, out var stack) && stack.Count > 0
            ? stack.Pop()
            : new RolloutBatch(Steps, n, _envs.ObservationSize, spec.Continuous, spec.Continuous ? spec.ActionSize : 1, spec.ActionSize, ObservationStorage.Of(_envs.SingleObservationSpace));
        b.Episodes.Clear();
        Array.Clear(b.HasFinalObservation);
        Array.Copy(_resetNext, offset, b.StartResets, 0, n);
        Array.Fill(b.PolicyVersion, version);
        if (spec.Continuous) // the state-independent part of the acting distribution, as the rollout began
            for (int i = 0; i < n; i++) policy.LogStd.CopyTo(b.LogStd.AsSpan(i * spec.ActionSize, spec.ActionSize));
        b.WorkerId = _workers[w].Id;
        return b;
    }

    /// <summary>Waits for the sub-envs still in flight and drops their results, so the vector env takes lockstep calls again.</summary>
    public void Dispose()
    {
        try
        {
            while (_envs.EnvsInFlight > 0) _envs.Recv(_envs.NumEnvs);
        }
        catch (Exception e) when (e is WorkerLostException or WorkerTimeoutException or WorkerException or SubEnvException or InvalidOperationException or ObjectDisposedException)
        {
            // The vector env failed under the rollouts; the learner has seen (or will see) that failure itself.
        }
    }
}
