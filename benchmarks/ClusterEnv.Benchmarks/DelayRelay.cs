using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ClusterEnv.Benchmarks;

/// <summary>
/// A TCP relay for the benchmark harness (not the product) that holds every chunk for a fixed one-way delay before
/// forwarding it, so a loopback run sees a cluster network's round-trip time. Two threads per connection, one per
/// direction; a chunk is forwarded once its delay has passed (waiting by yielding, which is precise to tens of µs).
/// </summary>
public sealed class DelayRelay : IDisposable
{
    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly long _delayTicks;
    private readonly List<Socket> _sockets = [];
    private volatile bool _stopped;

    /// <summary>Listens on a free loopback port and relays to <paramref name="target"/> with <paramref name="oneWayDelay"/> each way.</summary>
    public DelayRelay(IPEndPoint target, TimeSpan oneWayDelay)
    {
        _target = target;
        _delayTicks = (long)(oneWayDelay.TotalSeconds * Stopwatch.Frequency);
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(16);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        new Thread(AcceptLoop) { IsBackground = true, Name = "relay-accept" }.Start();
    }

    /// <summary>The port to dial instead of the target's.</summary>
    public int Port { get; }

    private void AcceptLoop()
    {
        while (!_stopped)
        {
            Socket client;
            try { client = _listener.Accept(); }
            catch (SocketException) { return; }
            catch (ObjectDisposedException) { return; }
            var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            server.Connect(_target);
            client.NoDelay = true;
            lock (_sockets) _sockets.AddRange([client, server]);
            new Thread(() => Pump(client, server)) { IsBackground = true }.Start();
            new Thread(() => Pump(server, client)) { IsBackground = true }.Start();
        }
    }

    private void Pump(Socket from, Socket to)
    {
        var buffer = new byte[256 * 1024];
        try
        {
            while (true)
            {
                int n = from.Receive(buffer);
                if (n == 0) break;
                long due = Stopwatch.GetTimestamp() + _delayTicks;
                while (Stopwatch.GetTimestamp() < due) Thread.Yield();
                to.Send(buffer, 0, n, SocketFlags.None);
            }
        }
        catch (SocketException) { }
        catch (ObjectDisposedException) { }
        try { to.Shutdown(SocketShutdown.Send); } catch (SocketException) { } catch (ObjectDisposedException) { }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stopped = true;
        _listener.Dispose();
        lock (_sockets) foreach (var s in _sockets) s.Dispose();
    }
}
