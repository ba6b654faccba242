#!/usr/bin/python3
"""Writes numpy_seeding.json: NumPy's streams and Gymnasium's seeded start states and space samples, computed with
Debian's NumPy (the same SeedSequence and PCG64 as any NumPy >= 1.17) by following each env's reset code and each
space's sample code in Gymnasium 1.x (gymnasium/envs/classic_control/*.py, gymnasium/spaces/*.py). Gymnasium itself is
not imported: its seeding is np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed))).

    /usr/bin/python3 numpy_seeding.py > numpy_seeding.json
"""
import json
import numpy as np

SEEDS = [0, 1, 7, 42, 12345, 2**31 - 1, 2**40 + 3]


def gen(seed):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))


def f32_bits(values):
    return [int(v) for v in np.asarray(values, dtype=np.float32).view(np.uint32)]


out = {"numpy": np.__version__, "streams": [], "envs": {}, "spaces": []}

for s in SEEDS:
    g = gen(s)
    u64 = [str(int(v)) for v in g.integers(0, 2**64, size=4, dtype=np.uint64, endpoint=False)]
    g = gen(s)
    rnd = [float(g.random()) for _ in range(4)]
    g = gen(s)
    ints = [int(g.integers(10)) for _ in range(6)] + [int(g.integers(-5, 3)) for _ in range(4)] + [int(g.integers(2**40)) for _ in range(2)]
    g = gen(s)
    bytes_ = [int(v) for v in g.integers(0, 2, size=9, dtype=np.int8)] + [int(v) for v in g.integers(0, 7, size=5, dtype=np.int8)]
    out["streams"].append({"seed": s, "uint64": u64, "random": [repr(v) for v in rnd], "integers": ints, "int8": bytes_})

envs = {"CartPole-v1": [], "Acrobot-v1": [], "Pendulum-v1": [], "MountainCar-v0": [], "MountainCarContinuous-v0": []}
for s in SEEDS:
    # CartPole: state = uniform(-0.05, 0.05, size=(4,)); obs = float32(state)
    g = gen(s)
    state = g.uniform(low=-0.05, high=0.05, size=(4,))
    envs["CartPole-v1"].append({"seed": s, "obs": f32_bits(np.array(state, dtype=np.float32))})
    # Acrobot: state = uniform(-0.1, 0.1, size=(4,)).astype(float32); obs = [cos s0, sin s0, cos s1, sin s1, s2, s3]
    g = gen(s)
    st = g.uniform(low=-0.1, high=0.1, size=(4,)).astype(np.float32)
    obs = np.array([np.cos(st[0]), np.sin(st[0]), np.cos(st[1]), np.sin(st[1]), st[2], st[3]], dtype=np.float32)
    envs["Acrobot-v1"].append({"seed": s, "state": f32_bits(st), "obs": f32_bits(obs)})
    # Pendulum: high = [pi, 1]; state = uniform(-high, high); obs = [cos th, sin th, thdot]
    g = gen(s)
    high = np.array([np.pi, 1.0])
    th, thdot = g.uniform(low=-high, high=high)
    envs["Pendulum-v1"].append({"seed": s, "state": [repr(float(th)), repr(float(thdot))],
                                "obs": f32_bits(np.array([np.cos(th), np.sin(th), thdot], dtype=np.float32))})
    # MountainCar (both): state = [uniform(-0.6, -0.4), 0]
    for name in ("MountainCar-v0", "MountainCarContinuous-v0"):
        g = gen(s)
        st = np.array([g.uniform(low=-0.6, high=-0.4), 0])
        envs[name].append({"seed": s, "obs": f32_bits(np.array(st, dtype=np.float32))})
out["envs"] = envs

for s in SEEDS[:5]:
    entry = {"seed": s}
    g = gen(s)
    entry["discrete5"] = [int(0 + g.integers(5, dtype=np.int64)) for _ in range(12)]
    g = gen(s)
    entry["discrete3_start_minus1"] = [int(-1 + g.integers(3, dtype=np.int64)) for _ in range(12)]
    # Box(-1, 1, (3,), float32): uniform(low, high, size) then astype(float32)
    g = gen(s)
    low = np.full(3, -1, dtype=np.float32); high = np.full(3, 1, dtype=np.float32)
    entry["box3"] = [f32_bits(g.uniform(low=low, high=high, size=(3,)).astype(np.float32)) for _ in range(4)]
    # Box(low=[-2, 0], high=[2, 10], int64): high + 1, floor
    g = gen(s)
    low = np.array([-2, 0], dtype=np.int64); high = np.array([2, 10], dtype=np.int64) + 1
    entry["box_int"] = [[int(v) for v in np.floor(g.uniform(low=low, high=high, size=(2,))).astype(np.int64)] for _ in range(6)]
    # MultiDiscrete([3, 5, 2]): (random(shape) * nvec).astype(int64) + start
    g = gen(s)
    nvec = np.array([3, 5, 2])
    entry["multidiscrete"] = [[int(v) for v in (g.random(nvec.shape) * nvec).astype(np.int64)] for _ in range(5)]
    # MultiBinary(6): integers(0, 2, size=6, dtype=int8)
    g = gen(s)
    entry["multibinary6"] = [[int(v) for v in g.integers(low=0, high=2, size=6, dtype=np.int8)] for _ in range(5)]
    out["spaces"].append(entry)

print(json.dumps(out, indent=1))
