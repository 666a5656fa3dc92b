"""The integer neuron step of Loihi's fixed-point mode (equations in the
:mod:`neurosim.fixed_point` docstring): the one definition that :func:`simulate_fixed` and
Lava's custom fixed-point process (:mod:`mapping.lava_processes`) both call."""
from __future__ import annotations

from typing import Iterable, NamedTuple, Optional

import numpy as np

from .arith import UV_MAX, clip24, mul_shift, wrap32
from .records import DECAY_ONE, FixedPopulation


class FixedState(NamedTuple):
    """Integer state after a step; every field (B, N) int64: u, v, a as in the module
    docstring, z the spikes of this step (0/1), r the remaining refractory steps."""

    u: np.ndarray
    v: np.ndarray
    a: np.ndarray
    z: np.ndarray
    r: np.ndarray



def initial_state(pop: FixedPopulation, batch: int) -> FixedState:
    """u0, v0, a0 of `pop` for `batch` trials; no spike and no refractory time before step 0."""
    tile = lambda x: np.broadcast_to(np.asarray(x, np.int64), (batch, pop.size)).copy()  # noqa: E731
    return FixedState(tile(pop.u0), tile(pop.v0), tile(pop.a0), tile(0), tile(0))


def neuron_step_fixed(pop: FixedPopulation, s: FixedState, a_in: np.ndarray,
                      counters: Optional[dict[str, int]] = None) -> FixedState:
    """One step of the integer neuron (the :mod:`neurosim.fixed_point` docstring) on int64 arrays; for Lava's own LIF
    (``pop.is_lava_lif``) exactly Lava's PyLifModelBitAcc. `counters` gains the number of
    24-bit wraps of u ('u_wraps') and clips of v ('v_clips') and a ('a_clips')."""
    act = wrap32(wrap32(a_in) << 6)
    u = wrap32(mul_shift(s.u, DECAY_ONE - (pop.du + 1)) + act)
    wrapped = np.where(u > UV_MAX, u - 2 * UV_MAX, np.where(u <= -UV_MAX, u + 2 * UV_MAX, u))
    raw_v = wrap32(mul_shift(s.v, DECAY_ONE - pop.dv) + wrapped + pop.effective_bias)
    raw_a = mul_shift(s.a, DECAY_ONE - pop.drho) + pop.adapt_inc * s.z
    held = s.r > 0
    v, a = np.where(held, s.v, clip24(raw_v)), clip24(raw_a)
    z = (v > pop.threshold_int(a)) & ~held & pop.spiking
    sub = v - z * (pop.vth << 6)
    v_out = np.where(z, 0, v) if pop.reset == "zero" else clip24(sub)
    if counters is not None:
        clipped = ((raw_v != clip24(raw_v)) & ~held) | ((sub != v_out) & (pop.reset == "subtract"))
        counters["u_wraps"] += int(np.count_nonzero(wrapped != u))
        counters["v_clips"] += int(np.count_nonzero(clipped))
        counters["a_clips"] += int(np.count_nonzero(raw_a != a))
    r = np.where(z, pop.refractory, np.maximum(s.r - 1, 0))
    return FixedState(wrapped, v_out, a, z.astype(np.int64), r)


def fixed_traces(pop: FixedPopulation, u: np.ndarray, v: np.ndarray, a: np.ndarray,
                 variables: Iterable[str]) -> dict[str, np.ndarray]:
    """Trace variables of :data:`TRACE_VARS` from integer u, v, a records (any shape ending in N):
    'u_int', 'v_int', 'a_int' the integers; 'v' = v / S, 'i' = (u + bias) / S, 'a' = a / 2**a_exp,
    'threshold' = A / S (0 for LI, as neurosim), the float network's units."""
    conv = {"u_int": lambda: u, "v_int": lambda: v, "a_int": lambda: a,
            "v": lambda: v / pop.scale, "i": lambda: (u + pop.effective_bias) / pop.scale,
            "a": lambda: a / pop.a_scale,
            "threshold": lambda: (pop.threshold_int(a) / pop.scale if pop.spiking else np.zeros(np.shape(v)))}
    return {var: conv[var]() for var in variables}
