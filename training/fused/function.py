"""The fused multi-step neuron layer as one torch autograd function, and the seam where device
kernels plug in.

:func:`fused_dynamics` runs the canonical neuron map of one population (one model, one reset)
over all T steps of an already projected input x (T, B, N): forward in one compiled call,
backward in one compiled call (training.fused.kernels), saving h (the pre-reset potential), the
spikes, and a (alif) / the active mask (refractory) only. Gradients: x, bias, and the trained
per-neuron beta and theta; alpha, gain, rho, adapt, adapt_gain, refractory and the initial
state's refractory counter are constants (buffers of the modules that call it); the initial
i, v, a, z and the final i, v, a carry gradient, so a recurrent layer chains one-step calls.

Devices: :data:`BACKENDS` maps a torch device type to the object that runs the kernels; the CPU
entry is numba. A GPU kernel (Triton or CuPy) registers itself there with the same two methods;
without one, :func:`available` is False and callers keep the canonical per-step path.
"""
from __future__ import annotations

import importlib.util
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import torch

from neurosim.errors import NetworkError

from .kernels import MODEL_KINDS, SURROGATES, KernelKey, as_array, kernels


class Constants(NamedTuple):
    """Per-neuron (N,) constants of one population: alpha, gain, rho, adapt, adapt_gain,
    refractory; and its initial state (B, N) i0, v0, a0, z0, r0 (i0 .. z0 may carry gradient)."""

    alpha: torch.Tensor
    gain: torch.Tensor
    rho: torch.Tensor
    adapt: torch.Tensor
    adapt_gain: torch.Tensor
    refractory: torch.Tensor
    i0: torch.Tensor
    v0: torch.Tensor
    a0: torch.Tensor
    z0: torch.Tensor
    r0: torch.Tensor


class FinalState(NamedTuple):
    """State after the last step (B, N): i, v, a (differentiable; a for ALIF only), r."""

    i: torch.Tensor
    v: torch.Tensor
    a: torch.Tensor
    r: torch.Tensor


class NumbaBackend:
    """CPU kernels (numba); the batch is split over torch.get_num_threads() threads."""

    def forward(self, key: KernelKey, lag: int, x: np.ndarray, bias: np.ndarray, beta: np.ndarray,
                theta: np.ndarray, c: Constants) -> tuple[np.ndarray, ...]:
        """(h, z, a_seq, act, i_T, v_T, a_T, r_T) of the map over T = lag + len(x) steps; x (T - lag,
        B, N) is the input of steps lag .. T - 1 (the first `lag` steps have none)."""
        fwd, _ = kernels(key)
        shape = (x.shape[0] + lag,) + x.shape[1:]
        h, z = np.empty(shape, x.dtype), np.empty(shape, x.dtype)
        a_seq = np.empty(shape if key.kind == "alif" else (1, 1, 1), x.dtype)
        act = np.empty(shape if key.refractory else (1, 1, 1), np.bool_)
        fin = [np.empty(x.shape[1:], x.dtype) for _ in range(4)]
        _split(x.shape[1], lambda b0, b1: fwd(b0, b1, lag, x, bias, c.gain, c.alpha, beta, theta, c.rho, c.adapt,
                                              c.adapt_gain, c.refractory, c.i0, c.v0, c.a0, c.z0, c.r0, h, z,
                                              a_seq, act, *fin))
        return (h, z, a_seq, act, *fin)

    def backward(self, key: KernelKey, lag: int, gz: np.ndarray, gv: np.ndarray, gfin: np.ndarray,
                 saved: tuple[np.ndarray, ...], beta: np.ndarray, theta: np.ndarray, c: Constants,
                 sp: tuple[float, float]) -> tuple[np.ndarray, ...]:
        """(dx (T - lag, B, N); per batch row (B, N), summed by the caller: dbias (every step's
        gain * di), dbeta, dtheta; d0 (4, B, N): gradients of the initial i, v, a, z), from the
        outputs' gradients gz, gv and the final state's gfin (3, B, N: i, v, a)."""
        _, bwd = kernels(key)
        h, z, a_seq, act = saved
        sp = tuple(h.dtype.type(p) for p in sp)  # in the arrays' dtype: float32 arithmetic stays float32
        dx = np.empty((h.shape[0] - lag,) + h.shape[1:], h.dtype)
        dbias = np.zeros(h.shape[1:], h.dtype)
        dbeta = np.zeros(h.shape[1:], h.dtype)
        dtheta = np.zeros(h.shape[1:], h.dtype)
        d0 = np.empty((4,) + h.shape[1:], h.dtype)
        _split(h.shape[1], lambda b0, b1: bwd(b0, b1, lag, gz, gv, gfin, h, z, a_seq, act, c.v0, c.gain, c.alpha,
                                              beta, theta, c.rho, c.adapt, c.adapt_gain, sp[0], sp[1], dx, dbias,
                                              dbeta, dtheta, d0))
        return dx, dbias, dbeta, dtheta, d0


_POOL: list[ThreadPoolExecutor] = []


def _split(batch: int, run: Callable[[int, int], Any]) -> None:
    """run(b0, b1) over the batch rows, split into torch.get_num_threads() parts run on threads
    (the kernels release the GIL); one part runs on the calling thread."""
    parts = max(1, min(torch.get_num_threads(), batch))
    if parts == 1:
        run(0, batch)
        return
    if not _POOL or _POOL[0]._max_workers < parts - 1:  # noqa: SLF001 (the executor's own size)
        _POOL[:] = [ThreadPoolExecutor(parts - 1)]
    edges = [batch * k // parts for k in range(parts + 1)]
    futures = [_POOL[0].submit(run, edges[k], edges[k + 1]) for k in range(1, parts)]
    run(edges[0], edges[1])
    for f in futures:
        f.result()


BACKENDS: dict[str, Any] = {"cpu": NumbaBackend()}


def available(device: torch.device) -> bool:
    """Whether fused kernels exist for tensors on `device` (on the CPU: numba is installed)."""
    if device.type == "cpu" and importlib.util.find_spec("numba") is None:
        return False
    return device.type in BACKENDS


def surrogate_args(name: str, params: dict[str, float]) -> tuple[float, float]:
    """The two run-time surrogate parameters the kernels take (training.surrogate's names)."""
    if name == "fast_sigmoid":
        return float(params["slope"]), 0.0
    if name == "atan":  # the kernel's w = (pi/2 * alpha) * u, the product rounded here as torch's step does
        return float(params["alpha"]), math.pi / 2 * float(params["alpha"])
    if name == "triangle":
        return float(params["dampening"]), float(params["width"])
    raise NetworkError("surrogate", f"expected one of {list(SURROGATES)}, got {name!r}")


class _Dynamics(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bias: torch.Tensor, beta: torch.Tensor, theta: torch.Tensor,
                i0: torch.Tensor, v0: torch.Tensor, a0: torch.Tensor, z0: torch.Tensor,
                key: KernelKey, c: Constants, sp: tuple[float, float], lag: int, want_v: bool
                ) -> tuple[torch.Tensor, ...]:
        be = BACKENDS[x.device.type]
        cn = Constants(*(as_array(t) for t in c))
        arrs = be.forward(key, lag, as_array(x), as_array(bias), as_array(beta), as_array(theta), cn)
        h, z, a_seq, act = arrs[:4]
        ht, zt = torch.from_numpy(h), torch.from_numpy(z)
        if not want_v:
            v = ht.new_zeros(0)
        elif key.kind == "li":
            v = ht
        elif key.reset_zero:
            v = ht - zt * ht
        else:
            v = ht - zt * theta.detach()
        # the backward reads the initial v only: the other initial arrays (copies of the state's
        # columns where it is wider than this layer) are not kept with the graph
        ctx.key, ctx.c, ctx.sp, ctx.be, ctx.lag = key, cn._replace(i0=None, a0=None, z0=None, r0=None), sp, be, lag
        ctx.saved = (h, z, a_seq, act)
        ctx.params = (as_array(beta), as_array(theta))
        fin = tuple(torch.from_numpy(f) for f in arrs[4:])
        ctx.mark_non_differentiable(fin[3])  # r: a counter, no gradient
        return (zt, v, *fin)

    @staticmethod
    def backward(ctx: Any, gz: Optional[torch.Tensor], gv: Optional[torch.Tensor], gi: Optional[torch.Tensor],
                 gvf: Optional[torch.Tensor], ga: Optional[torch.Tensor], *unused: Any) -> tuple[Any, ...]:
        h = ctx.saved[0]
        gz_a = np.zeros_like(h) if gz is None else as_array(gz)
        gv_a = np.zeros_like(h) if gv is None or gv.numel() == 0 else as_array(gv)
        gfin = np.zeros((3,) + h.shape[1:], h.dtype)
        for k, g in enumerate((gi, gvf, ga)):
            if g is not None:
                gfin[k] = as_array(g)
        dx, dbias, dbeta, dtheta, d0 = ctx.be.backward(ctx.key, ctx.lag, gz_a, gv_a, gfin, ctx.saved, *ctx.params,
                                                       ctx.c, ctx.sp)
        need = ctx.needs_input_grad
        return (torch.from_numpy(dx) if need[0] else None,
                torch.from_numpy(dbias.sum(0)) if need[1] else None,
                torch.from_numpy(dbeta.sum(0)) if need[2] else None,
                torch.from_numpy(dtheta.sum(0)) if need[3] else None,
                *(torch.from_numpy(d0[k]) if need[4 + k] else None for k in range(4)),
                None, None, None, None, None)


def fused_dynamics(x: torch.Tensor, bias: torch.Tensor, beta: torch.Tensor, theta: torch.Tensor,
                   key: KernelKey, c: Constants, sp: tuple[float, float], lag: int = 0, want_v: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor, FinalState]:
    """(z, v, final state): spikes and post-reset potentials (T, B, N) of the canonical map
    (module docstring) over T = lag + len(x) steps, the input x (T - lag, B, N) arriving from
    step `lag` on; differentiable in x, bias, beta, theta, the initial i, v, a, z (c.i0 .. c.z0) and
    through the final i, v, a (ALIF: a; other models do not track a). Without `want_v`, v is empty."""
    if key.kind not in MODEL_KINDS or key.surrogate not in SURROGATES:
        raise NetworkError("fused", f"no fused kernel for {key}")
    if not available(x.device):
        raise NetworkError("fused", f"no fused kernel registered for device {x.device.type!r}")
    if key.kind == "li":  # never spikes: one kernel serves every reset and surrogate
        key = KernelKey("li", False, False, "fast_sigmoid")
    z, v, i, vv, a, r = _Dynamics.apply(x.contiguous(), bias, beta, theta, c.i0, c.v0, c.a0, c.z0, key, c, sp, lag,
                                        want_v)
    return z, v, FinalState(i, vv, a, r)
