from enum import Enum

import numpy as np


class AutoresetMode(Enum):
    NEXT_STEP = "NextStep"
    SAME_STEP = "SameStep"
    DISABLED = "Disabled"


def _stack(space, items):
    """Batches sub-env observations as Gymnasium's concatenate does: arrays (n, ...), dicts of batches, tuples of batches."""
    from .. import spaces
    if isinstance(space, spaces.Dict):
        return {k: _stack(s, [x[k] for x in items]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_stack(s, [x[i] for x in items]) for i, s in enumerate(space.spaces))
    return np.stack([np.asarray(x, dtype=space.dtype) for x in items])


def _iterate(space, actions, n):
    from .. import spaces
    if isinstance(space, spaces.Dict):
        return [{k: _iterate(s, actions[k], n)[i] for k, s in space.spaces.items()} for i in range(n)]
    if isinstance(space, spaces.Tuple):
        return [tuple(_iterate(s, actions[j], n)[i] for j, s in enumerate(space.spaces)) for i in range(n)]
    return [actions[i] for i in range(n)]


class SyncVectorEnv:
    def __init__(self, env_fns, copy=True, observation_mode="same", autoreset_mode=AutoresetMode.NEXT_STEP):
        self.envs = [f() for f in env_fns]
        self.num_envs = len(self.envs)
        self.autoreset_mode = AutoresetMode(autoreset_mode) if not isinstance(autoreset_mode, AutoresetMode) else autoreset_mode
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.metadata = {"autoreset_mode": self.autoreset_mode}
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)

    def _add_info(self, infos, info, i):
        for key, value in info.items():
            if key == "final_obs":
                array = infos.get(key, np.full(self.num_envs, None, dtype=object))
                array[i] = value
            elif isinstance(value, dict):
                array = self._add_info(infos.get(key, {}), value, i)
            else:
                if key not in infos:
                    if type(value) in (int, float, bool) or isinstance(value, np.number):
                        array = np.zeros(self.num_envs, dtype=type(value))
                    elif isinstance(value, np.ndarray):
                        array = np.zeros((self.num_envs, *value.shape), dtype=value.dtype)
                    else:
                        array = np.full(self.num_envs, None, dtype=object)
                else:
                    array = infos[key]
                array[i] = value
            mask = infos.get(f"_{key}", np.zeros(self.num_envs, dtype=np.bool_))
            mask[i] = True
            infos[key], infos[f"_{key}"] = array, mask
        return infos

    def reset(self, *, seed=None, options=None):
        if seed is None or isinstance(seed, int):
            seed = [None if seed is None else seed + i for i in range(self.num_envs)]
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        infos, self._obs = {}, getattr(self, "_obs", [None] * self.num_envs)
        for i, env in enumerate(self.envs):
            if mask is not None and not mask[i]:
                continue
            self._obs[i], info = env.reset(seed=seed[i], options=options or None)
            self._autoreset[i] = False
            infos = self._add_info(infos, info, i)
        return _stack(self.single_observation_space, self._obs), infos

    def step(self, actions):
        rewards = np.zeros(self.num_envs)
        terms = np.zeros(self.num_envs, dtype=np.bool_)
        truncs = np.zeros(self.num_envs, dtype=np.bool_)
        infos = {}
        for i, (env, action) in enumerate(zip(self.envs, _iterate(self.single_action_space, actions, self.num_envs))):
            if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._autoreset[i]:
                self._obs[i], info = env.reset()
            else:
                if self.autoreset_mode == AutoresetMode.DISABLED:
                    assert not self._autoreset[i], "autoreset is disabled: reset the finished sub-env first"
                self._obs[i], rewards[i], terms[i], truncs[i], info = env.step(action)
                if self.autoreset_mode == AutoresetMode.SAME_STEP and (terms[i] or truncs[i]):
                    infos = self._add_info(infos, {"final_obs": self._obs[i], "final_info": info}, i)
                    self._obs[i], info = env.reset()
            infos = self._add_info(infos, info, i)
        self._autoreset = terms | truncs
        return _stack(self.single_observation_space, self._obs), rewards, terms, truncs, infos

    def get_attr(self, name):
        return tuple(env.get_wrapper_attr(name) for env in self.envs)

    def set_attr(self, name, values):
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        for env, v in zip(self.envs, values):
            env.set_wrapper_attr(name, v)

    def call(self, name, *args, **kwargs):
        out = []
        for env in self.envs:
            f = env.get_wrapper_attr(name)
            out.append(f(*args, **kwargs) if callable(f) else f)
        return tuple(out)

    def close(self):
        for env in self.envs:
            env.close()
