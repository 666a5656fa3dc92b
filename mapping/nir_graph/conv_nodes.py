"""NIR's shaped nodes (Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten) read as neurosim's shaped
projection records (:mod:`neurosim.conv`), which define their arithmetic once.

A node with input shape ``in_shape`` (channel first, no batch axis) becomes a bound record
(:func:`node_record`); its exact lowering ``record.to_csr()`` is the (n_in, n_out) matrix that
the importer multiplies into a path's weights (:func:`apply_shaped`), so any chain of shaped,
Linear, Scale and Delay nodes between two neuron nodes stays exact. A path that is one shaped
node (after an optional uniform Delay) comes back as that record (:mod:`mapping.nir_graph.conv_import`).

NIR fields and their neurosim form:

- ``Conv2d(input_shape (H, W), weight (C_out, C_in/groups, kh, kw), stride, padding, dilation,
  groups, bias (C_out,))``: :class:`neurosim.Conv2d`; padding 'valid' is 0, 'same' (stride 1)
  is ``d*(k-1)/2`` each side, refused where torch pads unevenly (d*(k-1) odd). ``Conv1d``
  alike on (C, L). The bias is a constant input of every neuron of the channel.
- ``SumPool2d`` / ``AvgPool2d(kernel_size, stride, padding)``: :class:`neurosim.SumPool2d` /
  :class:`neurosim.AvgPool2d` (torch's avg_pool2d with count_include_pad=True).
- ``Flatten(input_type, start_dim, end_dim)``: the identity on the flat C-order index; its
  output shape is NIR's (``calc_flatten_output`` of the input shape, no batch axis).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Optional

import nir
import numpy as np

from neurosim.conv import AvgPool2d, Conv1d, Conv2d, Flatten, ShapedProjection, SumPool2d, channel_bias
from neurosim.csr import CSR
from neurosim.errors import NetworkError

from .common import NS
from .nodes_import import ImportContext, node_array, shown

SHAPED_TYPES = (nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d, nir.Flatten)
SHAPED_NAMES = ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten")
Shape = tuple[int, ...]


def _ints(node: Any, field: str, n: int, ctx: ImportContext, name: str, low: int) -> tuple[int, ...]:
    """Field `field` as n whole numbers >= low (one number repeated n times)."""
    value = getattr(node, field, None)
    a = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, n)
    if a.size != n or a.dtype.kind not in "iuf" or not np.all(np.isfinite(a)) or np.any(a != np.round(a)) \
            or np.any(a < low):
        raise ctx.error(f"nodes.{name}.{field}", f"expected {n} whole number(s) >= {low}, got {shown(value)}")
    return tuple(int(x) for x in a)


def _padding(node: Any, kernel: Shape, dilation: Shape, stride: Shape, ctx: ImportContext, name: str) -> Shape:
    """NIR padding (numbers, 'valid' or 'same') as neurosim's symmetric padding."""
    pad = node.padding
    if isinstance(pad, bytes):
        pad = pad.decode("utf8")
    if isinstance(pad, np.ndarray) and pad.dtype.kind in "SU":
        pad = str(pad.reshape(-1)[0] if pad.ndim else pad[()])
    if isinstance(pad, str):
        if pad == "valid":
            return (0,) * len(kernel)
        if pad != "same":
            raise ctx.error(f"nodes.{name}.padding", f"expected numbers, 'valid' or 'same', got {pad!r}")
        if any(s != 1 for s in stride):
            raise ctx.error(f"nodes.{name}.padding", "'same' padding with stride > 1 is not defined (torch refuses it)")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if any(t % 2 for t in total):
            raise ctx.error(f"nodes.{name}.padding", f"'same' padding of a kernel spanning {[t + 1 for t in total]} "
                                                     "pads one more zero on one side; neurosim pads both sides "
                                                     "equally (give explicit symmetric padding)")
        return tuple(t // 2 for t in total)
    return _ints(node, "padding", len(kernel), ctx, name, 0)


def node_record(name: str, node: Any, in_shape: Shape, ctx: ImportContext) -> tuple[Optional[ShapedProjection], Shape]:
    """(the neurosim record bound to `in_shape`, the node's output shape); Flatten to a shape of
    rank > 1 (a partial flatten) has no record (None): it is the identity on flat indices."""
    where = f"nodes.{name}"
    try:
        if isinstance(node, nir.Flatten):
            return _flatten(name, node, in_shape, ctx)
        if isinstance(node, (nir.Conv1d, nir.Conv2d)):
            rec = _conv(name, node, in_shape, ctx)
        else:
            nd = 2
            if len(in_shape) != 3:
                raise ctx.error(f"{where}.input_type", f"expected an input of shape (C, H, W), got {in_shape}")
            k = _ints(node, "kernel_size", nd, ctx, name, 1)
            s = _ints(node, "stride", nd, ctx, name, 1)
            p = _ints(node, "padding", nd, ctx, name, 0)
            cls = SumPool2d if isinstance(node, nir.SumPool2d) else AvgPool2d
            rec = cls("n", "a", "b", k, s, p)
        bound = rec.bind(tuple(in_shape), replace(rec, in_shape=tuple(in_shape)).out_shape)
        return bound, bound.out_shape
    except NetworkError as exc:
        field = where + exc.field[len("projections.n"):] if exc.field.startswith("projections.n") else where
        for ours, theirs in ((".kernel", ".weight"), (".post", ".input_type"), (".pre", ".input_type")):
            if field.endswith(ours):
                field = field[:-len(ours)] + theirs
        raise ctx.error(field, exc.message) from None


def _conv(name: str, node: Any, in_shape: Shape, ctx: ImportContext) -> ShapedProjection:
    nd = 1 if isinstance(node, nir.Conv1d) else 2
    where = f"nodes.{name}"
    w = node_array(node, "weight", ctx, name)
    if w.ndim != nd + 2 or not np.all(np.isfinite(w)):
        raise ctx.error(f"{where}.weight", f"expected finite numbers of shape (C_out, C_in/groups, "
                                           f"{'k' if nd == 1 else 'kh, kw'}), got {shown(w)}")
    if len(in_shape) != nd + 1:
        raise ctx.error(f"{where}.input_type", f"expected an input of shape {'(C, L)' if nd == 1 else '(C, H, W)'}, "
                                               f"got {in_shape}")
    groups = _ints(node, "groups", 1, ctx, name, 1)[0]
    if w.shape[1] * groups != in_shape[0]:
        raise ctx.error(f"{where}.weight", f"expected C_in/groups = {in_shape[0]}/{groups} input channels per "
                                           f"group for an input of shape {in_shape}, got weight {w.shape}")
    given = getattr(node, "input_shape", None)
    if given is not None and tuple(np.asarray(given).reshape(-1).astype(int)) != tuple(in_shape[1:]):
        raise ctx.error(f"{where}.input_shape", f"expected {tuple(in_shape[1:])} (the shape the node receives), "
                                                f"got {shown(given)}")
    s = _ints(node, "stride", nd, ctx, name, 1)
    d = _ints(node, "dilation", nd, ctx, name, 1)
    p = _padding(node, tuple(w.shape[2:]), d, s, ctx, name)
    cls = Conv1d if nd == 1 else Conv2d
    g = int(np.asarray((node.metadata or {}).get(NS + "groups", 1)).reshape(-1)[0])
    if groups == 1 and g > 1 and w.shape[0] % g == 0 and w.shape[1] % g == 0:  # neurosim's expanded groups
        cog, cig = w.shape[0] // g, w.shape[1] // g
        blocks = np.stack([w[o, (o // cog) * cig:(o // cog + 1) * cig] for o in range(w.shape[0])])
        rest = w.copy()
        for o in range(w.shape[0]):
            rest[o, (o // cog) * cig:(o // cog + 1) * cig] = 0
        if not np.any(rest):
            w, groups = blocks, g
    return cls("n", "a", "b", w, s, p, d, groups)


def _flatten(name: str, node: Any, in_shape: Shape, ctx: ImportContext) -> tuple[Optional[ShapedProjection], Shape]:
    rank = len(in_shape)
    start, end = int(node.start_dim), int(node.end_dim)
    lo, hi = start % rank if start < 0 else start, end % rank if end < 0 else end
    if not (0 <= lo <= hi < rank):
        raise ctx.error(f"nodes.{name}.start_dim", f"expected 0 <= start_dim <= end_dim < {rank} for an input of "
                                                   f"shape {in_shape} (no batch axis), got {start}, {end}")
    out = (*in_shape[:lo], math.prod(in_shape[lo:hi + 1]), *in_shape[hi + 1:])
    if len(out) != 1:
        return None, out
    return Flatten("n", "a", "b", in_shape=tuple(in_shape)), out


def lowering(rec: Optional[ShapedProjection], n: int) -> CSR:
    """The (n_in, n_out) matrix of `rec` (kernel zeros kept); the identity for None."""
    if rec is None:
        idx = np.arange(n, dtype=np.int64)
        return CSR(np.arange(n + 1, dtype=np.int64), idx, np.ones(n), (n, n))
    return rec.to_csr()[0]


def conv_bias(name: str, node: Any, out_shape: Shape, ctx: ImportContext) -> Optional[np.ndarray]:
    """A Conv node's bias as one value per output neuron (None: no bias or all zero)."""
    if not isinstance(node, (nir.Conv1d, nir.Conv2d)) or getattr(node, "bias", None) is None:
        return None
    b = node_array(node, "bias", ctx, name).reshape(-1)
    if b.shape != (out_shape[0],) or not np.all(np.isfinite(b)):
        raise ctx.error(f"nodes.{name}.bias", f"expected {out_shape[0]} finite values (one per output channel), "
                                              f"got {shown(b)}")
    return channel_bias(b, out_shape) if np.any(b != 0) else None
