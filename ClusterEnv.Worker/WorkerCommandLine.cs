using System.CommandLine;
using ClusterEnv.CommandLine;

namespace ClusterEnv.Worker;

/// <summary>The worker's command line (<c>ClusterEnv.Worker --hub URL --env ID [options]</c>, <c>--help</c> lists them).</summary>
public static class WorkerCommandLine
{
    /// <summary>
    /// Parses <paramref name="args"/> into <paramref name="options"/>; returns the exit code when the worker should stop
    /// now (0 after --help, 2 on a bad argument, with the reason on stderr), or null to go on.
    /// </summary>
    public static int? Parse(string[] args, out WorkerOptions options) => Parse(args, out options, out _);

    /// <inheritdoc cref="Parse(string[], out WorkerOptions)"/>
    public static int? Parse(string[] args, out WorkerOptions options, out Microsoft.Extensions.Logging.LogLevel logLevel)
    {
        options = null!;
        logLevel = Microsoft.Extensions.Logging.LogLevel.Information;
        var hub = new Option<string>("--hub") { Description = "the learner's hub, e.g. http://127.0.0.1:5555", Required = true }
            .Check(u => Uri.TryCreate(u, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" ? null
                : $"--hub '{u}' is not an http:// or https:// URL (e.g. http://127.0.0.1:5555).");
        var env = new Option<string>("--env") { Description = "registry id of the env to host, e.g. CartPole-v1", Required = true };
        var numEnvs = Cli.Option("--num-envs", "sub-envs hosted by this worker", 1).Check(n => n >= 1 ? null : $"--num-envs {n} must be at least 1.");
        var workerId = Cli.Option("--worker-id", "unique id; sub-envs are ordered by worker id", $"{Environment.MachineName}-{Environment.ProcessId}");
        var tokenFile = Cli.Option<FileInfo?>("--token-file", "file holding the hub's token (or set CLUSTERENV_TOKEN)")
            .Check(f => f is { Exists: false } ? $"--token-file '{f.FullName}' does not exist." : null);
        var assemblies = Cli.Option<string[]>("--assembly", "load envs registered by IEnvRegistrar classes in this assembly (repeatable)");
        var envArgs = Cli.Option<string[]>("--env-arg", "constructor argument for the env, KEY=VALUE (repeatable)")
            .Check(kvs => (kvs ?? []).FirstOrDefault(kv => kv.IndexOf('=') <= 0) is { } bad ? $"--env-arg '{bad}' must look like KEY=VALUE." : null);
        var pixels = Cli.Option<string?>("--pixels", "observe rendered frames, gray, resized and stacked: HEIGHTxWIDTHxSTACK, e.g. 84x84x4 (the env must render rgb_array)")
            .Check(v => v is null ? null : Try(() => ClusterEnv.Wrappers.PixelObservations.Parse(v)));
        var connectTimeout = Cli.Option("--connect-timeout", "seconds to keep dialling a hub that is not up yet", 60.0)
            .Check(s => s > 0 ? null : $"--connect-timeout {s} must be a positive number of seconds.");
        var parentPid = Cli.Option<int?>("--parent-pid", "exit when the process with this id exits");
        var maxMessage = Cli.Option("--max-message-size", "largest command accepted from the hub, e.g. a policy push, in MiB", 64)
            .Check(m => m is >= 1 and <= 2047 ? null : $"--max-message-size {m} MiB must be between 1 and gRPC's limit of 2047.");
        var insecure = Cli.Option("--insecure", "accept any TLS certificate from the hub", false);
        var level = Cli.Option("--log-level", "least severe log lines written to stderr: Trace, Debug, Information, Warning, Error, Critical or None",
            Microsoft.Extensions.Logging.LogLevel.Information);
        var root = new RootCommand("ClusterEnv.Worker: hosts envs for a ClusterVecEnv. Dials the learner's hub, registers and answers its commands. " +
                                   "Exits 0 when the hub closes the stream, 1 when refused or the connection fails, 2 on bad arguments, 3 when its parent is gone.")
        {
            hub, env, numEnvs, workerId, tokenFile, assemblies, envArgs, pixels, connectTimeout, parentPid, maxMessage, insecure, level,
        };
        if (Cli.Parse(root, args, out var p) is int exit) return exit;
        logLevel = p.GetValue(level);
        string? token = Environment.GetEnvironmentVariable("CLUSTERENV_TOKEN");
        if (p.GetValue(tokenFile) is { } file && (token = Cli.ReadSecret(file.FullName, "--token-file")) is null) return Cli.UsageError;
        options = new WorkerOptions
        {
            Hub = new Uri(p.GetValue(hub)!), EnvId = p.GetValue(env)!, NumEnvs = p.GetValue(numEnvs), WorkerId = p.GetValue(workerId)!,
            Token = string.IsNullOrEmpty(token) ? null : token,
            Assemblies = p.GetValue(assemblies) ?? [],
            EnvArgs = (p.GetValue(envArgs) ?? []).Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]),
            Pixels = p.GetValue(pixels) is { } px ? ClusterEnv.Wrappers.PixelObservations.Parse(px) : null,
            ConnectTimeout = TimeSpan.FromSeconds(p.GetValue(connectTimeout)), ParentPid = p.GetValue(parentPid),
            MaxMessageSize = p.GetValue(maxMessage) * 1024 * 1024, Insecure = p.GetValue(insecure),
        };
        return null;
    }

    private static string? Try(Action parse)
    {
        try
        {
            parse();
            return null;
        }
        catch (ArgumentException e)
        {
            return "--pixels: " + e.Message;
        }
    }
}
