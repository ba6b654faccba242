using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using ClusterEnv.Envs;
using ClusterEnv.Rollouts;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Worker;

/// <summary>
/// The envs this worker hosts and what the commands left them in: created at start (so their spaces can be
/// registered), wrapped into a <see cref="SyncVectorEnv"/> by the hub's Welcome (autoreset mode, episode statistics),
/// and the episodes the last reset or central-inference step left running, which the acting loop continues.
/// The command loop owns it; a running stream borrows the vector env and the actor until it stops.
/// </summary>
internal sealed class HostedEnvs : IDisposable
{
    private readonly List<IEnv> _envs = [];
    private SyncVectorEnv? _vec;
    private RolloutActor? _actor;
    private float[]? _lastReset;          // observations of the last reset command, until the actor takes them
    private VectorStepResult? _lastStep;  // the last central-inference step, until the actor takes it

    public HostedEnvs(WorkerOptions options)
    {
        foreach (var path in options.Assemblies) Gym.LoadRegistrars(path);
        var kwargs = options.EnvArgs.ToDictionary(kv => kv.Key, kv => ParseArg(kv.Value));
        try
        {
            for (int i = 0; i < options.NumEnvs; i++)
                _envs.Add(options.Pixels is { } pixels ? pixels.Make(options.EnvId, kwargs) : Gym.Make(options.EnvId, kwargs.Count == 0 ? null : kwargs));
        }
        catch
        {
            foreach (var e in _envs) e.Dispose();
            throw;
        }
    }

    /// <summary>The single envs, as created.</summary>
    public IReadOnlyList<IEnv> Envs => _envs;

    /// <summary>Stopwatch ticks between progress messages (0: none), from Welcome.</summary>
    public long ProgressInterval { get; private set; }

    /// <summary>The vector env, once the hub has welcomed this worker.</summary>
    public SyncVectorEnv Vec => _vec ?? throw new InvalidDataException("The hub sent a command before Welcome.");

    public ProgressThrottle Throttle() => new(ProgressInterval);

    public void Welcome(Welcome welcome)
    {
        if (_vec is not null) throw new InvalidDataException("The hub sent a second Welcome.");
        ProgressInterval = welcome.ProgressIntervalMs * Stopwatch.Frequency / 1000;
        var envs = welcome.RecordEpisodeStatistics ? _envs.Select(e => (IEnv)new RecordEpisodeStatistics(e)).ToList() : _envs;
        _vec = new SyncVectorEnv(envs, (AutoresetMode)(int)welcome.AutoresetMode);
    }

    /// <summary>A reset left the episodes here.</summary>
    public void ResetTo(float[] observations) => (_lastReset, _lastStep) = (observations, null);

    /// <summary>A central-inference step left the episodes here (no copy on the step path).</summary>
    public void SteppedTo(VectorStepResult step) => (_lastReset, _lastStep) = ((float[]?)null, step);

    /// <summary>The envs were used for something else (gradient episodes): acting needs a reset first.</summary>
    public void Forget() => (_lastReset, _lastStep) = ((float[]?)null, null);

    /// <summary>The acting loop, continuing the episodes that commands left: from the last reset, or the last central-inference step.</summary>
    public RolloutActor ReadyActor()
    {
        var vec = Vec;
        _actor ??= new RolloutActor(vec);
        if (_lastStep is { } step) _actor.Begin(step.Observations, step.Terminated, step.Truncated);
        else if (_lastReset is { } reset) _actor.Begin(reset);
        Forget();
        if (!_actor.HasObservations) throw new ResetNeededException("Reset the vector env before collecting rollouts.");
        return _actor;
    }

    /// <summary>The Register message: who this worker is and what it hosts.</summary>
    public Register Registration(WorkerOptions options) => new()
    {
        ProtocolVersion = 1,
        WorkerId = options.WorkerId,
        Token = options.Token ?? "",
        EnvId = options.EnvId,
        NumEnvs = (uint)options.NumEnvs,
        ObservationSpace = SpaceCodec.ToProto(_envs[0].ObservationSpace),
        ActionSpace = SpaceCodec.ToProto(_envs[0].ActionSpace),
        Host = Environment.MachineName,
        Pid = Environment.ProcessId,
        Runtime = $".NET {Environment.Version}",
        MaxMessageSize = (uint)options.MaxMessageSize,
        ShmHost = Transport.SharedMemory.ShmChannel.HostKey() ?? "",
        EnvSpec = SpecInfo(options.EnvId),
    };

    // The registry's entry for the env this worker hosts, for a learner that does not know the id.
    private static EnvSpecInfo? SpecInfo(string envId)
    {
        if (!Gym.Ids.Contains(envId)) return null;
        var spec = Gym.Spec(envId);
        var info = new EnvSpecInfo { Id = spec.Id, MaxEpisodeSteps = (uint)(spec.MaxEpisodeSteps ?? 0), Nondeterministic = spec.Nondeterministic };
        if (spec.RewardThreshold is double t)
        {
            info.HasRewardThreshold = true;
            info.RewardThreshold = t;
        }
        info.RenderModes.AddRange(spec.RenderModes);
        return info;
    }

    private static object ParseArg(string value) =>
        bool.TryParse(value, out bool b) ? b
        : double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d
        : value;

    public void Dispose()
    {
        if (_vec is not null) _vec.Close();
        else foreach (var e in _envs) e.Dispose();
    }
}
