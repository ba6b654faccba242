using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Base class for wrappers, as Gymnasium's <c>gymnasium.Wrapper</c>: forwards everything to <see cref="Env"/> unless
/// overridden. Disposing a wrapper disposes the env it wraps.
/// </summary>
public abstract class EnvWrapper : IEnv
{
    private EnvSpec? _spec;

    /// <summary>Wraps <paramref name="env"/>.</summary>
    protected EnvWrapper(IEnv env) => Env = env ?? throw new ArgumentNullException(nameof(env));

    /// <summary>The wrapped env.</summary>
    public IEnv Env { get; }

    /// <inheritdoc />
    public virtual Space ObservationSpace => Env.ObservationSpace;

    /// <inheritdoc />
    public virtual Space ActionSpace => Env.ActionSpace;

    /// <inheritdoc />
    public EnvSpec? Spec
    {
        get => _spec ?? Env.Spec;
        internal set => _spec = value;
    }

    /// <inheritdoc />
    public virtual EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null) =>
        Env.Reset(observation, seed, options);

    /// <inheritdoc />
    public virtual StepResult Step(EnvAction action, Span<float> observation) => Env.Step(action, observation);

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the wrapped env.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (disposing) Env.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"{GetType().Name}<{Env}>";
}
