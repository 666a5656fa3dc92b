"""Quantisation of a float Network onto the integer neuron (:func:`quantize`) and back
(:func:`dequantize`), with the checks of what Lava's LIF and the integer neuron can hold;
the scales and ranges are in the :mod:`neurosim.fixed_point` docstring."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import numpy as np

from ..errors import ExportError, NetworkError
from ..models import ALIF, IF, LI, LIF
from ..network import Network, PoissonInput, Population, Projection
from .arith import UV_MAX
from .records import (A_EXP_RANGE, ADAPT_RANGE, ADAPT_SHIFT_RANGE, BIAS_EXP_RANGE, BIAS_MANT_RANGE, DECAY_ONE,
                      MAX_DELAY, REFRACTORY_MAX, TARGET, VTH_MAX, WEIGHT_EXP_RANGE, WEIGHT_LIMITS, FixedPointNetwork,
                      FixedPopulation, FixedProjection, QuantizationReport)


def lava_lif_params(pop: Population, *, fixed: bool, target: str = TARGET) -> dict[str, Any]:
    """Check that `pop` is a Lava LIF and return its uniform alpha, beta, refractory.

    Lava's LIF: ``u = u*(1 - du) + a_in; v = v*(1 - dv) + u + bias; spike if v > vth; v = 0``
    with one du, dv (and refractory period) per process. neurosim adds bias to i, Lava to v:
    the two agree only when alpha = 0. Raises ExportError naming the first field that
    cannot be expressed.
    """
    where = f"populations.{pop.name}.model"
    if not isinstance(pop.model, (LIF, IF)):
        raise ExportError(target, where, f"{type(pop.model).__name__} is not a Lava LIF "
                                         "(only LIF and IF with reset='zero' are)")
    if pop.model.reset != "zero":
        raise ExportError(target, f"{where}.reset", "Lava's LIF resets v to 0; reset='subtract' cannot be expressed")
    out = _uniform(pop, ("alpha", "beta", "refractory"), "Lava's LIF", target)
    if fixed and out["refractory"] > 0:
        raise ExportError(target, f"{where}.refractory", "Lava 0.10 has no fixed-point LIFRefractory model")
    return out


def integer_neuron_params(pop: Population, target: str = TARGET) -> dict[str, Any]:
    """Check that `pop` (LIF, IF, ALIF or LI, either reset) fits the integer neuron of the module
    docstring and return its uniform alpha, beta (and rho for ALIF).

    The integer neuron shares Lava's LIF limits: one du, dv (and drho) per population, bias
    added to v (so bias needs alpha = 0), thresholds > 0; refractory periods up to
    :data:`REFRACTORY_MAX` steps. Raises ExportError naming the first field that does not fit.
    """
    names = ("alpha", "beta", "rho") if isinstance(pop.model, ALIF) else ("alpha", "beta")
    out = _uniform(pop, names, "the integer neuron", target)
    refractory = pop.params.refractory
    if np.any(refractory > REFRACTORY_MAX):
        raise ExportError(target, f"populations.{pop.name}.model.refractory",
                          f"at most {REFRACTORY_MAX} steps (an 8-bit counter), got {int(refractory.max())}")
    return out


def _uniform(pop: Population, names: tuple[str, ...], what: str, target: str) -> dict[str, Any]:
    """The values of `names` (one per population), after the threshold and bias checks."""
    where = f"populations.{pop.name}.model"
    p = pop.params
    out: dict[str, Any] = {}
    for name in names:
        vals = np.asarray(getattr(p, name))
        if np.ptp(vals) != 0:
            raise ExportError(target, f"{where}.{name}", f"{what} takes one value per population, got "
                                                         f"{vals.min():g}..{vals.max():g}")
        out[name] = float(vals[0])
    if pop.spiking and np.any(p.theta <= 0):
        raise ExportError(target, f"{where}.theta",
                          f"expected thresholds > 0 (Lava's vth), got min {p.theta.min():g}")
    if out["alpha"] != 0 and np.any(p.bias != 0):
        raise ExportError(target, f"{where}.bias", "Lava adds bias to v, neurosim to i: equal only when alpha = 0 "
                                                   f"(alpha = {out['alpha']:g})")
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
) -> FixedPointNetwork:
    """Quantise `network` to Loihi's integer neurons + Dense (see the :mod:`neurosim.fixed_point` docstring).

    vth_mant: threshold mantissa per population (int or {population: int}); by default the
    largest with ``64 * vth * headroom <= 2**23``, so |u|, |v| up to `headroom` thresholds fit
    (2048 for headroom 64), lowered where a fixed `weight_exp`/`bias_exp` needs it.
    weight_exp: one exponent for every projection (NetX files need 0); by default each
    projection gets the smallest in [-8, 7] that fits its largest weight.
    bias_exp: one bias exponent (NetX uses 6); by default the smallest per neuron that fits.
    lava_lif_only: accept only what Lava's own LIF runs (LIF/IF, reset 'zero', no refractory),
    as NetX needs; otherwise ALIF, LI, subtractive reset and refractory periods are quantised
    to the integer neuron (run in Lava by the custom process of :mod:`mapping.lava_processes`).
    Shaped projections (convolution, pooling, flatten) are quantised as their exact CSR lowering
    (:meth:`Network.lowered`). Multapses (several synapses on one (pre, post)) are merged by addition before rounding;
    a pair with synapses of several delays gives one projection per delay (``{name}_d{d}``,
    :meth:`Network.without_multapses`).
    Raises ExportError (naming the field) for anything the integer model cannot hold.
    """
    if not isinstance(network, Network):
        raise NetworkError("network", f"expected a neurosim.Network, got {type(network).__name__}")
    if not (np.isfinite(headroom) and headroom >= 1):
        raise NetworkError("headroom", f"expected a number >= 1 of thresholds, got {headroom!r}")
    check_lava_inputs(network, target)
    # shaped projections as their exact CSR lowering; one weight per (pre, post): multapses summed before rounding
    network = network.lowered().without_multapses()
    lif = {p.name: (lava_lif_params(p, fixed=True, target=target) if lava_lif_only
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
        v = _vth_mant(pop, vth_mant, incoming[pop.name], weight_exp, bias_exp, headroom, target)
        fp, rep = _quantize_population(pop, lif[pop.name], v, bias_exp, target)
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
                             report=QuantizationReport(pop_reports, proj_reports))


def _vth_mant(pop: Population, given: Union[None, int, Mapping[str, int]], incoming: list[Projection],
              weight_exp: Optional[int], bias_exp: Optional[int], headroom: float, target: str) -> int:
    where = f"populations.{pop.name}.model.theta"
    if isinstance(given, Mapping):
        given = given.get(pop.name)
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, (int, np.integer)) or not 1 <= given <= VTH_MAX:
            raise NetworkError("vth_mant", f"expected an integer in [1, {VTH_MAX}], got {given!r}")
        return int(given)
    v = float(np.floor(UV_MAX / (64 * headroom)))
    p = pop.params
    per_unit = p.gain / _unit(pop)  # integer input units per float unit of w, per unit of vth
    if weight_exp is not None:
        for proj in incoming:
            w = np.asarray(proj.weights.to_dense() if proj.is_sparse else proj.weights) * per_unit[None, :]
            lo, hi = WEIGHT_LIMITS[_sign_mode(w)]
            if w.max() > 0:
                v = min(v, hi * 2.0 ** weight_exp / w.max())
            if w.min() < 0:
                v = min(v, lo * 2.0 ** weight_exp / w.min())
    if bias_exp is not None and np.any(p.bias != 0):
        b = np.abs(p.bias * 64 * per_unit).max()
        v = min(v, BIAS_MANT_RANGE[1] * 2.0 ** bias_exp / b)
    if v < 1:
        raise ExportError(target, where, "no threshold mantissa >= 1 lets the weights or bias fit the fixed "
                                         f"exponents (weight_exp={weight_exp}, bias_exp={bias_exp})")
    return int(min(np.floor(v), VTH_MAX))


def _unit(pop: Population) -> np.ndarray:
    """Float value of vth << 6 per neuron: theta, or 1 for an LI readout (it has none)."""
    return pop.params.theta if pop.spiking else np.ones(pop.size)


def _kind(pop: Population) -> str:
    return "alif" if isinstance(pop.model, ALIF) else ("li" if isinstance(pop.model, LI) else "lif")


def _quantize_population(pop: Population, lif: dict[str, Any], vth: int, bias_exp: Optional[int],
                         target: str) -> tuple[FixedPopulation, dict[str, Any]]:
    where = f"populations.{pop.name}"
    p = pop.params
    scale = 64.0 * vth / _unit(pop)
    du = int(np.clip(DECAY_ONE - 1 - np.round(lif["alpha"] * DECAY_ONE), 0, DECAY_ONE - 1))
    dv = int(np.clip(np.round((1.0 - lif["beta"]) * DECAY_ONE), 0, DECAY_ONE - 1))
    b_mant, b_exp = _quantize_bias(p.bias * p.gain * scale, bias_exp, f"{where}.model.bias", target)
    u0, v0 = np.round(pop.i0 * scale), np.round(pop.v0 * scale)
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
    bias_q = fp.effective_bias / scale
    rep = {
        "kind": kind, "reset": fp.reset, "vth_mant": vth, "du": du, "dv": dv,
        "alpha": lif["alpha"], "alpha_q": fp.alpha, "alpha_error": fp.alpha - lif["alpha"],
        "beta": lif["beta"], "beta_q": fp.beta, "beta_error": fp.beta - lif["beta"],
        "theta_max_abs_error": float(np.abs(64.0 * vth / scale - _unit(pop)).max()) if pop.spiking else 0.0,
        "bias_max_abs_error": float(np.abs(bias_q - p.bias * p.gain).max()),
        "v0_max_abs_error": float(np.abs(fp.v0 / scale - pop.v0).max()),
        "i0_max_abs_error": float(np.abs(fp.u0 / scale - pop.i0).max()),
        "state_limit": float((UV_MAX / scale).min()),
        **adapt_rep,
    }
    return fp, rep


def _quantize_adaptation(pop: Population, rho: float, vth: int, scale: np.ndarray,
                         target: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """drho, a_exp, adapt_inc, adapt_mant, adapt_shift, a0 of an ALIF population, and their errors.

    a_exp: the largest with every |adapt_inc| <= 2**15 - 1, |a0| < 2**23 and |a| < 2**23 for a
    neuron spiking every step (|adapt_inc| * 4096 / drho); adapt_shift: the largest with every
    |adapt_mant| <= 2**15 - 1, adapt_mant = round(adapt * S / 2**a_exp * 2**adapt_shift).
    """
    where = f"populations.{pop.name}"
    p = pop.params
    drho = int(np.clip(np.round((1.0 - rho) * DECAY_ONE), 0, DECAY_ONE))
    g, b, a0 = p.adapt_gain, p.adapt, np.asarray(pop.a0, np.float64)
    hi = ADAPT_RANGE[1]
    for a_exp in range(A_EXP_RANGE[1], A_EXP_RANGE[0] - 1, -1):
        inc = np.round(g * 2.0 ** a_exp)
        steady = np.abs(inc).max() * DECAY_ONE / max(drho, 1)
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
    rho_q = (DECAY_ONE - drho) / DECAY_ONE
    b_q = mant * 2.0 ** (a_exp - fields["adapt_shift"]) / scale
    g_q = inc / 2.0 ** a_exp
    room = (UV_MAX - 1) - (vth << 6)            # A = (vth << 6) + adapt term stays below 2**23
    a_limit = float(np.min(np.where(mant > 0, room * 2.0 ** (fields["adapt_shift"] - a_exp) / np.maximum(mant, 1),
                                    np.inf)))
    rep = {
        "drho": drho, "rho": rho, "rho_q": rho_q, "rho_error": rho_q - rho,
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


def _sign_mode(w: np.ndarray) -> str:
    """Lava's determine_sign_mode: excitatory if min >= 0, inhibitory if max <= 0, else mixed."""
    if w.size == 0 or w.min() >= 0:
        return "excitatory"
    if w.max() <= 0:
        return "inhibitory"
    return "mixed"


def _mantissas(target_units: np.ndarray, e: int, mode: str) -> np.ndarray:
    x = target_units / 2.0 ** e
    return (2 * np.round(x / 2) if mode == "mixed" else np.round(x)).astype(np.int64)


def _quantize_projection(proj: Projection, post: Population, scale: np.ndarray, weight_exp: Optional[int],
                         target: str) -> tuple[FixedProjection, dict[str, Any]]:
    where = f"projections.{proj.name}"
    w = np.asarray(proj.weights.to_dense() if proj.is_sparse else proj.weights, np.float64)
    eff = w * post.params.gain[None, :]          # the jump of the target's i per spike
    units = eff * scale[None, :] / 64.0          # in a_in units (a_in << 6 is added to u)
    mode = _sign_mode(eff)
    lo, hi = WEIGHT_LIMITS[mode]
    exps = [weight_exp] if weight_exp is not None else range(WEIGHT_EXP_RANGE[0], WEIGHT_EXP_RANGE[1] + 1)
    if not np.any(w) and weight_exp is None:
        exps = [0]
    for e in exps:
        m = _mantissas(units, e, mode)
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
    err = m * step[None, :] - eff
    bound = np.broadcast_to(step * (1.0 if mode == "mixed" else 0.5), w.shape)
    nz = eff != 0
    rep = {
        "weight_exp": int(e), "sign_mode": mode, "n_synapses": int(nz.sum()),
        "n_zeroed": int((nz & (m == 0)).sum()),
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
    bias=(bias_mant<<bias_exp)/S, reset, refractory); 'alif': the same as ALIF with
    rho=(4096-drho)/4096, adapt=adapt_mant*2**(a_exp-adapt_shift)/S, adapt_gain=adapt_inc/2**a_exp,
    a0 = a0/2**a_exp; 'li': LI(alpha, beta, bias). v0 = v0/S, i0 = u0/S, weights
    m * 2**e * 64 / S_post. It differs from the integer model only by rounding: the integer
    decays and the adaptive threshold truncate toward zero every step, and for weight_exp < 0
    each step's summed input is floored (QuantizationReport.floor_error_bound).
    """
    pops = []
    for p in fixed.populations:
        common = dict(alpha=p.alpha, beta=p.beta, bias=p.effective_bias / p.scale)
        spiking = dict(theta=64.0 * p.vth / p.scale, refractory=p.refractory, reset=p.reset)
        if p.kind == "li":
            model: Any = LI(**common)
        elif p.kind == "alif":
            model = ALIF(rho=p.rho, adapt=p.adapt, adapt_gain=p.adapt_gain, **common, **spiking)
        else:
            model = LIF(**common, **spiking)
        pops.append(Population(p.name, p.size, model, v0=p.v0 / p.scale, i0=p.u0 / p.scale, a0=p.a0 / p.a_scale))
    scale = {p.name: p.scale for p in fixed.populations}
    projs = [Projection(q.name, q.pre, q.post, q.weights * (2.0 ** q.weight_exp * 64.0 / scale[q.post])[None, :],
                        delay=q.delay) for q in fixed.projections]
    return Network(dt=fixed.dt, populations=pops, projections=projs, inputs=fixed.inputs, name=fixed.name)
