using System.Collections.Concurrent;
using ClusterEnv.Envs.ClassicControl;
using ClusterEnv.Envs.Mujoco;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Envs;

/// <summary>
/// The env registry, as Gymnasium's <c>gym.make</c> / <c>gym.register</c>. The five classic-control envs and the five MuJoCo
/// locomotion envs are registered with Gymnasium's ids, time limits and reward thresholds; <c>Register</c> adds users' own.
/// </summary>
public static class Gym
{
    private static readonly ConcurrentDictionary<string, EnvSpec> Registry = new(StringComparer.Ordinal);

    static Gym()
    {
        foreach (var (id, factory, steps, threshold) in new (string, Func<IReadOnlyDictionary<string, object>?, IEnv>, int, double?)[]
                 {
                     ("CartPole-v1", CartPole.Create, 500, 475.0),
                     ("Acrobot-v1", Acrobot.Create, 500, -100.0),
                     ("MountainCar-v0", MountainCar.Create, 200, -110.0),
                     ("MountainCarContinuous-v0", MountainCarContinuous.Create, 999, 90.0),
                     ("Pendulum-v1", Pendulum.Create, 200, null),
                 })
            Registry[id] = Register(id, factory, steps, threshold) with { RenderModes = RenderedEnv.RenderModes };
        // MuJoCo locomotion (Gymnasium's v5 ids, limits and thresholds): registered everywhere, made only where
        // libmujoco 2.2.2 loads; elsewhere Make says which package to install.
        foreach (var (id, factory, threshold) in new (string, Func<IReadOnlyDictionary<string, object>?, IEnv>, double?)[]
                 {
                     ("HalfCheetah-v5", HalfCheetah.Create, 4800.0),
                     ("Hopper-v5", Hopper.Create, 3800.0),
                     ("Walker2d-v5", Walker2d.Create, null),
                     ("Ant-v5", Ant.Create, 6000.0),
                     ("Humanoid-v5", Humanoid.Create, null),
                 })
            Registry[id] = Register(id, factory, 1000, threshold);
    }

    /// <summary>All registered ids, sorted.</summary>
    public static IReadOnlyList<string> Ids => Registry.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>
    /// Registers an env under <paramref name="id"/>. <paramref name="factory"/> receives the constructor arguments
    /// given to <see cref="Make"/> (null when none). Re-registering an id replaces it.
    /// </summary>
    public static EnvSpec Register(string id, Func<IReadOnlyDictionary<string, object>?, IEnv> factory, int? maxEpisodeSteps = null, double? rewardThreshold = null)
    {
        if (string.IsNullOrWhiteSpace(id)) throw new ArgumentException("An env id must be a non-empty string such as \"MyEnv-v0\".", nameof(id));
        ArgumentNullException.ThrowIfNull(factory);
        if (maxEpisodeSteps is <= 0)
            throw new ArgumentOutOfRangeException(nameof(maxEpisodeSteps), maxEpisodeSteps, $"max_episode_steps of '{id}' must be >= 1 or null for no limit.");
        var spec = new EnvSpec(id, factory, maxEpisodeSteps, rewardThreshold);
        Registry[id] = spec;
        return spec;
    }

    /// <summary>Registers an env with a parameterless factory.</summary>
    public static EnvSpec Register(string id, Func<IEnv> factory, int? maxEpisodeSteps = null, double? rewardThreshold = null)
    {
        ArgumentNullException.ThrowIfNull(factory);
        return Register(id, kwargs =>
        {
            if (kwargs is { Count: > 0 }) throw new ArgumentException($"Env '{id}' takes no arguments, but got: {string.Join(", ", kwargs.Keys)}.");
            return factory();
        }, maxEpisodeSteps, rewardThreshold);
    }

    /// <summary>The registry entry for <paramref name="id"/>; an unknown id names the registered ones.</summary>
    public static EnvSpec Spec(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (Registry.TryGetValue(id, out var spec)) return spec;
        var close = Registry.Keys.Where(k => k.StartsWith(id.Split('-')[0], StringComparison.OrdinalIgnoreCase)).Order().ToArray();
        string hint = close.Length > 0 ? $" Did you mean {string.Join(" or ", close.Select(c => $"'{c}'"))}?" : "";
        throw new UnknownEnvironmentException(
            $"No env registered with id '{id}'.{hint} Registered ids: {string.Join(", ", Ids)}. Register your own with Gym.Register(id, factory).");
    }

    /// <summary>
    /// Builds the env registered as <paramref name="id"/>, wrapped in <see cref="TimeLimit"/> when the registry
    /// (or <paramref name="maxEpisodeSteps"/>) gives a limit, as <c>gym.make</c> does.
    /// </summary>
    /// <param name="id">A registered id, e.g. <c>"CartPole-v1"</c>.</param>
    /// <param name="kwargs">Constructor arguments, e.g. <c>{"g": 9.81}</c> for Pendulum.</param>
    /// <param name="maxEpisodeSteps">Overrides the registered time limit.</param>
    public static IEnv Make(string id, IReadOnlyDictionary<string, object>? kwargs = null, int? maxEpisodeSteps = null)
    {
        var spec = Spec(id);
        var env = spec.Factory(kwargs) ?? throw new InvalidOperationException($"The factory registered for '{id}' returned null.");
        var madeSpec = spec with { Kwargs = kwargs, MaxEpisodeSteps = maxEpisodeSteps ?? spec.MaxEpisodeSteps };
        if (env is EnvBase b) b.Spec = madeSpec;
        int? limit = madeSpec.MaxEpisodeSteps;
        if (limit is null) return env;
        var limited = new TimeLimit(env, limit.Value);
        limited.Spec = madeSpec;
        return limited;
    }

    /// <summary>
    /// Loads the assembly at <paramref name="path"/> and runs every public <see cref="IEnvRegistrar"/> in it, so its envs
    /// can be made here (what a worker started with <c>--assembly</c> does). Returns the ids it registered.
    /// </summary>
    /// <exception cref="FileNotFoundException">No file at <paramref name="path"/>.</exception>
    /// <exception cref="ArgumentException">The assembly has no public registrar.</exception>
    public static IReadOnlyList<string> LoadRegistrars(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The env assembly '{path}' does not exist.", path);
        var asm = System.Reflection.Assembly.LoadFrom(Path.GetFullPath(path));
        var registrars = asm.GetExportedTypes().Where(t => typeof(IEnvRegistrar).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false }).ToArray();
        if (registrars.Length == 0)
            throw new ArgumentException($"Assembly '{path}' has no public class implementing ClusterEnv.Envs.IEnvRegistrar; add one whose Register() calls Gym.Register.");
        var before = Ids.ToHashSet();
        foreach (var t in registrars) ((IEnvRegistrar)Activator.CreateInstance(t)!).Register();
        return Ids.Where(id => !before.Contains(id)).ToArray();
    }

    /// <summary>
    /// Builds a <see cref="SyncVectorEnv"/> of <paramref name="numEnvs"/> copies of <paramref name="id"/>, each made
    /// by <see cref="Make"/> and then passed through <paramref name="wrap"/> (e.g. RecordEpisodeStatistics), as
    /// <c>gym.make_vec(id, num_envs, vectorization_mode="sync", wrappers=...)</c>.
    /// </summary>
    public static SyncVectorEnv MakeVec(string id, int numEnvs, AutoresetMode autoresetMode = AutoresetMode.NextStep,
        Func<IEnv, IEnv>? wrap = null, IReadOnlyDictionary<string, object>? kwargs = null)
    {
        Spec(id); // fail fast on an unknown id
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numEnvs);
        return new SyncVectorEnv(Enumerable.Range(0, numEnvs).Select(_ => (Func<IEnv>)(() =>
        {
            var env = Make(id, kwargs);
            return wrap is null ? env : wrap(env);
        })), autoresetMode);
    }
}
