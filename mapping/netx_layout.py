"""What a lava-dl NetX file holds and how its values are written: the limits NetX 0.6 and Lava's
fixed-point blocks impose, the HDF5 string forms, and the orientation of conv-layer arrays.

NetX orders a conv layer's neurons (X, Y, C) = (W, H, C) (``hdf5.Network.create_conv`` reverses
the file's ``shape`` (C, H, W)); neurosim orders them (C, H, W) in C order. Per-neuron arrays
of a conv layer (bias, iDecay, vDecay, vThMant) are written in NetX's orientation: a scalar,
one value per channel (C,) (broadcast by NetX and Lava), or the full (W, H, C) array.
"""
from __future__ import annotations

from typing import Any, Sequence

import h5py
import numpy as np

from neurosim.fixed_point import LAVA_WEIGHT_RANGE

TARGET = "netx"
NETX_BIAS_EXP = 6
NETX_MAX_DELAY = 63            # NetX clamps file delays to 62 extra steps
SLAYER_SCALE = 4096.0          # integer state units per float unit in SLAYER's convention
NETX_LIMITS = {"mixed": (-256, 254), "excitatory": (0, 255), "inhibitory": (-255, 0)}


def h5_string(group: Any, name: str, value: str) -> None:
    """A fixed-length ASCII string of shape (1,), as SLAYER writes `type`."""
    group.create_dataset(name, (1,), "S10", [value.encode("ascii")])


def h5_name(group: Any, key: str, value: str) -> None:
    """A fixed-length UTF-8 attribute: kept in the object header, not in the global heap
    (whose corruption can hang HDF5 on reading)."""
    data = value.encode("utf-8")
    group.attrs.create(key, np.bytes_(data), dtype=h5py.string_dtype("utf-8", max(1, len(data))))


def netx_problem(w: np.ndarray) -> str:
    """Why NetX + Lava would not reproduce the integer weights `w` exactly ('' if they would):
    NetX clips beyond 8-bit ranges, and for mixed signs Lava's Dense drops the lowest bit after
    NetX's rescaling (Lava's Conv keeps it, Loihi's 8-bit mixed synapse does not): expected even."""
    if not np.any(w):
        return "NetX cannot load an all-zero weight matrix"
    mode = "excitatory" if w.min() >= 0 else ("inhibitory" if w.max() <= 0 else "mixed")
    lo, hi = NETX_LIMITS[mode]
    if w.min() < lo or w.max() > hi:
        return f"NetX/Lava clip {mode} weights to [{lo}, {hi}], found [{w.min()}, {w.max()}]"
    if mode == "mixed" and np.any(w % 2):
        return ("odd mixed-sign weights: NetX rescales them (optimize_weight_bits) before Lava drops the lowest "
                "bit, which depends on the layer's range; expected even values")
    return ""


def conv_problem(kernel: np.ndarray) -> str:
    """Why a conv block would not hold the integer `kernel` ('' if it would): Lava's Conv
    (``PyConvModelFixed``) uses its weights whole (no clip, no lowest-bit drop, exponent 0), so
    only Loihi's 8-bit mantissa ranges limit them."""
    if not kernel.size:
        return ""
    mode = "excitatory" if kernel.min() >= 0 else ("inhibitory" if kernel.max() <= 0 else "mixed")
    lo, hi = LAVA_WEIGHT_RANGE[mode]
    if kernel.min() < lo or kernel.max() > hi:
        return f"8-bit {mode} weights lie in [{lo}, {hi}], found [{kernel.min()}, {kernel.max()}]"
    return ""


def to_xyc(values: Any, shape: Sequence[int]) -> Any:
    """A per-neuron vector of a (C, H, W) layer (C-order flat, or a scalar) in NetX's form: the
    scalar, (C,) when constant over each channel, else the (W, H, C) array."""
    if np.ndim(values) == 0:
        return values
    arr = np.asarray(values).reshape(tuple(shape))
    per_channel = arr.reshape(arr.shape[0], -1)
    if np.all(per_channel == per_channel[:, :1]):
        first = per_channel[:, 0]
        return first[0] if np.all(first == first[0]) else first
    return arr.transpose(2, 1, 0)


def from_xyc(values: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`to_xyc`: a scalar, (C,) or (W, H, C) array as the (C*H*W,) C-order vector
    (the caller has checked that the array has one of those shapes)."""
    c, h, w = shape
    arr = np.asarray(values)
    if arr.ndim == 1:
        return np.repeat(arr, h * w)
    if arr.ndim == 3:
        return arr.transpose(2, 1, 0).reshape(-1)
    return np.full(c * h * w, arr)
