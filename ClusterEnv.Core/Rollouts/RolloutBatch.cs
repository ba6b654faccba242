using System.Runtime.InteropServices;
using ClusterEnv.Envs;
using ClusterEnv.Transport.Protos;
using DType = ClusterEnv.Transport.Protos.DType;

namespace ClusterEnv.Rollouts;

/// <summary>
/// T steps of N sub-envs acted by worker-side policies, in the vector env's sub-env order: what
/// <c>ClusterVecEnv.Rollouts.Collect</c> returns and what PPO (or V-trace) consumes. Arrays are row-major (T, N, ...);
/// <see cref="Observations"/> has T + 1 rows (the last is the observation after the last step). Every sub-env records the
/// policy version that acted, so staleness is visible.
/// </summary>
/// <remarks>
/// Observations keep their space's dtype: a uint8 image space's rollouts hold bytes (<see cref="ObservationBytes"/>,
/// a quarter of the float32 size, copied from and to the wire as they are) and leave <see cref="Observations"/> empty;
/// every other space's hold float32. Read either kind as floats with <see cref="ObservationRows"/> (no copy for
/// float32) and write with <c>WriteObservations</c> (floats, or bytes as a vector env keeps images).
/// </remarks>
public sealed class RolloutBatch
{
    /// <summary>Creates empty storage for <paramref name="steps"/> steps of <paramref name="numEnvs"/> sub-envs with
    /// observations of <paramref name="observationSize"/> values, <paramref name="actionSize"/> action slots (floats
    /// when <paramref name="continuous"/>) and <paramref name="distributionSize"/> distribution parameters; observations
    /// stored as <paramref name="observationType"/>: Float32 (the default) or UInt8 (images).</summary>
    public RolloutBatch(int steps, int numEnvs, int observationSize, bool continuous, int actionSize, int distributionSize, Spaces.DType observationType = Spaces.DType.Float32)
    {
        if (observationType is not (Spaces.DType.Float32 or Spaces.DType.UInt8))
            throw new ArgumentOutOfRangeException(nameof(observationType), observationType, "Rollouts store observations as Float32 or UInt8 (images); other Box dtypes are stored as Float32.");
        ObservationType = observationType;
        bool bytes = observationType == Spaces.DType.UInt8;
        Steps = steps;
        NumEnvs = numEnvs;
        ObservationSize = observationSize;
        Continuous = continuous;
        ActionSize = actionSize;
        DistributionSize = distributionSize;
        int tn = checked(steps * numEnvs);
        Observations = bytes ? [] : new float[(steps + 1) * numEnvs * observationSize];
        ObservationBytes = bytes ? new byte[(steps + 1) * numEnvs * observationSize] : [];
        DiscreteActions = continuous ? [] : new int[tn];
        ContinuousActions = continuous ? new float[tn * actionSize] : [];
        Rewards = new double[tn];
        Terminated = new bool[tn];
        Truncated = new bool[tn];
        LogProbs = new float[tn];
        DistributionParameters = new float[tn * distributionSize];
        LogStd = continuous ? new float[numEnvs * distributionSize] : [];
        Values = new float[tn];
        HasFinalObservation = new bool[tn];
        FinalObservations = bytes ? [] : new float[tn * observationSize];
        FinalObservationBytes = bytes ? new byte[tn * observationSize] : [];
        PolicyVersion = new ulong[numEnvs];
        StartResets = new bool[numEnvs];
    }

    /// <summary>T.</summary>
    public int Steps { get; }
    /// <summary>N.</summary>
    public int NumEnvs { get; }
    /// <summary>Floats per observation.</summary>
    public int ObservationSize { get; }
    /// <summary>Box actions (floats) rather than discrete ones.</summary>
    public bool Continuous { get; }
    /// <summary>Action slots per sub-env.</summary>
    public int ActionSize { get; }
    /// <summary>Distribution parameters per sample: logits (discrete) or means (continuous).</summary>
    public int DistributionSize { get; }
    /// <summary>How observations are stored: Float32 in <see cref="Observations"/>, UInt8 in <see cref="ObservationBytes"/>.</summary>
    public Spaces.DType ObservationType { get; }
    /// <summary>(T + 1, N, obs) float32 observations; empty when <see cref="ObservationType"/> is UInt8.</summary>
    public float[] Observations { get; }
    /// <summary>(T + 1, N, obs) uint8 observations when <see cref="ObservationType"/> is UInt8; else empty.</summary>
    public byte[] ObservationBytes { get; }
    /// <summary>(T, N) discrete actions.</summary>
    public int[] DiscreteActions { get; }
    /// <summary>(T, N, act) continuous actions as sampled (before clipping to the bounds).</summary>
    public float[] ContinuousActions { get; }
    /// <summary>(T, N).</summary>
    public double[] Rewards { get; }
    /// <summary>(T, N).</summary>
    public bool[] Terminated { get; }
    /// <summary>(T, N).</summary>
    public bool[] Truncated { get; }
    /// <summary>(T, N) behaviour log-probabilities.</summary>
    public float[] LogProbs { get; }
    /// <summary>(T, N, k) behaviour logits or means.</summary>
    public float[] DistributionParameters { get; }
    /// <summary>(N, k) behaviour log-std of each sub-env's policy (continuous).</summary>
    public float[] LogStd { get; }
    /// <summary>(T, N) the behaviour critic's values.</summary>
    public float[] Values { get; }
    /// <summary>(T, N) SameStep: an episode ended at this step and its final observation is in <see cref="FinalObservations"/>.</summary>
    public bool[] HasFinalObservation { get; }
    /// <summary>(T, N, obs) float32 final observations; empty when <see cref="ObservationType"/> is UInt8.</summary>
    public float[] FinalObservations { get; }
    /// <summary>(T, N, obs) uint8 final observations when <see cref="ObservationType"/> is UInt8; else empty.</summary>
    public byte[] FinalObservationBytes { get; }

    /// <summary>
    /// Rows <paramref name="firstRow"/>..+<paramref name="rows"/> of the (T + 1, N) observations (row t·N + i is step t
    /// of sub-env i) as floats: the batch's own memory for float32, else widened into <paramref name="scratch"/>
    /// (at least rows × <see cref="ObservationSize"/> floats) and returned from it.
    /// </summary>
    public ReadOnlySpan<float> ObservationRows(int firstRow, int rows, Span<float> scratch) =>
        AsFloats(Observations, ObservationBytes, firstRow, rows, scratch);

    /// <summary><see cref="ObservationRows"/> for the (T, N) final observations.</summary>
    public ReadOnlySpan<float> FinalObservationRows(int firstRow, int rows, Span<float> scratch) =>
        AsFloats(FinalObservations, FinalObservationBytes, firstRow, rows, scratch);

    /// <summary>Rows <paramref name="firstRow"/>..+<paramref name="rows"/> of the observations as floats into <paramref name="dest"/> (copied, or widened from bytes).</summary>
    public void CopyObservations(int firstRow, int rows, Span<float> dest) => CopyAsFloats(Observations, ObservationBytes, firstRow, rows, dest);

    /// <summary><see cref="CopyObservations"/> for the final observations.</summary>
    public void CopyFinalObservations(int firstRow, int rows, Span<float> dest) => CopyAsFloats(FinalObservations, FinalObservationBytes, firstRow, rows, dest);

    /// <summary>Writes float observations (0..255 integers for a UInt8 batch) into rows from <paramref name="firstRow"/> of the observations.</summary>
    public void WriteObservations(int firstRow, ReadOnlySpan<float> values) => Write(Observations, ObservationBytes, firstRow, values);

    /// <summary>Writes uint8 observations (images as a vector env keeps them) into rows from <paramref name="firstRow"/>: copied as they are, or widened in a Float32 batch.</summary>
    public void WriteObservations(int firstRow, ReadOnlySpan<byte> values)
    {
        if (ObservationType == Spaces.DType.UInt8) values.CopyTo(ObservationBytes.AsSpan(firstRow * ObservationSize));
        else Wrappers.Pixels.ToFloat(values, Observations.AsSpan(firstRow * ObservationSize, values.Length));
    }

    /// <summary>Writes float observations into rows from <paramref name="firstRow"/> of the final observations.</summary>
    public void WriteFinalObservations(int firstRow, ReadOnlySpan<float> values) => Write(FinalObservations, FinalObservationBytes, firstRow, values);

    private ReadOnlySpan<float> AsFloats(float[] floats, byte[] bytes, int firstRow, int rows, Span<float> scratch)
    {
        int m = ObservationSize;
        if (ObservationType == Spaces.DType.Float32) return floats.AsSpan(firstRow * m, rows * m);
        var dest = scratch[..(rows * m)];
        Wrappers.Pixels.ToFloat(bytes.AsSpan(firstRow * m, rows * m), dest);
        return dest;
    }

    private void CopyAsFloats(float[] floats, byte[] bytes, int firstRow, int rows, Span<float> dest)
    {
        int m = ObservationSize;
        if (ObservationType == Spaces.DType.Float32) floats.AsSpan(firstRow * m, rows * m).CopyTo(dest);
        else Wrappers.Pixels.ToFloat(bytes.AsSpan(firstRow * m, rows * m), dest[..(rows * m)]);
    }

    private void Write(float[] floats, byte[] bytes, int firstRow, ReadOnlySpan<float> values)
    {
        if (ObservationType == Spaces.DType.Float32) values.CopyTo(floats.AsSpan(firstRow * ObservationSize));
        else Wrappers.Pixels.ToBytes(values, bytes.AsSpan(firstRow * ObservationSize, values.Length));
    }
    /// <summary>(N) the policy version that acted for each sub-env.</summary>
    public ulong[] PolicyVersion { get; }
    /// <summary>(N) NextStep autoreset: the sub-env's first step in this rollout is a reset step (its action was ignored, its reward is 0).</summary>
    public bool[] StartResets { get; }
    /// <summary>Streaming: the worker that acted (empty for a lockstep gather of all workers, or the learner's own envs).</summary>
    public string WorkerId { get; set; } = "";
    /// <summary>Streaming: this rollout's number in its worker's stream.</summary>
    public long Index { get; set; }

    /// <summary>
    /// True where step t of sub-env i is a real transition, false for a NextStep reset step (the step after an episode
    /// ended, whose action the env ignored): those carry no learning signal and are left out of every loss.
    /// </summary>
    public bool IsTransition(int t, int i)
    {
        if (!NextStepResets) return true;
        return t == 0 ? !StartResets[i] : !(Terminated[(t - 1) * NumEnvs + i] || Truncated[(t - 1) * NumEnvs + i]);
    }

    /// <summary>Whether the acting vector env autoresets NextStep (so the step after an episode end is a reset step).</summary>
    public bool NextStepResets { get; set; } = true;

    /// <summary>Episodes that finished during the rollout: the step, the sub-env and its statistics.</summary>
    public List<(int Step, int Env, EpisodeStatistics Statistics)> Episodes { get; } = [];

    /// <summary>
    /// What is wrong with the rows of sub-envs offset..offset+count as a worker filled them, or null when nothing is:
    /// a non-finite observation, reward, log-prob, value or distribution parameter, a discrete action outside the
    /// action space, or an acting version outside 1..<paramref name="newestVersion"/> (0: not checked). A learner must
    /// never see such a rollout: one NaN poisons every weight in a single update.
    /// </summary>
    public string? Problem(int offset, int count, ulong newestVersion = 0)
    {
        int T = Steps, N = NumEnvs, m = ObservationSize;
        for (int t = 0; t <= T && ObservationType == Spaces.DType.Float32; t++) // bytes are always finite
            if (Bad(Observations.AsSpan((t * N + offset) * m, count * m)) is int j and >= 0)
                return $"a non-finite observation ({Observations[(t * N + offset) * m + j]} at step {t}, sub-env {offset + j / m})";
        for (int t = 0; t < T; t++)
        {
            int row = t * N + offset;
            for (int i = 0; i < count; i++)
                if (!double.IsFinite(Rewards[row + i])) return $"a non-finite reward ({Rewards[row + i]} at step {t}, sub-env {offset + i})";
            if (Bad(LogProbs.AsSpan(row, count)) >= 0) return $"a non-finite log-probability at step {t}";
            if (Bad(Values.AsSpan(row, count)) >= 0) return $"a non-finite value estimate at step {t}";
            if (Bad(DistributionParameters.AsSpan(row * DistributionSize, count * DistributionSize)) >= 0) return $"non-finite distribution parameters at step {t}";
            if (Continuous && Bad(ContinuousActions.AsSpan(row * ActionSize, count * ActionSize)) >= 0) return $"a non-finite action at step {t}";
            if (!Continuous)
                for (int i = 0; i < count; i++)
                    if ((uint)DiscreteActions[row + i] >= (uint)DistributionSize) return $"action {DiscreteActions[row + i]} at step {t}, outside the {DistributionSize} actions of the space";
            for (int i = 0; i < count; i++)
                if (HasFinalObservation[row + i] && ObservationType == Spaces.DType.Float32 && Bad(FinalObservations.AsSpan((row + i) * m, m)) >= 0) return $"a non-finite final observation at step {t}";
        }
        if (Continuous && Bad(LogStd.AsSpan(offset * DistributionSize, count * DistributionSize)) >= 0) return "a non-finite log standard deviation";
        for (int i = 0; i < count; i++)
            if (PolicyVersion[offset + i] == 0 || (newestVersion > 0 && PolicyVersion[offset + i] > newestVersion))
                return $"acting policy version {PolicyVersion[offset + i]}, never pushed (the newest pushed to it is {newestVersion})";
        return null;

        static int Bad(ReadOnlySpan<float> values) => Policies.ActorCritic.IndexOfNonFinite(values);
    }

    /// <summary>Copies a worker's rollout into the rows of sub-envs offset..offset+count. Throws <see cref="InvalidDataException"/> on a shape mismatch.</summary>
    internal void Fill(RolloutResult r, int offset, int count)
    {
        if (r.Steps != Steps) throw new InvalidDataException($"Rollout has {r.Steps} steps; {Steps} were asked for.");
        int T = Steps, N = NumEnvs, m = ObservationSize;
        FillObservations(r.Observations, "observations", T + 1, count, m, offset, Observations, ObservationBytes);
        if (Continuous) Rows(r.Actions, "actions", DType.Float32, T, count, ActionSize, offset, ContinuousActions);
        else
        {
            var longs = Check(r.Actions, "actions", DType.Int64, T * count, 8);
            var a = MemoryMarshal.Cast<byte, long>(longs);
            for (int t = 0; t < T; t++) for (int i = 0; i < count; i++) DiscreteActions[t * N + offset + i] = (int)a[t * count + i];
        }
        var rew = MemoryMarshal.Cast<byte, double>(Check(r.Rewards, "rewards", DType.Float64, T * count, 8));
        var term = Check(r.Terminated, "terminated", DType.Bool, T * count, 1);
        var trunc = Check(r.Truncated, "truncated", DType.Bool, T * count, 1);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < count; i++)
            {
                int src = t * count + i, dst = t * N + offset + i;
                Rewards[dst] = rew[src];
                Terminated[dst] = term[src] != 0;
                Truncated[dst] = trunc[src] != 0;
                HasFinalObservation[dst] = false;
            }
        Rows(r.LogProbs, "log_probs", DType.Float32, T, count, 1, offset, LogProbs);
        Rows(r.Values, "values", DType.Float32, T, count, 1, offset, Values);
        Rows(r.DistParams, "dist_params", DType.Float32, T, count, DistributionSize, offset, DistributionParameters);
        if (Continuous)
        {
            var ls = MemoryMarshal.Cast<byte, float>(Check(r.DistLogStd, "dist_log_std", DType.Float32, DistributionSize, 4));
            for (int i = 0; i < count; i++) ls.CopyTo(LogStd.AsSpan((offset + i) * DistributionSize, DistributionSize));
        }
        if (r.FinalMask is { } fm)
        {
            var mask = Check(fm, "final_mask", DType.Bool, T * count, 1);
            FillObservations(r.FinalObservations, "final_observations", T, count, m, offset, FinalObservations, FinalObservationBytes); // rows without a final one hold what the worker sent (zeros)
            for (int t = 0; t < T; t++)
                for (int i = 0; i < count; i++)
                    if (mask[t * count + i] != 0) HasFinalObservation[t * N + offset + i] = true;
        }
        for (int i = 0; i < count; i++) PolicyVersion[offset + i] = r.PolicyVersion;
        if (r.StartResets is { } sr)
        {
            var resets = Check(sr, "start_resets", DType.Bool, count, 1);
            for (int i = 0; i < count; i++) StartResets[offset + i] = resets[i] != 0;
        }
        else Array.Clear(StartResets, offset, count);
        // Workers' replies are filled concurrently (each on its own connection's read loop): the rows above are
        // disjoint, the shared episode list is not.
        lock (Episodes)
        {
            foreach (var e in r.Episodes)
            {
                if (e.Env >= count || e.Step >= Steps)
                    throw new InvalidDataException($"Rollout episode record (step {e.Step}, env {e.Env}) is outside the rollout ({Steps} steps of {count} envs).");
                Episodes.Add(((int)e.Step, offset + (int)e.Env, new EpisodeStatistics(e.Return, (int)e.Length, e.Seconds)));
            }
        }
    }

    /// <summary>The rollout as the wire message a worker sends (every tensor copied), acted by <paramref name="version"/>; observations as <paramref name="observationType"/> (uint8 for images, <see cref="Transport.ObservationCodec"/>).</summary>
    public RolloutResult ToProto(ulong version, ReadOnlySpan<float> logStd, DType observationType = DType.Float32)
    {
        int T = Steps, n = NumEnvs, m = ObservationSize, k = DistributionSize;
        var result = new RolloutResult
        {
            PolicyVersion = version,
            Steps = (uint)T,
            Index = (uint)Index,
            Observations = ObservationTensor(Observations, ObservationBytes, observationType, [T + 1, n, m]),
            Rewards = Tensor(DType.Float64, [T, n], MemoryMarshal.AsBytes(Rewards.AsSpan())),
            Terminated = Tensor(DType.Bool, [T, n], MemoryMarshal.AsBytes(Terminated.AsSpan())),
            Truncated = Tensor(DType.Bool, [T, n], MemoryMarshal.AsBytes(Truncated.AsSpan())),
            LogProbs = Tensor(DType.Float32, [T, n], MemoryMarshal.AsBytes(LogProbs.AsSpan())),
            Values = Tensor(DType.Float32, [T, n], MemoryMarshal.AsBytes(Values.AsSpan())),
            DistParams = Tensor(DType.Float32, [T, n, k], MemoryMarshal.AsBytes(DistributionParameters.AsSpan())),
            StartResets = Tensor(DType.Bool, [n], MemoryMarshal.AsBytes(StartResets.AsSpan())),
        };
        if (Continuous)
        {
            result.Actions = Tensor(DType.Float32, [T, n, ActionSize], MemoryMarshal.AsBytes(ContinuousActions.AsSpan()));
            result.DistLogStd = Tensor(DType.Float32, [k], MemoryMarshal.AsBytes(logStd));
        }
        else
        {
            var longs = new long[T * n];
            for (int j = 0; j < longs.Length; j++) longs[j] = DiscreteActions[j];
            result.Actions = Tensor(DType.Int64, [T, n], MemoryMarshal.AsBytes(longs.AsSpan()));
        }
        if (Array.IndexOf(HasFinalObservation, true) >= 0)
        {
            result.FinalMask = Tensor(DType.Bool, [T, n], MemoryMarshal.AsBytes(HasFinalObservation.AsSpan()));
            result.FinalObservations = ObservationTensor(FinalObservations, FinalObservationBytes, observationType, [T, n, m]);
        }
        foreach (var (step, env, ep) in Episodes)
            result.Episodes.Add(new EpisodeRecord { Step = (uint)step, Env = (uint)env, Return = ep.Return, Length = ep.Length, Seconds = ep.Seconds });
        return result;
    }

    private Tensor ObservationTensor(float[] values, byte[] stored, DType type, long[] shape)
    {
        if (ObservationType == Spaces.DType.UInt8)
        {
            if (type == DType.Uint8) return Tensor(type, shape, stored);
            var floats = new float[stored.Length];
            Wrappers.Pixels.ToFloat(stored, floats);
            values = floats;
        }
        if (type == DType.Float32) return Tensor(type, shape, MemoryMarshal.AsBytes(values.AsSpan()));
        var bytes = new byte[values.Length * Transport.ObservationCodec.ElementSize(type)];
        Transport.ObservationCodec.Encode(values, type, bytes);
        var t = new Tensor { Dtype = type, Data = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(bytes) }; // bytes is this tensor's alone: no second copy
        t.Shape.AddRange(shape);
        return t;
    }

    private static Tensor Tensor(DType dtype, long[] shape, ReadOnlySpan<byte> data)
    {
        var t = new Tensor { Dtype = dtype, Data = Google.Protobuf.ByteString.CopyFrom(data) };
        t.Shape.AddRange(shape);
        return t;
    }

    /// <summary>Orders <see cref="Episodes"/> by step, then sub-env, whatever order the workers' replies arrived in.</summary>
    internal void SortEpisodes() => Episodes.Sort(static (a, b) => a.Step != b.Step ? a.Step.CompareTo(b.Step) : a.Env.CompareTo(b.Env));

    /// <summary>
    /// A lower bound on the encoded size of one worker's rollout of T steps: <c>Fixed + T * PerStep</c> bytes (the
    /// tensors every rollout carries; final observations and episode records come on top).
    /// </summary>
    internal static (long Fixed, long PerStep) MessageSize(int numEnvs, int observationSize, bool continuous, int actionSize, int distributionSize, int observationElementSize = 4)
    {
        long n = numEnvs;
        long obs = n * observationSize * observationElementSize;
        long actions = continuous ? n * actionSize * 4 : n * 8;
        // rewards (8), terminated and truncated (1 + 1), log-prob (4), value (4), distribution parameters (4 each)
        long perStep = obs + actions + n * (8 + 1 + 1 + 4 + 4) + n * distributionSize * 4;
        return (obs, perStep);
    }

    private static ReadOnlySpan<byte> Check(Tensor? t, string name, DType dtype, int count, int size)
    {
        if (t is null) throw new InvalidDataException($"Rollout is missing '{name}'.");
        if (t.Dtype != dtype) throw new InvalidDataException($"Rollout '{name}' has dtype {t.Dtype}; expected {dtype}.");
        if (t.Data.Length != count * size) throw new InvalidDataException($"Rollout '{name}' has {t.Data.Length} bytes; expected {count * size} ({count} elements).");
        return t.Data.Span;
    }

    // Observations, float32 or uint8 on the wire (ObservationCodec), into this batch's storage, as Rows does: uint8 into
    // a uint8 batch as they are; a float32 tensor into a uint8 batch narrowed (a worker that sends float images).
    private void FillObservations(Tensor? t, string name, int rows, int count, int width, int offset, float[] dest, byte[] destBytes)
    {
        if (t is null) throw new InvalidDataException($"Rollout is missing '{name}'.");
        int n = count * width, size = Transport.ObservationCodec.ElementSize(t.Dtype);
        if (t.Data.Length != rows * n * size)
            throw new InvalidDataException($"Rollout '{name}' has {t.Data.Length} bytes of {t.Dtype}; expected {rows * n} values ({rows * n * size} bytes).");
        for (int r = 0; r < rows; r++)
        {
            var src = t.Data.Span.Slice(r * n * size, n * size);
            int at = (r * NumEnvs + offset) * width;
            if (ObservationType == Spaces.DType.Float32)
                Transport.ObservationCodec.Decode(t.Dtype, src, n, dest.AsSpan(at, n), $"Rollout '{name}'");
            else if (t.Dtype == DType.Uint8) src.CopyTo(destBytes.AsSpan(at, n));
            else if (t.Dtype == DType.Float32) Wrappers.Pixels.ToBytes(MemoryMarshal.Cast<byte, float>(src), destBytes.AsSpan(at, n));
            else throw new InvalidDataException($"Rollout '{name}' has dtype {t.Dtype}; expected FLOAT32 or UINT8 observations.");
        }
    }

    // (rows, count, width) from the worker → rows of (rows, N, width) at column offset.
    private void Rows(Tensor? t, string name, DType dtype, int rows, int count, int width, int offset, float[] dest)
    {
        var src = MemoryMarshal.Cast<byte, float>(Check(t, name, dtype, rows * count * width, 4));
        for (int r = 0; r < rows; r++)
            src.Slice(r * count * width, count * width).CopyTo(dest.AsSpan((r * NumEnvs + offset) * width, count * width));
    }
}
