#!/usr/bin/env python3
"""Point-to-point links with a delay, jitter, loss and a bandwidth, between network namespaces, in user space.

Each link is a pair of TUN devices, one in each namespace (netsim.sh creates them). This program holds both ends
open and forwards every IP packet from one to the other after the link's one-way delay, as a wire would:

  departure = max(arrival, link free)            (a FIFO transmit queue; tail drop beyond --queue-ms of backlog)
  link free = departure + size * 8 / rate        (serialisation at the link's rate)
  delivery  = link free + rtt/2 + U(-jitter, +jitter), never before the previous packet's (no reordering)

and drops a packet with probability --loss before it enters the queue. It exists because the kernels this project
runs on (Firecracker VMs) have no sch_netem; tbf alone cannot add delay. Timing is by time.sleep, late by tens of
µs under load: netsim.sh's `ping` reports the round trip a run really saw.

Python's standard library only (ctypes for setns). Root only. It writes per-link counters (packets, bytes, drops each
way) as JSON to --stats every second and on SIGTERM/SIGINT, when it exits.
"""
import argparse
import collections
import ctypes
import fcntl
import json
import os
import random
import signal
import struct
import sys
import threading
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def open_tun(netns, device):
    """Opens the persistent TUN `device` that lives in namespace `netns` (the fd stays bound to it)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns}")
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", device.encode(), IFF_TUN | IFF_NO_PI))
        return fd
    finally:
        libc.setns(home, CLONE_NEWNET)
        os.close(home)
        os.close(target)


class Direction:
    """One way of a link: reads packets from `src`, writes them to `dst` when the wire would deliver them."""

    def __init__(self, name, src, dst, one_way_s, jitter_s, loss, rate_bps, queue_s, seed):
        self.name, self.src, self.dst = name, src, dst
        self.delay, self.jitter, self.loss, self.rate = one_way_s, jitter_s, loss, rate_bps
        self.queue_s = queue_s
        self.rng = random.Random(seed)
        self.pending = collections.deque()
        self.cv = threading.Condition()
        self.link_free = 0.0
        self.last_delivery = 0.0
        self.packets = self.bytes = self.lost = self.tail_dropped = 0

    def start(self):
        threading.Thread(target=self.receive, daemon=True, name=f"{self.name}-rx").start()
        threading.Thread(target=self.deliver, daemon=True, name=f"{self.name}-tx").start()

    def receive(self):
        while True:
            packet = os.read(self.src, 65536)
            now = time.monotonic()
            if self.loss > 0 and self.rng.random() < self.loss:
                self.lost += 1
                continue
            departure = max(now, self.link_free)
            if self.rate > 0 and departure - now > self.queue_s:
                self.tail_dropped += 1
                continue
            self.link_free = departure + (len(packet) * 8 / self.rate if self.rate > 0 else 0.0)
            delivery = self.link_free + self.delay
            if self.jitter > 0:
                delivery += self.rng.uniform(-self.jitter, self.jitter)
            delivery = max(delivery, self.last_delivery, now)
            self.last_delivery = delivery
            self.packets += 1
            self.bytes += len(packet)
            with self.cv:
                self.pending.append((delivery, packet))
                self.cv.notify()

    def deliver(self):
        while True:
            with self.cv:
                while not self.pending:
                    self.cv.wait()
                at, packet = self.pending.popleft()
            wait = at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                os.write(self.dst, packet)
            except OSError:
                pass  # the far end is down (namespace torn down): the wire drops it


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--link", action="append", required=True, metavar="NS_A:DEV_A:NS_B:DEV_B",
                   help="a link between TUN device DEV_A in namespace NS_A and DEV_B in NS_B (repeatable)")
    p.add_argument("--rtt-ms", type=float, default=0.0, help="round-trip delay added by each link (half each way)")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="uniform jitter (±) on each one-way delay; packets stay in order")
    p.add_argument("--loss", type=float, default=0.0, help="probability that a packet is dropped, each way")
    p.add_argument("--rate-mbit", type=float, default=0.0, help="link rate in Mbit/s each way (0: unlimited)")
    p.add_argument("--queue-ms", type=float, default=50.0, help="transmit backlog, in ms at the link rate, beyond which packets are tail-dropped")
    p.add_argument("--seed", type=int, default=0, help="seed for loss and jitter")
    p.add_argument("--stats", help="write per-link counters as JSON here on exit")
    p.add_argument("--ready", help="create this file once every link is up")
    a = p.parse_args()
    if not 0 <= a.loss < 1:
        sys.exit(f"linkemu: --loss {a.loss} must be in [0, 1)")
    if min(a.rtt_ms, a.jitter_ms, a.rate_mbit, a.queue_ms) < 0:
        sys.exit("linkemu: --rtt-ms, --jitter-ms, --rate-mbit and --queue-ms must be >= 0")

    directions = []
    for i, spec in enumerate(a.link):
        parts = spec.split(":")
        if len(parts) != 4:
            sys.exit(f"linkemu: --link '{spec}' must be NS_A:DEV_A:NS_B:DEV_B")
        ns_a, dev_a, ns_b, dev_b = parts
        fa, fb = open_tun(ns_a, dev_a), open_tun(ns_b, dev_b)
        common = dict(one_way_s=a.rtt_ms / 2000, jitter_s=a.jitter_ms / 1000, loss=a.loss, rate_bps=a.rate_mbit * 1e6, queue_s=a.queue_ms / 1000)
        directions.append(Direction(f"{dev_a}>{dev_b}", fa, fb, seed=a.seed * 1000 + 2 * i, **common))
        directions.append(Direction(f"{dev_b}>{dev_a}", fb, fa, seed=a.seed * 1000 + 2 * i + 1, **common))
    for d in directions:
        d.start()

    def write_stats():
        if not a.stats:
            return
        with open(a.stats + ".tmp", "w") as f:
            json.dump({d.name: {"packets": d.packets, "bytes": d.bytes, "lost": d.lost, "tail_dropped": d.tail_dropped} for d in directions}, f)
        os.replace(a.stats + ".tmp", a.stats)

    def every_second():
        while True:
            time.sleep(1)
            write_stats()

    def stop(*_):
        write_stats()
        os._exit(0)

    threading.Thread(target=every_second, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if a.ready:
        open(a.ready, "w").close()
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
