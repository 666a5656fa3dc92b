"""Compiled CPU backend (numba): the whole chunk of steps runs in one compiled call
(:mod:`neurosim.backends.numba_events`, the event loop over delay segments of the rows).

The neuron update (:func:`neurosim.backends.numba_events.lane`) is a fused, branch-free loop
form of :func:`neurosim.models.neuron_step`; it is not the definition of the model. It serves
the chunk loop and one step on (B, N) arrays (:func:`_step_arrays`), which the torch layers use
for steps without a graph (training.layers.SNN.step). tests/test_backends.py and
tests/test_fast_sim.py check it spike-for-spike and bit-for-bit against the NumPy reference.
Single-threaded; no fastmath.

Dense switch (:data:`OPTIONS`): a dense projection from an input source with one delay
(:class:`neurosim.plan.DenseBlock`) runs, for a chunk whose input density reaches
:data:`DENSE_CROSSOVER`, as one product over the chunk and batch (BLAS GEMM) instead of its
spikes' rows. The product sums in BLAS's order: the inputs then equal the reference's to
rounding (bit for bit where the sums are exact, e.g. weights on a grid of 2**-k).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..dense_blocks import OPTION, check_mode, switched_on
from ..errors import BackendUnavailable
from ..conv_plan import N_COLUMNS
from ..plan import Plan

NAME = "numba"
_KERNEL = None
_STEP = None
update = None  # the compiled numba_events.lane, inlined into _step_arrays


def check() -> None:
    """Raise BackendUnavailable unless numba imports."""
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(f"backend 'numba' needs the numba package ({exc}); "
                                 "install neurosim[fast] or use backend='numpy'") from None


def _jit(fn):
    global update
    check()
    import numba

    if update is None:
        from .numba_events import lane

        update = lane
    return numba.njit(cache=True, nogil=True, boundscheck=False)(fn)


def _kernel():
    """The compiled chunk loop (:func:`neurosim.backends.numba_events.run_events`)."""
    global _KERNEL
    if _KERNEL is None:
        from .numba_events import run_events

        _KERNEL = _jit(run_events)
    return _KERNEL


def step_kernel():
    """The compiled :func:`_step_arrays` (the fused neuron update on (B, N) arrays)."""
    global _STEP
    if _STEP is None:
        _STEP = _jit(_step_arrays)
    return _STEP


def _step_arrays(X, alpha, beta, theta, bias, gain, rho, adapt, adapt_gain, refractory, reset_zero,
                 spiking, I, V, A, Z, R, I2, V2, A2, Z2, R2, U2):
    """Write the step of state (I, V, A, Z, R) under input X into (I2, V2, A2, Z2, R2) and the
    spike function's argument into U2; all (B, N)."""
    batch, n = V.shape
    for b in range(batch):
        for j in range(n):
            I2[b, j], V2[b, j], A2[b, j], Z2[b, j], R2[b, j], U2[b, j] = update(
                X[b, j], I[b, j], V[b, j], A[b, j], Z[b, j], R[b, j], alpha[j], beta[j], theta[j],
                bias[j], gain[j], rho[j], adapt[j], adapt_gain[j], refractory[j], reset_zero[j],
                spiking[j])


def uniform_groups(plan: Plan, record_a: bool = True) -> np.ndarray:
    """int64 (populations, 4): (first neuron, end, 1 if every parameter is one value over them,
    1 if moreover adapt = 0 and `a` is not recorded: the chunk loop then skips the adaptation state)."""
    stacked = np.stack([np.asarray(a) for a in plan.params])
    adapt = plan.params._fields.index("adapt")
    rows = []
    for lo, hi in sorted(v for v in plan.slices.values() if v[1] <= plan.n_neurons):
        part = stacked[:, lo:hi]
        uniform = bool(np.all(part == part[:, :1]))
        rows.append((lo, hi, int(uniform), int(uniform and not record_a and part[adapt, 0] == 0)))
    return np.array(rows, np.int64).reshape(-1, 4)


OPTIONS = {"dense": OPTION + "; default 'auto'"}
# Input density (active sources / sources, over the chunk and batch) from which one GEMM over the
# batch beats the event loop, measured with `bench/sim_speed.py --crossover` (700 -> 1024 LIF,
# batch 32, T = 250, 1 thread, 2-core AMD EPYC with AVX2, shared): float32 events and product tie
# at 20%, float64 between 20% (tie) and 40% (bench/RESULTS.md, issue 20 item 3).
DENSE_CROSSOVER = {"float32": 0.2, "float64": 0.25}
DENSE_BYTES = 32 << 20  # the product's output is computed in pieces of at most this many bytes


class Runner:
    """Holds state and buffers; each :meth:`run` is one compiled call per chunk (or per piece
    of a chunk when a dense block runs as a product, :data:`OPTIONS`)."""

    # the loop emits events step by step, trial by trial, neurons in index order (spikes_of)
    events_sorted = True

    def __init__(self, plan: Plan, batch: int, trace_idx: np.ndarray, trace_vars: Sequence[str],
                 dense: str = "auto") -> None:
        check_mode(dense)
        self.kernel = _kernel()
        self.plan, self.dense = plan, dense
        n, dt = plan.n_neurons, plan.dtype
        tile = lambda a: np.ascontiguousarray(np.broadcast_to(a, (batch, n)))  # noqa: E731
        self.I, self.V, self.A = tile(plan.i0).copy(), tile(plan.v0).copy(), tile(plan.a0).copy()
        self.Z = np.zeros((batch, n), dt)
        self.R = np.zeros((batch, n), dt)
        self.buf = np.zeros((plan.ring, batch, n), dt)
        self.params = tuple(np.ascontiguousarray(a) for a in plan.params)
        self.groups = uniform_groups(plan, record_a="a" in trace_vars)
        seg = plan.segments
        self.rows = (seg.seg_ptr, seg.seg_start, seg.seg_delay, seg.seg_block, seg.seg_lo, seg.indices, seg.weights)
        self.trace_idx = np.asarray(trace_idx, np.int64)
        self.trace_vars = tuple(trace_vars)
        self.cap = max(1 << 16, 4 * batch * n)
        pairs = batch * plan.n_total  # a step's (trial, presynaptic index, count) to propagate
        self.pairs = (np.empty(pairs, np.int64), np.empty(pairs, np.int64), np.empty(pairs, dt))
        self.stats = {"dense_chunks": 0, "event_chunks": 0}
        c = plan.conv
        self.emits = np.diff(seg.seg_ptr) > 0  # (n_total,): a source with synapses ...
        for o in (c.ops if c is not None else ()):
            self.emits[o[0]:o[1]] = True  # ... or convolution patches to propagate
        self.conv = ((c.ops, c.kernel, c.delay, c.tap_ptr, c.tap_k, c.tap_out) if c is not None else
                     (np.zeros((0, N_COLUMNS), np.int64), np.zeros(0, dt), np.zeros(0, np.int32), np.zeros(1, np.int64),
                      np.zeros(0, np.int32), np.zeros(0, np.int32)))

    def run(self, t0: int, src: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        plan = self.plan
        steps, batch = src.shape[0], src.shape[1]
        # 0/1 spikes stay bool (1 byte a source); event counts as the plan's dtype, so w * c rounds as in numpy
        src = np.ascontiguousarray(src, dtype=np.bool_ if src.dtype == np.bool_ else plan.dtype)
        k_tr = len(self.trace_idx)
        traces = {v: np.empty((steps, batch, k_tr), plan.dtype) for v in self.trace_vars}
        on = switched_on(plan, src, self.dense, DENSE_CROSSOVER[plan.dtype.name])
        blocks = [b for b, o in zip(plan.blocks, on) if o]
        width = sum(b.post_hi - b.post_lo for b in blocks)
        self.stats["dense_chunks" if blocks else "event_chunks"] += 1
        piece = max(1, DENSE_BYTES // max(1, batch * width * plan.dtype.itemsize)) if blocks else steps
        tab = np.zeros((len(blocks), 4), np.int64)
        col = 0
        for k, b in enumerate(blocks):
            tab[k] = (b.post_lo, b.post_hi - b.post_lo, col, b.delay)
            col += b.post_hi - b.post_lo
        off = self._sources_off(on)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for p0 in range(0, steps, piece):
            p1 = min(steps, p0 + piece)
            cur = self._product(blocks, src[p0:p1], width)
            parts.append(self._run_piece(t0, p0, src[p0:p1], traces, on, off, tab, cur))
        if len(parts) == 1:
            return parts[0][0], parts[0][1], parts[0][2], traces
        ev = [np.concatenate([p[c] for p in parts]) for c in range(3)]
        return ev[0], ev[1], ev[2], traces

    def source_events(self, src: np.ndarray, t0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The input events of a chunk as neurosim.simulate.source_events gives them (int64,
        C order), compiled: one count and one pass (a quarter of numpy's time at 20% density)."""
        from .numba_events import fill_source_events

        k = np.count_nonzero(src)
        ev = (np.empty(k, np.int64), np.empty(k, np.int64), np.empty(k, np.int64))
        fill_source_events(np.ascontiguousarray(src), t0, self.plan.n_neurons, *ev)
        return ev

    def _product(self, blocks: list, src: np.ndarray, width: int) -> np.ndarray:
        """(steps, batch, width): each switched-on block's input ``s[t] @ W``, one GEMM per block."""
        steps, batch = src.shape[0], src.shape[1]
        dt, n = self.plan.dtype, self.plan.n_neurons
        if len(blocks) == 1:  # one block: the GEMM's output is the buffer (no copy into a wider one)
            b = blocks[0]
            s = src[:, :, b.pre_lo - n:b.pre_hi - n].reshape(steps * batch, -1).astype(dt)
            return (s @ b.weights).reshape(steps, batch, width)
        cur = np.empty((steps, batch, width), dt)
        col = 0
        for b in blocks:
            s = src[:, :, b.pre_lo - n:b.pre_hi - n].reshape(steps * batch, -1).astype(dt)
            w = b.post_hi - b.post_lo
            cur[:, :, col:col + w] = (s @ b.weights).reshape(steps, batch, w)
            col += w
        return cur

    def _sources_off(self, on: np.ndarray) -> np.ndarray:
        """bool (n_sources,): the sources all of whose synapses belong to switched-on blocks and
        that have no convolution patch (the chunk loop skips them)."""
        plan, seg = self.plan, self.plan.segments
        n = plan.n_neurons
        off = np.zeros(plan.n_sources, np.bool_)
        if not on.any():
            return off
        handled = np.append(on, False)[seg.seg_block]  # per segment (-1: the last entry, False)
        left = np.concatenate([[0], np.cumsum(~handled)])  # segments not handled, cumulated
        off[:] = (np.diff(seg.seg_ptr[n:]) > 0) & (left[seg.seg_ptr[n + 1:]] == left[seg.seg_ptr[n:-1]])
        for o in (plan.conv.ops if plan.conv is not None else ()):
            off[max(o[0] - n, 0):max(o[1] - n, 0)] = False
        return off

    def _run_piece(self, t0: int, p0: int, src: np.ndarray, traces: dict[str, np.ndarray], on: np.ndarray,
                   off: np.ndarray, tab: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        plan = self.plan
        steps, batch = src.shape[0], src.shape[1]
        empty = np.zeros((0, batch, len(self.trace_idx)), plan.dtype)
        ev = (np.empty(self.cap, np.int64), np.empty(self.cap, np.int32), np.empty(self.cap, np.int64))
        done = n_ev = 0
        while done < steps:
            views = [traces[v][p0 + done:] if v in traces else empty for v in ("v", "i", "a", "threshold")]
            k, got = self.kernel(t0 + p0 + done, steps - done, src[done:], plan.ring, self.groups, *self.params,
                                 self.I, self.V, self.A, self.Z, self.R, self.buf, *self.rows, on, off, tab,
                                 cur[done:], *self.pairs, *ev, n_ev, self.trace_idx, *views, *self.conv,
                                 self.emits)
            done += k
            if done < steps:  # stopped before the buffer could overflow: grow it for the rest at this
                # call's event rate (and a step's worth), keeping the events so far (the kernel appends)
                rest = int((got - n_ev) / max(k, 1) * (steps - done) * 1.25) + batch * plan.n_neurons
                self.cap = max(2 * self.cap, got + rest)
                grown = tuple(np.empty(self.cap, a.dtype) for a in ev)
                for a, g in zip(ev, grown):
                    g[:got] = a[:got]
                ev = grown
            n_ev = got
        if n_ev > self.cap // 2:
            self.cap *= 2
        return ev[0][:n_ev], ev[1][:n_ev], ev[2][:n_ev]
