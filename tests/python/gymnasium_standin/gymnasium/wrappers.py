import time

import numpy as np

from .core import Wrapper


class TimeLimit(Wrapper):
    def __init__(self, env, max_episode_steps):
        super().__init__(env)
        self._max_episode_steps, self._elapsed = max_episode_steps, 0

    def reset(self, *, seed=None, options=None):
        self._elapsed = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._elapsed += 1
        return obs, reward, terminated, truncated or self._elapsed >= self._max_episode_steps, info


class RecordEpisodeStatistics(Wrapper):
    """At an episode's end, info["episode"] = {"r": return, "l": length, "t": seconds}."""

    def __init__(self, env):
        super().__init__(env)
        self._return, self._length, self._start = 0.0, 0, time.perf_counter()

    def reset(self, *, seed=None, options=None):
        self._return, self._length, self._start = 0.0, 0, time.perf_counter()
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        self._length += 1
        if terminated or truncated:
            info = dict(info)
            info["episode"] = {"r": self._return, "l": self._length, "t": round(time.perf_counter() - self._start, 6)}
        return obs, reward, terminated, truncated, info
