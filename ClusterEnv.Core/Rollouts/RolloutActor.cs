using ClusterEnv.Common;
using ClusterEnv.Policies;
using ClusterEnv.Spaces;
using ClusterEnv.Vector;

namespace ClusterEnv.Rollouts;

/// <summary>
/// The one acting loop: a policy acts for T steps of a vector env and the transitions go into a
/// <see cref="RolloutBatch"/>, with the behaviour log-probabilities, distribution parameters and values an off-policy
/// learner needs. Workers run it for lockstep and streaming rollouts; a learner acting on its own envs runs it too.
/// Consecutive rollouts continue the same episodes: the actor keeps the last observations between calls.
/// </summary>
public sealed class RolloutActor
{
    private readonly IVectorEnv _envs;
    private readonly float[] _clipped;
    private readonly Box? _box;
    private float[] _last = [];
    private byte[] _lastBytes = []; // images: the last observations as the vector env keeps them
    private readonly bool[] _resetNext;

    /// <summary>An actor over <paramref name="envs"/>; call <see cref="Begin"/> with the observations of a reset before acting.</summary>
    public RolloutActor(IVectorEnv envs)
    {
        _envs = envs;
        var layout = ActionLayout.For(envs.SingleActionSpace);
        _box = envs.SingleActionSpace as Box;
        _clipped = layout.IsContinuous ? new float[envs.NumEnvs * layout.Size] : [];
        _resetNext = new bool[envs.NumEnvs];
    }

    /// <summary>True once <see cref="Begin"/> has been given the observations to act on.</summary>
    public bool HasObservations => _last.Length > 0;

    /// <summary>
    /// Continues from <paramref name="observations"/> (after a reset, or a step made outside the actor, whose
    /// <paramref name="terminated"/> and <paramref name="truncated"/> flags say which sub-envs reset on their next step).
    /// Copies; does not allocate after the first call.
    /// </summary>
    public void Begin(ReadOnlySpan<float> observations, ReadOnlySpan<bool> terminated = default, ReadOnlySpan<bool> truncated = default)
    {
        int size = _envs.NumEnvs * _envs.ObservationSize;
        if (observations.Length < size) throw new ArgumentException($"Expected {size} observation floats; got {observations.Length}.", nameof(observations));
        if (_last.Length != size) _last = new float[size];
        observations[..size].CopyTo(_last);
        if (_envs.ObservationDType == DType.UInt8)
        {
            if (_lastBytes.Length != size) _lastBytes = new byte[size];
            ClusterEnv.Wrappers.Pixels.ToBytes(observations[..size], _lastBytes);
        }
        for (int i = 0; i < _resetNext.Length; i++)
            _resetNext[i] = (!terminated.IsEmpty && terminated[i]) || (!truncated.IsEmpty && truncated[i]);
    }

    /// <summary>Creates a batch of <paramref name="steps"/> steps shaped for these envs and <paramref name="spec"/>.</summary>
    public RolloutBatch CreateBatch(int steps, PolicySpec spec) =>
        new(steps, _envs.NumEnvs, _envs.ObservationSize, spec.Continuous, spec.Continuous ? spec.ActionSize : 1, spec.ActionSize, ObservationStorage.Of(_envs.SingleObservationSpace))
        {
            NextStepResets = _envs.AutoresetMode == AutoresetMode.NextStep,
        };

    /// <summary>
    /// Acts <see cref="RolloutBatch.Steps"/> steps with <paramref name="policy"/> (tagged <paramref name="version"/>)
    /// into <paramref name="batch"/>. <paramref name="afterStep"/>, when given, is called after each step with the
    /// number of steps done (workers report progress from it).
    /// </summary>
    public void Act(ActorCritic policy, ulong version, RolloutBatch batch, Rng rng, Action<int>? afterStep = null)
    {
        if (!HasObservations) throw new InvalidOperationException("Reset the vector env before collecting rollouts.");
        int T = batch.Steps, n = _envs.NumEnvs, m = _envs.ObservationSize, k = policy.Spec.ActionSize;
        if (batch.NumEnvs != n || batch.ObservationSize != m || batch.DistributionSize != k)
            throw new ArgumentException($"The batch is shaped for {batch.NumEnvs} envs × {batch.ObservationSize} floats and {batch.DistributionSize} distribution parameters; the envs and policy need {n} × {m} and {k}.", nameof(batch));
        bool continuous = policy.Spec.Continuous, images = _lastBytes.Length == n * m; // images go into the batch as the envs keep them
        batch.Episodes.Clear();
        Array.Copy(_resetNext, batch.StartResets, n);
        Array.Clear(batch.HasFinalObservation);
        for (int t = 0; t < T; t++)
        {
            var obs = _last.AsSpan(0, n * m);
            if (images) batch.WriteObservations(t * n, _lastBytes);
            else batch.WriteObservations(t * n, obs);
            policy.Act(obs, n, rng, continuous ? default : batch.DiscreteActions.AsSpan(t * n, n), continuous ? batch.ContinuousActions.AsSpan(t * n * k, n * k) : default,
                batch.LogProbs.AsSpan(t * n, n), batch.Values.AsSpan(t * n, n), distributionParameters: batch.DistributionParameters.AsSpan(t * n * k, n * k));
            VectorStepResult r;
            if (continuous)
            {
                var a = batch.ContinuousActions.AsSpan(t * n * k, n * k);
                for (int j = 0; j < _clipped.Length; j++) _clipped[j] = Math.Clamp(a[j], _box!.Low[j % k], _box.High[j % k]);
                r = _envs.Step(_clipped);
            }
            else r = _envs.Step(batch.DiscreteActions.AsSpan(t * n, n));
            for (int i = 0; i < n; i++)
            {
                int idx = t * n + i;
                batch.Rewards[idx] = r.Rewards[i];
                batch.Terminated[idx] = r.Terminated[i];
                batch.Truncated[idx] = r.Truncated[i];
                _resetNext[i] = r.Terminated[i] || r.Truncated[i];
                if (r.Info.TryGetEpisode(i, out var ep)) batch.Episodes.Add((t, i, ep));
                if (r.Info.HasFinalObservation[i])
                {
                    batch.HasFinalObservation[idx] = true;
                    batch.WriteFinalObservations(idx, r.Info.FinalObservation(i));
                }
            }
            r.Observations.AsSpan(0, n * m).CopyTo(_last);
            if (images) _envs.ObservationBytes[..(n * m)].CopyTo(_lastBytes);
            afterStep?.Invoke(t + 1);
        }
        if (images) batch.WriteObservations(T * n, _lastBytes);
        else batch.WriteObservations(T * n, _last.AsSpan(0, n * m));
        if (continuous)
            for (int i = 0; i < n; i++) policy.LogStd.CopyTo(batch.LogStd.AsSpan(i * k, k));
        Array.Fill(batch.PolicyVersion, version);
        if (_envs.AutoresetMode != AutoresetMode.NextStep) Array.Clear(batch.StartResets);
    }
}
