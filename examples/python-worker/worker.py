#!/usr/bin/env python3
"""A ClusterEnv worker written in Python with stock grpcio.

It dials a C# learner's hub (ClusterVecEnv), registers, and serves a batch of environments with Gymnasium's API
(reset(seed, options) -> obs, info; step(action) -> obs, reward, terminated, truncated, info). The C# side steps
them like any other worker. The bundled env is CartPole-v1 written with numpy; pass --gymnasium to serve
gymnasium.make(ENV) instead when Gymnasium is installed.

    python3 worker.py --hub http://127.0.0.1:5555 --env CartPole-v1 --num-envs 8 --token-file token.txt
"""
import argparse
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
    proto_dir, name = os.path.split(os.path.abspath(proto_path))
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}", f"--python_out={out}", name]
    subprocess.run(cmd, check=True)
    sys.path.insert(0, out)
    import clusterenv_pb2  # noqa: E402
    return clusterenv_pb2


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
        return obs

    def step(self, actions):
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
        return obs, rewards, terminated, truncated, episode, final


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hub", required=True, help="the learner's hub URL, e.g. http://127.0.0.1:5555")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--worker-id", default=f"py-{socket.gethostname()}-{os.getpid()}")
    p.add_argument("--token-file", help="file with the hub's token (default: $CLUSTERENV_TOKEN)")
    p.add_argument("--proto", default=DEFAULT_PROTO, help="path of clusterenv.proto")
    p.add_argument("--gymnasium", action="store_true", help="serve gymnasium.make(ENV) instead of the bundled numpy CartPole")
    p.add_argument("--raise-after", type=int, default=0, help="testing: make sub-env 0 raise on its N-th step")
    p.add_argument("--connect-timeout", type=float, default=60.0)
    args = p.parse_args()

    pb = load_protocol(args.proto)
    token = open(args.token_file).read().strip() if args.token_file else os.environ.get("CLUSTERENV_TOKEN", "")
    if args.gymnasium:
        import gymnasium  # noqa: E402  (optional dependency)
        raise SystemExit("--gymnasium: wrap gymnasium.make(ENV) to expose observation_low/high and num_actions here; see README.md")
    if args.env != "CartPole-v1":
        raise SystemExit(f"this example bundles CartPole-v1 only, not {args.env}")
    envs = [CartPole(raise_after=args.raise_after if i == 0 else 0) for i in range(args.num_envs)]

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
                if cmd.op == pb.AttrCommand.SET:
                    if not hasattr(env, cmd.name):
                        raise AttributeError(f"{type(env).__name__} has no attribute {cmd.name!r}")
                    setattr(env, cmd.name, from_value(cmd.values[i]))
                    value = None
                else:
                    value = getattr(env, cmd.name)  # AttributeError names the attribute
                    if cmd.op == pb.AttrCommand.CALL and callable(value):
                        value = value(*args)
                result.values.append(to_value(value, f"{cmd.name!r} of env {i}"))
            except Exception as e:
                e.env_index = i
                raise
        return result

    obs_space = pb.Space(box=pb.BoxSpace(low=tensor(envs[0].observation_low, pb.FLOAT32), high=tensor(envs[0].observation_high, pb.FLOAT32), dtype=pb.FLOAT32))
    register = pb.WorkerMessage(register=pb.Register(
        protocol_version=PROTOCOL_VERSION, worker_id=args.worker_id, token=token, env_id=args.env, num_envs=args.num_envs,
        observation_space=obs_space, action_space=pb.Space(discrete=pb.DiscreteSpace(n=2, start=0)),
        host=socket.gethostname(), pid=os.getpid(), runtime=f"python {sys.version.split()[0]} grpcio {grpc.__version__}",
        # The env's registry entry (Gymnasium's EnvSpec), for a learner whose own registry does not know the id.
        env_spec=pb.EnvSpecInfo(id=args.env, max_episode_steps=CartPole.max_episode_steps, has_reward_threshold=True,
                                reward_threshold=CartPole.reward_threshold, render_modes=[])))

    target = args.hub.split("://", 1)[-1].rstrip("/")
    options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(), options) if args.hub.startswith("https") else grpc.insecure_channel(target, options)
    grpc.channel_ready_future(channel).result(timeout=args.connect_timeout)
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
                    vec = VectorEnv(envs, msg.welcome.autoreset_mode, msg.welcome.record_episode_statistics)
                    continue
                if kind == "reset":
                    r = msg.reset
                    seeds = [int(r.seeds[i]) if r.has_seed[i] else None for i in range(len(r.has_seed))] or [None] * len(envs)
                    mask = list(r.mask) if len(r.mask) else None
                    opts = dict(r.numbers)
                    opts.update(r.strings)
                    obs = vec.reset(seeds, mask, opts or None)
                    outbox.put(pb.WorkerMessage(seq=msg.seq, reset=pb.ResetResult(observations=tensor(obs, pb.FLOAT32))))
                elif kind == "step":
                    t = msg.step.actions
                    dtype = {pb.INT64: "<i8", pb.INT32: "<i4"}[t.dtype]
                    actions = np.frombuffer(t.data, dtype=dtype)
                    obs, rew, term, trunc, episode, final = vec.step(actions)
                    result = pb.StepResult(observations=tensor(obs, pb.FLOAT32), rewards=tensor(rew.astype("<f8"), pb.FLOAT64),
                                           terminated=tensor(term.astype(np.uint8), pb.BOOL), truncated=tensor(trunc.astype(np.uint8), pb.BOOL))
                    if episode["mask"].any():
                        result.episode.CopyFrom(stats(episode))
                    if final["mask"].any():
                        result.final_mask.CopyFrom(tensor(final["mask"].astype(np.uint8), pb.BOOL))
                        result.final_observations.CopyFrom(tensor(final["obs"], pb.FLOAT32))
                        if final["episode"]["mask"].any():
                            result.final_episode.CopyFrom(stats(final["episode"]))
                    outbox.put(pb.WorkerMessage(seq=msg.seq, step=result))
                elif kind == "attr":
                    outbox.put(pb.WorkerMessage(seq=msg.seq, attr_result=attr(msg.attr)))
                elif kind == "close":
                    outbox.put(pb.WorkerMessage(seq=msg.seq, closed=pb.Closed()))
                    outbox.put(None)
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
