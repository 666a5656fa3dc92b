"""A simulation split over parts that exchange spike lists (the NumPy model of multi-GPU runs;
docs/SCALING.md).

Each part owns a set of neurons: their state, their ring buffer of future input, and every
synapse *onto* them (post-side ownership, so no part writes another's memory). Per step a
part updates its own neurons and emits the global indices of those that spiked. Every
``interval`` steps the parts exchange what they emitted (an all-gather of spike index lists;
here a concatenation in one process), and each part delivers the whole list, with the input
channels' spikes, through its own synapses.

Exactness: a spike of step t with delay d arrives at t + d. With ``interval`` at most the
network's minimum delay, nothing emitted inside a window arrives inside it, so deferring the
delivery to the window's end changes no input. Every part delivers the merged list in the
order of the unpartitioned backend (step, trial, global index, synapse order within the row)
with one sequential ``np.add.at``, so each input is summed in the same order and the
spikes equal an unpartitioned run bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .errors import NetworkError
from .models import NeuronParams, NeuronState, neuron_step, threshold
from .plan import Plan


def assign(plan: Plan, parts: int) -> np.ndarray:
    """Part of each neuron (N,): contiguous ranges of about equal work, one unit per neuron
    plus one per incoming synapse (the neuron update and the deliveries it receives)."""
    if isinstance(parts, bool) or not isinstance(parts, (int, np.integer)) or not 1 <= parts <= max(plan.n_neurons, 1):
        raise NetworkError("partitions", f"expected a whole number of parts in [1, {plan.n_neurons}], got {parts!r}")
    n = plan.n_neurons
    cum = np.cumsum(1 + np.bincount(plan.indices, minlength=n)[:n])
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, parts) / parts) if n else np.zeros(0, np.int64)
    for k in range(len(cuts)):  # every part keeps at least one neuron
        cuts[k] = min(max(cuts[k], (cuts[k - 1] if k else 0) + 1), n - (parts - 1 - k))
    return np.searchsorted(cuts, np.arange(n), side="right")


@dataclass
class Part:
    """The neurons `owned` (sorted global indices) with their state, ring buffer and the
    synapses onto them, as a CSR over all global presynaptic indices (rows in plan order)."""

    owned: np.ndarray
    params: NeuronParams
    state: NeuronState
    buf: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray  # local target positions (int64)
    weights: np.ndarray
    delays: np.ndarray

    @classmethod
    def build(cls, plan: Plan, owned: np.ndarray, batch: int) -> "Part":
        local = np.full(plan.n_neurons, -1, np.int64)
        local[owned] = np.arange(len(owned))
        keep = local[plan.indices] >= 0  # synapses onto this part, in plan order
        rows = np.repeat(np.arange(plan.n_total), np.diff(plan.indptr))[keep]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=plan.n_total))]).astype(np.int64)
        params = NeuronParams(*(np.asarray(f)[owned] for f in plan.params))
        tile = lambda a: np.broadcast_to(a[owned], (batch, len(owned))).copy()  # noqa: E731
        zeros = np.zeros((batch, len(owned)), plan.dtype)
        return cls(owned, params, NeuronState(tile(plan.i0), tile(plan.v0), tile(plan.a0), zeros, zeros.copy()),
                   np.zeros((plan.ring, batch, len(owned)), plan.dtype), indptr,
                   local[plan.indices[keep]], plan.weights[keep], plan.delays[keep].astype(np.int64))

    def step(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Update the owned neurons at step t; (trial, global index) of their spikes."""
        slot = t % self.buf.shape[0]
        x = self.buf[slot].copy()
        self.buf[slot] = 0
        self.state = neuron_step(self.params, self.state, x)
        b, i = np.nonzero(self.state.z > 0)
        return b, self.owned[i]

    def deliver(self, t: np.ndarray, b: np.ndarray, j: np.ndarray) -> int:
        """Add the synaptic effect of spikes (t, b, j), given in (t, b, j) order, into the ring
        buffer; returns the number of synaptic events."""
        start = self.indptr[j]
        count = self.indptr[j + 1] - start
        total = int(count.sum())
        if total == 0:
            return 0
        syn = np.repeat(start - np.cumsum(count) + count, count) + np.arange(total)
        ring, batch, n = self.buf.shape
        slots = (np.repeat(t, count) + self.delays[syn]) % ring
        np.add.at(self.buf.reshape(-1), (slots * batch + np.repeat(b, count)) * n + self.indices[syn],
                  self.weights[syn])
        return total


@dataclass
class Exchange:
    """Counters of the spike exchange: rounds, spikes gathered, synaptic events per part."""

    rounds: int = 0
    spikes: int = 0
    events: list[int] = field(default_factory=list)


class PartitionedRunner:
    """A backend runner (``run(t0, src)``, see neurosim.backends) over parts of the network.

    part_of: the part of each neuron (default :func:`assign` into `parts`); interval: steps
    between exchanges, at most the minimum delay (default: the minimum delay).
    """

    def __init__(self, plan: Plan, batch: int, trace_idx: np.ndarray, trace_vars: Sequence[str], parts: int = 2,
                 *, part_of: Optional[np.ndarray] = None, interval: Optional[int] = None) -> None:
        plan = plan.lowered()  # parts own synapses by target: event-driven convolutions as their CSR
        part_of = assign(plan, parts) if part_of is None else np.asarray(part_of, np.int64)
        if part_of.shape != (plan.n_neurons,) or (part_of.size and part_of.min() < 0):
            raise NetworkError("partitions", f"expected a part index >= 0 for each of {plan.n_neurons} neurons")
        min_delay = int(plan.delays.min()) if plan.delays.size else plan.ring - 1
        self.interval = min_delay if interval is None else int(interval)
        if not 1 <= self.interval <= min_delay:
            raise NetworkError("interval", f"expected 1 .. {min_delay} steps (the minimum delay), got {interval!r}")
        self.plan, self.batch = plan, batch
        self.parts = [Part.build(plan, np.flatnonzero(part_of == k), batch) for k in np.unique(part_of)]
        trace_idx = np.asarray(trace_idx, np.int64)
        self.n_traced, self.trace_vars = len(trace_idx), tuple(trace_vars)
        self.traced = [(np.flatnonzero(np.isin(trace_idx, p.owned)), np.searchsorted(p.owned, trace_idx))
                       for p in self.parts]  # (columns of the trace, local positions) per part
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # spikes since the last exchange
        self.stats = Exchange(events=[0] * len(self.parts))

    def run(self, t0: int, src: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        plan = self.plan
        steps = src.shape[0]
        traces = {v: np.empty((steps, self.batch, self.n_traced), plan.dtype) for v in self.trace_vars}
        ev: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for k in range(steps):
            t = t0 + k
            for part, (cols, pos) in zip(self.parts, self.traced):
                b, j = part.step(t)
                ev.append((np.full(len(b), t, np.int64), b, j))
                self.pending.append(ev[-1])
                for var in self.trace_vars:
                    val = threshold(part.params, part.state) if var == "threshold" else getattr(part.state, var)
                    traces[var][k][:, cols] = val[:, pos[cols]]
            sb, sj = np.nonzero(src[k])
            self.pending.append((np.full(len(sb), t, np.int64), sb, sj + plan.n_neurons))
            if (t + 1) % self.interval == 0:
                self._exchange()
        t, b, j = _sorted(ev)
        return t, b.astype(np.int32), j, traces

    def _exchange(self) -> None:
        """All-gather the window's spikes; every part delivers the same ordered list."""
        t, b, j = _sorted(self.pending)
        self.pending.clear()
        self.stats.rounds += 1
        self.stats.spikes += len(t)
        for k, part in enumerate(self.parts):
            self.stats.events[k] += part.deliver(t, b, j)


def _sorted(chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenated (t, b, j) sorted by t, then b, then j: the unpartitioned backend's order."""
    if not chunks:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    t, b, j = (np.concatenate([c[k] for c in chunks]).astype(np.int64) for k in range(3))
    order = np.lexsort((j, b, t))
    return t[order], b[order], j[order]
