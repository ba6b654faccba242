"""Reference outputs of Gymnasium 1.3.0's image wrappers (OpenCV 4.6 and NumPy 1.24 from Debian) for ClusterEnv's tests.

Usage: GYMNASIUM_SRC=/path/to/Gymnasium python3 image_wrappers.py OUT_DIR

Writes OUT_DIR/image_wrappers.json (cases) and OUT_DIR/image_wrappers.bin.gz (their bytes, in the order listed):
- resize: random uint8 images (seeded) resized with cv2.INTER_AREA as ResizeObservation does;
- gray: random RGB images through GrayscaleObservation's formula;
- pipeline: CartPole-v1 rendered, grayscaled, resized to 84x84 and stacked 4 deep (padding "reset" and "zero"),
  for a fixed action sequence from seed 3.
"""
import gzip, json, os, sys

sys.path.insert(0, os.environ.get("GYMNASIUM_SRC", ""))
import cv2
import numpy as np
import gymnasium as gym
from gymnasium.wrappers import AddRenderObservation, FrameStackObservation, GrayscaleObservation, ResizeObservation

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(12345)
cases, blobs = [], []

for (h, w, c, oh, ow) in [(37, 53, 1, 11, 20), (37, 53, 3, 11, 20), (160, 240, 1, 84, 84), (120, 180, 3, 84, 84),
                          (84, 84, 1, 42, 42), (64, 64, 1, 16, 16), (84, 84, 3, 42, 42), (90, 60, 1, 30, 20), (64, 64, 3, 64, 64), (100, 7, 1, 33, 7), (210, 160, 1, 84, 84)]:
    img = rng.integers(0, 256, size=(h, w, c) if c > 1 else (h, w), dtype=np.uint8)
    res = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_AREA)
    cases.append({"kind": "resize", "shape": [h, w, c], "out": [oh, ow]})
    blobs += [img.tobytes(), res.tobytes()]

img = rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
gray = np.sum(np.multiply(img, np.array([0.2125, 0.7154, 0.0721])), axis=-1).astype(np.uint8)
cases.append({"kind": "gray", "shape": [50, 70, 3]})
blobs += [img.tobytes(), gray.tobytes()]

actions = [int(a) for a in np.random.default_rng(7).integers(0, 2, size=40)]
for padding in ["reset", "zero"]:
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env = FrameStackObservation(ResizeObservation(GrayscaleObservation(AddRenderObservation(env)), (84, 84)), 4, padding_type=padding)
    obs, _ = env.reset(seed=3)
    frames = [obs.tobytes()]
    for a in actions:
        obs, _, term, trunc, _ = env.step(a)
        frames.append(obs.tobytes())
        if term or trunc:
            obs, _ = env.reset()
            frames.append(obs.tobytes())
    cases.append({"kind": "pipeline", "padding": padding, "actions": actions, "frames": len(frames), "shape": list(obs.shape)})
    blobs += frames

with open(os.path.join(out, "image_wrappers.json"), "w") as fh:
    json.dump(cases, fh)
with gzip.open(os.path.join(out, "image_wrappers.bin.gz"), "wb", compresslevel=9) as fh:
    for b in blobs:
        fh.write(b)
print(len(cases), "cases", sum(len(b) for b in blobs), "bytes")
