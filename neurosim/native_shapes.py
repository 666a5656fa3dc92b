"""The native HDF5 schema's shaped parts (schema version 2, :mod:`neurosim.native_format`):
node shapes, per-neuron values stored compactly, and shaped projections stored as kernels.

- ``@shape`` (int64, rank 2 or 3) on a population or input with a shape (absent: flat).
- A per-neuron dataset (model parameters, v0, i0, a0, rate) holds shape ``()`` (one value for
  all), ``(C,)`` (one per channel, shaped nodes) or ``(size,)`` (one per neuron).
- ``/projections/<name>`` of ``@format`` conv2d | conv1d: dataset ``kernel``, attrs ``stride``,
  ``padding``, ``dilation`` (int64, one per spatial axis), ``groups``; sumpool2d | avgpool2d:
  attrs ``kernel_size``, ``stride``, ``padding`` (int64, 2); flatten: nothing more. Each has a
  ``delay`` dataset (int64: scalar, or the kernel's shape for conv).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import h5py
import numpy as np

from .conv import SHAPED_KINDS, Convolution, Pooling, ShapedProjection
from .h5read import INT, REAL, H5Reader, describe
from .native_format import MAX_SIZE

SHAPED_FORMATS = tuple(SHAPED_KINDS)


# ------------------------------------------------------------------------------------ writing
def compact(values: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Per-neuron `values` (size,) as the smallest stored form: () if all equal, (C,) if each
    channel of a shaped node holds one value, else (size,). Equal values compare bitwise."""
    v = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    bits = v.view(np.int64)
    if v.size and np.all(bits == bits[0]):
        return v[:1].reshape(())
    if len(shape) > 1:
        per = bits.reshape(shape[0], -1)
        if np.all(per == per[:, :1]):
            return v.reshape(shape[0], -1)[:, 0].copy()
    return v


COMPRESS_MIN = 256  # elements from which a network array is stored deflated


def write_array(g: h5py.Group, name: str, data: Any) -> h5py.Dataset:
    """Dataset `name` of `g` holding `data` exactly; from :data:`COMPRESS_MIN` elements on, chunked
    with HDF5's byte shuffle and deflate (level 4): lossless, and weights trained in float32 and
    stored as float64 (their low 29 bits zero) take about half their bytes. Readers need nothing
    (h5py decompresses; neurosim.h5read bounds the claimed size at deflate's 1100:1)."""
    a = np.asarray(data)
    if a.size < COMPRESS_MIN:
        return g.create_dataset(name, data=a)
    return g.create_dataset(name, data=a, shuffle=True, compression="gzip", compression_opts=4)


def write_shape(g: h5py.Group, shape: tuple[int, ...]) -> None:
    """The ``shape`` attribute of a shaped node (nothing for a flat one)."""
    if len(shape) > 1:
        g.attrs["shape"] = np.asarray(shape, np.int64)


def write_shaped(g: h5py.Group, proj: ShapedProjection) -> None:
    """The attributes and datasets of a shaped projection (``format`` is set by the caller)."""
    if isinstance(proj, Convolution):
        write_array(g, "kernel", np.asarray(proj.kernel, np.float64))
        for key in ("stride", "padding", "dilation"):
            g.attrs[key] = np.asarray(getattr(proj, key), np.int64)
        g.attrs["groups"] = int(proj.groups)
    elif isinstance(proj, Pooling):
        for key in ("kernel_size", "stride", "padding"):
            g.attrs[key] = np.asarray(getattr(proj, key), np.int64)
    write_array(g, "delay", np.asarray(proj.delay, np.int64))


# ------------------------------------------------------------------------------------ reading
def read_shape(r: H5Reader, g: h5py.Group, where: str, size: int) -> Optional[tuple[int, ...]]:
    """The node's ``shape`` attribute (None when absent): 2 or 3 whole numbers, product `size`."""
    if "shape" not in g.attrs:
        return None
    value = r.attr(g, "shape", where, f"2 or 3 whole numbers with product {size}")
    ok = (isinstance(value, np.ndarray) and value.dtype.kind in INT and value.shape in ((2,), (3,))
          and bool(np.all(value >= 1)) and math.prod(int(v) for v in value) == size)
    if not ok:
        r.fail(f"{where}@shape", f"expected 2 or 3 whole numbers >= 1 with product {size} (the size), "
                                 f"got {describe(value)}")
    return tuple(int(v) for v in value)


def read_per_neuron(r: Any, g: h5py.Group, name: str, where: str, size: int,
                    shape: Optional[tuple[int, ...]]) -> np.ndarray:
    """Dataset `name` as a float64 (size,) array from its stored form ((), (C,) or (size,))."""
    forms: tuple[tuple[int, ...], ...] = ((size,), ())
    if shape is not None:
        forms += ((shape[0],),)
    a = np.asarray(r.array(g, name, where, REAL, forms), dtype=np.float64)
    if a.shape == (size,):
        return a
    r.reserve(8 * size, f"{where}/{name}", "this dataset, one value per neuron")
    return np.repeat(a.reshape(-1), size // a.size) if a.ndim else np.full(size, float(a))


def _attr_ints(r: H5Reader, g: h5py.Group, key: str, where: str, n: int, lo: int) -> tuple[int, ...]:
    form = f"{n} whole number{'s' if n > 1 else ''} >= {lo}"
    value = r.attr(g, key, where, form)
    arr = np.asarray(value)
    if arr.dtype.kind not in INT or arr.shape not in ((n,), ()) or np.any(arr < lo) or np.any(arr > MAX_SIZE):
        r.fail(f"{where}@{key}", f"expected {form}, got {describe(value)}")
    return tuple(int(v) for v in np.broadcast_to(arr, (n,)))


def read_shaped(r: Any, g: h5py.Group, name: str, pre: str, post: str, fmt: str) -> ShapedProjection:
    """The shaped projection stored at `g` (its node shapes are checked by the Network); `r` is
    the schema's reader (neurosim.native_read.NativeReader: ``array``, ``only``)."""
    where = f"projections/{name}"
    cls = SHAPED_KINDS[fmt]
    if issubclass(cls, Convolution):
        nd = cls.in_rank - 1
        r.only(g, where, {"kernel", "delay"})
        kernel = r.array(g, "kernel", where, REAL, nd + 2)
        args = {key: _attr_ints(r, g, key, where, nd, lo) for key, lo in (("stride", 1), ("padding", 0), ("dilation", 1))}
        groups = r.attr_int(g, "groups", where, 1, MAX_SIZE)
        delay = r.array(g, "delay", where, INT, ((), kernel.shape))
        r.current = where
        return cls(name, pre, post, kernel.astype(np.float64, copy=False), groups=groups,
                   delay=_delay(delay), **args)
    r.only(g, where, {"delay"})
    delay = _delay(r.array(g, "delay", where, INT, ((),)))
    r.current = where
    if issubclass(cls, Pooling):
        args = {key: _attr_ints(r, g, key, where, 2, lo) for key, lo in (("kernel_size", 1), ("stride", 1), ("padding", 0))}
        return cls(name, pre, post, delay=delay, **args)
    return cls(name, pre, post, delay=delay)


def _delay(d: np.ndarray) -> Any:
    return d.astype(np.int64) if d.ndim else np.int64(d)
