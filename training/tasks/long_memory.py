"""Copy memory and adding (Hochreiter & Schmidhuber 1997; the setups of Ke et al. 2018, SAB)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import Split, Task, float_option, int_option, resolve_options, sample_count, split_rngs, step_mask


COPY_MEMORY_DEFAULTS: dict[str, Any] = dict(T=100, n_copy=10, n_symbols=8, dt=1e-3)


def copy_memory(seed: int, n_train: int | None, n_test: int | None, **options: Any) -> Task:
    """Copy memory (the SAB paper's copy task): ``n_copy`` symbols drawn uniformly from an alphabet
    of ``n_symbols``, one per step, then ``T - 1`` blank steps, a delimiter, and ``n_copy`` blank
    steps during which the network must output the symbols in order. Steps: ``T + 2 n_copy``.
    Inputs one-hot (0/1, so spikes as well), channels: blank, symbol 1..n_symbols, delimiter
    (n_in = n_symbols + 2). Targets: per step one-hot over the ``n_symbols`` symbols in the last
    ``n_copy`` steps; loss mask: those steps. Accuracy: on the recalled characters (per step).

    Defaults: T = 100, 10 symbols to copy from 8, dt = 1 ms (only a label here). Sizes: 4096 train
    / 512 test. Bar: 0.95 per-character accuracy, our own criterion (chance 1/n_symbols).
    """
    name = "copy"
    o = resolve_options(name, COPY_MEMORY_DEFAULTS, options)
    delay = int_option(name, "T", o["T"], 1)
    n_copy = int_option(name, "n_copy", o["n_copy"], 1)
    n_sym = int_option(name, "n_symbols", o["n_symbols"], 2)
    dt = float_option(name, "dt", o["dt"], 0.0)
    steps = delay + 2 * n_copy

    def split(rng: np.random.Generator, n: int) -> Split:
        symbols = rng.integers(0, n_sym, (n, n_copy))
        x = np.zeros((n, steps, n_sym + 2), dtype=np.float32)
        x[:, :, 0] = 1.0
        x[:, :n_copy, 0] = 0.0
        x[np.arange(n)[:, None], np.arange(n_copy)[None, :], 1 + symbols] = 1.0
        x[:, n_copy + delay - 1, 0] = 0.0
        x[:, n_copy + delay - 1, n_sym + 1] = 1.0
        y = np.zeros((n, steps, n_sym), dtype=np.float32)
        y[np.arange(n)[:, None], steps - n_copy + np.arange(n_copy)[None, :], symbols] = 1.0
        return Split(x, y, step_mask(steps, steps - n_copy, steps))

    r_train, r_test = split_rngs(name, seed)
    return Task(name, n_sym + 2, n_sym, steps, dt, "classification",
                split(r_train, sample_count(name, "n_train", n_train, 4096)),
                split(r_test, sample_count(name, "n_test", n_test, 512)),
                f"copy memory: {n_copy} of {n_sym} symbols, {delay - 1} blanks, delimiter, recall {n_copy} steps",
                0.95, "own criterion; the SAB paper reports per-character accuracy on this task",
                {"blank": (0, 1), "symbols": (1, n_sym + 1), "delimiter": (n_sym + 1, n_sym + 2)},
                dict(o, steps=steps))


ADDING_DEFAULTS: dict[str, Any] = dict(T=100, dt=1e-3, tolerance=0.04)


def adding(seed: int, n_train: int | None, n_test: int | None, **options: Any) -> Task:
    """Adding problem: channel 0 carries values uniform in [0, 1) (real, not spikes), channel 1
    marks two steps, one in the first half and one in the second; the target, read at the last step
    only, is the sum of the two marked values (regression, targets (N, T, 1), loss mask: last step).
    Defaults: T = 100 steps, 4096 train / 512 test. Bar: 0.95 of test sequences within ``tolerance``
    (0.04) of the sum, our own criterion (predicting 1 always gives about 0.06).
    """
    name = "adding"
    o = resolve_options(name, ADDING_DEFAULTS, options)
    steps = int_option(name, "T", o["T"], 2)
    dt = float_option(name, "dt", o["dt"], 0.0)
    float_option(name, "tolerance", o["tolerance"], 0.0)

    def split(rng: np.random.Generator, n: int) -> Split:
        x = np.zeros((n, steps, 2), dtype=np.float32)
        x[:, :, 0] = rng.random((n, steps), dtype=np.float32)
        half = steps // 2
        first, second = rng.integers(0, half, n), rng.integers(half, steps, n)
        rows = np.arange(n)
        x[rows, first, 1] = 1.0
        x[rows, second, 1] = 1.0
        y = np.zeros((n, steps, 1), dtype=np.float32)
        y[:, -1, 0] = x[rows, first, 0] + x[rows, second, 0]
        return Split(x, y, step_mask(steps, steps - 1, steps))

    r_train, r_test = split_rngs(name, seed)
    return Task(name, 2, 1, steps, dt, "regression",
                split(r_train, sample_count(name, "n_train", n_train, 4096)),
                split(r_test, sample_count(name, "n_test", n_test, 512)),
                f"adding problem over {steps} steps: sum of the two marked values, read at the last step", 0.95,
                f"own criterion: fraction of test sequences within {o['tolerance']} of the sum",
                {"values": (0, 1), "markers": (1, 2)}, dict(o))
