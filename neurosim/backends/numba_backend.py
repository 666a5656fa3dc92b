"""Compiled CPU backend (numba): the whole chunk of steps runs in one compiled call.

The neuron update below (:func:`_update`) is a fused, loop form of
:func:`neurosim.models.neuron_step`; it is not the definition of the model.
tests/test_backends.py checks it spike-for-spike and bit-for-bit against the NumPy reference on
random networks in float32 and float64. It serves two kernels: the simulator's whole-chunk
loop (:func:`_run_steps`) and one step on (B, N) arrays (:func:`_step_arrays`), which the
torch layers use for steps without a graph (training.layers.SNN.step).
Single-threaded; no fastmath, so the arithmetic and its order match the reference exactly.
Event-driven convolution (:mod:`neurosim.conv_plan`): after a spike's CSR row, the kernel patch
of every op that holds it, in op order, as the NumPy reference adds them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import BackendUnavailable
from ..plan import Plan

NAME = "numba"
_KERNEL = None
_STEP = None
update = None  # the compiled _update, inlined into both kernels


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
        update = numba.njit(cache=True, inline="always")(_update)
    return numba.njit(cache=True, nogil=True, boundscheck=False)(fn)


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _jit(_run_steps)
    return _KERNEL


def step_kernel():
    """The compiled :func:`_step_arrays` (the fused neuron update on (B, N) arrays)."""
    global _STEP
    if _STEP is None:
        _STEP = _jit(_step_arrays)
    return _STEP


def _update(x, i, v, a, z, r, alpha, beta, theta, bias, gain, rho, adapt, adapt_gain, refractory,
            reset_zero, spiking):
    """One neuron's canonical step (the loop form of neuron_step); returns (i, v, a, z, r, u)
    with u = v~ - A the spike function's argument (before the reset)."""
    i = alpha * i + gain * (x + bias)
    a = rho * a + adapt_gain * z
    active = r <= 0
    if active:
        v = beta * v + i
    u = v - (theta + adapt * a)
    z = v - v  # zero of the state dtype
    if active and spiking > 0 and u > 0:
        z = z + 1
        if reset_zero > 0:
            v = v - v
        else:
            v = v - theta
        r = refractory
    elif r > 0:
        r = r - 1
    return i, v, a, z, r, u


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


def _run_steps(t0, n_steps, src, ring, alpha, beta, theta, bias, gain, rho, adapt, adapt_gain,
               refractory, reset_zero, spiking, I, V, A, Z, R, buf, indptr, indices, weights,
               delays, ev_t, ev_b, ev_j, n_ev, trace_idx, tr_v, tr_i, tr_a, tr_thr,
               c_ops, c_kernel, c_delay, c_ptr, c_k, c_out):
    """Advance n_steps; returns (steps done, events written). Stops early if events may overflow."""
    batch, n = V.shape
    n_src = src.shape[2]
    cap = ev_t.shape[0]
    n_tr = trace_idx.shape[0]
    for k in range(n_steps):
        if n_ev + batch * n > cap:
            return k, n_ev
        t = t0 + k
        slot = t % ring
        for b in range(batch):
            for j in range(n):
                x = buf[slot, b, j]
                buf[slot, b, j] = 0
                I[b, j], V[b, j], A[b, j], Z[b, j], R[b, j], _ = update(
                    x, I[b, j], V[b, j], A[b, j], Z[b, j], R[b, j], alpha[j], beta[j], theta[j],
                    bias[j], gain[j], rho[j], adapt[j], adapt_gain[j], refractory[j], reset_zero[j],
                    spiking[j])
            for q in range(n_tr):
                j = trace_idx[q]
                if tr_v.shape[0]:
                    tr_v[k, b, q] = V[b, j]
                if tr_i.shape[0]:
                    tr_i[k, b, q] = I[b, j]
                if tr_a.shape[0]:
                    tr_a[k, b, q] = A[b, j]
                if tr_thr.shape[0]:
                    tr_thr[k, b, q] = theta[j] + adapt[j] * A[b, j]
            for j in range(n + n_src):
                if j < n:
                    if Z[b, j] <= 0:
                        continue
                    ev_t[n_ev] = t
                    ev_b[n_ev] = b
                    ev_j[n_ev] = j
                    n_ev += 1
                elif not src[k, b, j - n]:
                    continue
                for syn in range(indptr[j], indptr[j + 1]):
                    buf[(t + delays[syn]) % ring, b, indices[syn]] += weights[syn]
                for o in range(c_ops.shape[0]):
                    if j < c_ops[o, 0] or j >= c_ops[o, 1]:
                        continue
                    hw, cig, cog, howo, kk = c_ops[o, 3], c_ops[o, 4], c_ops[o, 5], c_ops[o, 6], c_ops[o, 7]
                    c = (j - c_ops[o, 0]) // hw
                    pos = (j - c_ops[o, 0]) - c * hw
                    cl = c % cig
                    co0 = (c // cig) * cog
                    p0 = c_ops[o, 9] + pos
                    for e in range(c_ptr[p0], c_ptr[p0 + 1]):
                        tap = c_ops[o, 10] + e
                        target = c_ops[o, 2] + c_out[tap]
                        for co in range(co0, co0 + cog):
                            w = c_ops[o, 8] + (co * cig + cl) * kk + c_k[tap]
                            buf[(t + c_delay[w]) % ring, b, target + co * howo] += c_kernel[w]
    return n_steps, n_ev


class Runner:
    """Holds state and buffers; each :meth:`run` is one compiled call per chunk."""

    def __init__(self, plan: Plan, batch: int, trace_idx: np.ndarray, trace_vars: Sequence[str]) -> None:
        self.kernel = _kernel()
        self.plan = plan
        n, dt = plan.n_neurons, plan.dtype
        tile = lambda a: np.ascontiguousarray(np.broadcast_to(a, (batch, n)))  # noqa: E731
        self.I, self.V, self.A = tile(plan.i0).copy(), tile(plan.v0).copy(), tile(plan.a0).copy()
        self.Z = np.zeros((batch, n), dt)
        self.R = np.zeros((batch, n), dt)
        self.buf = np.zeros((plan.ring, batch, n), dt)
        self.params = tuple(np.ascontiguousarray(a) for a in plan.params)
        self.trace_idx = np.asarray(trace_idx, np.int64)
        self.trace_vars = tuple(trace_vars)
        self.cap = max(1 << 16, 4 * batch * n)
        c = plan.conv
        self.conv = ((c.ops, c.kernel, c.delay, c.tap_ptr, c.tap_k, c.tap_out) if c is not None else
                     (np.zeros((0, 11), np.int64), np.zeros(0, dt), np.zeros(0, np.int32), np.zeros(1, np.int64),
                      np.zeros(0, np.int32), np.zeros(0, np.int32)))

    def run(self, t0: int, src: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        plan = self.plan
        steps, batch = src.shape[0], src.shape[1]
        src = np.ascontiguousarray(src, dtype=np.bool_)
        k_tr = len(self.trace_idx)
        empty = np.zeros((0, batch, k_tr), plan.dtype)
        traces = {v: np.empty((steps, batch, k_tr), plan.dtype) for v in self.trace_vars}
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        done = 0
        while done < steps:
            ev_t = np.empty(self.cap, np.int64)
            ev_b = np.empty(self.cap, np.int32)
            ev_j = np.empty(self.cap, np.int64)
            views = [traces[v][done:] if v in traces else empty for v in ("v", "i", "a", "threshold")]
            k, n_ev = self.kernel(t0 + done, steps - done, src[done:], plan.ring, *self.params,
                                  self.I, self.V, self.A, self.Z, self.R, self.buf, plan.indptr,
                                  plan.indices, plan.weights, plan.delays, ev_t, ev_b, ev_j, 0,
                                  self.trace_idx, *views, *self.conv)
            parts.append((ev_t[:n_ev], ev_b[:n_ev], ev_j[:n_ev]))
            done += k
            if k == 0 or n_ev > self.cap // 2:
                self.cap *= 2
        ev = [np.concatenate([p[c] for p in parts]) for c in range(3)]
        return ev[0], ev[1], ev[2], traces
