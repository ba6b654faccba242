using ClusterEnv.Common;
using ClusterEnv.Spaces;

namespace ClusterEnv.Envs;

/// <summary>
/// Base class for envs: seeding (<see cref="NpRandom"/>, named after Gymnasium's <c>np_random</c>), the
/// reset-before-step check, buffer-length checks and disposal. Subclasses implement <see cref="ResetCore"/> and
/// <see cref="StepCore"/>.
/// </summary>
public abstract class EnvBase : IEnv
{
    private Rng? _rng;
    private bool _hasReset;
    private bool _disposed;

    /// <inheritdoc />
    public abstract Space ObservationSpace { get; }

    /// <inheritdoc />
    public abstract Space ActionSpace { get; }

    /// <inheritdoc />
    public EnvSpec? Spec { get; internal set; }

    /// <summary>The env's generator: re-seeded by <c>Reset(seed)</c>, seeded from OS entropy if never seeded.</summary>
    protected Rng NpRandom => _rng ??= new Rng();

    /// <inheritdoc />
    public EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckObservation(observation);
        if (seed is long s)
        {
            Seeds.Check(s);
            if (_rng is null) _rng = new Rng(s);
            else _rng.Reseed(s);
        }
        var info = ResetCore(observation, options);
        _hasReset = true;
        return info;
    }

    /// <inheritdoc />
    public StepResult Step(EnvAction action, Span<float> observation)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_hasReset)
            throw new ResetNeededException($"{GetType().Name}: Step was called before Reset; call Reset(...) to start an episode first.");
        CheckObservation(observation);
        return StepCore(action, observation);
    }

    /// <summary>Starts an episode (the generator is already seeded) and writes the first observation.</summary>
    protected abstract EnvInfo ResetCore(Span<float> observation, ResetOptions? options);

    /// <summary>Advances one step and writes the observation.</summary>
    protected abstract StepResult StepCore(EnvAction action, Span<float> observation);

    /// <summary>Reads Gymnasium's <c>maybe_parse_reset_bounds</c>: <c>low</c>/<c>high</c> options or the defaults.</summary>
    protected static (double Low, double High) ResetBounds(ResetOptions? options, double defaultLow, double defaultHigh)
    {
        if (options is null) return (defaultLow, defaultHigh);
        double low = options.GetDouble("low", defaultLow);
        double high = options.GetDouble("high", defaultHigh);
        if (low > high)
            throw new ArgumentException($"Reset option low={low} is greater than high={high}; pass low <= high.");
        return (low, high);
    }

    /// <summary>Reads a Discrete action and checks its range, naming the env and the valid values.</summary>
    protected int DiscreteAction(EnvAction action)
    {
        int a = action.AsDiscrete();
        var space = (Discrete)ActionSpace;
        if (!space.Contains(a))
            throw new ArgumentOutOfRangeException(nameof(action), a, $"{GetType().Name}: action {a} is not in {space}; valid actions are {space.Start}..{space.Start + space.N - 1}.");
        return a;
    }

    /// <summary>Reads a Box action of the action space's size and rejects NaN and infinity.</summary>
    protected ReadOnlySpan<float> ContinuousAction(EnvAction action)
    {
        var a = action.AsContinuous(ActionSpace.EncodedSize);
        for (int i = 0; i < a.Length; i++)
            if (!float.IsFinite(a[i]))
                throw new ArgumentException($"{GetType().Name}: action element {i} is {a[i]}; actions must be finite numbers.", nameof(action));
        return a;
    }

    /// <summary>Reads a boolean constructor argument, or the default.</summary>
    protected static bool BoolArg(IReadOnlyDictionary<string, object>? kwargs, string name, bool fallback) =>
        kwargs is not null && kwargs.TryGetValue(name, out var v)
            ? v as bool? ?? throw new ArgumentException($"Argument '{name}' must be a bool, got {v} ({v?.GetType().Name}).")
            : fallback;

    /// <summary>Reads a numeric constructor argument, or the default.</summary>
    protected static double DoubleArg(IReadOnlyDictionary<string, object>? kwargs, string name, double fallback) =>
        kwargs is not null && kwargs.TryGetValue(name, out var v)
            ? v switch
            {
                double d => d,
                float f => f,
                int i => i,
                long l => l,
                _ => throw new ArgumentException($"Argument '{name}' must be a number, got {v} ({v?.GetType().Name})."),
            }
            : fallback;

    /// <summary>Rejects constructor arguments the env does not know, naming the ones it does.</summary>
    protected static void CheckKwargs(string envName, IReadOnlyDictionary<string, object>? kwargs, params string[] known)
    {
        if (kwargs is null) return;
        foreach (var key in kwargs.Keys)
            if (Array.IndexOf(known, key) < 0)
                throw new ArgumentException(known.Length == 0
                    ? $"{envName} takes no arguments, but got '{key}'."
                    : $"{envName} has no argument '{key}'; it accepts: {string.Join(", ", known)}.");
    }

    private void CheckObservation(Span<float> observation)
    {
        int n = ObservationSpace.EncodedSize;
        if (observation.Length != n)
            throw new ArgumentException($"{GetType().Name}: the observation buffer has {observation.Length} floats but {ObservationSpace} needs {n}.", nameof(observation));
    }

    /// <summary>Releases resources; further calls throw <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Override to release resources.</summary>
    protected virtual void Dispose(bool disposing) { }
}
