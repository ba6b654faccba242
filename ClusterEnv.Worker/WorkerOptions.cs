using System.Globalization;

namespace ClusterEnv.Worker;

/// <summary>What one worker process hosts and where it connects. Parsed from the command line by <see cref="Parse"/>.</summary>
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

    /// <summary>How long to keep dialling a hub that is not up yet.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Exit when this process (the learner that started us) is gone.</summary>
    public int? ParentPid { get; init; }

    /// <summary>Largest message accepted from the hub.</summary>
    public int MaxMessageSize { get; init; } = 64 * 1024 * 1024;

    /// <summary>Accept any TLS certificate (self-signed hubs on a trusted network).</summary>
    public bool Insecure { get; init; }

    /// <summary>The command-line help.</summary>
    public const string Usage = """
        Usage: ClusterEnv.Worker --hub URL --env ID [options]
          --hub URL            the learner's hub, e.g. http://127.0.0.1:5555 (required)
          --env ID             registry id of the env to host, e.g. CartPole-v1 (required)
          --num-envs N         sub-envs hosted by this worker (default 1)
          --worker-id ID       unique id; sub-envs are ordered by worker id (default HOST-PID)
          --token-file FILE    file holding the hub's token (or set CLUSTERENV_TOKEN)
          --assembly DLL       load envs registered by IEnvRegistrar classes in DLL (repeatable)
          --env-arg KEY=VALUE  constructor argument for the env (repeatable)
          --connect-timeout S  seconds to keep dialling a hub that is not up yet (default 60)
          --parent-pid PID     exit when process PID exits
          --max-message-size MIB  largest command accepted from the hub, e.g. a policy push (default 64)
          --insecure           accept any TLS certificate from the hub
        """;

    /// <summary>Parses the command line; throws <see cref="ArgumentException"/> naming the bad argument.</summary>
    public static WorkerOptions Parse(IReadOnlyList<string> args)
    {
        string? hub = null, env = null, workerId = null, token = Environment.GetEnvironmentVariable("CLUSTERENV_TOKEN");
        int numEnvs = 1;
        int? parent = null;
        double connect = 60;
        bool insecure = false;
        int maxMessageMiB = 64;
        var assemblies = new List<string>();
        var envArgs = new Dictionary<string, string>();
        for (int i = 0; i < args.Count; i++)
        {
            string Value()
            {
                if (i + 1 >= args.Count) throw new ArgumentException($"{args[i]} needs a value.\n{Usage}");
                return args[++i];
            }
            switch (args[i])
            {
                case "--hub": hub = Value(); break;
                case "--env": env = Value(); break;
                case "--num-envs": numEnvs = PositiveInt("--num-envs", Value()); break;
                case "--worker-id": workerId = Value(); break;
                case "--token-file":
                    string file = Value();
                    if (!File.Exists(file)) throw new ArgumentException($"--token-file '{file}' does not exist.");
                    token = File.ReadAllText(file).Trim();
                    break;
                case "--assembly": assemblies.Add(Value()); break;
                case "--env-arg":
                    string kv = Value();
                    int eq = kv.IndexOf('=');
                    if (eq <= 0) throw new ArgumentException($"--env-arg '{kv}' must look like KEY=VALUE.");
                    envArgs[kv[..eq]] = kv[(eq + 1)..];
                    break;
                case "--connect-timeout":
                    string c = Value();
                    if (!double.TryParse(c, NumberStyles.Float, CultureInfo.InvariantCulture, out connect) || connect <= 0)
                        throw new ArgumentException($"--connect-timeout '{c}' must be a positive number of seconds.");
                    break;
                case "--parent-pid": parent = PositiveInt("--parent-pid", Value()); break;
                case "--insecure": insecure = true; break;
                case "--max-message-size":
                    maxMessageMiB = PositiveInt("--max-message-size", Value());
                    if (maxMessageMiB > 2047) throw new ArgumentException($"--max-message-size {maxMessageMiB} MiB is above gRPC's limit of 2047 MiB.");
                    break;
                case "-h" or "--help": throw new ArgumentException(Usage);
                default: throw new ArgumentException($"Unknown argument '{args[i]}'.\n{Usage}");
            }
        }
        if (hub is null) throw new ArgumentException($"--hub is required.\n{Usage}");
        if (env is null) throw new ArgumentException($"--env is required.\n{Usage}");
        if (!Uri.TryCreate(hub, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new ArgumentException($"--hub '{hub}' is not an http:// or https:// URL (e.g. http://127.0.0.1:5555).");
        return new WorkerOptions
        {
            Hub = uri, EnvId = env, NumEnvs = numEnvs, WorkerId = workerId ?? $"{Environment.MachineName}-{Environment.ProcessId}",
            Token = string.IsNullOrEmpty(token) ? null : token, Assemblies = assemblies, EnvArgs = envArgs,
            ConnectTimeout = TimeSpan.FromSeconds(connect), ParentPid = parent, Insecure = insecure,
            MaxMessageSize = maxMessageMiB * 1024 * 1024,
        };
    }

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0
            ? n : throw new ArgumentException($"{name} '{value}' must be a positive integer.");
}
