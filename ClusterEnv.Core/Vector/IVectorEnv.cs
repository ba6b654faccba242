using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Vector;

/// <summary>
/// A batch of <see cref="NumEnvs"/> sub-envs stepped together, with Gymnasium 1.x's <c>VectorEnv</c> contract.
/// Implemented locally by <see cref="SyncVectorEnv"/> and remotely by the cluster proxy; a training loop written
/// against this interface runs unchanged on either.
/// </summary>
/// <remarks>
/// <para><b>Buffers.</b> Observations are one contiguous float32 array of <c>NumEnvs × ObservationSize</c> (row i
/// is sub-env i); rewards (float64), terminated and truncated flags are arrays of <c>NumEnvs</c>. They belong to
/// the vector env and are overwritten by the next call: copy what you keep. Actions are one batch buffer of
/// <c>NumEnvs × ActionSize</c>: ints for Discrete / MultiDiscrete / MultiBinary action spaces
/// (<see cref="Step(ReadOnlySpan{int})"/>), floats for Box (<see cref="Step(ReadOnlySpan{float})"/>).</para>
/// <para><b>Terminated vs truncated</b> mean what they mean for <see cref="IEnv"/>: bootstrap from the final
/// observation after truncation, not after termination.</para>
/// <para><b>Autoreset</b> follows <see cref="AutoresetMode"/> exactly as Gymnasium 1.x (NextStep by default).</para>
/// <para><b>Seeding.</b> <c>Reset(seed: s)</c> seeds sub-env i with <c>s + i</c>; the same seed and actions give
/// the same trajectories.</para>
/// <para><b>Errors.</b> Every bad input throws before any sub-env is stepped: a wrong action count, the wrong
/// action kind, an out-of-range discrete action, NaN or ±∞ in a continuous action, stepping before
/// <see cref="Reset(long?, ResetOptions?)"/> (<see cref="ResetNeededException"/>), using a closed vector env
/// (<see cref="EnvironmentClosedException"/>), and in Disabled mode stepping a finished sub-env. A sub-env that
/// throws surfaces as <see cref="SubEnvException"/>, after which the vector env needs a reset.</para>
/// <para><b>Threading.</b> Not thread-safe: one caller at a time.</para>
/// </remarks>
/// <example>
/// <code>
/// using var envs = Gym.MakeVec("CartPole-v1", numEnvs: 8, wrap: e =&gt; new RecordEpisodeStatistics(e));
/// var (obs, _) = envs.Reset(seed: 0);
/// var actions = new int[envs.NumEnvs];
/// for (int t = 0; t &lt; 1000; t++)
/// {
///     for (int i = 0; i &lt; actions.Length; i++) actions[i] = obs[i * 4 + 2] &gt; 0 ? 1 : 0;
///     var (nextObs, rewards, terminated, truncated, info) = envs.Step(actions);
///     for (int i = 0; i &lt; envs.NumEnvs; i++)
///         if (info.TryGetEpisode(i, out var ep)) Console.WriteLine($"env {i}: return {ep.Return}");
///     obs = nextObs;
/// }
/// </code>
/// </example>
public interface IVectorEnv : IDisposable
{
    /// <summary>Number of sub-envs.</summary>
    int NumEnvs { get; }

    /// <summary>Observation space of one sub-env.</summary>
    Space SingleObservationSpace { get; }

    /// <summary>Action space of one sub-env.</summary>
    Space SingleActionSpace { get; }

    /// <summary>The batched observation space (Gymnasium's <c>batch_space</c>).</summary>
    Space ObservationSpace { get; }

    /// <summary>The batched action space (Gymnasium's <c>batch_space</c>).</summary>
    Space ActionSpace { get; }

    /// <summary>Floats per sub-env observation (<c>SingleObservationSpace.EncodedSize</c>).</summary>
    int ObservationSize { get; }

    /// <summary>
    /// The type this vector env keeps observations in: <see cref="DType.UInt8"/> when it keeps an image space's (a
    /// uint8 Box's) frames as bytes in <see cref="ObservationBytes"/> (<see cref="SyncVectorEnv"/> and the cluster
    /// proxy do: <see cref="ObservationStorage.Of"/>); <see cref="DType.Float32"/> when it keeps only the float32
    /// observations its calls return (every other space, and vector envs that do not implement this).
    /// </summary>
    DType ObservationDType => DType.Float32;

    /// <summary>
    /// The observations of the last reset or step as the vector env keeps them: for <see cref="ObservationDType"/>
    /// UInt8, <c>NumEnvs × ObservationSize</c> bytes, the frames as the sub-envs drew them (the float32 observations
    /// the calls return are these, widened); for Float32, the bytes of the float32 buffer. Overwritten by the next call.
    /// </summary>
    ReadOnlySpan<byte> ObservationBytes => throw new NotSupportedException($"{GetType().Name} does not implement ObservationBytes; read the float32 observations its calls return.");

    /// <summary>Action slots per sub-env (<c>SingleActionSpace.EncodedSize</c>).</summary>
    int ActionSize { get; }

    /// <summary>The autoreset mode (Gymnasium's <c>metadata["autoreset_mode"]</c>).</summary>
    AutoresetMode AutoresetMode { get; }

    /// <summary>The registry entry of the sub-envs, when they came from the registry.</summary>
    EnvSpec? Spec { get; }

    /// <summary>True after <see cref="Close"/>.</summary>
    bool IsClosed { get; }

    /// <summary>Resets all sub-envs, or those in <see cref="ResetOptions.ResetMask"/>; sub-env i gets seed <c>seed + i</c>.</summary>
    VectorResetResult Reset(long? seed = null, ResetOptions? options = null);

    /// <summary>Resets with one seed per sub-env (null entries continue that sub-env's stream).</summary>
    VectorResetResult Reset(IReadOnlyList<long?> seeds, ResetOptions? options = null);

    /// <summary>Steps every sub-env with integer actions (Discrete, MultiDiscrete, MultiBinary action spaces).</summary>
    VectorStepResult Step(ReadOnlySpan<int> actions);

    /// <summary>Steps every sub-env with continuous actions (Box action spaces).</summary>
    VectorStepResult Step(ReadOnlySpan<float> actions);

    /// <summary>Closes all sub-envs; later calls throw <see cref="EnvironmentClosedException"/>. Idempotent.</summary>
    void Close();

    /// <summary>
    /// Gymnasium's <c>call(name, *args)</c>: on every sub-env, calls its method <paramref name="name"/> with
    /// <paramref name="args"/>, or reads the attribute when it is not a method; one result per sub-env, in order.
    /// Attributes are searched through wrappers (<see cref="EnvAttributes"/>); an unknown name throws
    /// <see cref="UnknownAttributeException"/> naming it.
    /// </summary>
    IReadOnlyList<object?> Call(string name, params object?[] args) => throw new NotSupportedException($"{GetType().Name} does not support Call.");

    /// <summary>Gymnasium's <c>get_attr(name)</c>: the attribute of every sub-env, in order.</summary>
    IReadOnlyList<object?> GetAttr(string name) => throw new NotSupportedException($"{GetType().Name} does not support GetAttr.");

    /// <summary>Gymnasium's <c>set_attr(name, values)</c> with one value per sub-env.</summary>
    void SetAttr(string name, IReadOnlyList<object?> values) => throw new NotSupportedException($"{GetType().Name} does not support SetAttr.");

    /// <summary>Gymnasium's <c>set_attr(name, value)</c>: the same value on every sub-env.</summary>
    void SetAttr(string name, object? value) => SetAttr(name, Enumerable.Repeat(value, NumEnvs).ToArray());
}

/// <summary>How observations are stored in vector envs and rollouts.</summary>
public static class ObservationStorage
{
    /// <summary><see cref="DType.UInt8"/> for a uint8 Box (images: a quarter of the float32 size), else <see cref="DType.Float32"/>.</summary>
    public static DType Of(Space observationSpace) => observationSpace is Box { DType: DType.UInt8 } ? DType.UInt8 : DType.Float32;
}
