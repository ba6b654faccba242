// ClusterEnv.Worker: hosts envs for a ClusterVecEnv. Dials the learner's hub, registers, answers commands, exits
// when the hub closes the stream (0), when the hub refuses it or the connection fails (1), on bad arguments (2),
// or when the learner it was started by is gone (3).
using ClusterEnv.Transport;
using ClusterEnv.Worker;

if (WorkerCommandLine.Parse(args, out var options) is int exit) return exit;

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
try
{
    await using var worker = new WorkerService(options);
    await worker.RunAsync(stop.Token);
    return 0;
}
catch (OperationCanceledException)
{
    return 3;
}
catch (GrpcException e)
{
    Console.Error.WriteLine($"ClusterEnv.Worker '{options.WorkerId}': the hub ended the stream with {e.Status}: {e.Detail}");
    return 1;
}
catch (Exception e) when (e is IOException or HttpRequestException or ArgumentException or FileNotFoundException or InvalidOperationException)
{
    Console.Error.WriteLine($"ClusterEnv.Worker '{options.WorkerId}': {e.Message}");
    return 1;
}
