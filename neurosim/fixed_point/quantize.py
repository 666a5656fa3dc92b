"""Quantisation of a float Network onto the integer neuron (:func:`quantize`) and back
(:func:`dequantize`), with the checks of what Lava's LIF and the integer neuron can hold;
the scales and ranges are in the :mod:`neurosim.fixed_point` docstring."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import numpy as np

from ..errors import ExportError, NetworkError
from ..conv import ShapedProjection
from ..models import ALIF, IF, LI, LIF
from ..network import Network, PoissonInput, Population, Projection
from .arith import UV_MAX, mantissas, sign_mode
from .conv import CONV_WEIGHT_EXP_RANGE, FixedConv, lava_conv_refusal, quantize_conv
from .records import (A_EXP_RANGE, ADAPT_RANGE, ADAPT_SHIFT_RANGE, BIAS_EXP_RANGE, BIAS_MANT_RANGE, DECAY_ONE,
                      MAX_DELAY, REFRACTORY_MAX, TARGET, VTH_MAX, WEIGHT_EXP_RANGE, WEIGHT_LIMITS, FixedPointNetwork,
                      FixedPopulation, FixedProjection, QuantizationReport)


def lava_lif_params(pop: Population, *, fixed: bool, target: str = TARGET) -> dict[str, Any]:
    """Check that `pop` is a Lava LIF and return its alpha, beta (per neuron, (N,)) and refractory.

    Lava's LIF: ``u = u*(1 - du) + a_in; v = v*(1 - dv) + u + bias; spike if v > vth; v = 0``;
    Lava 0.10's models apply du, dv, vth and bias per neuron (arrays broadcast against the
    state), the refractory period of ``LIFRefractory`` is one per process. neurosim adds bias b
    to i, Lava to v: b appears on v as b / (1 - alpha) with u0 = i0 - b / (1 - alpha) (exact in
    float; the :mod:`neurosim.fixed_point` docstring), so bias needs alpha < 1. Raises
    ExportError naming the first field that cannot be expressed.
    """
    where = f"populations.{pop.name}.model"
    if not isinstance(pop.model, (LIF, IF)):
        raise ExportError(target, where, f"{type(pop.model).__name__} is not a Lava LIF (only LIF and IF with "
                                         "reset='zero' are, and an LI readout; `neurosim train --model lif --reset "
                                         "zero` trains such a network)")
    if pop.model.reset != "zero":
        raise ExportError(target, f"{where}.reset", "Lava's LIF resets v to 0; reset='subtract' cannot be expressed "
                                                    "(`neurosim train --reset zero` trains with Lava's reset)")
    out = _checked(pop, ("alpha", "beta"), target)
    out.update(_uniform(pop, ("refractory",), "Lava's LIFRefractory", target))
    if fixed and out["refractory"] > 0:
        raise ExportError(target, f"{where}.refractory", "Lava 0.10 has no fixed-point LIFRefractory model")
    return out


def integer_neuron_params(pop: Population, target: str = TARGET) -> dict[str, Any]:
    """Check that `pop` (LIF, IF, ALIF or LI, either reset) fits the integer neuron of the module
    docstring and return its alpha, beta (and rho for ALIF), per neuron (N,).

    The integer neuron shares Lava's LIF limits: du, dv (and drho) per neuron, bias added to v
    (as b / (1 - alpha)), thresholds > 0; refractory periods up to :data:`REFRACTORY_MAX`
    steps. Raises ExportError naming the first field that does not fit.
    """
    names = ("alpha", "beta", "rho") if isinstance(pop.model, ALIF) else ("alpha", "beta")
    out = _checked(pop, names, target)
    refractory = pop.params.refractory
    if np.any(refractory > REFRACTORY_MAX):
        raise ExportError(target, f"populations.{pop.name}.model.refractory",
                          f"at most {REFRACTORY_MAX} steps (an 8-bit counter), got {int(refractory.max())}")
    return out


def _checked(pop: Population, names: tuple[str, ...], target: str) -> dict[str, Any]:
    """The per-neuron values of `names`, after the threshold and bias checks."""
    where = f"populations.{pop.name}.model"
    p = pop.params
    out = {name: np.asarray(getattr(p, name), np.float64).copy() for name in names}
    if pop.spiking and np.any(p.theta <= 0):
        raise ExportError(target, f"{where}.theta",
                          f"expected thresholds > 0 (Lava's vth), got min {p.theta.min():g}")
    if np.any((out["alpha"] >= 1) & (p.bias != 0)):
        raise ExportError(target, f"{where}.bias", "Lava adds bias to v, neurosim to i: a bias appears on v as "
                                                   "bias / (1 - alpha), which needs alpha < 1")
    return out


def _uniform(pop: Population, names: tuple[str, ...], what: str, target: str) -> dict[str, Any]:
    """The values of `names` that `what` takes once per population."""
    out: dict[str, Any] = {}
    for name in names:
        vals = np.asarray(getattr(pop.params, name))
        if np.ptp(vals) != 0:
            raise ExportError(target, f"populations.{pop.name}.model.{name}",
                              f"{what} takes one value per population, got {vals.min():g}..{vals.max():g}")
        out[name] = float(vals[0])
    return out


def check_lava_inputs(network: Network, target: str = TARGET) -> None:
    """Lava is driven by given spikes only: PoissonInput raises ExportError."""
    for src in network.inputs:
        if isinstance(src, PoissonInput):
            raise ExportError(target, f"inputs.{src.name}", "a PoissonInput is drawn by neurosim's generator; "
                                                            "draw its spikes and give them as a SpikeInput")


def quantize(
    network: Network,
    *,
    vth_mant: Union[None, int, Mapping[str, int]] = None,
    weight_exp: Optional[int] = None,
    bias_exp: Optional[int] = None,
    headroom: float = 64.0,
    max_delay: int = MAX_DELAY,
    target: str = TARGET,
    lava_lif_only: bool = False,
    conv: str = "lava",
    scale: str = "neuron",
) -> FixedPointNetwork:
    """Quantise `network` to Loihi's integer neurons + Dense (see the :mod:`neurosim.fixed_point` docstring).

    vth_mant: threshold mantissa per population (int or {population: int}); by default the
    largest with ``64 * vth * headroom <= 2**23``, so ``|u|``, ``|v|`` up to `headroom` thresholds fit
    (2048 for headroom 64), lowered where a fixed `weight_exp`/`bias_exp` needs it.
    weight_exp: one exponent for every projection (NetX files need 0); by default each
    projection gets the smallest in [-8, 7] that fits its largest weight.
    bias_exp: one bias exponent (NetX uses 6); by default the smallest per neuron that fits.
    lava_lif_only: accept only what Lava's own LIF runs (LIF/IF, reset 'zero', no refractory)
    and non-spiking LI readouts, as NetX needs; otherwise ALIF, LI, subtractive reset and
    refractory periods are quantised to the integer neuron (run in Lava by the custom process
    of :mod:`mapping.lava_processes`).
    conv: 'lava' (default): convolutions and pooling that Lava's Conv process can carry
    (:func:`neurosim.fixed_point.conv.lava_conv_refusal`) become :class:`FixedConv` (8-bit kernel
    mantissas, an exponent in [0, 7], wrap-around 24-bit sums: Lava's ``PyConvModelFixed``); the
    others (and Flatten) are quantised as their exact CSR lowering, each with a note in the
    report saying why. 'lowered': every shaped projection as its lowering (:meth:`Network.lowered`).
    scale: 'neuron' (default): S_j = 64 * vth / theta_j with one vth per population; 'channel':
    in every population with a shape (C, ...), one scale per channel, S_c = 64 * vth / max theta
    of the channel, and per-neuron thresholds vth_j = round(vth * theta_j / max theta) (theta is
    then rounded, see the report's theta_max_abs_error), so that a convolution into a channel
    whose thresholds vary still has one kernel.
    Multapses (several synapses on one (pre, post)) are merged by
    addition before rounding;
    a pair with synapses of several delays gives one projection per delay (``{name}_d{d}``,
    :meth:`Network.without_multapses`).
    Raises ExportError (naming the field) for anything the integer model cannot hold.
    """
    if not isinstance(network, Network):
        raise NetworkError("network", f"expected a neurosim.Network, got {type(network).__name__}")
    if not (np.isfinite(headroom) and headroom >= 1):
        raise NetworkError("headroom", f"expected a number >= 1 of thresholds, got {headroom!r}")
    check_lava_inputs(network, target)
    if conv not in ("lava", "lowered"):
        raise NetworkError("conv", f"expected 'lava' or 'lowered', got {conv!r}")
    if scale not in ("neuron", "channel"):
        raise NetworkError("scale", f"expected 'neuron' or 'channel', got {scale!r}")
    per_channel = scale == "channel"
    # shaped projections Lava's Conv cannot carry as their exact CSR lowering; multapses summed before rounding
    network, notes = _conv_ready(network, conv == "lava", weight_exp, per_channel)
    network = network.without_multapses()
    lif = {p.name: (lava_lif_params(p, fixed=True, target=target) if lava_lif_only and p.spiking
                    else integer_neuron_params(p, target)) for p in network.populations}
    incoming: dict[str, list[Projection]] = {p.name: [] for p in network.populations}
    for proj in network.projections:
        if proj.max_delay > max_delay:
            raise ExportError(target, f"projections.{proj.name}.delay",
                              f"at most {max_delay} steps (DelayDense holds {max_delay - 1} extra steps), "
                              f"got {proj.max_delay}")
        incoming[proj.post].append(proj)

    pops, pop_reports, scales = [], {}, {}
    for pop in network.populations:
        ref = _ref_unit(pop, per_channel)
        v = _vth_mant(pop, vth_mant, incoming[pop.name], weight_exp, bias_exp, headroom, target, ref)
        fp, rep = _quantize_population(pop, lif[pop.name], v, bias_exp, target, ref)
        pops.append(fp)
        pop_reports[pop.name] = rep
        scales[pop.name] = fp.scale
    projs, proj_reports = [], {}
    for proj in network.projections:
        fq, rep = _quantize_projection(proj, network.population(proj.post), scales[proj.post], weight_exp, target)
        projs.append(fq)
        proj_reports[proj.name] = rep
    return FixedPointNetwork(dt=network.dt, populations=tuple(pops), projections=tuple(projs),
                             inputs=tuple(network.inputs), name=network.name,
                             report=QuantizationReport(pop_reports, proj_reports, notes))


def _conv_ready(network: Network, keep: bool, weight_exp: Optional[int],
                per_channel: bool = False) -> tuple[Network, tuple[str, ...]]:
    """`network` with every shaped projection that Lava's Conv cannot carry (or all, keep=False)
    replaced by its CSR lowering, and one note per lowered convolution or pooling."""
    if not network.shaped:
        return network, ()
    projs, notes = [], []
    for j in network.projections:
        if isinstance(j, ShapedProjection):
            post = network.population(j.post)
            why = (lava_conv_refusal(j, post.params.gain / _ref_unit(post, per_channel)) if keep
                   else "quantize(conv='lowered')")
            if why is None and weight_exp is not None and weight_exp < CONV_WEIGHT_EXP_RANGE[0]:
                why = f"weight_exp={weight_exp}: Lava's Conv cannot shift its sum right"
            if why is not None:
                if j.geometry() is not None:
                    notes.append(f"{j.name}: {j.kind} quantised as its CSR lowering (Sparse in Lava): {why}")
                csr, d = j.to_csr()
                j = Projection(j.name, j.pre, j.post, csr, int(d[0]) if d.size and np.all(d == d[0]) else d)
        projs.append(j)
    return network.replace(projections=tuple(projs)), tuple(notes)


def _vth_mant(pop: Population, given: Union[None, int, Mapping[str, int]], incoming: list[Projection],
              weight_exp: Optional[int], bias_exp: Optional[int], headroom: float, target: str,
              ref: np.ndarray) -> int:
    where = f"populations.{pop.name}.model.theta"
    if isinstance(given, Mapping):
        given = given.get(pop.name)
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, (int, np.integer)) or not 1 <= given <= VTH_MAX:
            raise NetworkError("vth_mant", f"expected an integer in [1, {VTH_MAX}], got {given!r}")
        return int(given)
    v = float(np.floor(UV_MAX / (64 * headroom)))
    p = pop.params
    per_unit = p.gain / ref  # integer input units per float unit of w, per unit of vth
    if weight_exp is not None:
        for proj in incoming:
            w = _scaled_weights(proj, per_unit)
            lo, hi = WEIGHT_LIMITS[sign_mode(w)]
            if w.max() > 0:
                v = min(v, hi * 2.0 ** weight_exp / w.max())
            if w.min() < 0:
                v = min(v, lo * 2.0 ** weight_exp / w.min())
    if bias_exp is not None and np.any(p.bias != 0):
        du = _decays(np.asarray(p.alpha, np.float64), np.asarray(p.beta, np.float64))[0]
        b = np.abs(p.bias * 64 * per_unit * v_bias_factor(du)).max()
        v = min(v, BIAS_MANT_RANGE[1] * 2.0 ** bias_exp / b)
    if v < 1:
        raise ExportError(target, where, "no threshold mantissa >= 1 lets the weights or bias fit the fixed "
                                         f"exponents (weight_exp={weight_exp}, bias_exp={bias_exp})")
    return int(min(np.floor(v), VTH_MAX))


def _scaled_weights(proj: Any, per_unit: np.ndarray) -> np.ndarray:
    """The weights of `proj` times the target's per-neuron factor: (n_pre, n_post) for a dense or
    CSR projection; the kernel times one factor per output channel for a convolution or pooling
    kept for Lava's Conv (:func:`_conv_ready` checked that the factor is one per channel)."""
    if isinstance(proj, ShapedProjection):
        g = proj.geometry()
        return g.kernel * per_unit.reshape(g.out_shape[0], -1)[:, 0, None, None, None]
    w = np.asarray(proj.weights.to_dense() if proj.is_sparse else proj.weights, np.float64)
    return w * per_unit[None, :]


def _unit(pop: Population) -> np.ndarray:
    """Float value of vth << 6 per neuron: theta, or 1 for an LI readout (it has none)."""
    return pop.params.theta if pop.spiking else np.ones(pop.size)


def _ref_unit(pop: Population, per_channel: bool) -> np.ndarray:
    """The unit the scale refers to, per neuron: :func:`_unit`, or (per_channel, a population
    with a shape (C, ...)) the largest unit of the neuron's channel."""
    unit = _unit(pop)
    if not per_channel or len(pop.shape) < 2:
        return unit
    per = unit.reshape(pop.shape[0], -1)
    return np.broadcast_to(per.max(axis=1, keepdims=True), per.shape).reshape(-1)


def _decays(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron du, dv: alpha ~ (4095 - du) / 4096, beta ~ (4096 - dv) / 4096, rounded."""
    du = np.clip(DECAY_ONE - 1 - np.round(alpha * DECAY_ONE), 0, DECAY_ONE - 1).astype(np.int64)
    dv = np.clip(np.round((1.0 - beta) * DECAY_ONE), 0, DECAY_ONE - 1).astype(np.int64)
    return du, dv


def v_bias_factor(du: Any) -> np.ndarray:
    """1 / (1 - alpha_q) = 4096 / (du + 1): a bias b on i acts as b / (1 - alpha_q) on v."""
    return DECAY_ONE / (np.asarray(du, np.float64) + 1.0)


def _worst(err: Any) -> float:
    """The signed error of largest magnitude."""
    err = np.atleast_1d(np.asarray(err, np.float64))
    return float(err.flat[int(np.argmax(np.abs(err)))])


def _kind(pop: Population) -> str:
    return "alif" if isinstance(pop.model, ALIF) else ("li" if isinstance(pop.model, LI) else "lif")


def _quantize_population(pop: Population, lif: dict[str, Any], vth: Any, bias_exp: Optional[int],
                         target: str, ref: np.ndarray) -> tuple[FixedPopulation, dict[str, Any]]:
    where = f"populations.{pop.name}"
    p = pop.params
    scale = 64.0 * vth / ref
    if pop.spiking and np.any(ref != _unit(pop)):  # one scale per channel: thresholds per neuron
        vth = np.round(vth * _unit(pop) / ref).astype(np.int64)
        if vth.min() < 1:
            raise ExportError(target, f"{where}.model.theta", "a threshold rounds to vth 0 under the channel's "
                                                              "scale; use scale='neuron' or a larger vth_mant")
    du, dv = _decays(lif["alpha"], lif["beta"])
    memory = du < DECAY_ONE - 1                  # u keeps part of itself: bias moves onto v (docstring)
    b_v = p.bias * p.gain * v_bias_factor(du)    # the bias on v, float units
    b_mant, b_exp = _quantize_bias(b_v * scale, bias_exp, f"{where}.model.bias", target)
    u0, v0 = np.round(np.where(memory, pop.i0 - b_v, pop.i0) * scale), np.round(pop.v0 * scale)
    for name, arr in (("i0", u0), ("v0", v0)):
        if np.any(np.abs(arr) >= UV_MAX):
            raise ExportError(target, f"{where}.{name}", f"initial state beyond the 24-bit range (|x| < "
                                                         f"{UV_MAX / scale.max():.4g} at vth_mant={vth})")
    kind = _kind(pop)
    adapt, adapt_rep = _quantize_adaptation(pop, lif["rho"], vth, scale, target) if kind == "alif" else ({}, {})
    fp = FixedPopulation(pop.name, pop.size, du, dv, vth, b_mant, b_exp, u0.astype(np.int64),
                         v0.astype(np.int64), scale, kind=kind,
                         reset="zero" if kind == "li" else pop.model.reset,  # type: ignore[union-attr]
                         refractory=p.refractory.astype(np.int64), **adapt)
    back = _float_bias_i0(fp)
    rep = {
        "kind": kind, "reset": fp.reset, "vth_mant": vth, "du": fp.du, "dv": fp.dv,
        "alpha": _scalar(lif["alpha"]), "alpha_q": fp.alpha, "alpha_error": _worst(fp.alpha - lif["alpha"]),
        "beta": _scalar(lif["beta"]), "beta_q": fp.beta, "beta_error": _worst(fp.beta - lif["beta"]),
        "theta_max_abs_error": float(np.abs(64.0 * vth / scale - _unit(pop)).max()) if pop.spiking else 0.0,
        "bias_on_v": bool(np.any(memory & (p.bias != 0))),
        "bias_max_abs_error": float(np.abs(back[0] - p.bias * p.gain).max()),
        "v0_max_abs_error": float(np.abs(fp.v0 / scale - pop.v0).max()),
        "i0_max_abs_error": float(np.abs(back[1] - pop.i0).max()),
        "state_limit": float((UV_MAX / scale).min()),
        **adapt_rep,
    }
    return fp, rep


def _scalar(x: np.ndarray) -> Any:
    """One float for equal values, else the array."""
    x = np.asarray(x, np.float64)
    return float(x.flat[0]) if x.size and np.all(x == x.flat[0]) else x


def _float_bias_i0(fp: FixedPopulation) -> tuple[np.ndarray, np.ndarray]:
    """The float bias (on i, gain folded in) and i0 that `fp` stands for:
    bias = (bias_mant << bias_exp) * (1 - alpha_q) / S; i0 = (u0 + bias on v) / S where du < 4095."""
    eb = fp.effective_bias
    return eb / v_bias_factor(fp.du) / fp.scale, np.where(fp.bias_on_v, fp.u0 + eb, fp.u0) / fp.scale


def _quantize_adaptation(pop: Population, rho: np.ndarray, vth: int, scale: np.ndarray,
                         target: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """drho, a_exp, adapt_inc, adapt_mant, adapt_shift, a0 of an ALIF population, and their errors.

    a_exp: the largest with every |adapt_inc| <= 2**15 - 1, |a0| < 2**23 and |a| < 2**23 for a
    neuron spiking every step (|adapt_inc| * 4096 / drho); adapt_shift: the largest with every
    |adapt_mant| <= 2**15 - 1, adapt_mant = round(adapt * S / 2**a_exp * 2**adapt_shift).
    """
    where = f"populations.{pop.name}"
    p = pop.params
    drho = np.clip(np.round((1.0 - rho) * DECAY_ONE), 0, DECAY_ONE).astype(np.int64)
    g, b, a0 = p.adapt_gain, p.adapt, np.asarray(pop.a0, np.float64)
    hi = ADAPT_RANGE[1]
    for a_exp in range(A_EXP_RANGE[1], A_EXP_RANGE[0] - 1, -1):
        inc = np.round(g * 2.0 ** a_exp)
        steady = (np.abs(inc) * DECAY_ONE / np.maximum(drho, 1)).max()
        if np.abs(inc).max() <= hi and steady < UV_MAX and np.abs(np.round(a0 * 2.0 ** a_exp)).max() < UV_MAX:
            break
    else:
        raise ExportError(target, f"{where}.model.adapt_gain", f"adapt_gain up to {np.abs(g).max():.4g} (or a0) "
                                                               "does not fit a 16-bit increment of a 24-bit a")
    ratio = b * scale / 2.0 ** a_exp            # v units per unit of a_int
    shift = 0
    if np.any(ratio):
        fits = [s for s in range(ADAPT_SHIFT_RANGE[1], ADAPT_SHIFT_RANGE[0] - 1, -1)
                if np.abs(np.round(ratio * 2.0 ** s)).max() <= hi]
        if not fits:
            raise ExportError(target, f"{where}.model.adapt", f"adapt * S / 2**a_exp = {np.abs(ratio).max():.4g} "
                                                              f"needs more than a 16-bit mantissa; lower vth_mant")
        shift = fits[0]
    mant = np.round(ratio * 2.0 ** shift).astype(np.int64)
    fields = dict(drho=drho, adapt_inc=inc.astype(np.int64), adapt_mant=mant, adapt_shift=shift, a_exp=a_exp,
                  a0=np.round(a0 * 2.0 ** a_exp).astype(np.int64))
    rho_q = _scalar((DECAY_ONE - drho) / DECAY_ONE)
    drho = int(drho[0]) if np.all(drho == drho[0]) else drho  # type: ignore[assignment]
    fields["drho"] = drho
    b_q = mant * 2.0 ** (a_exp - fields["adapt_shift"]) / scale
    g_q = inc / 2.0 ** a_exp
    room = (UV_MAX - 1) - (vth << 6)            # A = (vth << 6) + adapt term stays below 2**23
    a_limit = float(np.min(np.where(mant > 0, room * 2.0 ** (fields["adapt_shift"] - a_exp) / np.maximum(mant, 1),
                                    np.inf)))
    rep = {
        "drho": drho, "rho": _scalar(rho), "rho_q": rho_q, "rho_error": _worst(rho_q - rho),
        "a_exp": a_exp, "adapt_shift": fields["adapt_shift"],
        "adapt_max_abs_error": float(np.abs(b_q - b).max()),
        "adapt_max_rel_error": float(np.abs(b_q - b).max() / np.abs(b).max()) if np.any(b) else 0.0,
        "adapt_gain_max_abs_error": float(np.abs(g_q - g).max()),
        "adapt_gain_max_rel_error": float(np.abs(g_q - g).max() / np.abs(g).max()) if np.any(g) else 0.0,
        "a0_max_abs_error": float(np.abs(fields["a0"] / 2.0 ** a_exp - a0).max()),
        "a_limit": a_limit,
    }
    return fields, rep


def _quantize_bias(b: np.ndarray, bias_exp: Optional[int], where: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron: mantissa and exponent with mant << exp ~ b; the smallest exponent that fits."""
    lo, hi = BIAS_MANT_RANGE
    exps = [bias_exp] if bias_exp is not None else range(BIAS_EXP_RANGE[0], BIAS_EXP_RANGE[1] + 1)
    mant = np.zeros(b.shape, np.int64)
    exp = np.full(b.shape, exps[0] if bias_exp is not None else 0, np.int64)
    todo = np.ones(b.shape, bool)
    for e in exps:
        m = np.round(b / 2.0 ** e)
        ok = todo & (m >= lo) & (m <= hi)
        mant[ok], exp[ok] = m[ok], e
        todo &= ~ok
    if np.any(todo):
        j = int(np.argmax(todo))
        raise ExportError(target, where, f"bias of neuron {j} needs {b[j]:.4g} integer units per step, more than "
                                         f"a 13-bit mantissa << {exps[-1]} holds; lower vth_mant")
    return mant, exp


def _quantize_projection(proj: Projection, post: Population, scale: np.ndarray, weight_exp: Optional[int],
                         target: str) -> tuple[FixedProjection, dict[str, Any]]:
    where = f"projections.{proj.name}"
    if isinstance(proj, ShapedProjection):
        return quantize_conv(proj, post.params.gain, scale, weight_exp, target)
    w = np.asarray(proj.weights.to_dense() if proj.is_sparse else proj.weights, np.float64)
    eff = w * post.params.gain[None, :]          # the jump of the target's i per spike
    units = eff * scale[None, :] / 64.0          # in a_in units (a_in << 6 is added to u)
    mode = sign_mode(eff)
    lo, hi = WEIGHT_LIMITS[mode]
    exps = [weight_exp] if weight_exp is not None else range(WEIGHT_EXP_RANGE[0], WEIGHT_EXP_RANGE[1] + 1)
    if not np.any(w) and weight_exp is None:
        exps = [0]
    for e in exps:
        m = mantissas(units, e, mode)
        if m.size == 0 or (m.min() >= lo and m.max() <= hi):
            break
    else:
        raise ExportError(target, f"{where}.weights",
                          f"largest |weight| needs {np.abs(units).max():.4g} input units, more than an 8-bit "
                          f"{mode} mantissa << {exps[-1]} holds without clipping; lower vth_mant")
    if proj.is_sparse:
        csr, delays = proj.to_csr()
        rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
        dense_delay = np.ones(w.shape, np.int64)
        dense_delay[rows, csr.indices] = delays
        delay: Union[int, np.ndarray] = int(delays[0]) if delays.size and np.all(delays == delays[0]) else dense_delay
    else:
        delay = proj.delay
    fq = FixedProjection(proj.name, proj.pre, proj.post, m, int(e), delay, mode, sparse=proj.is_sparse)
    step = 2.0 ** e * 64.0 / scale                # float value of one mantissa unit, per post neuron
    err = fq.effective_weights * step[None, :] - eff
    bound = np.broadcast_to(step * (1.0 if mode == "mixed" else 0.5), w.shape)
    nz = eff != 0
    rep = {
        "weight_exp": int(e), "sign_mode": mode, "n_synapses": int(nz.sum()),
        "n_zeroed": int((nz & (fq.effective_weights == 0)).sum()),
        "bit_drop": mode == "mixed", "n_bit_dropped": fq.n_bit_dropped,
        "max_abs_error": float(np.abs(err).max()) if err.size else 0.0,
        "rms_error": float(np.sqrt(np.mean(err[nz] ** 2))) if nz.any() else 0.0,
        "max_rel_error": float(np.abs(err).max() / np.abs(eff).max()) if nz.any() else 0.0,
        "error_bound": bound, "error": err,
        "floor_error_bound": float(((1 - 2.0 ** e) * 64.0 / scale).max()) if e < 0 else 0.0,
    }
    return fq, rep


def dequantize(fixed: FixedPointNetwork) -> Network:
    """The float network the integer one stands for (gain folded into weights and bias).

    kind 'lif': LIF(alpha=(4095-du)/4096, beta=(4096-dv)/4096, theta=64*vth/S,
    bias=(bias_mant<<bias_exp)*(1-alpha)/S (Lava's bias on v as a bias on i), reset,
    refractory); 'alif': the same as ALIF with
    rho=(4096-drho)/4096, adapt=adapt_mant*2**(a_exp-adapt_shift)/S, adapt_gain=adapt_inc/2**a_exp,
    a0 = a0/2**a_exp; 'li': LI(alpha, beta, bias). v0 = v0/S, i0 = (u0 + bias on v)/S (u0/S
    where du = 4095), weights m' * 2**e * 64 / S_post with m' the effective (bit-dropped)
    mantissas. It differs from the integer model only by rounding: the integer
    decays and the adaptive threshold truncate toward zero every step, and for weight_exp < 0
    each step's summed input is floored (QuantizationReport.floor_error_bound).
    """
    pops, shapes = [], {}
    for q in fixed.projections:  # a FixedConv knows the shapes of its nodes ((C, 1, L) is a (C, L) node)
        if isinstance(q, FixedConv):
            for node, shape in ((q.pre, q.geometry.in_shape), (q.post, q.geometry.out_shape)):
                shapes[node] = (shape[0], shape[2]) if q.kind == "conv1d" else tuple(shape)
    for p in fixed.populations:
        bias, i0 = _float_bias_i0(p)
        common = dict(alpha=p.alpha, beta=p.beta, bias=bias)
        spiking = dict(theta=64.0 * p.vth / p.scale, refractory=p.refractory, reset=p.reset)
        if p.kind == "li":
            model: Any = LI(**common)
        elif p.kind == "alif":
            model = ALIF(rho=p.rho, adapt=p.adapt, adapt_gain=p.adapt_gain, **common, **spiking)
        else:
            model = LIF(**common, **spiking)
        pops.append(Population(p.name, shapes.get(p.name, p.size), model, v0=p.v0 / p.scale, i0=i0,
                               a0=p.a0 / p.a_scale))
    scale = {p.name: p.scale for p in fixed.populations}
    projs = [q.to_float(scale[q.post]) if isinstance(q, FixedConv) else
             Projection(q.name, q.pre, q.post, q.effective_weights * (2.0 ** q.weight_exp * 64.0 / scale[q.post])[None, :],
                        delay=q.delay) for q in fixed.projections]
    return Network(dt=fixed.dt, populations=pops, projections=projs, inputs=fixed.inputs, name=fixed.name)
