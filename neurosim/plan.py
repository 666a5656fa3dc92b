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

from dataclasses import dataclass, replace
from typing import Optional, Union

import numpy as np

from .conv import ShapedProjection
from .conv_plan import ConvTables, build
from .errors import NetworkError
from .models import NeuronParams
from .network import Network, PoissonInput

CONVOLUTION = ("events", "lowered")


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
        return replace(self, indptr=indptr,
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

    pre_l, post_l, w_l, d_l = [], [], [], []
    ops = []
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
    if pre_l:
        pre = np.concatenate(pre_l)
        post = np.concatenate(post_l)
        w = np.concatenate(w_l)
        d = np.concatenate(d_l)
    else:
        pre = post = d = np.zeros(0, np.int64)
        w = np.zeros(0)
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
                delays=d[order].astype(np.int32), ring=ring, slices=slices, poisson=poisson, conv=conv)
