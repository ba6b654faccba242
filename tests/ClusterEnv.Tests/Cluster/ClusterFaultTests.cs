using System.Diagnostics;
using ClusterEnv.Cluster;
using ClusterEnv.Transport;
using ClusterEnv.Tests.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using ClusterEnv.Worker;
using Google.Protobuf;
using Grpc.Core;

namespace ClusterEnv.Tests.Cluster;

/// <summary>What happens when workers, envs or peers misbehave: every failure is named, nothing hangs.</summary>
[NonParallelizable]
public class ClusterFaultTests
{
    [OneTimeSetUp]
    public void RegisterTestEnvs() => TestEnvs.Register();

    [OneTimeTearDown]
    public void ReleaseHungEnvs() => TestEnvs.Unblock.Set();

    [Test]
    public void ThrowingEnv_ReachesTheLearner_WithWorkerIdEnvIndexAndRemoteStack_ThenResetRecovers()
    {
        TestEnvs.ThrowsLeft = 1;
        var (env, _) = TestCluster.InProcess(TestEnvs.Throwing, [2, 2], envArgs: w => w == 1 ? new() { ["fail"] = "true" } : []);
        using var envs = env;
        envs.Reset(seed: 0);
        var a = new int[4];
        envs.Step(a);
        envs.Step(a);
        var ex = Assert.Throws<SubEnvException>(() => envs.Step(a))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.WorkerId, Is.EqualTo("w1"));
            Assert.That(ex.EnvIndex, Is.EqualTo(2), "worker w1's first sub-env is index 2 of the vector env");
            Assert.That(ex.ErrorType, Is.EqualTo(typeof(InvalidDataException).FullName));
            Assert.That(ex.ErrorMessage, Is.EqualTo("sensor broke"));
            Assert.That(ex.ErrorStackTrace, Does.Contain("StepCore"));
            Assert.That(ex.Message, Does.Contain("w1").And.Contain("remote stack trace"));
        });
        Assert.Throws<ClusterEnv.Envs.ResetNeededException>(() => envs.Step(a));
        envs.Reset(seed: 1);
        var r = envs.Step(a);
        Assert.That(r.Observations, Is.All.EqualTo(0.5f));
    }

    [Test]
    public void KilledWorkerProcess_GivesWorkerLostException_NamingIt_WithinFiveSeconds()
    {
        using var envs = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 4, NumWorkers = 2 });
        envs.Reset(seed: 0);
        var a = new int[4];
        envs.Step(a);
        var victim = envs.Pool!.ProcessOf("worker-001")!;
        victim.Kill();
        victim.WaitForExit();
        var sw = Stopwatch.StartNew();
        var ex = Assert.Throws<WorkerLostException>(() =>
        {
            for (int t = 0; t < 1000; t++) envs.Step(a);
        })!;
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
        Assert.That(ex.WorkerId, Is.EqualTo("worker-001"));
        Assert.That(ex.Message, Does.Contain("worker-001").And.Contain("close it"));
        var again = Assert.Throws<InvalidOperationException>(() => envs.Step(a))!;
        Assert.That(again.Message, Does.Contain("unusable"));
        int survivor = envs.Pool.ProcessOf("worker-000")!.Id;
        envs.Close();
        Assert.That(IsRunning(survivor), Is.False, "closing the vector env ends the surviving worker");
    }

    [Test]
    public void HungWorker_StepDeadlineFires_NamingTheWorker()
    {
        TestEnvs.NewHangGate();
        var (env, _) = TestCluster.InProcess(TestEnvs.Hanging, [1, 1], stepTimeout: TimeSpan.FromSeconds(1), envArgs: w => w == 0 ? new() { ["hang"] = "true" } : []);
        using var envs = env;
        envs.Reset(seed: 0);
        var sw = Stopwatch.StartNew();
        var ex = Assert.Throws<WorkerTimeoutException>(() => envs.Step(new int[2]))!;
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
        Assert.That(ex.WorkerIds, Is.EqualTo(new[] { "w0" }));
        Assert.That(ex.Message, Does.Contain("worker 'w0'").And.Contain("StepTimeout"));
        Assert.Throws<InvalidOperationException>(() => envs.Step(new int[2]));
    }

    [Test]
    public void WorkersThatNeverCome_ConnectTimeoutSaysHowManyAndWho()
    {
        var ex = Assert.Throws<WorkerTimeoutException>(() =>
            TestCluster.InProcess("CartPole-v1", [1], expectWorkers: 2, connectTimeout: TimeSpan.FromSeconds(1)))!;
        Assert.That(ex.Message, Does.Contain("Only 1 of 2 workers").And.Contain("w0"));
    }

    [Test]
    public void WrongToken_OnlyThatWorkerIsRefused_TheOthersCarryOn()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [2]);
        using var envs = env;
        envs.Reset(seed: 0);
        var rogue = new WorkerService(new WorkerOptions { Hub = envs.Hub.Url, EnvId = "CartPole-v1", WorkerId = "rogue", Token = "wrong" });
        var ex = Assert.ThrowsAsync<RpcException>(() => rogue.RunAsync())!;
        Assert.That(ex.StatusCode, Is.EqualTo(StatusCode.Unauthenticated));
        Assert.That(ex.Status.Detail, Does.Contain("token does not match"));
        var none = new WorkerService(new WorkerOptions { Hub = envs.Hub.Url, EnvId = "CartPole-v1", WorkerId = "rogue2" });
        Assert.That(Assert.ThrowsAsync<RpcException>(() => none.RunAsync())!.Status.Detail, Does.Contain("sent none"));
        Assert.DoesNotThrow(() => envs.Step(new int[2]));
    }

    [Test]
    public void WorkerHostingAnotherEnv_IsRefused_NamingBothIds()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [1]);
        using var envs = env;
        var extra = new WorkerService(new WorkerOptions { Hub = envs.Hub.Url, EnvId = "Pendulum-v1", WorkerId = "other", Token = "test-token" });
        var ex = Assert.ThrowsAsync<RpcException>(() => extra.RunAsync())!;
        Assert.That(ex.StatusCode, Is.EqualTo(StatusCode.FailedPrecondition));
    }

    [Test]
    public void MalformedReplyFromARegisteredWorker_ClosesOnlyItsStreamWithInternal_AndTheLearnerNamesIt()
    {
        int port = TestCluster.FreePort();
        var hubUrl = new Uri($"http://127.0.0.1:{port}");
        var fake = Task.Run(async () =>
        {
            using var client = GrpcDuplexCall.CreateClient();
            GrpcDuplexCall? call = null;
            for (int attempt = 0; call is null; attempt++)
            {
                try { call = await ConnectRawAsync(client, hubUrl, Register("w1", 1)); }
                catch (HttpRequestException) when (attempt < 100) { await Task.Delay(100); }
            }
            await using var _ = call;
            await ReadOneMessageAsync(call); // Welcome
            await ReadOneMessageAsync(call); // Reset
            await call.WriteAsync(new byte[] { 0x08, 0x01, 0x1A, 0x7F, 0x01 }); // seq 1, then a truncated field
            while (!(await call.Responses.ReadAsync()).IsCompleted) { }
            return call.GetStatus();
        });
        var real = Task.Run(async () =>
        {
            await using var w = new WorkerService(new WorkerOptions { Hub = hubUrl, EnvId = "CartPole-v1", WorkerId = "w0", Token = "t" });
            await w.RunAsync();
        });
        using var envs = new ClusterVecEnv(new ClusterOptions
        {
            EnvId = "CartPole-v1", NumWorkers = 2, LocalWorkers = false, Hub = new HubOptions { Port = port, Token = "t" }, ConnectTimeout = TimeSpan.FromSeconds(20),
        });
        var ex = Assert.Throws<WorkerLostException>(() => envs.Reset(seed: 0))!;
        Assert.That(ex.WorkerId, Is.EqualTo("w1"));
        Assert.That(ex.Reason, Does.Contain("malformed"));
        var status = fake.Result;
        Assert.That(status?.StatusCode, Is.EqualTo(StatusCode.Internal));
        Assert.That(status!.Status.Detail, Does.Contain("Malformed"));
        Assert.That(real.IsCompleted, Is.False, "the other worker's stream is still open");
    }

    [TestCase("flag", StatusCode.Internal, "Malformed gRPC frame")]
    [TestCase("oversized", StatusCode.ResourceExhausted, "at most 4,096 bytes (HubOptions.MaxMessageSize)")]
    [TestCase("garbage", StatusCode.Internal, "Malformed Register")]
    [TestCase("version", StatusCode.FailedPrecondition, "Protocol version 99")]
    [TestCase("not-register", StatusCode.FailedPrecondition, "must be Register")]
    [TestCase("empty", StatusCode.Internal, "ended before a Register")]
    public async Task BadStreams_AreClosedWithAClearStatus_AndTheHubCarriesOn(string kind, StatusCode expected, string text)
    {
        await using var hub = await ClusterHub.StartAsync(new HubOptions { MaxMessageSize = 4096 });
        hub.SetAdmission(_ => null);
        using var client = GrpcDuplexCall.CreateClient();
        byte[] frame = kind switch
        {
            "flag" => [7, 0, 0, 0, 1, 0],
            "oversized" => [0, 0, 1, 0, 0],
            "garbage" => [0, 0, 0, 0, 3, 0x0A, 0xFF, 0xFF],
            "version" => Frame(new WorkerMessage { Register = Register("x", 1, version: 99) }),
            "not-register" => Frame(new WorkerMessage { Closed = new Closed() }),
            _ => [],
        };
        var call = await GrpcDuplexCall.StartAsync(client, hub.Url, ClusterHub.ConnectPath);
        await call.RequestStream.WriteAsync(frame);
        await call.RequestStream.FlushAsync();
        if (kind == "empty") call.CompleteRequests();
        var ex = Assert.ThrowsAsync<RpcException>(() => call.ReadHeadersAsync())!;
        Assert.That(ex.StatusCode, Is.EqualTo(expected));
        Assert.That(ex.Status.Detail, Does.Contain(text));
        await call.DisposeAsync();

        // The same hub still accepts a good worker.
        await using var good = await ConnectRawAsync(client, hub.Url, Register("good", 1));
        Assert.That(good.Responses, Is.Not.Null);
    }

    [TestCase("gzip-register", StatusCode.FailedPrecondition, "second Register")]
    [TestCase("unknown-encoding", StatusCode.Unimplemented, "compressed with 'snappy'")]
    [TestCase("oversized", StatusCode.ResourceExhausted, "at most 4,096 bytes (HubOptions.MaxMessageSize)")]
    [TestCase("flag", StatusCode.Internal, "compressed flag 7")]
    public async Task AfterRegistering_TheHubsReader_KeepsGrpcsRules(string kind, StatusCode expected, string text)
    {
        await using var hub = await ClusterHub.StartAsync(new HubOptions { MaxMessageSize = 4096 });
        hub.SetAdmission(_ => null);
        using var client = GrpcDuplexCall.CreateClient();
        string encoding = kind == "unknown-encoding" ? "snappy" : "gzip";
        var call = await GrpcDuplexCall.StartAsync(client, hub.Url, ClusterHub.ConnectPath, [new("grpc-encoding", encoding)]);
        await call.WriteAsync(new WorkerMessage { Register = Register("w", 1) }.ToByteArray());
        await call.ReadHeadersAsync();
        byte[] frame = kind switch
        {
            "oversized" => [0, 0, 1, 0, 0],
            "flag" => [7, 0, 0, 0, 1, 0],
            _ => Gzipped(new WorkerMessage { Register = Register("w", 1) }.ToByteArray()),
        };
        await call.RequestStream.WriteAsync(frame);
        await call.RequestStream.FlushAsync();
        while (!(await call.Responses.ReadAsync()).IsCompleted) { }
        var status = call.GetStatus();
        Assert.That(status?.StatusCode, Is.EqualTo(expected));
        Assert.That(status!.Status.Detail, Does.Contain(text));
        await call.DisposeAsync();
    }

    private static byte[] Gzipped(byte[] body)
    {
        var packed = new MemoryStream();
        using (var gz = new System.IO.Compression.GZipStream(packed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true)) gz.Write(body);
        var f = new byte[5 + packed.Length];
        GrpcFraming.WriteHeader(f, (int)packed.Length);
        f[0] = 1;
        packed.ToArray().CopyTo(f, 5);
        return f;
    }

    [Test]
    public async Task UnknownMethod_IsUnimplemented_TrailersOnly()
    {
        await using var hub = await ClusterHub.StartAsync(new HubOptions());
        using var client = GrpcDuplexCall.CreateClient();
        var call = await GrpcDuplexCall.StartAsync(client, hub.Url, "/clusterenv.v1.WorkerHub/Nope");
        call.CompleteRequests();
        var ex = Assert.ThrowsAsync<RpcException>(() => call.ReadHeadersAsync())!;
        Assert.That(ex.StatusCode, Is.EqualTo(StatusCode.Unimplemented));
        await call.DisposeAsync();
    }

    [Test]
    public void WorkerProcess_ExitsOnItsOwn_WhenTheLearnerThatStartedItIsGone()
    {
        using var parent = Process.Start(new ProcessStartInfo("sleep", "60"))!;
        var (file, prefix) = LocalWorkerPool.LocateWorker(null);
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true };
        foreach (var a in prefix.Concat(["--hub", $"http://127.0.0.1:{TestCluster.FreePort()}", "--env", "CartPole-v1", "--parent-pid", parent.Id.ToString()]))
            psi.ArgumentList.Add(a);
        using var worker = Process.Start(psi)!;
        Thread.Sleep(500);
        Assert.That(worker.HasExited, Is.False, "the worker keeps dialling while its parent lives");
        parent.Kill();
        Assert.That(worker.WaitForExit(10_000), Is.True, "the worker exits once its parent is gone");
        Assert.That(worker.StandardError.ReadToEnd(), Does.Contain("is gone"));
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }
    }

    // ---- raw client helpers ----

    internal static Register Register(string id, uint numEnvs, uint version = 1) => new()
    {
        ProtocolVersion = version, WorkerId = id, Token = "t", EnvId = "CartPole-v1", NumEnvs = numEnvs,
        ObservationSpace = SpaceCodec.ToProto(ClusterEnv.Envs.Gym.Make("CartPole-v1").ObservationSpace),
        ActionSpace = SpaceCodec.ToProto(new ClusterEnv.Spaces.Discrete(2)),
    };

    internal static byte[] Frame(IMessage m)
    {
        var body = m.ToByteArray();
        var f = new byte[5 + body.Length];
        GrpcFraming.WriteHeader(f, body.Length);
        body.CopyTo(f, 5);
        return f;
    }

    internal static async Task<GrpcDuplexCall> ConnectRawAsync(HttpClient client, Uri hub, Register register)
    {
        var call = await GrpcDuplexCall.StartAsync(client, hub, ClusterHub.ConnectPath);
        await call.WriteAsync(new WorkerMessage { Register = register }.ToByteArray());
        await call.ReadHeadersAsync();
        return call;
    }

    internal static async Task<HubMessage> ReadOneMessageAsync(GrpcDuplexCall call)
    {
        while (true)
        {
            var read = await call.Responses.ReadAsync();
            var buffer = read.Buffer;
            if (GrpcFraming.TryReadMessage(ref buffer, 1 << 20, out var payload, out _))
            {
                var m = HubMessage.Parser.ParseFrom(payload);
                call.Responses.AdvanceTo(buffer.Start);
                return m;
            }
            call.Responses.AdvanceTo(buffer.Start, buffer.End);
            if (read.IsCompleted) throw new EndOfStreamException("The hub closed the stream.");
        }
    }
}

/// <summary>Transport options that are not on the default path: TLS and compressed messages.</summary>
[NonParallelizable]
public class HubTransportTests
{
    [Test]
    public void Tls_WithACertificate_WorkersConnectOverHttps()
    {
        using var rsa = System.Security.Cryptography.RSA.Create(2048);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=localhost", rsa,
            System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var pfx = Path.GetTempFileName();
        File.WriteAllBytes(pfx, cert.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pfx, "pw"));
        try
        {
            int port = TestCluster.FreePort();
            var worker = Task.Run(async () =>
            {
                await using var w = new WorkerService(new WorkerOptions
                {
                    Hub = new Uri($"https://127.0.0.1:{port}"), EnvId = "CartPole-v1", NumEnvs = 2, WorkerId = "tls0", Token = "t", Insecure = true,
                });
                await w.RunAsync();
            });
            using (var envs = new ClusterVecEnv(new ClusterOptions
                   {
                       EnvId = "CartPole-v1", NumEnvs = 2, NumWorkers = 1, LocalWorkers = false, ConnectTimeout = TimeSpan.FromSeconds(30),
                       Hub = new HubOptions { Port = port, Token = "t", CertificatePath = pfx, CertificatePassword = "pw" },
                   }))
            {
                Assert.That(envs.Hub.Url.Scheme, Is.EqualTo("https"));
                envs.Reset(seed: 0);
                Assert.That(envs.Step(new int[2]).Rewards, Is.EqualTo(new[] { 1.0, 1.0 }));
            }
            Assert.That(worker.Wait(TimeSpan.FromSeconds(10)), Is.True, "the worker ends when the hub closes");
        }
        finally
        {
            File.Delete(pfx);
        }
    }

    [TestCase("gzip")]
    [TestCase("deflate")]
    public async Task CompressedRegister_FromAPeerThatCompresses_IsAccepted(string encoding)
    {
        await using var hub = await ClusterHub.StartAsync(new HubOptions());
        Register? seen = null;
        hub.SetAdmission(w => { seen = w.Registration; return null; });
        using var client = GrpcDuplexCall.CreateClient();
        var call = await GrpcDuplexCall.StartAsync(client, hub.Url, ClusterHub.ConnectPath, [new("grpc-encoding", encoding)]);
        var body = new WorkerMessage { Register = ClusterFaultTests.Register("zipped", 3) }.ToByteArray();
        var packed = new MemoryStream();
        using (Stream z = encoding == "gzip" ? new System.IO.Compression.GZipStream(packed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true)
                                             : new System.IO.Compression.ZLibStream(packed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
            z.Write(body);
        var frame = new byte[5 + packed.Length];
        GrpcFraming.WriteHeader(frame, (int)packed.Length, compressed: true);
        packed.ToArray().CopyTo(frame, 5);
        await call.RequestStream.WriteAsync(frame);
        await call.RequestStream.FlushAsync();
        await call.ReadHeadersAsync();
        Assert.That(seen?.WorkerId, Is.EqualTo("zipped"));
        Assert.That(seen!.NumEnvs, Is.EqualTo(3));
        await call.DisposeAsync();
    }
}
