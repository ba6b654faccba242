using ClusterEnv.Spaces;

namespace ClusterEnv.Envs;

/// <summary>
/// A reinforcement-learning environment with Gymnasium's contract (<c>gymnasium.Env</c>) in .NET casing.
/// </summary>
/// <remarks>
/// <para><b>Episodes.</b> <see cref="Reset"/> starts an episode and writes its first observation. <see cref="Step"/>
/// applies one action and writes the next observation, returning the reward and two flags:</para>
/// <list type="bullet">
/// <item><see cref="StepResult.Terminated"/>: the MDP reached a terminal state (the pole fell, the goal was
/// reached). The value of that state is zero: do <b>not</b> bootstrap from it.</item>
/// <item><see cref="StepResult.Truncated"/>: the episode was cut from outside the MDP, usually by a time limit
/// (<see cref="Wrappers.TimeLimit"/>). The state still has value: bootstrap from the final observation.</item>
/// </list>
/// <para>After either flag, call <see cref="Reset"/> before stepping again. Stepping a finished episode is
/// undefined in Gymnasium and env-specific here too (CartPole, like Gymnasium's, keeps integrating and returns
/// reward 0); vector envs reset finished sub-envs for you (see <see cref="Vector.AutoresetMode"/>). Stepping before
/// the first <see cref="Reset"/> throws <see cref="ResetNeededException"/>.</para>
/// <para><b>Observations</b> are written as float32 into a caller-owned span of
/// <c>ObservationSpace.EncodedSize</c> elements, so the hot path allocates nothing; the convenience overloads in
/// <see cref="EnvExtensions"/> return fresh arrays instead.</para>
/// <para><b>Actions</b> arrive as an <see cref="EnvAction"/>: int slots for Discrete / MultiDiscrete /
/// MultiBinary action spaces, float slots for Box.</para>
/// <para><b>Seeding.</b> <c>Reset(seed: s)</c> re-seeds the env's generator; the same seed and the same actions
/// give the same trajectory. <c>Reset()</c> without a seed continues the current stream.</para>
/// <para><b>Info</b> is a typed <see cref="EnvInfo"/> value (no dictionary per step); episode statistics appear
/// at the last step of an episode when <see cref="Wrappers.RecordEpisodeStatistics"/> is applied.</para>
/// <para><b>Threading.</b> An env is not thread-safe; use one per thread (vector envs own theirs).</para>
/// </remarks>
/// <example>
/// <code>
/// using var env = Gym.Make("CartPole-v1");
/// var obs = new float[env.ObservationSpace.EncodedSize];
/// env.Reset(obs, seed: 42);
/// while (true)
/// {
///     var r = env.Step(obs[2] &gt; 0 ? 1 : 0, obs);   // push toward the side the pole leans
///     if (r.Terminated || r.Truncated) break;
/// }
/// </code>
/// </example>
public interface IEnv : IDisposable
{
    /// <summary>The space observations belong to.</summary>
    Space ObservationSpace { get; }

    /// <summary>The space actions must belong to.</summary>
    Space ActionSpace { get; }

    /// <summary>The registry entry this env was made from (null for envs constructed directly).</summary>
    EnvSpec? Spec { get; }

    /// <summary>Starts a new episode and writes its first observation into <paramref name="observation"/>.</summary>
    /// <param name="observation">Destination of <c>ObservationSpace.EncodedSize</c> floats.</param>
    /// <param name="seed">Re-seeds the env's generator when given.</param>
    /// <param name="options">Env-specific reset options (e.g. classic control's <c>low</c>/<c>high</c>).</param>
    /// <returns>The reset info.</returns>
    EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null);

    /// <summary>Applies <paramref name="action"/> and writes the next observation into <paramref name="observation"/>.</summary>
    /// <exception cref="ResetNeededException">Called before the first <see cref="Reset"/>.</exception>
    /// <exception cref="ArgumentException">The action does not belong to <see cref="ActionSpace"/>.</exception>
    StepResult Step(EnvAction action, Span<float> observation);
}
