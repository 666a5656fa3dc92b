"""The records every bundled task returns (Split, Task) and the option checks and spike
helpers the task families share; conventions in training.tasks."""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np

from neurosim.errors import NetworkError

Kind = Literal["classification", "regression"]


@dataclass(frozen=True, eq=False)
class Split:
    """One split. `inputs` (N, T, n_in) float32 spikes 0/1; `targets` (N,) int64 class labels or
    (N, T, n_out) float32 per-step targets (the task says which); `loss_mask` (T,) bool."""

    inputs: np.ndarray
    targets: np.ndarray
    loss_mask: np.ndarray

    def __post_init__(self) -> None:
        x, y, m = self.inputs, self.targets, self.loss_mask
        if x.ndim != 3:
            raise NetworkError("split.inputs", f"expected shape (N, T, n_in), got {x.shape}")
        if m.shape != (x.shape[1],) or m.dtype != np.bool_:
            raise NetworkError("split.loss_mask", f"expected bool of shape ({x.shape[1]},), got {m.dtype} {m.shape}")
        if y.shape[0] != x.shape[0] or y.ndim not in (1, 3) or (y.ndim == 3 and y.shape[1] != x.shape[1]):
            raise NetworkError("split.targets", f"expected (N,) or (N, T, n_out) with N, T = {x.shape[:2]}, "
                                                f"got {y.shape}")

    @property
    def per_step(self) -> bool:
        """True when targets are per step, (N, T, n_out)."""
        return self.targets.ndim == 3

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


@dataclass(frozen=True, eq=False)
class Task:
    """A task: sizes, time step (s), both splits, and the score a trained model should reach.

    `bar` is accuracy over test samples (per recall window for per-step targets); `bar_source`
    says where it comes from. `channels` maps each input group to its ``(start, stop)`` channels;
    `params` holds every resolved option and the derived step counts. `windows`: the ``[lo, hi)``
    step ranges scored as one answer each for per-step class targets (empty: every masked step is
    one answer); training.scoring.score is the one definition of accuracy. `val`: a validation
    split drawn from the training data (for choosing epochs), where the task has one.
    """

    name: str
    n_in: int
    n_out: int
    steps: int
    dt: float
    kind: Kind
    train: Split
    test: Split
    description: str
    bar: float
    bar_source: str
    channels: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    windows: tuple[tuple[int, int], ...] = ()
    val: Split | None = None



def resolve_options(name: str, defaults: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """`defaults` overridden by `options`; an unknown option is an error naming `name.option`."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise NetworkError(f"{name}.{unknown[0]}", f"unknown option; expected one of {sorted(defaults)}")
    return {**defaults, **options}


def int_option(name: str, key: str, v: Any, lo: int, hi: int | None = None) -> int:
    """`v` as an int in [lo, hi] (hi None: no upper bound), else NetworkError naming `name.key`."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise NetworkError(f"{name}.{key}", f"expected a whole number {rng}, got {v!r}")
    return int(v)


def float_option(name: str, key: str, v: Any, lo: float, hi: float = np.inf, lo_open: bool = True) -> float:
    """`v` as a finite float in (lo, hi] ([lo, hi] unless `lo_open`), else NetworkError naming `name.key`."""
    ok = not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v)
    if not ok or v > hi or v < lo or (lo_open and v == lo):
        low = f"{'>' if lo_open else '>='} {lo}"
        raise NetworkError(f"{name}.{key}", f"expected a finite number {low}" +
                           (f" and <= {hi}" if np.isfinite(hi) else "") + f", got {v!r}")
    return float(v)


def choice_option(name: str, key: str, v: Any, allowed: tuple[str, ...]) -> str:
    """`v`, one of `allowed`, else NetworkError naming `name.key`."""
    if v not in allowed:
        raise NetworkError(f"{name}.{key}", f"expected one of {list(allowed)}, got {v!r}")
    return str(v)


def steps_option(name: str, key: str, seconds: Any, dt: float, *, scale: float = 1.0, allow_zero: bool = False) -> int:
    """A duration in seconds (times `scale`) as a whole number of steps, round(d / dt)."""
    n = int(round(float_option(name, key, seconds, 0.0, lo_open=not allow_zero) * scale / dt))
    if n < 1 and not allow_zero:
        raise NetworkError(f"{name}.{key}", f"expected at least one step (dt = {dt} s, scale = {scale}), "
                                            f"got {seconds!r} s")
    return n


def spike_probability(name: str, key: str, rate: float, dt: float) -> float:
    """``rate * dt``, the per-step spike probability of a `rate` Hz source; must be <= 1."""
    if rate * dt > 1.0:
        raise NetworkError(f"{name}.{key}", f"expected rate * dt <= 1 (dt = {dt} s), got {rate} Hz")
    return rate * dt


def split_rngs(name: str, seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(train, test) generators: two independent streams of ``SeedSequence([seed, crc32(name)])``."""
    train, test = np.random.SeedSequence([seed, zlib.crc32(name.encode())]).spawn(2)
    return np.random.default_rng(train), np.random.default_rng(test)


def balanced_labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """`n` labels of `k` classes, balanced exactly: a shuffled ``arange(n) % k``."""
    return rng.permutation(np.arange(n, dtype=np.int64) % k)


def bernoulli_spikes(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """Independent Bernoulli spikes with per-entry probability `p`, as float32 0/1."""
    return (rng.random(p.shape, dtype=np.float32) < p).astype(np.float32)


def regular_spikes(p: np.ndarray) -> np.ndarray:
    """Deterministic rate code along axis 1 (time): channel c spikes at t when
    ``floor(P[t] + 1/2)`` steps up, ``P[t] = sum_{u <= t} p[u]`` (each count within 1 of the
    expected count over any window), as float32 0/1. Needs p in [0, 1]."""
    c = np.floor(np.cumsum(p, axis=1, dtype=np.float64) + 0.5)
    return np.diff(c, axis=1, prepend=0.0).astype(np.float32)


def channel_groups(names: list[str], size: int) -> dict[str, tuple[int, int]]:
    """Input groups `names` of `size` consecutive channels each: name -> (start, stop)."""
    return {g: (i * size, (i + 1) * size) for i, g in enumerate(names)}


def step_mask(steps: int, start: int, stop: int) -> np.ndarray:
    """(steps,) bool, True on [start, stop)."""
    m = np.zeros(steps, dtype=bool)
    m[start:stop] = True
    return m


def sample_count(name: str, key: str, v: int | None, default: int, lo: int = 1) -> int:
    """`v` (a whole number >= lo) or `default` when None."""
    return default if v is None else int_option(name, key, v, lo)

