"""Loihi's integer arithmetic, shared by the records, the step and Lava's custom process:
int32 wrap-around, the truncating decay ``sign(p) * (|p| >> k)`` and the 24-bit clip."""
from __future__ import annotations

from typing import Any

import numpy as np

UV_MAX = 2 ** 23                      # u, v and a are 24-bit signed


def wrap32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to int32 (kept as int64)."""
    return ((x + 2 ** 31) & 0xFFFFFFFF) - 2 ** 31


def mul_shift(x: np.ndarray, factor: Any, shift: int = 12) -> np.ndarray:
    """``trunc(x * factor / 2**shift) = sign(p) * (|p| >> shift)``, ``p = x * factor`` in int64 (Lava's decay)."""
    p = np.asarray(x, np.int64) * factor
    return np.sign(p) * (np.abs(p) >> shift)


def clip24(x: np.ndarray) -> np.ndarray:
    """`x` clipped to the signed 24-bit range of u, v and a, +-(2**23 - 1)."""
    return np.clip(x, -UV_MAX + 1, UV_MAX - 1)


def wrap24(x: np.ndarray) -> np.ndarray:
    """Signed 24-bit wrap-around, ``(x + 2**23) mod 2**24 - 2**23`` (Lava's ``signed_clamp(x, 24)``,
    applied to the output of its fixed-point Conv)."""
    return ((np.asarray(x, np.int64) + UV_MAX) & (2 * UV_MAX - 1)) - UV_MAX


def sign_mode(w: np.ndarray) -> str:
    """Lava's determine_sign_mode: 'excitatory' if min >= 0, 'inhibitory' if max <= 0, else 'mixed'."""
    if w.size == 0 or w.min() >= 0:
        return "excitatory"
    if w.max() <= 0:
        return "inhibitory"
    return "mixed"


def mantissas(target_units: np.ndarray, e: int, mode: str) -> np.ndarray:
    """round(target_units / 2**e), on the even grid for mixed signs (Lava drops their lowest bit)."""
    x = target_units / 2.0 ** e
    return (2 * np.round(x / 2) if mode == "mixed" else np.round(x)).astype(np.int64)
