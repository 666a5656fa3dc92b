"""Reference backend: NumPy, the canonical step, event-driven propagation into a delay ring buffer
(CSR rows, then the kernel patches of event-driven convolutions: neurosim.conv_plan.scatter).

Input sources may carry event counts (uint16 `src`): c events of a source in one step add
``c * w`` through each of its synapses and kernel taps (w for a neuron's spike)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..conv_plan import mixed_targets, scatter
from ..dense_blocks import OPTION, check_mode, switched_on
from ..models import NeuronState, neuron_step, threshold
from ..plan import Plan

NAME = "numpy"
OPTIONS = {"dense": OPTION + "; default 'never': this backend is the reference"}
# Input density from which a product per step beats np.add.at over the spikes' rows, measured
# with `bench/sim_speed.py --crossover` (700 -> 1024, batch 32, 20 steps, 1 thread, shared 2-core
# machine): float32 between 0.5% and 1%, float64 above 1% (bench/RESULTS.md, issue 20 item 3).
DENSE_CROSSOVER = {"float32": 0.01, "float64": 0.02}


def check() -> None:
    """NumPy is always available."""


class Runner:
    """Steps a lowered network; state persists across :meth:`run` calls."""

    def __init__(self, plan: Plan, batch: int, trace_idx: np.ndarray, trace_vars: Sequence[str],
                 dense: str = "never") -> None:
        self.plan, self.dense = plan, check_mode(dense)
        self.stats = {"dense_chunks": 0, "event_chunks": 0}
        n, dt = plan.n_neurons, plan.dtype
        self.p = plan.params
        tile = lambda a: np.broadcast_to(a, (batch, n)).copy()  # noqa: E731
        self.state = NeuronState(tile(plan.i0), tile(plan.v0), tile(plan.a0),
                                 np.zeros((batch, n), dt), np.zeros((batch, n), dt))
        self.buf = np.zeros((plan.ring, batch, n), dt)
        self.trace_idx = np.asarray(trace_idx, np.int64)
        self.trace_vars = tuple(trace_vars)
        # merge CSR and patch contributions in spike order only where a neuron receives both
        self.merge = plan.conv is not None and mixed_targets(plan.conv, plan.indices, n)

    def run(self, t0: int, src: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        plan, p = self.plan, self.p
        steps, batch = src.shape[0], src.shape[1]
        n, ring = plan.n_neurons, plan.ring
        flat = self.buf.reshape(-1)
        traces = {v: np.empty((steps, batch, len(self.trace_idx)), plan.dtype) for v in self.trace_vars}
        ev_t, ev_b, ev_j = [], [], []
        on = switched_on(plan, src, self.dense, DENSE_CROSSOVER[plan.dtype.name])
        self.stats["dense_chunks" if on.any() else "event_chunks"] += 1
        skip = np.append(on, False)  # by synapse_block (-1: the last entry, never skipped)
        for k in range(steps):
            t = t0 + k
            slot = t % ring
            x = self.buf[slot].copy()
            self.buf[slot] = 0
            self.state = s = neuron_step(p, self.state, x)
            for var in self.trace_vars:
                val = threshold(p, s) if var == "threshold" else getattr(s, var)
                traces[var][k] = val[:, self.trace_idx]
            for blk in (b for b, o in zip(plan.blocks, on) if o):  # the dense switch: one product
                cols = src[k][:, blk.pre_lo - n:blk.pre_hi - n].astype(plan.dtype)
                self.buf[(t + blk.delay) % ring, :, blk.post_lo:blk.post_hi] += cols @ blk.weights
            z_all = np.concatenate([s.z > 0, src[k]], axis=1)
            b, j = np.nonzero(z_all)
            if not len(b):
                continue
            neuron = j < n
            ev_t.append(np.full(int(neuron.sum()), t, np.int64))
            ev_b.append(b[neuron])
            ev_j.append(j[neuron])
            start = plan.indptr[j]
            count = plan.indptr[j + 1] - start
            total = int(count.sum())
            syn = np.repeat(start - np.cumsum(count) + count, count) + np.arange(total)
            if on.any():
                keep = ~skip[plan.synapse_block[syn]]
                syn, count = syn[keep], np.bincount(np.repeat(np.arange(len(j)), count)[keep], minlength=len(j))
            slots = (t + plan.delays[syn]) % ring
            target = (slots * batch + np.repeat(b, count)) * n + plan.indices[syn]
            weights = plan.weights[syn]
            counted = z_all.dtype != bool  # event counts: a source's count scales each of its weights
            scale = z_all[b, j].astype(plan.dtype) if counted else None
            if counted:
                weights = weights * np.repeat(scale, count)
            if plan.conv is not None:  # each spike's patches after its CSR row, spikes in order
                owner, c_target, c_weights = scatter(plan.conv, b, j, t, ring, batch, n,
                                                     owners=self.merge or counted)
                if counted:
                    c_weights = c_weights * scale[owner]
                target = np.concatenate([target, c_target])
                weights = np.concatenate([weights, c_weights])
                if self.merge:
                    order = np.argsort(np.concatenate([np.repeat(np.arange(len(j)), count), owner]), kind="stable")
                    target, weights = target[order], weights[order]
            if len(target):
                np.add.at(flat, target, weights)
        cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
        return cat(ev_t, np.int64), cat(ev_b, np.int32), cat(ev_j, np.int64), traces
