using ClusterEnv.Cluster;
using ClusterEnv.Worker;
using Microsoft.Extensions.Logging;
using Grpc.Core;

namespace ClusterEnv.Tests.Cluster;

[NonParallelizable]
public class HubLoggingTests
{
    private sealed class Capture : ILoggerProvider, ILogger
    {
        public readonly List<(string Category, int EventId, LogLevel Level, string Message)> Lines = [];
        private string _category = "";
        public ILogger CreateLogger(string categoryName) => new Capture { _category = categoryName, _lines = Lines };
        private List<(string, int, LogLevel, string)>? _lines;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lines!) _lines.Add((_category, eventId.Id, logLevel, formatter(state, exception)));
        }
        public void Dispose() { }
    }

    [Test]
    public void RegistrationsRefusalsAndLosses_AreLoggedWithStableEventIds_AndTheirReasons()
    {
        var capture = new Capture();
        using var factory = LoggerFactory.Create(b => b.AddProvider(capture).SetMinimumLevel(LogLevel.Trace));
        var (env, workers) = TestCluster.InProcess("CartPole-v1", [1, 1], configure: o => o with { LoggerFactory = factory });
        using (env)
        {
            var rogue = new WorkerService(new WorkerOptions { Hub = env.Hub.Url, EnvId = "CartPole-v1", WorkerId = "rogue", Token = "wrong" });
            Assert.ThrowsAsync<RpcException>(() => rogue.RunAsync());
        }
        List<(string Category, int EventId, LogLevel Level, string Message)> lines;
        lock (capture.Lines) lines = [.. capture.Lines];
        Assert.That(lines.Where(l => l.EventId == 2).Select(l => l.Message), Has.Exactly(2).Contains("registered from 127.0.0.1"));
        var refused = lines.Single(l => l.EventId == 3);
        Assert.That(refused.Level, Is.EqualTo(LogLevel.Warning));
        Assert.That(refused.Message, Does.Contain("'rogue'").And.Contain("Unauthenticated").And.Contain("token does not match").And.Contain("127.0.0.1:"));
        Assert.That(lines.Any(l => l.EventId == 1 && l.Message.Contains("Hub listening")), Is.True);
        Assert.That(lines.Any(l => l.EventId == 7 && l.Message.Contains("All 2 workers")), Is.True);
        Assert.That(lines.All(l => l.Category.StartsWith("ClusterEnv.Cluster.", StringComparison.Ordinal) || l.Category.StartsWith("ClusterEnv.Transport.", StringComparison.Ordinal)), Is.True,
            "the hub and the vector env log under their own namespaces");
    }
}
