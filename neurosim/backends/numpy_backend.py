"""Reference backend: NumPy, the canonical step, event-driven propagation into a delay ring buffer
(CSR rows, then the kernel patches of event-driven convolutions: neurosim.conv_plan.scatter)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..conv_plan import scatter
from ..models import NeuronState, neuron_step, threshold
from ..plan import Plan

NAME = "numpy"


def check() -> None:
    """NumPy is always available."""


class Runner:
    """Steps a lowered network; state persists across :meth:`run` calls."""

    def __init__(self, plan: Plan, batch: int, trace_idx: np.ndarray, trace_vars: Sequence[str]) -> None:
        self.plan = plan
        n, dt = plan.n_neurons, plan.dtype
        self.p = plan.params
        tile = lambda a: np.broadcast_to(a, (batch, n)).copy()  # noqa: E731
        self.state = NeuronState(tile(plan.i0), tile(plan.v0), tile(plan.a0),
                                 np.zeros((batch, n), dt), np.zeros((batch, n), dt))
        self.buf = np.zeros((plan.ring, batch, n), dt)
        self.trace_idx = np.asarray(trace_idx, np.int64)
        self.trace_vars = tuple(trace_vars)

    def run(self, t0: int, src: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        plan, p = self.plan, self.p
        steps, batch = src.shape[0], src.shape[1]
        n, ring = plan.n_neurons, plan.ring
        flat = self.buf.reshape(-1)
        traces = {v: np.empty((steps, batch, len(self.trace_idx)), plan.dtype) for v in self.trace_vars}
        ev_t, ev_b, ev_j = [], [], []
        for k in range(steps):
            t = t0 + k
            slot = t % ring
            x = self.buf[slot].copy()
            self.buf[slot] = 0
            self.state = s = neuron_step(p, self.state, x)
            for var in self.trace_vars:
                val = threshold(p, s) if var == "threshold" else getattr(s, var)
                traces[var][k] = val[:, self.trace_idx]
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
            slots = (t + plan.delays[syn]) % ring
            target = (slots * batch + np.repeat(b, count)) * n + plan.indices[syn]
            weights = plan.weights[syn]
            if plan.conv is not None:  # each spike's patches after its CSR row, spikes in order
                owner, c_target, c_weights = scatter(plan.conv, b, j, t, ring, batch, n)
                order = np.argsort(np.concatenate([np.repeat(np.arange(len(j)), count), owner]), kind="stable")
                target = np.concatenate([target, c_target])[order]
                weights = np.concatenate([weights, c_weights])[order]
            if len(target):
                np.add.at(flat, target, weights)
        cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
        return cat(ev_t, np.int64), cat(ev_b, np.int32), cat(ev_j, np.int64), traces
