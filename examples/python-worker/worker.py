#!/usr/bin/env python3
"""A ClusterEnv worker written in Python with stock grpcio.

It dials a C# learner's hub (ClusterVecEnv), registers, and serves a batch of environments with Gymnasium's API.
With Gymnasium importable it serves gymnasium.make(ENV, **kwargs) (or an entry point module:Class) through
Gymnasium's own SyncVectorEnv, in the autoreset mode the hub asks for, for any of Discrete, Box, MultiDiscrete,
MultiBinary and Dict/Tuple of those (flattened on the wire with their structure described). Without Gymnasium it
serves its bundled numpy CartPole-v1 (no dependency beyond numpy and grpcio).

    python3 worker.py --hub http://127.0.0.1:5555 --env Pendulum-v1 --num-envs 8 --token-file token.txt
    python3 worker.py --hub http://127.0.0.1:5555 --env my_pkg.envs:Maze --env-kwargs '{"size": 9}' --num-envs 4
"""
import argparse
import importlib
import json
import shutil
import math
import os
import queue
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import grpc
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO = os.path.join(HERE, "..", "..", "ClusterEnv.Core", "Transport", "Protos", "clusterenv.proto")
PROTOCOL_VERSION = 1
MAX_MESSAGE = 64 * 1024 * 1024


def load_protocol(proto_path):
    """Generates clusterenv_pb2 from the .proto (one source of truth) and imports it."""
    out = tempfile.mkdtemp(prefix="clusterenv-proto-")
    try:
        proto_dir, name = os.path.split(os.path.abspath(proto_path))
        cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}", f"--python_out={out}", name]
        subprocess.run(cmd, check=True)
        sys.path.insert(0, out)
        import clusterenv_pb2  # noqa: E402
        return clusterenv_pb2
    finally:
        # The module is loaded; nothing is left behind in /tmp.
        if out in sys.path:
            sys.path.remove(out)
        shutil.rmtree(out, ignore_errors=True)


class CartPole:
    """CartPole-v1 with Gymnasium's constants and equations (Euler integration, float64 state, float32 observations)."""

    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    theta_threshold = 12 * 2 * math.pi / 360
    x_threshold = 2.4
    max_episode_steps = 500
    reward_threshold = 475.0

    def __init__(self, raise_after=0):
        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold * 2, np.inf], dtype=np.float32)
        self.observation_low, self.observation_high = -high, high
        self.num_actions = 2
        self.rng = np.random.default_rng()
        self.state = None
        self.steps = 0
        self.total_steps = 0
        self.raise_after = raise_after

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        low, high = -0.05, 0.05
        if options:
            low, high = options.get("low", low), options.get("high", high)
        self.state = self.rng.uniform(low, high, size=(4,))
        self.steps = 0
        return self.state.astype(np.float32), {}

    def step(self, action):
        self.total_steps += 1
        if self.raise_after and self.total_steps == self.raise_after:
            raise RuntimeError(f"the python env failed at step {self.total_steps}")
        if action not in (0, 1):
            raise ValueError(f"action {action} is not in Discrete(2)")
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag if action == 1 else -self.force_mag
        costheta, sintheta = math.cos(theta), math.sin(theta)
        total_mass = self.masspole + self.masscart
        polemass_length = self.masspole * self.length
        temp = (force + polemass_length * theta_dot**2 * sintheta) / total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (self.length * (4.0 / 3.0 - self.masspole * costheta**2 / total_mass))
        xacc = temp - polemass_length * thetaacc * costheta / total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        self.state = np.array([x, x_dot, theta, theta_dot], dtype=np.float64)
        self.steps += 1
        terminated = bool(x < -self.x_threshold or x > self.x_threshold or theta < -self.theta_threshold or theta > self.theta_threshold)
        truncated = self.steps >= self.max_episode_steps and not terminated
        return self.state.astype(np.float32), 1.0, terminated, truncated, {}


class VectorEnv:
    """Gymnasium 1.x's SyncVectorEnv loop over Gymnasium-API envs, with the three autoreset modes and episode statistics."""

    NEXT_STEP, SAME_STEP, DISABLED = 0, 1, 2

    def __init__(self, envs, mode, record_statistics):
        self.envs, self.mode, self.record = envs, mode, record_statistics
        n = len(envs)
        self.obs_size = int(np.prod(envs[0].observation_low.shape))
        self.autoreset = np.zeros(n, dtype=bool)
        self.ep_return = np.zeros(n)
        self.ep_length = np.zeros(n, dtype=np.int64)
        self.ep_start = np.zeros(n)

    def _new_episode(self, i):
        self.ep_return[i], self.ep_length[i], self.ep_start[i] = 0.0, 0, time.perf_counter()

    def reset(self, seeds, mask, options):
        n = len(self.envs)
        obs = np.zeros((n, self.obs_size), dtype=np.float32)
        for i, env in enumerate(self.envs):
            if mask is not None and not mask[i]:
                continue
            obs[i], _ = env.reset(seed=seeds[i], options=options)
            self.autoreset[i] = False
            self._new_episode(i)
        return obs, []

    def step(self, action_tensor):
        actions = np.frombuffer(action_tensor.data, dtype="<i8" if action_tensor.dtype == 2 else "<i4")
        n = len(self.envs)
        obs = np.zeros((n, self.obs_size), dtype=np.float32)
        rewards = np.zeros(n, dtype=np.float64)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        episode = {"mask": np.zeros(n, dtype=bool), "r": np.zeros(n), "l": np.zeros(n, dtype=np.int64), "t": np.zeros(n)}
        final = {"mask": np.zeros(n, dtype=bool), "obs": np.zeros((n, self.obs_size), dtype=np.float32),
                 "episode": {"mask": np.zeros(n, dtype=bool), "r": np.zeros(n), "l": np.zeros(n, dtype=np.int64), "t": np.zeros(n)}}
        for i, env in enumerate(self.envs):
            if self.mode == self.DISABLED and self.autoreset[i]:
                raise RuntimeError(f"sub-env {i} finished its episode and autoreset is disabled; reset it first")
            try:
                if self.mode == self.NEXT_STEP and self.autoreset[i]:
                    obs[i], _ = env.reset()
                    self._new_episode(i)
                else:
                    o, r, term, trunc, _ = env.step(int(actions[i]))
                    obs[i], rewards[i], terminated[i], truncated[i] = o, r, term, trunc
                    self.ep_return[i] += r
                    self.ep_length[i] += 1
                    if term or trunc:
                        stats = episode
                        if self.mode == self.SAME_STEP:
                            final["mask"][i], final["obs"][i] = True, o
                            stats = final["episode"]
                        if self.record:
                            stats["mask"][i], stats["r"][i], stats["l"][i] = True, self.ep_return[i], self.ep_length[i]
                            stats["t"][i] = round(time.perf_counter() - self.ep_start[i], 6)
                        if self.mode == self.SAME_STEP:
                            obs[i], _ = env.reset()
                            self._new_episode(i)
            except Exception as e:
                e.env_index = i
                raise
            self.autoreset[i] = terminated[i] or truncated[i]
        return obs, rewards, terminated, truncated, episode, final, []


RESERVED_INFO = {"episode", "final_obs", "final_info"}


class Wire:
    """Spaces, observations, actions and info between Gymnasium's objects and the wire (clusterenv.proto)."""

    def __init__(self, pb, gym_spaces):
        self.pb, self.spaces = pb, gym_spaces
        self.warned = set()

    def tensor(self, array, dtype):
        a = np.ascontiguousarray(array)
        return self.pb.Tensor(dtype=dtype, shape=list(a.shape), data=a.tobytes())

    def space(self, s):
        """A Gymnasium space as a wire Space; Dict and Tuple nest, leaves keep their shapes and bounds."""
        pb, sp = self.pb, self.spaces
        if isinstance(s, sp.Discrete):
            return pb.Space(discrete=pb.DiscreteSpace(n=int(s.n), start=int(s.start)))
        if isinstance(s, sp.Box):
            kind = np.dtype(s.dtype)
            if kind == np.float64:  # float64 keeps its dtype and exact bounds (observations still travel as float32)
                return pb.Space(box=pb.BoxSpace(low=self.tensor(np.asarray(s.low, dtype=np.float64), pb.FLOAT64),
                                                high=self.tensor(np.asarray(s.high, dtype=np.float64), pb.FLOAT64), dtype=pb.FLOAT64))
            dtype = {"f": pb.FLOAT32, "b": pb.INT8}.get(kind.kind, pb.UINT8 if kind == np.uint8 else pb.INT8 if kind == np.int8 else pb.INT64)
            return pb.Space(box=pb.BoxSpace(low=self.tensor(np.asarray(s.low, dtype=np.float32), pb.FLOAT32),
                                            high=self.tensor(np.asarray(s.high, dtype=np.float32), pb.FLOAT32), dtype=dtype))
        if isinstance(s, sp.MultiDiscrete):
            if np.ndim(s.nvec) != 1:
                raise SystemExit(f"MultiDiscrete with nvec of shape {np.shape(s.nvec)} has no wire form; flatten it to 1-D")
            start = getattr(s, "start", np.zeros_like(s.nvec))
            return pb.Space(multi_discrete=pb.MultiDiscreteSpace(nvec=[int(v) for v in s.nvec], start=[int(v) for v in start]))
        if isinstance(s, sp.MultiBinary):
            return pb.Space(multi_binary=pb.MultiBinarySpace(shape=[int(v) for v in np.atleast_1d(s.n)]))
        if isinstance(s, sp.Tuple):
            return pb.Space(tuple=pb.TupleSpace(spaces=[self.space(x) for x in s.spaces]))
        if isinstance(s, sp.Dict):
            return pb.Space(dict=pb.DictSpace(keys=list(s.spaces.keys()), spaces=[self.space(x) for x in s.spaces.values()]))
        raise SystemExit(f"{type(s).__name__} spaces have no wire form; this worker serves Discrete, Box, MultiDiscrete, "
                         f"MultiBinary and Dict/Tuple of those (wrap the env, e.g. with gymnasium.wrappers.FlattenObservation)")

    def encode(self, s, batch, n):
        """A batch of observations (as Gymnasium's vector env batches them) as float32 (n, encoded size): Dict values in
        key order, Tuple items in order, a Discrete value as itself, arrays flattened row-major."""
        if isinstance(s, self.spaces.Dict):
            return np.hstack([self.encode(x, batch[k], n) for k, x in s.spaces.items()])
        if isinstance(s, self.spaces.Tuple):
            return np.hstack([self.encode(x, batch[i], n) for i, x in enumerate(s.spaces)])
        return np.asarray(batch).reshape(n, -1).astype(np.float32)

    def encode_one(self, s, value):
        if isinstance(s, self.spaces.Dict):
            return np.concatenate([self.encode_one(x, value[k]) for k, x in s.spaces.items()])
        if isinstance(s, self.spaces.Tuple):
            return np.concatenate([self.encode_one(x, value[i]) for i, x in enumerate(s.spaces)])
        return np.asarray(value).reshape(-1).astype(np.float32)

    def actions(self, s, t, n):
        """The hub's action tensor (INT64 or FLOAT32, (n, slots)) as a batch of Gymnasium actions of the space's shape and dtype."""
        pb = self.pb
        raw = np.frombuffer(t.data, dtype={pb.INT64: "<i8", pb.INT32: "<i4", pb.FLOAT32: "<f4"}[t.dtype])
        if isinstance(s, self.spaces.Discrete):
            return raw.reshape(n).astype(np.int64)
        if isinstance(s, (self.spaces.Box, self.spaces.MultiDiscrete, self.spaces.MultiBinary)):
            return raw.reshape((n, *s.shape)).astype(s.dtype)
        raise ValueError(f"{type(s).__name__} action spaces cannot be batched; use Discrete, Box, MultiDiscrete or MultiBinary")

    def info(self, infos, n):
        """Gymnasium 1.x vector info (info[key], info["_" + key]) as wire entries: numeric scalars and 1-D arrays per
        sub-env; anything else is dropped with a one-time warning naming the key."""
        pb, entries = self.pb, []
        for key, value in infos.items():
            if key.startswith("_") or key in RESERVED_INFO:
                continue
            mask = np.asarray(infos.get("_" + key, np.ones(n, dtype=bool)), dtype=bool)
            a = np.asarray(value) if not isinstance(value, dict) else None
            if a is None or a.dtype.kind not in "fiub" or a.ndim not in (1, 2) or a.shape[0] != n:
                if key not in self.warned:
                    self.warned.add(key)
                    print(f"warning: info[{key!r}] is not numeric (numbers, bools or 1-D numeric arrays per sub-env) and is dropped; "
                          f"the learner never sees it", file=sys.stderr)
                continue
            if a.ndim == 2:
                values = self.tensor(a.astype("<f8"), pb.FLOAT64)
            elif a.dtype.kind == "b":
                values = self.tensor(a.astype(np.uint8), pb.BOOL)
            elif a.dtype.kind in "iu":
                values = self.tensor(a.astype("<i8"), pb.INT64)
            else:
                values = self.tensor(a.astype("<f8"), pb.FLOAT64)
            entries.append(pb.InfoEntry(key=key, values=values, mask=self.tensor(mask.astype(np.uint8), pb.BOOL)))
        return entries


def env_factory(gym, env_id, env_kwargs, max_episode_steps):
    """How to make one env: gymnasium.make(ID) for a registered id or `module:Id` (Gymnasium imports the module), or, for
    `module:Class` naming a gymnasium.Env subclass that no registration knows, the class itself, under a TimeLimit when
    --max-episode-steps is given."""
    limit = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}
    if ":" in env_id:
        module_name, name = env_id.split(":", 1)
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise SystemExit(f"--env {env_id}: cannot import module {module_name!r} ({e}); put it on PYTHONPATH")
        target = getattr(module, name, None)
        if isinstance(target, type) and issubclass(target, gym.Env):
            def make_class():
                env = target(**env_kwargs)
                return gym.wrappers.TimeLimit(env, max_episode_steps) if max_episode_steps else env
            return make_class
    return lambda: gym.make(env_id, **limit, **env_kwargs)


class GymnasiumVector:
    """Gymnasium's own SyncVectorEnv over gymnasium.make envs, in the hub's autoreset mode, seen through Wire."""

    def __init__(self, gym, make_env, num_envs, mode, record_statistics, wire):
        modes = {0: gym.vector.AutoresetMode.NEXT_STEP, 1: gym.vector.AutoresetMode.SAME_STEP, 2: gym.vector.AutoresetMode.DISABLED}
        wrap = gym.wrappers.RecordEpisodeStatistics if record_statistics else (lambda e: e)

        class SubEnvIndex(gym.Wrapper):
            """Tags an exception from this sub-env with its index, so the learner gets a SubEnvException naming it."""

            def __init__(self, env, index):
                super().__init__(env)
                self.sub_env_index = index

            def step(self, action):
                try:
                    return self.env.step(action)
                except Exception as e:
                    e.env_index = self.sub_env_index
                    raise

            def reset(self, **kwargs):
                try:
                    return self.env.reset(**kwargs)
                except Exception as e:
                    e.env_index = self.sub_env_index
                    raise

        self.vec = gym.vector.SyncVectorEnv([lambda i=i: SubEnvIndex(wrap(make_env()), i) for i in range(num_envs)], autoreset_mode=modes[mode])
        self.envs, self.n, self.wire, self.same_step = self.vec.envs, num_envs, wire, mode == 1
        self.obs_space, self.act_space = self.vec.single_observation_space, self.vec.single_action_space
        self.obs_size = int(wire.encode_one(self.obs_space, self.obs_space.sample()).size)

    def reset(self, seeds, mask, options):
        opts = dict(options or {})
        if mask is not None:
            opts["reset_mask"] = np.asarray(mask, dtype=bool)
        obs, infos = self.vec.reset(seed=list(seeds), options=opts or None)
        return self.wire.encode(self.obs_space, obs, self.n), self.wire.info(infos, self.n)

    def _episode(self, infos):
        n = self.n
        out = {"mask": np.zeros(n, dtype=bool), "r": np.zeros(n), "l": np.zeros(n, dtype=np.int64), "t": np.zeros(n)}
        if "episode" in infos:
            ep = infos["episode"]
            out["mask"] = np.asarray(infos.get("_episode", np.ones(n, dtype=bool)), dtype=bool)
            out["r"], out["l"], out["t"] = np.asarray(ep["r"], dtype=float), np.asarray(ep["l"], dtype=np.int64), np.asarray(ep["t"], dtype=float)
        return out

    def step(self, action_tensor):
        actions = self.wire.actions(self.act_space, action_tensor, self.n)
        obs, rew, term, trunc, infos = self.vec.step(actions)
        episode = self._episode(infos)
        final = {"mask": np.zeros(self.n, dtype=bool), "obs": None, "episode": self._episode({})}
        if self.same_step and "final_obs" in infos:
            final["mask"] = np.asarray(infos["_final_obs"], dtype=bool)
            final["obs"] = np.stack([self.wire.encode_one(self.obs_space, o) if m else np.zeros(self.obs_size, np.float32)
                                     for o, m in zip(infos["final_obs"], final["mask"])])
            final["episode"] = self._episode(infos.get("final_info", {}))
        return (self.wire.encode(self.obs_space, obs, self.n), np.asarray(rew, dtype=np.float64), np.asarray(term, dtype=bool),
                np.asarray(trunc, dtype=bool), episode, final, self.wire.info(infos, self.n))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hub", required=True, help="the learner's hub URL, e.g. http://127.0.0.1:5555")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--worker-id", default=f"py-{socket.gethostname()}-{os.getpid()}")
    p.add_argument("--token-file", help="file with the hub's token (default: $CLUSTERENV_TOKEN)")
    p.add_argument("--proto", default=DEFAULT_PROTO, help="path of clusterenv.proto")
    p.add_argument("--backend", choices=["auto", "gymnasium", "numpy"], default="auto",
                   help="gymnasium: serve gymnasium.make(ENV); numpy: the bundled numpy CartPole-v1; auto (default): gymnasium when importable")
    p.add_argument("--gymnasium", dest="backend", action="store_const", const="gymnasium", help="same as --backend gymnasium")
    p.add_argument("--env-kwargs", default="{}", help="JSON object of keyword arguments for gymnasium.make, e.g. '{\"g\": 9.81}'")
    p.add_argument("--max-episode-steps", type=int, default=None, help="override the registered time limit")
    p.add_argument("--raise-after", type=int, default=0, help="testing: make sub-env 0 raise on its N-th step (bundled CartPole)")
    p.add_argument("--connect-timeout", type=float, default=60.0)
    args = p.parse_args()

    token = open(args.token_file).read().strip() if args.token_file else os.environ.get("CLUSTERENV_TOKEN", "")
    try:
        env_kwargs = json.loads(args.env_kwargs)
        assert isinstance(env_kwargs, dict)
    except (ValueError, AssertionError):
        raise SystemExit(f"--env-kwargs must be a JSON object, e.g. '{{\"g\": 9.81}}'; got {args.env_kwargs!r}")
    gym = None
    if args.backend != "numpy":
        try:
            import gymnasium as gym  # noqa: E402  (optional dependency)
        except ImportError as e:
            if args.backend == "gymnasium" or args.env != "CartPole-v1":
                raise SystemExit(f"gymnasium is not importable by {sys.executable} ({e}); install it for this interpreter "
                                 f"(python3 -m pip install gymnasium) or put it on PYTHONPATH. Without it this worker serves its "
                                 f"bundled numpy CartPole-v1 only (--backend numpy).")
    pb = load_protocol(args.proto)
    if gym is not None:
        make_env = env_factory(gym, args.env, env_kwargs, args.max_episode_steps)
        try:
            probe = make_env()
        except Exception as e:
            raise SystemExit(f"gymnasium.make({args.env!r}, **{env_kwargs}) failed: {type(e).__name__}: {e}")
        wire = Wire(pb, gym.spaces)
        obs_space, action_space = wire.space(probe.observation_space), wire.space(probe.action_space)
        spec = probe.spec
        render_modes = list((getattr(probe, "metadata", None) or {}).get("render_modes", []))
        env_spec = pb.EnvSpecInfo(id=args.env, max_episode_steps=int((spec.max_episode_steps if spec else None) or args.max_episode_steps or 0),
                                  has_reward_threshold=bool(spec and spec.reward_threshold is not None),
                                  reward_threshold=float(spec.reward_threshold) if spec and spec.reward_threshold is not None else 0.0,
                                  nondeterministic=bool(spec and spec.nondeterministic), render_modes=render_modes)
        probe.close()
        envs = []
    else:
        wire = None
        envs = [CartPole(raise_after=args.raise_after if i == 0 else 0) for i in range(args.num_envs)]
        obs_space = pb.Space(box=pb.BoxSpace(low=pb.Tensor(dtype=pb.FLOAT32, shape=[4], data=envs[0].observation_low.tobytes()),
                                             high=pb.Tensor(dtype=pb.FLOAT32, shape=[4], data=envs[0].observation_high.tobytes()), dtype=pb.FLOAT32))
        action_space = pb.Space(discrete=pb.DiscreteSpace(n=2, start=0))
        env_spec = pb.EnvSpecInfo(id=args.env, max_episode_steps=CartPole.max_episode_steps, has_reward_threshold=True,
                                  reward_threshold=CartPole.reward_threshold, render_modes=[])

    def obs_tensor(vec, obs):
        """Observations as the hub reads them: a uint8 Box (images) as its bytes, a quarter of float32; the rest as float32."""
        space = getattr(vec, "obs_space", None)
        if type(space).__name__ == "Box" and getattr(space, "dtype", None) == np.uint8:
            return tensor(np.asarray(obs).astype(np.uint8), pb.UINT8)
        return tensor(obs, pb.FLOAT32)

    def tensor(array, dtype):
        a = np.ascontiguousarray(array)
        return pb.Tensor(dtype=dtype, shape=list(a.shape), data=a.tobytes())

    def stats(s):
        return pb.EpisodeStats(mask=tensor(s["mask"].astype(np.uint8), pb.BOOL), returns=tensor(s["r"].astype("<f8"), pb.FLOAT64),
                               lengths=tensor(s["l"].astype("<i8"), pb.INT64), seconds=tensor(s["t"].astype("<f8"), pb.FLOAT64))

    def to_value(v, what):
        if v is None:
            return pb.Value(none=True)
        if isinstance(v, (bool, np.bool_)):
            return pb.Value(flag=bool(v))
        if isinstance(v, (int, np.integer)):
            return pb.Value(integer=int(v))
        if isinstance(v, (float, np.floating)):
            return pb.Value(number=float(v))
        if isinstance(v, str):
            return pb.Value(text=v)
        if isinstance(v, (list, tuple, np.ndarray)):
            a = np.asarray(v)
            kinds = {"f": ("<f8", pb.FLOAT64), "i": ("<i8", pb.INT64), "u": ("<i8", pb.INT64), "b": (np.uint8, pb.BOOL)}
            if a.ndim == 1 and a.dtype.kind in kinds:
                dtype, code = kinds[a.dtype.kind]
                return pb.Value(tensor=tensor(a.astype(dtype), code))
        raise TypeError(f"{what} is a {type(v).__name__}, which cannot cross the wire (numbers, bools, strings and 1-D numeric arrays can)")

    def from_value(v):
        kind = v.WhichOneof("kind")
        if kind in (None, "none"):
            return None
        if kind == "tensor":
            dtype = {pb.FLOAT32: "<f4", pb.FLOAT64: "<f8", pb.INT32: "<i4", pb.INT64: "<i8", pb.BOOL: np.uint8}[v.tensor.dtype]
            a = np.frombuffer(v.tensor.data, dtype=dtype)
            return a.astype(bool) if v.tensor.dtype == pb.BOOL else a
        return getattr(v, kind)

    def attr(cmd):
        """Gymnasium's get_attr / set_attr / call on every sub-env; an error carries the sub-env's index."""
        args = [from_value(a) for a in cmd.args]
        result = pb.AttrResult()
        for i, env in enumerate(envs):
            try:
                get = getattr(env, "get_wrapper_attr", lambda name: getattr(env, name))  # Gymnasium wrappers do not forward attributes
                if cmd.op == pb.AttrCommand.SET:
                    get(cmd.name)  # AttributeError names the attribute
                    if hasattr(env, "set_wrapper_attr"):
                        env.set_wrapper_attr(cmd.name, from_value(cmd.values[i]))
                    else:
                        setattr(env, cmd.name, from_value(cmd.values[i]))
                    value = None
                else:
                    value = get(cmd.name)
                    if cmd.op == pb.AttrCommand.CALL and callable(value):
                        value = value(*args)
                result.values.append(to_value(value, f"{cmd.name!r} of env {i}"))
            except Exception as e:
                e.env_index = i
                raise
        return result

    runtime = f"python {sys.version.split()[0]} grpcio {grpc.__version__}" + (f" gymnasium {gym.__version__}" if gym else " numpy CartPole")
    register = pb.WorkerMessage(register=pb.Register(
        protocol_version=PROTOCOL_VERSION, worker_id=args.worker_id, token=token, env_id=args.env, num_envs=args.num_envs,
        observation_space=obs_space, action_space=action_space,
        host=socket.gethostname(), pid=os.getpid(), runtime=runtime,
        # The env's registry entry (Gymnasium's EnvSpec), for a learner whose own registry does not know the id.
        env_spec=env_spec))

    target = args.hub.split("://", 1)[-1].rstrip("/")
    options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(), options) if args.hub.startswith("https") else grpc.insecure_channel(target, options)
    try:
        grpc.channel_ready_future(channel).result(timeout=args.connect_timeout)
    except grpc.FutureTimeoutError:
        print(f"worker {args.worker_id}: no hub answered at {args.hub} within {args.connect_timeout:g} s (--connect-timeout). "
              f"Is the learner running, listening on that host and port (HubOptions.Host/Port, --host/--port), and reachable from here?",
              file=sys.stderr)
        return 2
    connect = channel.stream_stream("/clusterenv.v1.WorkerHub/Connect",
                                    request_serializer=pb.WorkerMessage.SerializeToString, response_deserializer=pb.HubMessage.FromString)
    outbox = queue.Queue()
    outbox.put(register)
    vec = None
    try:
        for msg in connect(iter(outbox.get, None)):
            kind = msg.WhichOneof("command")
            try:
                if kind == "welcome":
                    if gym is not None:
                        vec = GymnasiumVector(gym, make_env, args.num_envs, msg.welcome.autoreset_mode, msg.welcome.record_episode_statistics, wire)
                        envs[:] = vec.envs
                    else:
                        vec = VectorEnv(envs, msg.welcome.autoreset_mode, msg.welcome.record_episode_statistics)
                    continue
                if kind == "reset":
                    r = msg.reset
                    seeds = [int(r.seeds[i]) if r.has_seed[i] else None for i in range(len(r.has_seed))] or [None] * len(envs)
                    mask = list(r.mask) if len(r.mask) else None
                    opts = dict(r.numbers)
                    opts.update(r.strings)
                    obs, extras = vec.reset(seeds, mask, opts or None)
                    outbox.put(pb.WorkerMessage(seq=msg.seq, reset=pb.ResetResult(observations=obs_tensor(vec, obs), info=extras)))
                elif kind == "step":
                    obs, rew, term, trunc, episode, final, extras = vec.step(msg.step.actions)
                    result = pb.StepResult(observations=obs_tensor(vec, obs), rewards=tensor(rew.astype("<f8"), pb.FLOAT64),
                                           terminated=tensor(term.astype(np.uint8), pb.BOOL), truncated=tensor(trunc.astype(np.uint8), pb.BOOL),
                                           info=extras)
                    if episode["mask"].any():
                        result.episode.CopyFrom(stats(episode))
                    if final["mask"].any():
                        result.final_mask.CopyFrom(tensor(final["mask"].astype(np.uint8), pb.BOOL))
                        result.final_observations.CopyFrom(obs_tensor(vec, final["obs"]))
                        if final["episode"]["mask"].any():
                            result.final_episode.CopyFrom(stats(final["episode"]))
                    outbox.put(pb.WorkerMessage(seq=msg.seq, step=result))
                elif kind == "attr":
                    outbox.put(pb.WorkerMessage(seq=msg.seq, attr_result=attr(msg.attr)))
                elif kind == "close":
                    outbox.put(pb.WorkerMessage(seq=msg.seq, closed=pb.Closed()))
                    outbox.put(None)
                elif kind in ("policy", "rollout", "stream", "credit", "stop_stream", "gradient"):
                    raise ValueError(f"this Python worker steps envs only and cannot act with a policy (command {kind!r}): learners whose "
                                     f"workers act (IMPALA, IMPACT, PPO on workers, NIGT gradient workers) need the C# worker; with Python "
                                     f"envs, let the learner step them (examples/Train --algo ppo)")
                else:
                    raise ValueError(f"unknown command {kind!r}; this worker handles welcome, reset, step, attr and close")
            except Exception as e:  # a sub-env (or this worker) failed: tell the learner, keep serving
                outbox.put(pb.WorkerMessage(seq=msg.seq, error=pb.WorkerError(
                    env_index=getattr(e, "env_index", -1), type=type(e).__name__, message=str(e), stack_trace=traceback.format_exc())))
    except grpc.RpcError as e:
        print(f"worker {args.worker_id}: the hub ended the stream with {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    finally:
        outbox.put(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
