"""A recurrent layer's whole sequence as one torch autograd function: :func:`recurrent_sequence`.

The layer's input at step t is ``x[t - lag] + z[t-1] @ W_rec`` (z[-1] = z0). With lag = 1 (a run
from rest) x starts at step 1 and step 0 has none: a feed-forward input reaches the layer one step
after its source spiked, and before step 0 nothing spiked; with lag = 0 (a run from a given state)
x covers every step. Each step is one call of the same
compiled one-step kernels that :func:`training.fused.function.fused_dynamics` runs (forward:
h, z, a, the active mask; backward: dx and the gradients of the step's initial i, v, a, z), so the
arithmetic is that of the per-step chain; what this function removes is the chain's autograd
graph: one node for the layer instead of three per step (the recurrent product, the addition and
the dynamics), and the recurrent product and its gradients run on numpy arrays. Backward, from
the last step to the first:

::

    gz[t]   += dz0[t+1] + dx[t+1] @ W_rec^T      (z[t] feeds step t+1's reset and its input)
    gfin[t]  = d(i, v, a)0[t+1]                    (the given final-state gradients at t = T-1)
    dW_rec  += z[t-1]^T @ dx[t]

Gradients: x, W_rec, bias, trained beta and theta, and the initial i, v, a, z.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from .function import BACKENDS, Constants, FinalState
from .kernels import KernelKey, as_array


class _Sequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w_rec: torch.Tensor, bias: torch.Tensor, beta: torch.Tensor,
                theta: torch.Tensor, i0: torch.Tensor, v0: torch.Tensor, a0: torch.Tensor, z0: torch.Tensor,
                key: KernelKey, c: Constants, sp: tuple[float, float], want_v: bool, lag: int
                ) -> tuple[torch.Tensor, ...]:
        be = BACKENDS[x.device.type]
        cn = Constants(*(as_array(t) for t in c))
        xa, w = as_array(x), as_array(w_rec)
        b_, be_, th = as_array(bias), as_array(beta), as_array(theta)
        T = xa.shape[0] + lag
        state = (cn.i0, cn.v0, cn.a0, cn.z0, cn.r0)
        z_all = np.empty((T,) + cn.z0.shape, xa.dtype)
        v_all = np.empty((T,) + cn.z0.shape, xa.dtype) if want_v else None
        saved, v_starts = [], []
        for t in range(T):
            xt = state[3] @ w if t < lag else xa[t - lag] + state[3] @ w
            step_c = cn._replace(i0=state[0], v0=state[1], a0=state[2], z0=state[3], r0=state[4])
            h, z, a_seq, act, i_t, v_t, a_t, r_t = be.forward(key, 0, xt[None], b_, be_, th, step_c)
            saved.append((h, z, a_seq, act))
            v_starts.append(state[1])
            z_all[t] = z[0]
            if want_v:
                v_all[t] = h[0] if key.kind == "li" else (h[0] - z[0] * h[0] if key.reset_zero else h[0] - z[0] * th)
            state = (i_t, v_t, a_t, z[0], r_t)
        # the backward reads z0 and the per-step v starts: the initial i, a, r copies are not kept
        ctx.key, ctx.c, ctx.sp, ctx.be, ctx.lag = key, cn._replace(i0=None, a0=None, r0=None), sp, be, lag
        ctx.saved, ctx.v_starts, ctx.z_all, ctx.w, ctx.params = saved, v_starts, z_all, w, (be_, th)
        fin = tuple(torch.from_numpy(np.ascontiguousarray(f)) for f in state[:3]) + (torch.from_numpy(state[4]),)
        ctx.mark_non_differentiable(fin[3])  # r: a counter, no gradient
        v_out = torch.from_numpy(v_all) if want_v else torch.zeros(0, dtype=x.dtype)
        return (torch.from_numpy(z_all), v_out, *fin)

    @staticmethod
    def backward(ctx: Any, gz: Optional[torch.Tensor], gv: Optional[torch.Tensor], gi: Optional[torch.Tensor],
                 gvf: Optional[torch.Tensor], ga: Optional[torch.Tensor], *unused: Any) -> tuple[Any, ...]:
        z_all, w, cn = ctx.z_all, ctx.w, ctx.c
        T, shape = z_all.shape[0], z_all.shape[1:]
        gz_a = np.zeros_like(z_all) if gz is None else as_array(gz).copy()
        gv_a = None if gv is None or gv.numel() == 0 else as_array(gv)
        gfin = np.zeros((3,) + shape, z_all.dtype)
        for k, g in enumerate((gi, gvf, ga)):
            if g is not None:
                gfin[k] = as_array(g)
        dx_all = np.empty((T - ctx.lag,) + shape, z_all.dtype)
        dw = np.zeros_like(w)
        dbias = np.zeros(shape[1:], z_all.dtype)
        dbeta, dtheta = np.zeros_like(dbias), np.zeros_like(dbias)
        zero_gv = np.zeros((1,) + shape, z_all.dtype)
        d0 = None
        for t in range(T - 1, -1, -1):
            z_prev = z_all[t - 1] if t else cn.z0
            step_c = cn._replace(v0=ctx.v_starts[t])
            gv_t = zero_gv if gv_a is None else gv_a[t][None]
            dx, db, dbe, dth, d0 = ctx.be.backward(ctx.key, 0, gz_a[t][None], gv_t, gfin, ctx.saved[t], *ctx.params,
                                                   step_c, ctx.sp)
            dbias += db.sum(0)
            dbeta += dbe.sum(0)
            dtheta += dth.sum(0)
            dx = dx[0]
            dw += z_prev.T @ dx
            if t >= ctx.lag:
                dx_all[t - ctx.lag] = dx
            if t:
                gz_a[t - 1] += d0[3] + dx @ w.T
                gfin = d0[:3]
        dz0 = d0[3] + dx @ w.T
        need = ctx.needs_input_grad
        out = (dx_all, dw, dbias, dbeta, dtheta, d0[0], d0[1], d0[2], dz0)
        return (*(torch.from_numpy(np.ascontiguousarray(g)) if need[k] else None for k, g in enumerate(out)),
                None, None, None, None, None)


def recurrent_sequence(x: torch.Tensor, w_rec: torch.Tensor, bias: torch.Tensor, beta: torch.Tensor,
                       theta: torch.Tensor, key: KernelKey, c: Constants, sp: tuple[float, float], want_v: bool,
                       lag: int = 1) -> tuple[torch.Tensor, torch.Tensor, FinalState]:
    """(z, v (T, B, n), final state) of a recurrent layer whose feed-forward input from step `lag`
    on is x (T - lag, B, n) (module docstring); v is empty without `want_v`. Equal, step for step,
    to the chain of one-step :func:`~training.fused.function.fused_dynamics` calls."""
    if lag not in (0, 1):
        raise ValueError(f"lag: expected 0 or 1, got {lag!r}")
    if key.kind == "li":  # never spikes: one kernel serves every reset and surrogate (as fused_dynamics)
        key = KernelKey("li", False, False, "fast_sigmoid")
    z, v, i, vv, a, r = _Sequence.apply(x.contiguous(), w_rec, bias, beta, theta, c.i0, c.v0, c.a0, c.z0, key, c,
                                        sp, want_v, lag)
    return z, v, FinalState(i, vv, a, r)
