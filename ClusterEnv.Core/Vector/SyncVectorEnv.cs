using System.Runtime.InteropServices;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Vector;

/// <summary>
/// Steps its sub-envs one after another on the calling thread, as Gymnasium's <c>SyncVectorEnv</c>, writing into
/// contiguous buffers. No heap allocation per <see cref="Step(ReadOnlySpan{int})"/> in steady state.
/// See <see cref="IVectorEnv"/> for the contract.
/// </summary>
public sealed class SyncVectorEnv : IVectorEnv
{
    private readonly IEnv[] _envs;
    private readonly ActionLayout _actions;
    private readonly float[] _observations;
    private readonly byte[] _bytes;                    // images: the frames as the sub-envs drew them (ObservationBytes)
    private readonly IByteObservationEnv?[] _byteEnvs; // images: the sub-envs that draw into bytes directly
    private readonly double[] _rewards;
    private readonly bool[] _terminated;
    private readonly bool[] _truncated;
    private readonly bool[] _autoreset; // episode ended at the previous call
    private readonly VectorInfo _info;
    private bool _needsReset = true;

    /// <summary>Creates the sub-envs by calling each factory once.</summary>
    public SyncVectorEnv(IEnumerable<Func<IEnv>> envFactories, AutoresetMode autoresetMode = AutoresetMode.NextStep)
        : this(Build(envFactories), autoresetMode) { }

    /// <summary>Takes ownership of <paramref name="envs"/> (closing the vector env disposes them).</summary>
    public SyncVectorEnv(IReadOnlyList<IEnv> envs, AutoresetMode autoresetMode = AutoresetMode.NextStep)
    {
        ArgumentNullException.ThrowIfNull(envs);
        if (envs.Count == 0) throw new ArgumentException("A vector env needs at least one sub-env.", nameof(envs));
        if (!Enum.IsDefined(autoresetMode)) throw new ArgumentOutOfRangeException(nameof(autoresetMode), autoresetMode, "Use NextStep, SameStep or Disabled.");
        _envs = envs.ToArray();
        SingleObservationSpace = _envs[0].ObservationSpace;
        SingleActionSpace = _envs[0].ActionSpace;
        for (int i = 1; i < _envs.Length; i++)
        {
            if (!_envs[i].ObservationSpace.Equals(SingleObservationSpace))
                throw new ArgumentException($"Sub-env {i} has observation space {_envs[i].ObservationSpace}, but sub-env 0 has {SingleObservationSpace}; all sub-envs must have equal spaces to be batched.");
            if (!_envs[i].ActionSpace.Equals(SingleActionSpace))
                throw new ArgumentException($"Sub-env {i} has action space {_envs[i].ActionSpace}, but sub-env 0 has {SingleActionSpace}; all sub-envs must have equal spaces to be batched.");
        }
        _actions = ActionLayout.For(SingleActionSpace);
        AutoresetMode = autoresetMode;
        NumEnvs = _envs.Length;
        ObservationSize = SingleObservationSpace.EncodedSize;
        ObservationSpace = SingleObservationSpace.Batch(NumEnvs);
        ActionSpace = SingleActionSpace.Batch(NumEnvs);
        _observations = new float[NumEnvs * ObservationSize];
        ObservationDType = ObservationStorage.Of(SingleObservationSpace);
        _bytes = ObservationDType == DType.UInt8 ? new byte[NumEnvs * ObservationSize] : [];
        _byteEnvs = _envs.Select(e => ObservationDType == DType.UInt8 ? ByteObservations.Of(e) : null).ToArray();
        _rewards = new double[NumEnvs];
        _terminated = new bool[NumEnvs];
        _truncated = new bool[NumEnvs];
        _autoreset = new bool[NumEnvs];
        _info = new VectorInfo(NumEnvs, ObservationSize);
    }

    /// <inheritdoc />
    public int NumEnvs { get; }

    /// <inheritdoc />
    public Space SingleObservationSpace { get; }

    /// <inheritdoc />
    public Space SingleActionSpace { get; }

    /// <inheritdoc />
    public Space ObservationSpace { get; }

    /// <inheritdoc />
    public Space ActionSpace { get; }

    /// <inheritdoc />
    public int ObservationSize { get; }

    /// <inheritdoc />
    public DType ObservationDType { get; }

    /// <inheritdoc />
    public ReadOnlySpan<byte> ObservationBytes => ObservationDType == DType.UInt8 ? _bytes : MemoryMarshal.AsBytes(_observations.AsSpan());

    /// <inheritdoc />
    public int ActionSize => _actions.Size;

    /// <inheritdoc />
    public AutoresetMode AutoresetMode { get; }

    /// <inheritdoc />
    public EnvSpec? Spec => _envs[0].Spec;

    /// <inheritdoc />
    public bool IsClosed { get; private set; }

    /// <summary>The sub-envs (for inspection; stepping them directly bypasses the vector env's bookkeeping).</summary>
    public IReadOnlyList<IEnv> Envs => _envs;

    /// <inheritdoc />
    public VectorResetResult Reset(long? seed = null, ResetOptions? options = null)
    {
        ThrowIfClosed();
        VectorArgs.CheckSeed(seed, NumEnvs);
        return ResetCore(i => seed is long b ? b + i : null, options);
    }

    /// <inheritdoc />
    public VectorResetResult Reset(IReadOnlyList<long?> seeds, ResetOptions? options = null)
    {
        ThrowIfClosed();
        VectorArgs.CheckSeeds(seeds, NumEnvs);
        return ResetCore(i => seeds[i], options);
    }

    private VectorResetResult ResetCore(Func<int, long?> seedOf, ResetOptions? options)
    {
        var mask = VectorArgs.CheckMask(options, NumEnvs);

        _info.Clear();
        for (int i = 0; i < NumEnvs; i++)
        {
            if (mask is not null && !mask[i]) continue;
            try
            {
                var info = ResetOne(i, seedOf(i), options);
                _info.Set(i, info);
            }
            catch (Exception e) when (e is not SubEnvException)
            {
                _needsReset = true;
                throw new SubEnvException(i, e);
            }
            _terminated[i] = false;
            _truncated[i] = false;
            _autoreset[i] = false;
        }
        if (mask is null) _needsReset = false;
        return new VectorResetResult(_observations, _info);
    }

    /// <inheritdoc />
    public VectorStepResult Step(ReadOnlySpan<int> actions)
    {
        ThrowIfNotSteppable();
        _actions.Check(actions, NumEnvs);
        return StepAll(actions);
    }

    /// <inheritdoc />
    public VectorStepResult Step(ReadOnlySpan<float> actions)
    {
        ThrowIfNotSteppable();
        _actions.Check(actions, NumEnvs);
        return StepAll(actions);
    }

    // T is int or float; the JIT specialises each instantiation, so the type test costs nothing.
    private VectorStepResult StepAll<T>(ReadOnlySpan<T> actions) where T : unmanaged
    {
        VectorArgs.CheckNotFinished(AutoresetMode, _autoreset, _terminated);
        _info.Clear();
        int size = _actions.Size;
        for (int i = 0; i < NumEnvs; i++)
        {
            var slice = actions.Slice(i * size, size);
            StepOne(i, typeof(T) == typeof(int)
                ? new EnvAction(MemoryMarshal.Cast<T, int>(slice))
                : new EnvAction(MemoryMarshal.Cast<T, float>(slice)));
        }
        return new VectorStepResult(_observations, _rewards, _terminated, _truncated, _info);
    }

    private void StepOne(int i, EnvAction action)
    {
        var obs = ObservationRow(i);
        try
        {
            if (AutoresetMode == AutoresetMode.NextStep && _autoreset[i])
            {
                _info.Set(i, ResetOne(i));
                _rewards[i] = 0.0;
                _terminated[i] = false;
                _truncated[i] = false;
            }
            else
            {
                var r = StepEnv(i, action);
                _rewards[i] = r.Reward;
                _terminated[i] = r.Terminated;
                _truncated[i] = r.Truncated;
                if (AutoresetMode == AutoresetMode.SameStep && (r.Terminated || r.Truncated))
                {
                    _info.SetFinal(i, obs, r.Info);
                    _info.Set(i, ResetOne(i));
                }
                else
                {
                    _info.Set(i, r.Info);
                }
            }
        }
        catch (Exception e)
        {
            _needsReset = true;
            throw new SubEnvException(i, e);
        }
        _autoreset[i] = _terminated[i] || _truncated[i];
    }

    private Span<float> ObservationRow(int i) => _observations.AsSpan(i * ObservationSize, ObservationSize);

    // Images are drawn into the byte row (by the env itself when it can) and widened into the float row; other spaces
    // go straight to the float row.
    private EnvInfo ResetOne(int i, long? seed = null, ResetOptions? options = null)
    {
        if (_byteEnvs[i] is { } b)
        {
            var info = b.ResetBytes(ByteRow(i), seed, options);
            Pixels.ToFloat(ByteRow(i), ObservationRow(i));
            return info;
        }
        var result = _envs[i].Reset(ObservationRow(i), seed, options);
        if (_bytes.Length > 0) Pixels.ToBytes(ObservationRow(i), ByteRow(i));
        return result;
    }

    private StepResult StepEnv(int i, EnvAction action)
    {
        if (_byteEnvs[i] is { } b)
        {
            var r = b.StepBytes(action, ByteRow(i));
            Pixels.ToFloat(ByteRow(i), ObservationRow(i));
            return r;
        }
        var result = _envs[i].Step(action, ObservationRow(i));
        if (_bytes.Length > 0) Pixels.ToBytes(ObservationRow(i), ByteRow(i));
        return result;
    }

    private Span<byte> ByteRow(int i) => _bytes.AsSpan(i * ObservationSize, ObservationSize);

    private void ThrowIfClosed()
    {
        if (IsClosed) throw VectorArgs.Closed();
    }

    private void ThrowIfNotSteppable()
    {
        ThrowIfClosed();
        if (_needsReset) throw VectorArgs.ResetNeeded();
    }

    /// <inheritdoc />
    public void Close()
    {
        if (IsClosed) return;
        IsClosed = true;
        List<Exception>? errors = null;
        foreach (var env in _envs)
        {
            try { env.Dispose(); }
            catch (Exception e) { (errors ??= []).Add(e); }
        }
        if (errors is not null) throw new AggregateException("Some sub-envs failed to close.", errors);
    }

    /// <inheritdoc />
    public void Dispose() => Close();

    /// <inheritdoc />
    public override string ToString() => $"SyncVectorEnv({Spec?.Id ?? SingleObservationSpace.ToString()}, num_envs={NumEnvs})";

    private static IReadOnlyList<IEnv> Build(IEnumerable<Func<IEnv>> factories)
    {
        ArgumentNullException.ThrowIfNull(factories);
        var envs = new List<IEnv>();
        try
        {
            foreach (var f in factories) envs.Add(f() ?? throw new InvalidOperationException($"Env factory {envs.Count} returned null."));
        }
        catch
        {
            foreach (var e in envs) e.Dispose();
            throw;
        }
        return envs;
    }

    /// <inheritdoc />
    public IReadOnlyList<object?> Call(string name, params object?[] args)
    {
        if (IsClosed) throw VectorArgs.Closed();
        return _envs.Select(e => EnvAttributes.Call(e, name, args)).ToArray();
    }

    /// <inheritdoc />
    public IReadOnlyList<object?> GetAttr(string name)
    {
        if (IsClosed) throw VectorArgs.Closed();
        return _envs.Select(e => EnvAttributes.Get(e, name)).ToArray();
    }

    /// <inheritdoc />
    public void SetAttr(string name, IReadOnlyList<object?> values)
    {
        if (IsClosed) throw VectorArgs.Closed();
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count != _envs.Length)
            throw new ArgumentException($"SetAttr got {values.Count} values for {_envs.Length} sub-envs; give one per sub-env, or a single value for all.", nameof(values));
        for (int i = 0; i < _envs.Length; i++) EnvAttributes.Set(_envs[i], name, values[i]);
    }

    /// <inheritdoc />
    public void SetAttr(string name, object? value) => SetAttr(name, Enumerable.Repeat(value, _envs.Length).ToArray());
}
