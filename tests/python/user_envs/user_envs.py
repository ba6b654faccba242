"""A user's own Gymnasium envs, never registered: the Python worker serves them as `user_envs:Corridor` and
`user_envs:Flaky` (module:Class). Written against Gymnasium's public API, so they run on the real one and on the stand-in."""
import numpy as np
import gymnasium as gym


class Corridor(gym.Env):
    """Ten cells; action 1 moves right, 0 left; reward 1 and termination at cell 9. Observation: [position / 9]."""

    metadata = {"render_modes": []}

    def __init__(self, length=10):
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float64)
        self.action_space = gym.spaces.Discrete(2)
        self.pos = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = int(self.np_random.integers(0, 4))
        return np.array([self.pos / (self.length - 1)], dtype=np.float64), {}

    def step(self, action):
        self.pos = min(max(self.pos + (1 if int(action) == 1 else -1), 0), self.length - 1)
        done = self.pos == self.length - 1
        return np.array([self.pos / (self.length - 1)], dtype=np.float64), 1.0 if done else -0.01, done, False, {}


class Flaky(Corridor):
    """A Corridor that raises in step when it was reset with seed 101 (so one chosen sub-env fails)."""

    def reset(self, *, seed=None, options=None):
        self.fail = seed == 101
        return super().reset(seed=seed, options=options)

    def step(self, action):
        if self.fail:
            raise RuntimeError("Flaky: the simulator lost its state (seed 101)")
        return super().step(action)


class Frames(Corridor):
    """A Corridor seen as images: (2, 8, 8) uint8 frames, channel 0 lit (255) at the position's column and 7 elsewhere,
    channel 1 holding 32 × the step count (mod 256), so every byte value the test reads back is known."""

    def __init__(self, length=10):
        super().__init__(length)
        self.observation_space = gym.spaces.Box(0, 255, (2, 8, 8), np.uint8)
        self.t = 0

    def frame(self):
        f = np.full((2, 8, 8), 7, dtype=np.uint8)
        f[0, :, min(self.pos, 7)] = 255
        f[1] = (32 * self.t) % 256
        return f

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed, options=options)
        self.t = 0
        return self.frame(), {}

    def step(self, action):
        _, r, done, trunc, info = super().step(action)
        self.t += 1
        return self.frame(), r, done, trunc, info
