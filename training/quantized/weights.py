"""Weight quantisation of Loihi's fixed-point mode in torch, with straight-through gradients: a
second target of the weight rule of :func:`neurosim.fixed_point.quantize` (tests/test_qat.py
compares mantissas and exponents with it, integer for integer).

For a projection with float weights w (n_pre, n_post) onto neurons of gain g and scale S
(integer units per float unit of the target's i and v, :class:`neurosim.fixed_point.FixedPopulation`)::

    units = w * g * S / 64                     (a_in units: a_in << 6 is added to u)
    mode  = excitatory (min >= 0), inhibitory (max <= 0) or mixed (Lava's determine_sign_mode)
    e     = the smallest exponent in [-8, 7] with every mantissa in WEIGHT_LIMITS[mode]
    m     = round(units / 2**e), on the even grid 2 * round(units / 2**e / 2) for mixed signs
    m'    = (m >> 1) << 1 for mixed signs (Lava's Dense drops the lowest bit; a no-op on the even grid)

and a step's input of the projection is ``shift(z @ m', e)`` (x << e, or floor(x / 2**-e) for
e < 0). Rounding and floor are exact in the forward pass and straight through (identity) in the
backward pass, so d a_in / d w = g * S / 64 * z: the float network's gradient in integer units.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch

from neurosim.errors import NetworkError
from neurosim.fixed_point import WEIGHT_EXP_RANGE, WEIGHT_LIMITS

from .integer_step import straight_through


class _StraightThrough(torch.autograd.Function):
    """Forward: the given integer mantissas; backward: grad * d units / d w (the rounding passed straight through)."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor, mantissas: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(slope)
        return mantissas.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, None, None]:
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None


class QuantizedWeight(NamedTuple):
    """mantissas: the effective (bit-dropped) mantissas m' (float64, integer-valued, no graph);
    exponent: e; mode: the sign mode; slope: d units / d w = g * S / (64 * 2**e), w's shape."""

    mantissas: torch.Tensor
    exponent: int
    mode: str
    slope: torch.Tensor

    def attach(self, w: torch.Tensor) -> torch.Tensor:
        """The mantissas in the forward pass, gradient ``slope`` to `w` in the backward pass (straight through)."""
        return _StraightThrough.apply(w, self.mantissas, self.slope)


def sign_mode(eff: torch.Tensor) -> str:
    """Lava's determine_sign_mode of the effective weights: excitatory if min >= 0, inhibitory if max <= 0, else mixed."""
    if eff.numel() == 0 or float(eff.detach().min()) >= 0:
        return "excitatory"
    if float(eff.detach().max()) <= 0:
        return "inhibitory"
    return "mixed"


def _round(x: torch.Tensor, mode: str) -> torch.Tensor:
    return 2.0 * torch.round(x / 2.0) if mode == "mixed" else torch.round(x)


def quantize_weight(w: torch.Tensor, gain: torch.Tensor, scale: torch.Tensor, name: str = "weights",
                    exp_range: tuple[int, int] = WEIGHT_EXP_RANGE) -> QuantizedWeight:
    """Mantissas, exponent and sign mode of float weights `w` (float64, (..., n_post) or a kernel whose
    first axis is the output channel when `gain`/`scale` are given per output channel, shaped to
    broadcast) onto targets of `gain` and `scale` (module docstring); `exp_range`: the exponents
    allowed (Dense's [-8, 7]; a kernel for Lava's Conv, CONV_WEIGHT_EXP_RANGE [0, 7]). Raises NetworkError naming
    `name` when no exponent holds the largest weight (as quantize's ExportError). No graph:
    :meth:`QuantizedWeight.attach` passes gradients straight through to the float weights."""
    with torch.no_grad():
        units = w * gain * scale / 64.0
        mode = sign_mode(w * gain)
        lo, hi = WEIGHT_LIMITS[mode]
        top, bottom = (float(units.max()), float(units.min())) if units.numel() else (0.0, 0.0)
        exps = range(exp_range[0], exp_range[1] + 1) if (top or bottom) else [max(0, exp_range[0])]
        for e in exps:  # round is monotone: the extreme mantissas are those of the extreme units
            m_hi = _round(torch.tensor(top / 2.0 ** e, dtype=torch.float64), mode)
            m_lo = _round(torch.tensor(bottom / 2.0 ** e, dtype=torch.float64), mode)
            if lo <= float(m_lo) and float(m_hi) <= hi:
                break
        else:
            raise NetworkError(name, f"largest |weight| needs {max(abs(top), abs(bottom)):.4g} input units, more than "
                                     f"an 8-bit {mode} mantissa << {exps[-1]} holds")
        m = _round(units / 2.0 ** e, mode)
        if mode == "mixed":
            m = 2.0 * torch.floor(m / 2.0)  # Lava's bit drop (a no-op on the even grid)
        slope = (gain * scale / (64.0 * 2.0 ** e)).expand_as(w)
    return QuantizedWeight(m, int(e), mode, slope)


def shift_input(acc: torch.Tensor, exponent: int) -> torch.Tensor:
    """A step's summed mantissas shifted by the projection's exponent: acc << e, or
    floor(acc / 2**-e) (Lava's arithmetic shift) for e < 0; straight through."""
    if exponent >= 0:
        return acc * 2.0 ** exponent
    return straight_through(acc * 2.0 ** exponent, torch.floor)
