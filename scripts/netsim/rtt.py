#!/usr/bin/env python3
"""TCP round trips between netsim hosts (this machine's images have no ping).

  rtt.py serve PORT                 echo every byte back, until killed
  rtt.py measure HOST PORT [COUNT]  COUNT one-byte round trips; prints min/avg/max in ms as JSON
  rtt.py bulk HOST PORT MEGABYTES   send that much to a `serve`r that discards it; prints Mbit/s as JSON
"""
import json
import socket
import sys
import time


def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            first = c.recv(1)
            if first == b"B":  # bulk: read to the end, then acknowledge with one byte
                while c.recv(1 << 20):
                    pass
                c.sendall(b"k")
            elif first:
                c.sendall(first)
                while (b := c.recv(1)):
                    c.sendall(b)
        except OSError:
            pass
        c.close()


def measure(host, port, count):
    c = socket.create_connection((host, port), timeout=10)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(count):
        t = time.perf_counter()
        c.sendall(b"x")
        if c.recv(1) != b"x":
            raise SystemExit("rtt: the echo server closed the connection")
        times.append((time.perf_counter() - t) * 1000)
    c.close()
    times.sort()
    return {"rtt_min_ms": round(times[0], 3), "rtt_median_ms": round(times[len(times) // 2], 3), "rtt_avg_ms": round(sum(times) / len(times), 3), "rtt_max_ms": round(times[-1], 3)}


def bulk(host, port, megabytes):
    c = socket.create_connection((host, port), timeout=60)
    chunk = b"B" * (1 << 20)
    t = time.perf_counter()
    for _ in range(megabytes):
        c.sendall(chunk)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    seconds = time.perf_counter() - t
    return {"megabytes": megabytes, "seconds": round(seconds, 3), "mbit_per_sec": round(megabytes * 8 * 1.048576 / seconds, 2)}


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "measure":
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 20)))
    elif len(sys.argv) >= 5 and sys.argv[1] == "bulk":
        print(json.dumps(bulk(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    else:
        sys.exit(__doc__)
