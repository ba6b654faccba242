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
