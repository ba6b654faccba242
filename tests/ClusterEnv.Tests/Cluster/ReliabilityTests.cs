using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using ClusterEnv.Cluster;
using ClusterEnv.Policies;
using ClusterEnv.Transport;
using ClusterEnv.Tests.Transport;
using Grpc.Core;

namespace ClusterEnv.Tests.Cluster;

/// <summary>
/// Faults found by chaos testing (issue 9): concurrent rollouts losing episodes, long rollouts called hung, pushes
/// blocking on a full window, non-finite weights, silent workers, idle sockets, oversized rollouts, refused replacements.
/// </summary>
[NonParallelizable]
public class ReliabilityTests
{
    private const int Sigstop = 19, Sigcont = 18;

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    [OneTimeSetUp]
    public void RegisterTestEnvs() => TestEnvs.Register();

    private static PolicySpec SpecOf(ClusterVecEnv env, int[]? hidden = null) => PolicySpec.For(env.SingleObservationSpace, env.SingleActionSpace, hidden);

    private static void PushToAll(ClusterVecEnv env, ulong version, ActorCritic policy)
    {
        for (int w = 0; w < env.Workers.Count; w++) env.Policies.Push(w, version, policy.Spec, policy.Parameters);
        env.Policies.WaitForAcks();
    }

    [Test]
    public void RolloutEpisodes_FromEightWorkersReplyingAtOnce_AreEachCountedExactlyOnce()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", Enumerable.Repeat(2, 8).ToArray());
        using (env)
        {
            PushToAll(env, 1, new ActorCritic(SpecOf(env), seed: 3));
            env.Reset(seed: 0);
            int episodes = 0;
            for (int r = 0; r < 100; r++)
            {
                var b = env.Rollouts.Collect(64);
                // An episode ends exactly where a sub-env terminates or truncates, and each end has one record.
                var ends = new List<(int, int)>();
                for (int t = 0; t < b.Steps; t++)
                    for (int i = 0; i < b.NumEnvs; i++)
                        if (b.Terminated[t * b.NumEnvs + i] || b.Truncated[t * b.NumEnvs + i]) ends.Add((t, i));
                var records = b.Episodes.Select(e => (e.Step, e.Env)).ToList();
                Assert.That(records, Is.EqualTo(ends), $"rollout {r}: every episode end has exactly one record, in (step, env) order");
                episodes += records.Count;
            }
            Assert.That(episodes, Is.GreaterThan(1000), "the check covered many episodes");
        }
    }

    [Test]
    public void ARolloutLongerThanStepTimeout_Succeeds_BecauseTheWorkerReportsProgress()
    {
        var timeout = TimeSpan.FromSeconds(2);
        var (env, _) = TestCluster.InProcess(TestEnvs.Slow, [1], stepTimeout: timeout);
        using (env)
        {
            PushToAll(env, 1, new ActorCritic(SpecOf(env), seed: 1));
            env.Reset(seed: 0);
            var sw = Stopwatch.StartNew();
            var b = env.Rollouts.Collect(800); // at least 800 × 5 ms = 4 s of sleeping in the env
            Assert.That(sw.Elapsed, Is.GreaterThan(timeout * 1.5), "the rollout really outlasted StepTimeout");
            Assert.That(b.Rewards, Is.All.EqualTo(1.0));
            Assert.That(b.PolicyVersion, Is.All.EqualTo(1UL));
            Assert.DoesNotThrow(() => env.Rollouts.Collect(2), "the vector env is still usable");
        }
    }

    [Test]
    [Category("Process")]
    public void AStoppedWorker_IsStillFound_DuringALongRollout()
    {
        using var env = new ClusterVecEnv(new ClusterOptions
        {
            EnvId = "CartPole-v1", NumEnvs = 2, NumWorkers = 2, StepTimeout = TimeSpan.FromSeconds(3), CloseTimeout = TimeSpan.FromSeconds(1),
        });
        PushToAll(env, 1, new ActorCritic(SpecOf(env), seed: 1));
        env.Reset(seed: 0);
        var victim = env.Pool!.ProcessOf("worker-001")!;
        try
        {
            var collecting = Task.Run(() => env.Rollouts.Collect(300_000));
            var wait = Stopwatch.StartNew();
            while (env.OutstandingCommands(1) == 0 && wait.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(1);
            Thread.Sleep(300); // well inside the rollout
            Assert.That(kill(victim.Id, Sigstop), Is.Zero);
            var stopped = Stopwatch.StartNew();
            var ex = Assert.Throws<AggregateException>(() => collecting.Wait())!.InnerException;
            Assert.That(ex, Is.TypeOf<WorkerTimeoutException>());
            Assert.That(((WorkerTimeoutException)ex!).WorkerIds, Is.EqualTo(new[] { "worker-001" }));
            Assert.That(ex.Message, Does.Contain("no progress").And.Contain("StepTimeout"));
            Assert.That(stopped.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)), "found within StepTimeout of its last progress, not at the end of the rollout");
        }
        finally
        {
            kill(victim.Id, Sigcont);
        }
    }

    [Test]
    public void PushPolicy_ReturnsAtOnce_WhileTheWorkerIsBusyAndItsWindowIsFull_AndTheNewestVersionWins()
    {
        var (env, _) = TestCluster.InProcess(TestEnvs.Slow, [1], stepTimeout: TimeSpan.FromSeconds(30), envArgs: _ => new() { ["ms"] = "1" });
        using (env)
        {
            var spec = SpecOf(env, hidden: [512, 512]); // about 1 MB per push: two fill the 2 MiB gRPC window or the 1 MiB shared-memory ring
            var policy = new ActorCritic(spec, seed: 1);
            PushToAll(env, 1, policy);
            env.Reset(seed: 0);
            var collecting = Task.Run(() => env.Rollouts.Collect(4000)); // at least 4 s, during which the worker does not read
            var wait = Stopwatch.StartNew();
            while (env.OutstandingCommands(0) == 0 && wait.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(1);
            for (ulong v = 2; v <= 21; v++) env.Policies.Push(0, v, spec, policy.Parameters);
            Assert.That(collecting.IsCompleted, Is.False, "all 20 pushes (20 MB) returned while the rollout still held the window full");
            var state = env.Policies.States[0];
            Assert.That(state.Coalesced, Is.GreaterThan(0), "pushes that could not be sent were replaced by newer ones, not queued without bound");
            Assert.That(collecting.Result.PolicyVersion, Is.All.EqualTo(1UL), "the rollout in progress kept its version");
            env.Policies.WaitForAcks();
            Assert.That(state.ActiveVersion, Is.EqualTo(21UL), "the newest push is the one the worker acts with");
            Assert.That(state.Pushes + state.Coalesced, Is.EqualTo(21), "every push was either sent or replaced");
            Assert.That(env.Rollouts.Collect(2).PolicyVersion, Is.All.EqualTo(21UL));
        }
    }

    [Test]
    public void WaitForAcks_ByDefault_WaitsForAWorkerBusyLongerThanStepTimeout_WhileItReportsProgress_ButAnExplicitTimeoutHolds()
    {
        // Once, the default was StepTimeout of wall time: a push owed by a worker in a long rollout failed at StepTimeout.
        var (env, _) = TestCluster.InProcess(TestEnvs.Slow, [1], stepTimeout: TimeSpan.FromSeconds(2), envArgs: _ => new() { ["ms"] = "1" });
        using (env)
        {
            var spec = SpecOf(env, hidden: [8]);
            var policy = new ActorCritic(spec, seed: 1);
            PushToAll(env, 1, policy);
            env.Reset(seed: 0);
            var collecting = Task.Run(() => env.Rollouts.Collect(5000)); // at least 5 s, reporting progress every 0.5 s
            var wait = Stopwatch.StartNew();
            while (env.OutstandingCommands(0) == 0 && wait.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(1);
            env.Policies.Push(0, 2, spec, policy.Parameters); // acknowledged only when the rollout ends
            Assert.That(() => env.Policies.WaitForAcks(TimeSpan.FromMilliseconds(200)), Throws.TypeOf<WorkerTimeoutException>()
                .With.Message.Contains("not acknowledged within 0.2 s").And.Message.Contains("worker 'w0'"), "an explicit timeout is wall time");
            var waited = Stopwatch.StartNew();
            env.Policies.WaitForAcks();
            Assert.That(env.Policies.States[0].ActiveVersion, Is.EqualTo(2UL));
            Assert.That(waited.Elapsed, Is.GreaterThan(TimeSpan.FromSeconds(2)), "it waited past StepTimeout, as long as the worker was heard");
            Assert.That(collecting.Result.PolicyVersion, Is.All.EqualTo(1UL));
        }
    }

    [Test]
    public void NonFiniteWeights_AreRefusedByTheLearnerAndByTheWorker_NamingTheIndex()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [1, 1]);
        using (env)
        {
            var policy = new ActorCritic(SpecOf(env), seed: 1);
            PushToAll(env, 1, policy);
            var bad = policy.Parameters.ToArray();
            bad[17] = float.NaN;
            var ex = Assert.Throws<ArgumentException>(() => env.Policies.Push(0, 2, policy.Spec, bad))!;
            Assert.That(ex.Message, Does.Contain("Weight 17 of").And.Contain("NaN"));
            bad[17] = 0;
            bad[bad.Length - 1] = float.PositiveInfinity;
            Assert.That(() => env.Policies.Push(0, 2, policy.Spec, bad), Throws.ArgumentException.With.Message.Contain($"Weight {bad.Length - 1} of"));

            // A learner that skips the check (an older release, another language) meets the worker's own.
            env.Policies.PushUnchecked(1, 2, policy.Spec, bad);
            var refused = Assert.Throws<PolicyRejectedException>(() => env.Policies.WaitForAcks())!;
            Assert.That(refused.Message, Does.Contain($"Parameter {bad.Length - 1} of").And.Contain("keeps acting with version 1"));
            env.Reset(seed: 0);
            var b = env.Rollouts.Collect(8);
            Assert.That(b.PolicyVersion, Is.All.EqualTo(1UL));
            Assert.That(b.LogProbs.All(float.IsFinite), Is.True, "both workers still act with finite weights");
        }
    }

    [Test]
    [Category("Process")]
    public void AStoppedWorker_IsReportedAsSilent_AndAKilledOneAsCrashed()
    {
        using var env = new ClusterVecEnv(new ClusterOptions
        {
            EnvId = "CartPole-v1", NumEnvs = 2, NumWorkers = 2, CloseTimeout = TimeSpan.FromSeconds(1),
            Hub = new HubOptions { HeartbeatInterval = TimeSpan.FromSeconds(1), HeartbeatTimeout = TimeSpan.FromSeconds(1) },
        });
        env.Reset(seed: 0);
        var victim = env.Pool!.ProcessOf("worker-001")!;
        try
        {
            Assert.That(kill(victim.Id, Sigstop), Is.Zero);
            var sw = Stopwatch.StartNew();
            var ex = Assert.Throws<WorkerLostException>(() =>
            {
                while (true)
                {
                    env.Step(new int[2]);
                    Thread.Sleep(5);
                }
            })!;
            Assert.That(ex.WorkerId, Is.EqualTo("worker-001"));
            Assert.That(ex.Reason, Does.Contain("stopped answering heartbeats").And.Contain("stopped or frozen"));
            Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(1 + 1 + 3 + 3)), "within HeartbeatInterval + HeartbeatTimeout + 3 s, as documented");
        }
        finally
        {
            kill(victim.Id, Sigcont);
        }

        using var env2 = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 2, NumWorkers = 2 });
        env2.Reset(seed: 0);
        var crashed = env2.Pool!.ProcessOf("worker-000")!;
        crashed.Kill();
        crashed.WaitForExit();
        var lost = Assert.Throws<WorkerLostException>(() => { for (int t = 0; t < 100_000; t++) env2.Step(new int[2]); })!;
        Assert.That(lost.Reason, Does.Contain("exited or crashed"));
    }

    [Test]
    public void IdleAndNeverRegisteringConnections_AreClosed_AndTheirNumberIsCapped()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [1],
            configure: o => o with { Hub = o.Hub with { IdleTimeout = TimeSpan.FromSeconds(1), MaxConnections = 8 } });
        using (env)
        {
            var hub = env.Hub.Url;
            var sockets = new List<Socket>();
            try
            {
                // One connection is the worker's; open 12 more: 10 never send a byte, 2 send the HTTP/2 preface and
                // then never open a stream.
                for (int i = 0; i < 12; i++)
                {
                    var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    s.Connect(IPAddress.Loopback, hub.Port);
                    if (i >= 10) s.Send([.. "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8, 0, 0, 0, 4, 0, 0, 0, 0, 0]); // preface + empty SETTINGS
                    sockets.Add(s);
                }
                var sw = Stopwatch.StartNew();
                var closedAt = new TimeSpan?[sockets.Count];
                while (closedAt.Any(c => c is null) && sw.Elapsed < TimeSpan.FromSeconds(30))
                {
                    for (int i = 0; i < sockets.Count; i++)
                        if (closedAt[i] is null && IsClosedByPeer(sockets[i])) closedAt[i] = sw.Elapsed;
                    Thread.Sleep(20);
                }
                Assert.That(closedAt, Is.All.Not.Null, "every idle connection is closed by the hub");
                Assert.That(closedAt.Count(c => c < TimeSpan.FromSeconds(0.5)), Is.GreaterThanOrEqualTo(12 - 7),
                    "connections beyond MaxConnections (8, one of them the worker's) are refused at once");
                Assert.That(closedAt.Max(), Is.LessThan(TimeSpan.FromSeconds(15)), "the others after IdleTimeout (1 s), not Kestrel's 130 s");
                env.Reset(seed: 0);
                Assert.DoesNotThrow(() => env.Step(new int[1]), "the registered worker's connection is not idle and stays open");
            }
            finally
            {
                foreach (var s in sockets) s.Dispose();
            }
        }
    }

    private static bool IsClosedByPeer(Socket s)
    {
        try
        {
            // Readable with nothing to read means the peer closed (or reset) the connection.
            return s.Poll(0, SelectMode.SelectRead) && s.Receive(new byte[64], SocketFlags.Peek) == 0;
        }
        catch (SocketException) { return true; }
    }

    [Test]
    public void ARolloutThatCannotBeSent_IsRefusedBeforeAnyWork_WithTheLargestThatFits()
    {
        var (env, _) = TestCluster.InProcess("CartPole-v1", [2, 2],
            configure: o => o with { Hub = o.Hub with { MaxMessageSize = 64 * 1024 } });
        using (env)
        {
            PushToAll(env, 1, new ActorCritic(SpecOf(env), seed: 1));
            env.Reset(seed: 0);
            var sw = Stopwatch.StartNew();
            var ex = Assert.Throws<ArgumentOutOfRangeException>(() => env.Rollouts.Collect(2000))!;
            Assert.That(ex.Message, Does.Contain("HubOptions.MaxMessageSize").And.Contain("Collect at most"));
            var huge = Assert.Throws<ArgumentOutOfRangeException>(() => env.Rollouts.Collect(300_000_000))!;
            Assert.That(huge.Message, Does.Contain("MiB"), "no raw OverflowException");
            int fits = int.Parse(System.Text.RegularExpressions.Regex.Match(ex.Message, @"Collect at most ([\d,]+) steps").Groups[1].Value.Replace(",", ""),
                System.Globalization.CultureInfo.InvariantCulture);
            Assert.That(fits, Is.InRange(100, 1999));
            Assert.That(env.OutstandingCommands(0) + env.OutstandingCommands(1), Is.Zero, "nothing was sent to the workers");
            Assert.DoesNotThrow(() => env.Rollouts.Collect(fits / 2), "the env stays usable, and a rollout that fits goes through");
        }
    }

    [Test]
    public void WhileTheLearnerWaits_RefusedWorkersAreNamedWithTheirReason()
    {
        int port = TestCluster.FreePort();
        var waiting = Task.Run(() => new ClusterVecEnv(new ClusterOptions
        {
            EnvId = "CartPole-v1", NumWorkers = 1, LocalWorkers = false, ConnectTimeout = TimeSpan.FromSeconds(3),
            Hub = new HubOptions { Port = port, Token = "right" },
        }));
        var rogue = new ClusterEnv.Worker.WorkerService(new ClusterEnv.Worker.WorkerOptions
        {
            Hub = new Uri($"http://127.0.0.1:{port}"), EnvId = "CartPole-v1", WorkerId = "rogue", Token = "wrong", ConnectTimeout = TimeSpan.FromSeconds(20),
        });
        Assert.ThrowsAsync<RpcException>(() => rogue.RunAsync());
        var ex = Assert.Throws<AggregateException>(() => waiting.Wait())!.InnerException!;
        Assert.That(ex, Is.TypeOf<WorkerTimeoutException>());
        Assert.That(ex.Message, Does.Contain("Only 0 of 1 workers").And.Contain("1 refused: 'rogue' from 127.0.0.1").And.Contain("token does not match"));
    }

    [Test]
    public void CommandsWaitForTheHubToSendItsHeaders_EvenWhenAdmissionRacesAhead()
    {
        // The learner may be told "all workers are in" while the hub is still setting a worker's response headers;
        // a Welcome written then would race the headers. Widen that window and check nothing is lost.
        var (env, _) = TestCluster.InProcess("CartPole-v1", [1, 1],
            configure: o => o with { Hub = o.Hub with { DelayBeforeHeadersForTests = TimeSpan.FromMilliseconds(300) } });
        using (env)
        {
            env.Reset(seed: 0);
            Assert.That(env.Step(new int[2]).Observations, Has.Length.EqualTo(8));
        }
    }

    [Test]
    [Category("Process")]
    public void AReplacementForALostWorker_IsToldTheVectorEnvLostOne_NotThatItIsFull()
    {
        using var env = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 2, NumWorkers = 2, Hub = new HubOptions { Token = "t" } });
        env.Reset(seed: 0);
        var victim = env.Pool!.ProcessOf("worker-001")!;
        victim.Kill();
        victim.WaitForExit();
        Assert.Throws<WorkerLostException>(() => { for (int t = 0; t < 100_000; t++) env.Step(new int[2]); });
        using var client = GrpcDuplexCall.CreateClient();
        var refused = Assert.ThrowsAsync<RpcException>(() => ClusterFaultTests.ConnectRawAsync(client, env.Hub.Url, ClusterFaultTests.Register("worker-009", 1)))!;
        Assert.That(refused.StatusCode, Is.EqualTo(StatusCode.FailedPrecondition));
        Assert.That(refused.Status.Detail, Does.Contain("lost worker 'worker-001'").And.Contain("does not take replacements").And.Contain("1 live: worker-000"));
    }
}
