"""Lowering of a Network into flat arrays that every backend consumes.

Global index space: neurons of all populations first (in order), then all input channels.
One merged CSR maps each global presynaptic index to (postsynaptic neuron, weight, delay);
within a row, synapses keep projection order then row order, which fixes the summation order
of simultaneous inputs identically in every backend.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from .models import NeuronParams
from .network import Network, PoissonInput


@dataclass(frozen=True, eq=False)
class Plan:
    """Flat, dtype-cast form of a network.

    params: per-neuron NeuronParams (N,); v0/i0/a0: (N,); indptr: (N + S + 1,);
    indices (int32), weights (dtype), delays (int32): (nnz,); ring: ring-buffer length,
    max delay + 1; slices: name -> (start, stop) in the global index space.
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

    @property
    def n_total(self) -> int:
        return self.n_neurons + self.n_sources


def lower(network: Network, dtype: Union[str, np.dtype] = "float64") -> Plan:
    """Flatten `network` for simulation in `dtype` (float32 or float64)."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        from .errors import NetworkError

        raise NetworkError("dtype", f"expected float32 or float64, got {dtype!r}")
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
    for proj in network.projections:
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
    ring = int(d.max()) + 1 if d.size else 2
    poisson = {s.name: (np.asarray(s.rate) * network.dt) for s in network.inputs
               if isinstance(s, PoissonInput)}
    return Plan(dtype=dt, n_neurons=n_neurons, n_sources=n_total - n_neurons, params=params,
                v0=init["v0"], i0=init["i0"], a0=init["a0"], indptr=indptr,
                indices=post[order].astype(np.int32), weights=w[order].astype(dt),
                delays=d[order].astype(np.int32), ring=ring, slices=slices, poisson=poisson)
