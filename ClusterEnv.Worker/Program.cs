// ClusterEnv.Worker: hosts envs for a ClusterVecEnv. Dials the learner's hub, registers, answers commands, exits
// when the hub closes the stream (0), when the hub refuses it or the connection fails (1), on bad arguments (2),
// or when the learner it was started by is gone (3).
using ClusterEnv.Transport;
using ClusterEnv.Worker;
using Microsoft.Extensions.Logging;
using Grpc.Core;

if (WorkerCommandLine.Parse(args, out var options, out var logLevel) is int exit) return exit;

// One line per event on stderr (a local pool keeps the last lines for the learner's error messages).
using var loggers = LoggerFactory.Create(b => b
    .SetMinimumLevel(logLevel)
    .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace)
    .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; }));
var log = loggers.CreateLogger("ClusterEnv.Worker");

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
try
{
    await using var worker = new WorkerService(options, log);
    await worker.RunAsync(stop.Token);
    WorkerLog.Closed(log, options.WorkerId);
    return 0;
}
catch (OperationCanceledException)
{
    return 3;
}
catch (ClusterEnv.Envs.UnknownEnvironmentException e)
{
    // A bad --env is a bad argument (2), found once --assembly files are loaded.
    WorkerLog.Failed(log, options.WorkerId, e.Message);
    return 2;
}
catch (RpcException e)
{
    WorkerLog.Refused(log, options.WorkerId, e.StatusCode.ToString(), e.Status.Detail);
    return 1;
}
catch (Exception e) when (e is IOException or HttpRequestException or ArgumentException or FileNotFoundException or InvalidOperationException)
{
    WorkerLog.Failed(log, options.WorkerId, e.Message);
    return 1;
}
