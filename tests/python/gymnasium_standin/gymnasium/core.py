import numpy as np


class Env:
    """Gymnasium's Env contract: reset(seed=, options=) -> (obs, info); step(action) -> (obs, r, terminated, truncated, info)."""

    metadata = {"render_modes": []}
    spec = None
    observation_space = None
    action_space = None
    _np_random = None

    @property
    def np_random(self):
        if self._np_random is None:
            self._np_random = np.random.Generator(np.random.PCG64(np.random.SeedSequence()))
        return self._np_random

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._np_random = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))

    def close(self):
        pass

    @property
    def unwrapped(self):
        return self

    def get_wrapper_attr(self, name):
        return getattr(self, name)

    def set_wrapper_attr(self, name, value):
        setattr(self, name, value)


class Wrapper(Env):
    def __init__(self, env):
        self.env = env
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.metadata = env.metadata
        self.spec = env.spec

    def reset(self, *, seed=None, options=None):
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        return self.env.step(action)

    def close(self):
        self.env.close()

    @property
    def unwrapped(self):
        return self.env.unwrapped

    def get_wrapper_attr(self, name):
        if name in self.__dict__ or hasattr(type(self), name):
            return getattr(self, name)
        return self.env.get_wrapper_attr(name)

    def set_wrapper_attr(self, name, value):
        target = self
        while isinstance(target, Wrapper) and not hasattr(target, name):
            target = target.env
        setattr(target, name, value)
