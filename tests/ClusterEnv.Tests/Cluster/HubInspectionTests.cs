using ClusterEnv.Transport;
using ClusterEnv.Cluster;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Reflection.V1Alpha;

namespace ClusterEnv.Tests.Cluster;

/// <summary>A running hub answers stock gRPC tools: the standard health service and server reflection.</summary>
[NonParallelizable]
public class HubInspectionTests
{
    [Test]
    public async Task Health_IsServingWhileTheHubAcceptsWorkers_AndNotServingOnceItCloses()
    {
        var hub = await ClusterHub.StartAsync(new HubOptions());
        using var channel = GrpcChannel.ForAddress(hub.Url);
        var health = new Health.HealthClient(channel);
        Assert.That((await health.CheckAsync(new HealthCheckRequest())).Status, Is.EqualTo(HealthCheckResponse.Types.ServingStatus.NotServing),
            "no vector env accepts workers yet");
        hub.SetAdmission(_ => null);
        Assert.That((await health.CheckAsync(new HealthCheckRequest())).Status, Is.EqualTo(HealthCheckResponse.Types.ServingStatus.Serving));
        Assert.That((await health.CheckAsync(new HealthCheckRequest { Service = "clusterenv.v1.WorkerHub" })).Status,
            Is.EqualTo(HealthCheckResponse.Types.ServingStatus.Serving));
        var unknown = Assert.ThrowsAsync<Grpc.Core.RpcException>(async () => await health.CheckAsync(new HealthCheckRequest { Service = "nope.Service" }))!;
        Assert.That(unknown.StatusCode, Is.EqualTo(Grpc.Core.StatusCode.NotFound));
        await hub.DisposeAsync();
    }

    // A vector env's hub decides on workers from its first moment: with admission set after the port opened, a worker
    // dialling in that instant (under load: a CI run refused both of a test's workers this way) was refused and exited.
    [Test]
    public async Task AHubStartedWithAnAdmission_ServesAndAdmitsFromItsFirstRequest()
    {
        int admitted = 0;
        await using var hub = await ClusterHub.StartAsync(new HubOptions { Token = "t" }, _ => { Interlocked.Increment(ref admitted); return null; }, null);
        using var channel = GrpcChannel.ForAddress(hub.Url);
        Assert.That((await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest())).Status, Is.EqualTo(HealthCheckResponse.Types.ServingStatus.Serving),
            "serving before anything else is set");
        var worker = new ClusterEnv.Worker.WorkerService(new ClusterEnv.Worker.WorkerOptions { Hub = hub.Url, EnvId = "CartPole-v1", WorkerId = "first", Token = "t" });
        var run = worker.RunAsync();
        for (var sw = System.Diagnostics.Stopwatch.StartNew(); Volatile.Read(ref admitted) == 0 && sw.Elapsed < TimeSpan.FromSeconds(20);) await Task.Delay(10);
        Assert.That(admitted, Is.EqualTo(1));
        await hub.DisposeAsync();
        try { await run.WaitAsync(TimeSpan.FromSeconds(20)); } catch (Exception e) when (e is Grpc.Core.RpcException or IOException) { }
        await worker.DisposeAsync();
    }

    [Test]
    public async Task Reflection_ListsTheWorkerHub_AndDescribesItsMessages()
    {
        await using var hub = await ClusterHub.StartAsync(new HubOptions());
        using var channel = GrpcChannel.ForAddress(hub.Url);
        using var call = new ServerReflection.ServerReflectionClient(channel).ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        Assert.That(await call.ResponseStream.MoveNext(CancellationToken.None), Is.True);
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToArray();
        Assert.That(services, Does.Contain("clusterenv.v1.WorkerHub").And.Contain("grpc.health.v1.Health"));

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = "clusterenv.v1.WorkerHub" });
        Assert.That(await call.ResponseStream.MoveNext(CancellationToken.None), Is.True);
        var files = call.ResponseStream.Current.FileDescriptorResponse.FileDescriptorProto
            .Select(b => Google.Protobuf.Reflection.FileDescriptorProto.Parser.ParseFrom(b)).ToArray();
        var file = files.Single(f => f.Package == "clusterenv.v1");
        Assert.That(file.Service.Single().Method.Single().Name, Is.EqualTo("Connect"));
        Assert.That(file.MessageType.Select(m => m.Name), Does.Contain("WorkerMessage").And.Contain("HubMessage").And.Contain("Register"));
        await call.RequestStream.CompleteAsync();
    }
}

public class HubOpenDoorTests
{
    [Test]
    public void AHubBeyondLoopbackWithoutAToken_IsRefusedNamingTheFix_UnlessTheUserSaysSo()
    {
        var open = new HubOptions { Host = "0.0.0.0" };
        Assert.That(() => ClusterHub.StartAsync(open).GetAwaiter().GetResult(),
            Throws.ArgumentException.With.Message.Contains("no token").And.Message.Contains("HubOptions.Token").And.Message.Contains("AllowAnyWorker"));
        Assert.That(() => (open with { Token = "secret" }).ThrowIfOpenDoor(), Throws.Nothing, "a token closes the door");
        Assert.That(() => (open with { AllowAnyWorker = true }).ThrowIfOpenDoor(), Throws.Nothing, "an explicit opt-out is the user's call");
        Assert.That(() => new HubOptions { Host = "127.0.0.1" }.ThrowIfOpenDoor(), Throws.Nothing, "loopback is this machine only");
        Assert.That(() => new HubOptions { Host = "::1" }.ThrowIfOpenDoor(), Throws.Nothing);
    }
}
