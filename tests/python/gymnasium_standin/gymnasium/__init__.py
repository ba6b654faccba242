"""A small stand-in for Gymnasium 1.x's public API, written for this project's CI (real Gymnasium cannot be installed
here: PyPI is unreachable). It covers what examples/python-worker uses: make/register/spec, Env, spaces (Discrete,
Box, MultiDiscrete, MultiBinary, Dict, Tuple), wrappers.RecordEpisodeStatistics and TimeLimit, and
vector.SyncVectorEnv with the three autoreset modes and Gymnasium's info stacking. It is not Gymnasium; the worker is
checked by hand against the real one (see examples/python-worker/README.md).
"""
from . import error, spaces  # noqa: F401
from .core import Env, Wrapper  # noqa: F401
from .envs.registration import EnvSpec, make, register, registry, spec  # noqa: F401
from . import wrappers, vector  # noqa: F401,E402
from . import envs as _envs  # noqa: F401,E402  (registers the bundled stand-in envs)

__version__ = "1.3.0-standin"
