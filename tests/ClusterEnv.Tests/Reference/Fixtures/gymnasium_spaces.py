#!/usr/bin/python3
"""Writes gymnasium_spaces.json with real Gymnasium (1.3.0): Dict and Tuple samples after seed(s) (Gymnasium seeds each
sub-space with a draw of the composite's own generator), float64 Box samples (bounded: unbounded coordinates use NumPy's
ziggurat normal and exponential streams, which Rng does not reproduce), and resets with seeds beyond 2**31 - 1,
for a single env and a vector env. Gymnasium is imported from its release source tree:

    git -C Gymnasium archive v1.3.0 gymnasium | tar -x -C /tmp/gym130
    PYTHONPATH=/tmp/gym130 /usr/bin/python3 gymnasium_spaces.py > gymnasium_spaces.json

(Debian's python3-numpy, python3-cloudpickle and python3-typing-extensions; farama_notifications may be an empty
module of that name.)
"""
import json
import numpy as np
import gymnasium as gym
from gymnasium.spaces import Box, Dict, Discrete, MultiBinary, MultiDiscrete, Tuple

SEEDS = [0, 1, 7, 42, 12345, 2**40 + 3]


def f32_bits(values):
    return [int(v) for v in np.asarray(values, dtype=np.float32).reshape(-1).view(np.uint32)]


def f64_bits(values):
    return [str(int(v)) for v in np.asarray(values, dtype=np.float64).reshape(-1).view(np.uint64)]


def encode(space, value):
    """A sample as JSON: Box float32 -> uint32 bits, float64 -> uint64 bits (strings), integers as ints."""
    if isinstance(space, Dict):
        return {k: encode(space[k], value[k]) for k in space.keys()}
    if isinstance(space, Tuple):
        return [encode(s, v) for s, v in zip(space.spaces, value)]
    if isinstance(space, Box) and space.dtype == np.float32:
        return f32_bits(value)
    if isinstance(space, Box) and space.dtype == np.float64:
        return f64_bits(value)
    return [int(v) for v in np.asarray(value).reshape(-1)]


def spaces():
    return {
        "dict": Dict({"b": Discrete(5), "a": Box(-1, 1, (2,), np.float32), "c": MultiDiscrete([3, 4])}),
        "tuple": Tuple((Discrete(3, start=-1), Box(-2, 2, (3,), np.float64), MultiBinary(4),
                        Dict({"y": Box(0, 1, (1,), np.float32), "x": Discrete(2)}))),
        "box64": Box(-1.0, 1.0, (3,), np.float64),
    }


out = {"gymnasium": gym.__version__, "numpy": np.__version__, "spaces": [], "resets": []}
for s in SEEDS:
    entry = {"seed": s}
    for name, space in spaces().items():
        space.seed(s)
        entry[name] = [encode(space, space.sample()) for _ in range(4)]
    out["spaces"].append(entry)

for s in [2**31, 2**40 + 3, 2**62 + 11]:
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=s)
    vec = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync")
    vobs, _ = vec.reset(seed=s)
    out["resets"].append({"seed": str(s), "cartpole": f32_bits(obs), "cartpole_vec3": f32_bits(vobs)})

print(json.dumps(out, indent=1))
