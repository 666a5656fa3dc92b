"""Lowering of a Network into flat arrays that every backend consumes.

Global index space: neurons of all populations first (in order), then all input channels.
One merged CSR maps each global presynaptic index to (postsynaptic neuron, weight, delay);
within a row, synapses keep projection order then row order, which fixes the summation order
of simultaneous inputs identically in every backend. Convolutions and pooling (shaped
projections with a geometry, :mod:`neurosim.conv`) come after the other projections in a row:
lowered into the CSR (``convolution='lowered'``, the reference), or kept as kernels in
``Plan.conv`` (``'events'``, :mod:`neurosim.conv_plan`), whose patches a backend adds after the
spike's CSR row; both sum every input in the same order, so they agree bit for bit.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Optional, Union

import numpy as np

from .conv import ShapedProjection
from .conv_plan import ConvTables, build
from .errors import NetworkError
from .models import NeuronParams
from .network import Network, PoissonInput, Projection
from .propagation import RowSegments, row_segments

CONVOLUTION = ("events", "lowered")


@dataclass(frozen=True, eq=False)
class DenseBlock:
    """A dense projection from an input source with one delay, that a backend may run as a
    product over the batch (``x[t + delay, :, post_lo:post_hi] += s[t] @ weights``) instead of
    its synapses' rows: weights (pre_hi - pre_lo, post_hi - post_lo) in the plan's dtype, zeros
    where there is no synapse. Its synapses stay in the CSR too (``Plan.synapse_block``)."""

    name: str
    pre_lo: int
    pre_hi: int
    post_lo: int
    post_hi: int
    delay: int
    weights: np.ndarray


@dataclass(frozen=True, eq=False)
class Plan:
    """Flat, dtype-cast form of a network.

    params: per-neuron NeuronParams (N,); v0/i0/a0: (N,); indptr: (N + S + 1,);
    indices (int32), weights (dtype), delays (int32): (nnz,); ring: ring-buffer length,
    max delay + 1; slices: name -> (start, stop) in the global index space; conv: the
    event-driven convolution ops (None when lowered into the CSR or absent).
    """

    dtype: np.dtype
    n_neurons: int
    n_sources: int
    params: NeuronParams
    v0: np.ndarray
    i0: np.ndarray
    a0: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    delays: np.ndarray
    ring: int
    slices: dict[str, tuple[int, int]]
    poisson: dict[str, np.ndarray]  # name -> per-step spike probability (rate * dt)
    conv: Optional[ConvTables] = None
    blocks: tuple[DenseBlock, ...] = ()
    synapse_block: Optional[np.ndarray] = None  # int32 (nnz,): index into blocks, -1 for none

    @cached_property
    def segments(self) -> RowSegments:
        """The CSR rows cut into runs of one delay (:func:`neurosim.propagation.row_segments`)."""
        block = self.synapse_block if self.synapse_block is not None else np.full(len(self.indices), -1, np.int32)
        return row_segments(self.indptr, self.indices, self.weights, self.delays, block)

    @property
    def n_total(self) -> int:
        return self.n_neurons + self.n_sources

    def lowered(self) -> "Plan":
        """This plan with its convolution ops lowered into the CSR (itself when it has none):
        the same rows, conv synapses after the others, as ``lower(..., convolution='lowered')``."""
        if self.conv is None:
            return self
        pre, post, w, d = self.conv.lowered()
        rows = np.repeat(np.arange(self.n_total), np.diff(self.indptr))
        pre = np.concatenate([rows, pre])
        order = np.argsort(pre, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(pre, minlength=self.n_total))]).astype(np.int64)
        block = self.synapse_block if self.synapse_block is not None else np.full(len(self.indices), -1, np.int32)
        return replace(self, indptr=indptr,
                       synapse_block=np.concatenate([block, np.full(len(post), -1, np.int32)])[order],
                       indices=np.concatenate([self.indices, post.astype(np.int32)])[order],
                       weights=np.concatenate([self.weights, w.astype(self.dtype)])[order],
                       delays=np.concatenate([self.delays, d.astype(np.int32)])[order], conv=None)


def lower(network: Network, dtype: Union[str, np.dtype] = "float64", convolution: str = "lowered") -> Plan:
    """Flatten `network` for simulation in `dtype` (float32 or float64); convolution: 'lowered'
    (every synapse in the CSR) or 'events' (convolution and pooling kept as kernels, Plan.conv)."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise NetworkError("dtype", f"expected float32 or float64, got {dtype!r}")
    if convolution not in CONVOLUTION:
        raise NetworkError("convolution", f"expected one of {CONVOLUTION}, got {convolution!r}")
    slices: dict[str, tuple[int, int]] = {}
    offset = 0
    for p in network.populations:
        slices[p.name] = (offset, offset + p.size)
        offset += p.size
    n_neurons = offset
    for s in network.inputs:
        slices[s.name] = (offset, offset + s.size)
        offset += s.size
    n_total = offset

    fields = NeuronParams._fields
    params = NeuronParams(*(np.concatenate([getattr(p.params, f) for p in network.populations]).astype(dt)
                            for f in fields))
    init = {k: np.concatenate([getattr(p, k) for p in network.populations]).astype(dt)
            for k in ("v0", "i0", "a0")}

    pre_l, post_l, w_l, d_l, blk_l = [], [], [], [], []
    ops = []
    blocks: list[DenseBlock] = []
    shaped = [j for j in network.projections if isinstance(j, ShapedProjection) and j.geometry() is not None]
    for proj in [j for j in network.projections if not any(j is k for k in shaped)] + shaped:
        if convolution == "events" and any(proj is k for k in shaped):
            ops.append((slices[proj.pre][0], slices[proj.post][0], proj.geometry()))
            continue
        csr, delays = proj.to_csr()
        rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
        pre_l.append(rows + slices[proj.pre][0])
        post_l.append(np.asarray(csr.indices) + slices[proj.post][0])
        w_l.append(np.asarray(csr.values, dtype=np.float64))
        d_l.append(delays)
        blk_l.append(np.full(len(delays), -1, np.int32))
        if _dense_block_ok(network, proj):
            blk_l[-1][:] = len(blocks)
            (a, b), (c, e) = slices[proj.pre], slices[proj.post]
            blocks.append(DenseBlock(proj.name, a, b, c, e, int(proj.delay), np.ascontiguousarray(proj.weights, dt)))
    if pre_l:
        pre = np.concatenate(pre_l)
        post = np.concatenate(post_l)
        w = np.concatenate(w_l)
        d = np.concatenate(d_l)
        blk = np.concatenate(blk_l)
    else:
        pre = post = d = np.zeros(0, np.int64)
        w = np.zeros(0)
        blk = np.zeros(0, np.int32)
    order = np.argsort(pre, kind="stable")
    counts = np.bincount(pre, minlength=n_total)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    conv = build(ops, dt) if ops else None
    ring = max(int(d.max()) if d.size else 1, conv.max_delay if conv is not None else 1) + 1
    poisson = {s.name: (np.asarray(s.rate) * network.dt) for s in network.inputs
               if isinstance(s, PoissonInput)}
    return Plan(dtype=dt, n_neurons=n_neurons, n_sources=n_total - n_neurons, params=params,
                v0=init["v0"], i0=init["i0"], a0=init["a0"], indptr=indptr,
                indices=post[order].astype(np.int32), weights=w[order].astype(dt),
                delays=d[order].astype(np.int32), ring=ring, slices=slices, poisson=poisson, conv=conv,
                blocks=tuple(blocks), synapse_block=blk[order])


def _dense_block_ok(network: Network, proj: Projection) -> bool:
    """Whether `proj` may run as a product (:class:`DenseBlock`): dense weights, one delay,
    from an input source, and the only projection from its pre to its post."""
    if not isinstance(proj, Projection) or proj.is_sparse or np.ndim(proj.delay) != 0:
        return False
    if proj.pre not in {s.name for s in network.inputs}:
        return False
    return sum(j.pre == proj.pre and j.post == proj.post for j in network.projections) == 1


_CACHE: "weakref.WeakKeyDictionary[Network, dict[tuple[str, str], Plan]]" = weakref.WeakKeyDictionary()


def cached_lower(network: Network, dtype: Union[str, np.dtype] = "float64", convolution: str = "lowered") -> Plan:
    """:func:`lower`, computed once per (network, dtype, convolution) and kept while the
    network lives. Keyed on the network's identity (a weak reference): safe because a Network
    is frozen and every array it holds is read-only (neurosim.fields.readonly), so the same
    object always lowers to the same plan. The cached plan's arrays are read-only too."""
    per_net = _CACHE.setdefault(network, {})
    key = (np.dtype(dtype).name, str(convolution))
    if key not in per_net:
        plan = lower(network, dtype, convolution)
        for a in _arrays(plan):
            a.setflags(write=False)
        per_net[key] = plan
    return per_net[key]


def _arrays(plan: Plan) -> list[np.ndarray]:
    out = [plan.v0, plan.i0, plan.a0, plan.indptr, plan.indices, plan.weights, plan.delays, *plan.params,
           *plan.poisson.values(), *(b.weights for b in plan.blocks)]
    if plan.synapse_block is not None:
        out.append(plan.synapse_block)
    if plan.conv is not None:
        c = plan.conv
        out += [c.ops, c.kernel, c.delay, c.tap_ptr, c.tap_k, c.tap_out]
    return out
