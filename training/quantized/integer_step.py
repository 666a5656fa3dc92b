"""The integer neuron of Loihi's fixed-point mode in torch, with straight-through gradients: a
second target of :func:`neurosim.fixed_point.neuron_step_fixed` (the one definition; the
equations are in the :mod:`neurosim.fixed_point` docstring), compared with it integer for
integer by tests/test_qat.py.

Integers are carried in float64 tensors: every value of the step (24-bit states, 12-bit decays,
products below 2**44) is exact there. Each integer operation (truncating decay, floor, int32 and
24-bit wrap) runs exactly in the forward pass and passes its gradient straight through
(identity), so d u / d u[t-1] = (4095 - du) / 4096 as in the float model; the spike is the
surrogate Heaviside of ``(v - A) / S`` (the float network's units, the sign of v - A unchanged).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
import torch

from neurosim.fixed_point import DECAY_ONE, UV_MAX, FixedPointNetwork, FixedState

TWO32 = 2.0 ** 32
TWO31 = 2.0 ** 31


class TorchFixedParams(NamedTuple):
    """Per-neuron integer parameters (N,) float64 of every population of a FixedPointNetwork,
    concatenated in population order: du, dv, vth64 (= vth << 6), bias (bias_mant << bias_exp),
    drho, adapt_inc, adapt_mant, adapt_div (2**adapt_shift), a_scale (2**a_exp), refractory,
    reset_zero (1 for reset 'zero'), spiking (0 for LI), scale (S, integer units per float unit)."""

    du: torch.Tensor
    dv: torch.Tensor
    vth64: torch.Tensor
    bias: torch.Tensor
    drho: torch.Tensor
    adapt_inc: torch.Tensor
    adapt_mant: torch.Tensor
    adapt_div: torch.Tensor
    a_scale: torch.Tensor
    refractory: torch.Tensor
    reset_zero: torch.Tensor
    spiking: torch.Tensor
    scale: torch.Tensor


def fixed_params(fixed: FixedPointNetwork) -> TorchFixedParams:
    """The :class:`TorchFixedParams` of every population of `fixed` (in its order)."""
    cols: dict[str, list[np.ndarray]] = {f: [] for f in TorchFixedParams._fields}
    for p in fixed.populations:
        n = p.size
        vals = dict(du=p.du, dv=p.dv, vth64=np.asarray(p.vth, np.int64) << 6, bias=p.effective_bias, drho=p.drho,
                    adapt_inc=p.adapt_inc, adapt_mant=p.adapt_mant, adapt_div=2.0 ** p.adapt_shift,
                    a_scale=p.a_scale, refractory=p.refractory, reset_zero=float(p.reset == "zero"),
                    spiking=float(p.spiking), scale=p.scale)
        for f in TorchFixedParams._fields:
            cols[f].append(np.broadcast_to(np.asarray(vals[f], np.float64), (n,)))
    return TorchFixedParams(*(torch.as_tensor(np.concatenate(cols[f]), dtype=torch.float64)
                              for f in TorchFixedParams._fields))


def straight_through(x: torch.Tensor, op: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``op(x)`` exactly in the forward pass, gradient passed straight through (identity):
    ``(x - x.detach()) + op(x.detach())``; the first term is exactly 0."""
    return (x - x.detach()) + op(x.detach())


def trunc_div(x: torch.Tensor, div: Any) -> torch.Tensor:
    """``trunc(x / div) = sign(x) * (|x| >> k)`` for div = 2**k (Lava's decay), straight through."""
    return straight_through(x / div, torch.trunc)


def wrap32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement wrap to int32, straight through (identity gradient)."""
    return straight_through(x, lambda y: y - TWO32 * torch.floor((y + TWO31) / TWO32))


def wrap24(u: torch.Tensor) -> torch.Tensor:
    """Lava's one 24-bit wrap of u: ``u - 2**24 if u > 2**23; u + 2**24 if u <= -2**23``, straight through."""
    return straight_through(u, lambda y: torch.where(y > UV_MAX, y - 2 * UV_MAX,
                                                     torch.where(y <= -UV_MAX, y + 2 * UV_MAX, y)))


def wrap24_sum(x: torch.Tensor) -> torch.Tensor:
    """Signed 24-bit wrap-around of a summed input, ``(x + 2**23) mod 2**24 - 2**23`` (Lava's
    fixed-point Conv output, :func:`neurosim.fixed_point.wrap24`), straight through."""
    return straight_through(x, lambda y: y - 2 * UV_MAX * torch.floor((y + UV_MAX) / (2 * UV_MAX)))


def clip24(x: torch.Tensor) -> torch.Tensor:
    """x clipped to +-(2**23 - 1) (gradient 0 outside, as torch.clamp)."""
    return torch.clamp(x, -UV_MAX + 1, UV_MAX - 1)


def neuron_step_fixed_torch(p: TorchFixedParams, s: FixedState, a_in: torch.Tensor,
                            spike_fn: Callable[[torch.Tensor], torch.Tensor]) -> FixedState:
    """One step of :func:`neurosim.fixed_point.neuron_step_fixed` on integer-valued float64 tensors
    (B, N); `s` holds u, v, a, z, r as that function's FixedState does; `spike_fn` is the
    surrogate Heaviside (forward ``x > 0``) applied to ``(v - A) / S``."""
    act = wrap32(wrap32(a_in) * 64.0)
    u = wrap24(wrap32(trunc_div(s.u * (DECAY_ONE - (p.du + 1)), DECAY_ONE) + act))
    raw_v = wrap32(trunc_div(s.v * (DECAY_ONE - p.dv), DECAY_ONE) + u + p.bias)
    a = clip24(trunc_div(s.a * (DECAY_ONE - p.drho), DECAY_ONE) + p.adapt_inc * s.z)
    held = s.r > 0
    v = torch.where(held, s.v, clip24(raw_v))
    threshold = p.vth64 + trunc_div(p.adapt_mant * a, p.adapt_div)
    z = spike_fn((v - threshold) / p.scale) * (~held * p.spiking)
    v_out = torch.where(p.reset_zero > 0, v * (1.0 - z), clip24(v - z * p.vth64))
    r = torch.where(z > 0, p.refractory, torch.clamp(s.r - 1, min=0))
    return FixedState(u, v_out, a, z, r)
