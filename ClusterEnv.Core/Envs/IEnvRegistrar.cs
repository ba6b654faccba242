namespace ClusterEnv.Envs;

/// <summary>
/// Registers a user's own envs with <c>Gym.Register</c>. A worker started with <c>--assembly path.dll</c>
/// creates every public class implementing this interface in that assembly and calls <see cref="Register"/>, so
/// <c>--env MyEnv-v0</c> can then be made like a built-in env. <see cref="Cluster.ClusterVecEnv"/> passes its
/// <see cref="Cluster.ClusterOptions.WorkerAssemblies"/>, or by default the application's own assembly when it has a
/// registrar, to the workers it launches.
/// </summary>
/// <example>
/// <code>
/// public sealed class MyEnvs : IEnvRegistrar
/// {
///     public void Register() =&gt; Gym.Register("GridWorld-v0", () =&gt; new GridWorld(), maxEpisodeSteps: 200);
/// }
/// </code>
/// </example>
public interface IEnvRegistrar
{
    /// <summary>Registers the envs (called once per process; re-registering an id replaces it).</summary>
    void Register();
}
