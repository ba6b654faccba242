"""Renders reference frames with real Gymnasium (pygame) for ClusterEnv's rendering tests.

Usage: GYMNASIUM_SRC=/path/to/Gymnasium python3 render_frames.py OUT_DIR

For each classic-control env, plays N steps (100 for CartPole, 20 for the others, to keep the fixtures small) of random actions from seed 0 (resetting at episode ends), and writes
OUT_DIR/<env id>.json (the float64 states, as exact decimal round trips, and the last action where the frame
depends on it) and OUT_DIR/<env id>.rgb.gz (the N frames, each H*W*3 bytes, gzip). Needs python3-pygame and numpy.
"""
import gzip, json, os, sys

sys.path.insert(0, os.environ.get("GYMNASIUM_SRC", ""))
import numpy as np
import gymnasium as gym

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for env_id in ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]:
    n = 100 if env_id == "CartPole-v1" else 20
    env = gym.make(env_id, render_mode="rgb_array")
    env.action_space.seed(0)
    env.reset(seed=0)
    states, actions, frames = [], [], []
    for _ in range(n):
        a = env.action_space.sample()
        _, _, term, trunc, _ = env.step(a)
        u = env.unwrapped
        states.append([float(v) for v in np.asarray(u.state, dtype=np.float64).ravel()])
        actions.append(float(np.asarray(getattr(u, "last_u", 0.0) or 0.0)))
        f = env.render()
        frames.append(np.ascontiguousarray(f, dtype=np.uint8).tobytes())
        if term or trunc:
            env.reset()
    h, w, _ = f.shape
    with open(os.path.join(out, env_id + ".json"), "w") as fh:
        json.dump({"id": env_id, "height": h, "width": w, "states": states, "last_u": actions}, fh)
    with gzip.open(os.path.join(out, env_id + ".rgb.gz"), "wb", compresslevel=9) as fh:
        for b in frames:
            fh.write(b)
    print(env_id, h, w, len(frames))
