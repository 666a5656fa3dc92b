"""Validators of the fields that the network records share (names, sizes, shapes, delays).

Each raises :class:`NetworkError` naming the field and the expected form.
"""
from __future__ import annotations

import math
import re
from typing import Any, Optional

import numpy as np

from .errors import NetworkError

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")  # names of populations, inputs, projections
MAX_DELAY = 100_000  # steps; the ring buffer holds max_delay + 1 steps of input per neuron
MAX_RANK = 3  # node shapes: (n,), (C, L) or (C, H, W)


def check_name(name: Any, where: str) -> str:
    """`name` if it is a valid name (letters, digits, '_', '-'; at most 64), else NetworkError."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise NetworkError(where, f"expected a name of letters, digits, '_', '-' "
                                  f"starting with a letter or '_' (at most 64), got {name!r}")
    return name


def check_size(size: Any, where: str) -> int:
    """`size` as an int >= 1, else NetworkError."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise NetworkError(where, f"expected a whole number >= 1, got {size!r}")
    return int(size)


def readonly(a: Any) -> np.ndarray:
    """A read-only copy of `a`."""
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def check_ints(value: Any, n: int, where: str, low: int, what: str) -> tuple[int, ...]:
    """`value` (a whole number, or a sequence of `n`) as an n-tuple of ints >= `low`."""
    items = value if isinstance(value, (tuple, list, np.ndarray)) else (value,) * n
    form = f"a whole number >= {low} or {n} of them ({what})"
    if len(items) != n:
        raise NetworkError(where, f"expected {form}, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < low:
            raise NetworkError(where, f"expected {form}, got {value!r}")
        out.append(int(v))
    return tuple(out)


def node_shape(size: Any, shape: Any, where: str) -> tuple[int, tuple[int, ...]]:
    """(size, shape) of a population or input given `size` (a whole number, or a shape tuple)
    and an optional `shape` ((n,), (C, L) or (C, H, W)); size must equal prod(shape)."""
    if isinstance(size, (tuple, list)) and shape is None:
        size, shape = None, size
    if shape is None:
        n = check_size(size, f"{where}.size")
        return n, (n,)
    if not isinstance(shape, (tuple, list, np.ndarray)) or not 1 <= len(shape) <= MAX_RANK or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= 1 for v in shape):
        raise NetworkError(f"{where}.shape", f"expected (n,), (C, L) or (C, H, W) of whole numbers >= 1, got {shape!r}")
    dims = tuple(int(v) for v in shape)
    n = math.prod(dims)
    if size is not None and check_size(size, f"{where}.size") != n:
        raise NetworkError(f"{where}.size", f"expected prod(shape) = {n} for shape {dims}, got {size!r}")
    return n, dims


def check_delay(delay: Any, where: str, per_synapse: Optional[tuple[int, ...]]) -> Any:
    """Delay in whole steps in [1, MAX_DELAY]: an int, or a read-only int64 array of shape
    `per_synapse` (None: scalar only)."""
    d = np.asarray(delay)
    if d.dtype.kind not in "iuf" or (d.dtype.kind == "f" and np.any(d != np.round(d))):
        raise NetworkError(where, f"expected whole numbers of steps >= 1, got dtype {d.dtype}")
    if d.size and not np.all(np.isfinite(d)):
        raise NetworkError(where, "expected finite whole numbers of steps, found NaN or inf")
    if d.size and np.any(d < 1):
        raise NetworkError(where, f"expected delays >= 1 step, got minimum {int(d.min())}")
    if d.size and np.any(d > MAX_DELAY):
        raise NetworkError(where, f"expected delays <= {MAX_DELAY} steps, got {int(d.max())}")
    if d.ndim == 0:
        return int(d)
    if per_synapse is None or d.shape != per_synapse:
        expected = "a scalar" + (f" or shape {per_synapse}" if per_synapse is not None else "")
        raise NetworkError(where, f"expected {expected}, got {d.shape}")
    return readonly(d.astype(np.int64))
