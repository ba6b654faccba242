import importlib
from dataclasses import dataclass, field

from .. import error


@dataclass
class EnvSpec:
    id: str
    entry_point: object = None
    reward_threshold: float = None
    nondeterministic: bool = False
    max_episode_steps: int = None
    kwargs: dict = field(default_factory=dict)


registry = {}


def register(id, entry_point, reward_threshold=None, nondeterministic=False, max_episode_steps=None, kwargs=None):
    registry[id] = EnvSpec(id, entry_point, reward_threshold, nondeterministic, max_episode_steps, dict(kwargs or {}))


def spec(id):
    if id not in registry:
        raise error.UnregisteredEnv(f"No registered env with id: {id}")
    return registry[id]


def _load(entry_point):
    if callable(entry_point):
        return entry_point
    module, name = entry_point.split(":")
    return getattr(importlib.import_module(module), name)


def make(id, max_episode_steps=None, **kwargs):
    """make('Id-v0', **kwargs), or make('module:Id-v0'), which imports module (registering its envs) and makes Id-v0,
    as Gymnasium does; a module:Name that no registration knows raises NameNotFound, as in Gymnasium."""
    if ":" in id:
        module, id = id.split(":", 1)
        importlib.import_module(module)
    if id in registry:
        s = registry[id]
    else:
        raise error.NameNotFound(f"Environment `{id}` doesn't exist.")
    env = _load(s.entry_point)(**{**s.kwargs, **kwargs})
    env.spec = EnvSpec(s.id, s.entry_point, s.reward_threshold, s.nondeterministic, max_episode_steps or s.max_episode_steps, {**s.kwargs, **kwargs})
    limit = max_episode_steps or s.max_episode_steps
    if limit:
        from ..wrappers import TimeLimit
        env = TimeLimit(env, limit)
    return env
