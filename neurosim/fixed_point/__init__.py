"""Loihi fixed-point mode: quantise a Network to integer neurons + Lava Dense and simulate it.

:func:`simulate_fixed` reproduces, bit for bit, Lava 0.10's ``PyLifModelBitAcc`` (``LIF``,
tag ``fixed_pt``) fed by ``PyDenseModelBitAcc`` / ``PyDelayDenseModelBitAcc`` connections,
and extends that neuron, Loihi style, with threshold adaptation (ALIF), subtractive reset,
refractory periods and non-spiking readouts (LI); Lava runs the extension as the custom
process of :mod:`mapping.lava_processes`. Per step t, for every population (all integers;
int32 arithmetic wraps as in Lava; trunc rounds toward zero, ``sign(p) * (|p| >> k)``):

::

    c_k   = shift(sum of W'[pre, post] over the pre neurons of projection k that spiked at
            t - d, separately for every delay d), shift(x, e) = x << e (e > 0) or x >> -e (floor);
            W' = (W >> 1) << 1 for mixed-sign projections (Lava's Dense drops the lowest of
            the 8 mantissa bits itself), W' = W otherwise
    a_in  = sum_k c_k                                    (int32, wraps)
    u     = trunc(u * (4096 - (du + 1)) / 4096) + (a_in << 6)    (int32)
    u     = u - 2**24 if u > 2**23;  u + 2**24 if u <= -2**23     (one 24-bit wrap, as Lava)
    v~    = clip(trunc(v * (4096 - dv) / 4096) + u + (bias_mant << bias_exp), +-(2**23 - 1))
    a     = clip(trunc(a * (4096 - drho) / 4096) + adapt_inc * z[t-1], +-(2**23 - 1))
    A     = (vth << 6) + trunc(adapt_mant * a / 2**adapt_shift)      (threshold, v units)
    v~    = v[t-1]  while r[t-1] > 0                     (refractory: v held, u integrates)
    z     = v~ > A  and  r[t-1] == 0  and  spiking        (strict >)
    v     = 0 where z                                    (reset 'zero', as Lava)
          = clip(v~ - z * (vth << 6), +-(2**23 - 1))      (reset 'subtract': v -= theta)
    r     = refractory where z, else max(r[t-1] - 1, 0)

This is :func:`neurosim.models.neuron_step` in integers and in its order: a[t] takes the
spike of t - 1, ``A = theta + adapt * a``, the subtractive reset removes theta (not A).
Lava's own LIF is the case kind 'lif', reset 'zero', refractory 0 (then a = 0, A = vth << 6,
and the lines above are exactly ``PyLifModelBitAcc``); :func:`neuron_step_fixed` is the one
definition. du, dv, vth (and drho) are one value per population or one per neuron, as
Lava 0.10's ``PyLifModelBitAcc`` applies them (its Vars are declared with shape (1,) but
arrays broadcast against u and v), so a Lava network with per-neuron parameters is one
population here and one LIF process in Lava. Widths: u, v, a 24-bit signed; du, dv, drho
12-bit decays (dv, drho may be 4096); vth 17-bit; adapt_inc and adapt_mant signed 16-bit; adapt_shift 0..31; refractory
0..255 steps; products in int64.

:func:`quantize` maps a float network (LIF, IF, ALIF, LI; either reset) onto it. Each neuron j
gets a scale ``S_j = 64 * vth / theta_j`` (integer state units per float unit; theta_j = 1
for LI) and each ALIF population an adaptation scale ``2**a_exp``, so

::

    alpha ~ (4095 - du) / 4096      beta ~ (4096 - dv) / 4096      theta_j = 64 * vth / S_j
    w_ij * gain_j ~ m'_ij * 2**e * 64 / S_j     bias_j * gain_j / (1 - alpha_j) ~ bias_mant_j * 2**bias_exp_j / S_j
    i0_j - bias_j * gain_j / (1 - alpha_j) ~ u0_j / S_j     (i0_j ~ u0_j / S_j where alpha_j = 0)
    rho ~ (4096 - drho) / 4096      a ~ a_int / 2**a_exp      adapt_gain_j ~ adapt_inc_j / 2**a_exp
    adapt_j ~ adapt_mant_j * 2**(a_exp - adapt_shift) / S_j

(exact for e >= 0; for e < 0 Lava floors each step's summed input of a projection, which
takes up to 1 input unit, theta_j / vth in float units, off the dequantised sum). Bias: neurosim
adds b = bias * gain to i, Lava adds its bias to v. With i = u + b / (1 - alpha), i - b / (1 - alpha)
decays by alpha exactly as Lava's u does (b / (1 - alpha) = alpha b / (1 - alpha) + b), so the bias
on v is b / (1 - alpha) and u starts at i0 - b / (1 - alpha): exact in float, for any alpha < 1
(alpha = 1 with a bias is refused)
with 12-bit du, dv, drho (per neuron), a 17-bit vth, 8-bit weight mantissas m (Lava's ranges:
mixed signs: [-256, 255], of which Lava keeps (m >> 1) << 1, so quantize rounds them on the
even grid of [-256, 254]; excitatory [0, 255]; inhibitory [-255, 0]; the report's table says
which projections lose the bit), one weight exponent e in [-8, 7] per projection, 13-bit
bias mantissas and bias exponents in [0, 7]. a_exp is the largest that keeps every
adapt_inc in 16 bits and a in 24 bits even for a neuron spiking every step; adapt_shift the
largest that keeps every adapt_mant in 16 bits. Nothing is clipped: a value that does not
fit raises :class:`~neurosim.errors.ExportError` naming the field. alpha, beta, rho,
theta, bias, adapt, adapt_gain and refractory may all vary between the neurons of a
population (one vth per population with per-neuron scales S_j). The float equivalent of the
integer model is :func:`dequantize`. Convolutions and pooling that Lava's own Conv process can
run are kept as kernels (:class:`FixedConv`: Lava's fixed-point Conv applies ``m << e`` with no
bit drop and wraps its sum to 24 bits; :mod:`neurosim.fixed_point.conv`).
"""
from __future__ import annotations

from .arith import clip24, mul_shift, wrap24, wrap32
from .conv import CONV_WEIGHT_EXP_RANGE, FixedConv, lava_conv_refusal, quantize_conv
from .quantize import (check_lava_inputs, dequantize, integer_neuron_params, lava_lif_params, quantize,
                       v_bias_factor)
from .records import (A_EXP_RANGE, ADAPT_RANGE, ADAPT_SHIFT_RANGE, BIAS_EXP_RANGE, BIAS_MANT_RANGE, DECAY_ONE,
                      KINDS, LAVA_WEIGHT_RANGE, MAX_DELAY, REFRACTORY_MAX, RESETS, TARGET, TRACE_VARS, UV_MAX, VTH_MAX,
                      WEIGHT_EXP_RANGE, WEIGHT_LIMITS, FixedPointNetwork, FixedPopulation, FixedProjection,
                      QuantizationReport)
from .simulate import simulate_fixed
from .step import FixedState, fixed_traces, initial_state, neuron_step_fixed

__all__ = [
    "CONV_WEIGHT_EXP_RANGE", "FixedConv", "lava_conv_refusal", "quantize_conv", "wrap24",
    "A_EXP_RANGE", "ADAPT_RANGE", "ADAPT_SHIFT_RANGE", "BIAS_EXP_RANGE", "BIAS_MANT_RANGE", "DECAY_ONE", "KINDS",
    "LAVA_WEIGHT_RANGE", "v_bias_factor",
    "MAX_DELAY", "REFRACTORY_MAX", "RESETS", "TARGET", "TRACE_VARS", "UV_MAX", "VTH_MAX", "WEIGHT_EXP_RANGE",
    "WEIGHT_LIMITS", "FixedPointNetwork", "FixedPopulation", "FixedProjection", "FixedState", "QuantizationReport",
    "check_lava_inputs", "clip24", "dequantize", "fixed_traces", "initial_state", "integer_neuron_params",
    "lava_lif_params", "mul_shift", "neuron_step_fixed", "quantize", "simulate_fixed", "wrap32",
]
