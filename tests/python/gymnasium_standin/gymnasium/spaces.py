import numpy as np


def _rng(seed):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))


class Space:
    def __init__(self, shape, dtype, seed=None):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._np_random = _rng(seed) if seed is not None else None

    @property
    def np_random(self):
        if self._np_random is None:
            self._np_random = _rng(None)
        return self._np_random

    def seed(self, seed=None):
        self._np_random = _rng(seed)
        return seed


class Discrete(Space):
    def __init__(self, n, seed=None, start=0):
        super().__init__((), np.int64, seed)
        self.n, self.start = np.int64(n), np.int64(start)

    def sample(self):
        return self.start + self.np_random.integers(self.n, dtype=self.dtype.type)

    def contains(self, x):
        return int(self.start) <= int(x) < int(self.start + self.n)

    def __repr__(self):
        return f"Discrete({self.n})" if self.start == 0 else f"Discrete({self.n}, start={self.start})"


class Box(Space):
    def __init__(self, low, high, shape=None, dtype=np.float32, seed=None):
        dtype = np.dtype(dtype)
        if shape is None:
            shape = np.shape(low) if np.ndim(low) else np.shape(high)
        self.low = np.full(shape, low, dtype=dtype) if np.ndim(low) == 0 else np.asarray(low, dtype=dtype)
        self.high = np.full(shape, high, dtype=dtype) if np.ndim(high) == 0 else np.asarray(high, dtype=dtype)
        super().__init__(shape, dtype, seed)
        self.bounded_below = -np.inf < self.low.astype(np.float64)
        self.bounded_above = self.high.astype(np.float64) < np.inf

    def sample(self):
        high = self.high if self.dtype.kind == "f" else self.high.astype("int64") + 1
        out = np.empty(self.shape)
        both = self.bounded_below & self.bounded_above
        out[~self.bounded_below & ~self.bounded_above] = self.np_random.normal(size=int((~self.bounded_below & ~self.bounded_above).sum()))
        out[self.bounded_below & ~self.bounded_above] = self.np_random.exponential(size=int((self.bounded_below & ~self.bounded_above).sum())) + self.low[self.bounded_below & ~self.bounded_above]
        out[~self.bounded_below & self.bounded_above] = high[~self.bounded_below & self.bounded_above] - self.np_random.exponential(size=int((~self.bounded_below & self.bounded_above).sum()))
        out[both] = self.np_random.uniform(low=self.low[both], high=high[both], size=int(both.sum()))
        if self.dtype.kind in "iub":
            out = np.floor(out)
        return out.astype(self.dtype)

    def contains(self, x):
        x = np.asarray(x)
        return x.shape == self.shape and bool(np.all(x >= self.low) and np.all(x <= self.high))

    def __repr__(self):
        return f"Box({self.low.min()}, {self.high.max()}, {self.shape}, {self.dtype})"


class MultiDiscrete(Space):
    def __init__(self, nvec, dtype=np.int64, seed=None, start=None):
        self.nvec = np.asarray(nvec, dtype=dtype)
        self.start = np.zeros_like(self.nvec) if start is None else np.asarray(start, dtype=dtype)
        super().__init__(self.nvec.shape, dtype, seed)

    def sample(self):
        return (self.np_random.random(self.nvec.shape) * self.nvec).astype(self.dtype) + self.start


class MultiBinary(Space):
    def __init__(self, n, seed=None):
        self.n = n
        super().__init__((n,) if np.ndim(n) == 0 else tuple(n), np.int8, seed)

    def sample(self):
        return self.np_random.integers(low=0, high=2, size=self.n, dtype=self.dtype)


class Tuple(Space):
    def __init__(self, spaces, seed=None):
        self.spaces = tuple(spaces)
        super().__init__((), None, seed)

    def __getitem__(self, i):
        return self.spaces[i]

    def __len__(self):
        return len(self.spaces)

    def sample(self):
        return tuple(s.sample() for s in self.spaces)


class Dict(Space):
    """Keys are sorted when given a plain dict, as Gymnasium does for legacy reasons."""

    def __init__(self, spaces=None, seed=None, **kwargs):
        spaces = dict(spaces or {}, **kwargs)
        self.spaces = dict(sorted(spaces.items()))
        super().__init__((), None, seed)

    def __getitem__(self, key):
        return self.spaces[key]

    def keys(self):
        return self.spaces.keys()

    def sample(self):
        return {k: s.sample() for k, s in self.spaces.items()}
