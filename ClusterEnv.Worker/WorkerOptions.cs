namespace ClusterEnv.Worker;

/// <summary>What one worker process hosts and where it connects. Parsed from the command line by <see cref="WorkerCommandLine"/>.</summary>
public sealed record WorkerOptions
{
    /// <summary>The hub's URL, e.g. http://10.0.0.5:5555.</summary>
    public required Uri Hub { get; init; }

    /// <summary>Registry id of the env to host.</summary>
    public required string EnvId { get; init; }

    /// <summary>Number of sub-envs this worker hosts.</summary>
    public int NumEnvs { get; init; } = 1;

    /// <summary>This worker's id; sub-envs are ordered by worker id, so give pools sortable ids (worker-000, ...).</summary>
    public string WorkerId { get; init; } = $"{Environment.MachineName}-{Environment.ProcessId}";

    /// <summary>The hub's token (from --token-file or CLUSTERENV_TOKEN).</summary>
    public string? Token { get; init; }

    /// <summary>Assemblies with <c>IEnvRegistrar</c> classes that register the user's envs.</summary>
    public IReadOnlyList<string> Assemblies { get; init; } = [];

    /// <summary>Constructor arguments for the env, as strings (numbers and true/false are converted).</summary>
    public IReadOnlyDictionary<string, string> EnvArgs { get; init; } = new Dictionary<string, string>();

    /// <summary>Observe rendered frames through these wrappers instead of the env's state (null: the env's observations).</summary>
    public ClusterEnv.Wrappers.PixelObservations? Pixels { get; init; }

    /// <summary>How long to keep dialling a hub that is not up yet.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Exit when this process (the learner that started us) is gone.</summary>
    public int? ParentPid { get; init; }

    /// <summary>Largest message accepted from the hub.</summary>
    public int MaxMessageSize { get; init; } = 64 * 1024 * 1024;

    /// <summary>Accept any TLS certificate (self-signed hubs on a trusted network).</summary>
    public bool Insecure { get; init; }
}
