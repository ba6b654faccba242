"""The stand-in's envs: CartPole-v1 and Pendulum-v1 with Gymnasium's equations, and StandinDict-v0, a small env with a
Dict observation (Discrete, shaped Box, MultiBinary), a MultiDiscrete action and numeric info, for the worker's tests."""
import math

import numpy as np

from .. import spaces
from ..core import Env
from .registration import register


class CartPoleEnv(Env):
    metadata = {"render_modes": ["human", "rgb_array"]}

    def __init__(self):
        self.gravity, self.masscart, self.masspole, self.length, self.force_mag, self.tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
        self.theta_threshold_radians, self.x_threshold = 12 * 2 * math.pi / 360, 2.4
        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.state = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        low, high = (options or {}).get("low", -0.05), (options or {}).get("high", 0.05)
        self.state = self.np_random.uniform(low=low, high=high, size=(4,))
        return np.array(self.state, dtype=np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), f"{action!r} ({type(action)}) invalid"
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag if action == 1 else -self.force_mag
        cos, sin = math.cos(theta), math.sin(theta)
        total = self.masspole + self.masscart
        pl = self.masspole * self.length
        temp = (force + pl * theta_dot**2 * sin) / total
        thetaacc = (self.gravity * sin - cos * temp) / (self.length * (4.0 / 3.0 - self.masspole * cos**2 / total))
        xacc = temp - pl * thetaacc * cos / total
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * xacc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * thetaacc
        self.state = np.array((x, x_dot, theta, theta_dot), dtype=np.float64)
        terminated = bool(x < -self.x_threshold or x > self.x_threshold or theta < -self.theta_threshold_radians or theta > self.theta_threshold_radians)
        return np.array(self.state, dtype=np.float32), 1.0, terminated, False, {}


class PendulumEnv(Env):
    metadata = {"render_modes": ["human", "rgb_array"]}

    def __init__(self, g=10.0):
        self.max_speed, self.max_torque, self.dt, self.g, self.m, self.l = 8, 2.0, 0.05, g, 1.0, 1.0
        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        self.action_space = spaces.Box(low=-self.max_torque, high=self.max_torque, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Box(low=-high, high=high, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        high = np.array([np.pi, 1.0])
        self.state = self.np_random.uniform(low=-high, high=high)
        return self._obs(), {}

    def _obs(self):
        th, thdot = self.state
        return np.array([np.cos(th), np.sin(th), thdot], dtype=np.float32)

    def step(self, u):
        th, thdot = self.state
        u = np.clip(u, -self.max_torque, self.max_torque)[0]
        angle = ((th + np.pi) % (2 * np.pi)) - np.pi
        costs = angle**2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * self.g / (2 * self.l) * np.sin(th) + 3.0 / (self.m * self.l**2) * u) * self.dt
        newthdot = np.clip(newthdot, -self.max_speed, self.max_speed)
        self.state = np.array([th + newthdot * self.dt, newthdot])
        return self._obs(), -costs, False, False, {}


class StandinDictEnv(Env):
    """Move a point on a 2×2 grid of cells toward a goal cell; the observation is a Dict, the action MultiDiscrete([3, 3])."""

    def __init__(self, size=4):
        self.size = size
        self.observation_space = spaces.Dict({
            "position": spaces.Box(-1.0, 1.0, shape=(2, 2), dtype=np.float32),
            "goal": spaces.Discrete(4),
            "sensors": spaces.MultiBinary(3),
        })
        self.action_space = spaces.MultiDiscrete([3, 3])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1, 1, size=(2, 2)).astype(np.float32)
        self.goal = int(self.np_random.integers(4))
        self.t = 0
        return self._obs(), {"distance": self._distance()}

    def _distance(self):
        return float(np.abs(self.pos).sum())

    def _obs(self):
        return {"position": self.pos.copy(), "goal": np.int64(self.goal), "sensors": (self.pos.ravel()[:3] > 0).astype(np.int8)}

    def step(self, action):
        action = np.asarray(action)
        assert action.shape == (2,) and np.all((action >= 0) & (action < 3)), f"{action!r} invalid"
        self.pos = np.clip(self.pos + 0.1 * (action - 1).astype(np.float32)[:, None], -1, 1).astype(np.float32)
        self.t += 1
        d = self._distance()
        info = {"distance": d, "moves": np.array([self.t, int(action.sum())], dtype=np.int64)}
        return self._obs(), -d, d < 0.2, False, info


register("CartPole-v1", CartPoleEnv, reward_threshold=475.0, max_episode_steps=500)
register("Pendulum-v1", PendulumEnv, max_episode_steps=200)
register("StandinDict-v0", StandinDictEnv, max_episode_steps=50)
