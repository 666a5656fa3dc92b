"""Loihi fixed-point mode: quantise a Network to integer neurons + Lava Dense and simulate it.

:func:`simulate_fixed` reproduces, bit for bit, Lava 0.10's ``PyLifModelBitAcc`` (``LIF``,
tag ``fixed_pt``) fed by ``PyDenseModelBitAcc`` / ``PyDelayDenseModelBitAcc`` connections,
and extends that neuron, Loihi style, with threshold adaptation (ALIF), subtractive reset,
refractory periods and non-spiking readouts (LI); Lava runs the extension as the custom
process of :mod:`mapping.lava_export`. Per step t, for every population (all integers;
int32 arithmetic wraps as in Lava; trunc rounds toward zero, ``sign(p) * (|p| >> k)``):

::

    c_k   = shift(sum of W[pre, post] over the pre neurons of projection k that spiked at
            t - d, separately for every delay d), shift(x, e) = x << e (e > 0) or x >> -e (floor)
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
definition. Widths: u, v, a 24-bit signed; du, dv, drho 12-bit decays (dv, drho may be
4096); vth 17-bit; adapt_inc and adapt_mant signed 16-bit; adapt_shift 0..31; refractory
0..255 steps; products in int64.

:func:`quantize` maps a float network (LIF, IF, ALIF, LI; either reset) onto it. Each neuron j
gets a scale ``S_j = 64 * vth / theta_j`` (integer state units per float unit; theta_j = 1
for LI) and each ALIF population an adaptation scale ``2**a_exp``, so

::

    alpha ~ (4095 - du) / 4096      beta ~ (4096 - dv) / 4096      theta_j = 64 * vth / S_j
    w_ij * gain_j ~ m_ij * 2**e * 64 / S_j      bias_j * gain_j ~ bias_mant_j * 2**bias_exp_j / S_j
    rho ~ (4096 - drho) / 4096      a ~ a_int / 2**a_exp      adapt_gain_j ~ adapt_inc_j / 2**a_exp
    adapt_j ~ adapt_mant_j * 2**(a_exp - adapt_shift) / S_j

(exact for e >= 0; for e < 0 Lava floors each step's summed input of a projection, which
takes up to 1 input unit, theta_j / vth in float units, off the dequantised sum)
with 12-bit du, dv, drho, a 17-bit vth, 8-bit weight mantissas m (Lava's ranges:
mixed signs: even values in [-256, 254], since Lava drops their lowest bit; excitatory
[0, 255]; inhibitory [-255, 0]), one weight exponent e in [-8, 7] per projection, 13-bit
bias mantissas and bias exponents in [0, 7]. a_exp is the largest that keeps every
adapt_inc in 16 bits and a in 24 bits even for a neuron spiking every step; adapt_shift the
largest that keeps every adapt_mant in 16 bits. Nothing is clipped: a value that does not
fit raises :class:`~neurosim.errors.ExportError` naming the field. Lava's LIF has one du, dv
and vth per process, and so has the integer neuron (plus one drho): alpha, beta, rho must be
uniform within a population (theta, adapt, adapt_gain, refractory may vary). The float
equivalent of the integer model is :func:`dequantize`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Union

import numpy as np

from .errors import ExportError, NetworkError
from .models import ALIF, IF, LI, LIF
from .network import Network, PoissonInput, Population, Projection, SpikeInput
from .result import SimulationResult, SpikeTrains

TARGET = "lava"
DECAY_ONE = 4096                      # decays are 12-bit fractions of 2**12
UV_MAX = 2 ** 23                      # u, v and a are 24-bit signed
VTH_MAX = 2 ** 17 - 1                 # unsigned 17-bit threshold mantissa
WEIGHT_EXP_RANGE = (-8, 7)
BIAS_MANT_RANGE = (-4096, 4095)       # signed 13-bit
BIAS_EXP_RANGE = (0, 7)               # unsigned 3-bit
ADAPT_RANGE = (-2 ** 15, 2 ** 15 - 1)  # adapt_inc and adapt_mant: signed 16-bit
ADAPT_SHIFT_RANGE = (0, 31)
A_EXP_RANGE = (-16, 30)               # a = a_int / 2**a_exp
REFRACTORY_MAX = 255                  # 8-bit refractory counter
MAX_DELAY = 64                        # DelayDense holds 0..63 extra steps (6 bits)
WEIGHT_LIMITS = {"mixed": (-256, 254), "excitatory": (0, 255), "inhibitory": (-255, 0)}
KINDS = ("lif", "alif", "li")
RESETS = ("zero", "subtract")
TRACE_VARS = ("v", "i", "a", "threshold", "v_int", "u_int", "a_int")


# ------------------------------------------------------------------------------- records


@dataclass(frozen=True, eq=False)
class FixedPopulation:
    """Integer neuron parameters of one population (module docstring).

    du, dv: decays as Lava takes them (u decays by (4095 - du)/4096, v by (4096 - dv)/4096);
    vth: threshold mantissa (compared as vth << 6); bias_mant, bias_exp, u0, v0: int64 (N,);
    scale: S_j, integer units per float unit of i and v, float64 (N,).
    kind: 'lif' (also IF), 'alif' or 'li' (never spikes); reset: 'zero' or 'subtract';
    refractory: steps (N,); drho: adaptation decay (a decays by (4096 - drho)/4096);
    adapt_inc: added to a after a spike (N,); adapt_mant, adapt_shift: A = (vth << 6) +
    trunc(adapt_mant * a / 2**adapt_shift); a_exp: a = a_int / 2**a_exp in float units;
    a0: initial a (N,). A 'lif' or 'li' population has no adaptation (adapt_inc = a0 = 0).
    With the defaults (kind 'lif', reset 'zero', no refractory) it is Lava's own LIF.
    """

    name: str
    size: int
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    u0: np.ndarray
    v0: np.ndarray
    scale: np.ndarray
    kind: str = "lif"
    reset: str = "zero"
    refractory: Any = 0
    drho: int = 0
    adapt_inc: Any = 0
    adapt_mant: Any = 0
    adapt_shift: int = 0
    a_exp: int = 0
    a0: Any = 0

    def __post_init__(self) -> None:
        where = f"populations.{self.name}"
        for name, lo, hi in (("du", -1, DECAY_ONE - 1), ("dv", 0, DECAY_ONE), ("vth", 0, VTH_MAX),
                             ("drho", 0, DECAY_ONE), ("adapt_shift", *ADAPT_SHIFT_RANGE), ("a_exp", *A_EXP_RANGE)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise NetworkError(f"{where}.{name}", f"expected an integer in [{lo}, {hi}], got {value!r}")
            object.__setattr__(self, name, int(value))
        for name, lo, hi in (("bias_mant", *BIAS_MANT_RANGE), ("bias_exp", -8, 7),
                             ("u0", -UV_MAX + 1, UV_MAX - 1), ("v0", -UV_MAX + 1, UV_MAX - 1),
                             ("refractory", 0, REFRACTORY_MAX), ("adapt_inc", *ADAPT_RANGE),
                             ("adapt_mant", *ADAPT_RANGE), ("a0", -UV_MAX + 1, UV_MAX - 1)):
            object.__setattr__(self, name, _int_vector(getattr(self, name), self.size, lo, hi, f"{where}.{name}"))
        for name, allowed in (("kind", KINDS), ("reset", RESETS)):
            if getattr(self, name) not in allowed:
                raise NetworkError(f"{where}.{name}", f"expected one of {allowed}, got {getattr(self, name)!r}")
        if self.kind != "alif" and (np.any(self.adapt_inc) or np.any(self.a0)):
            raise NetworkError(f"{where}.adapt_inc", f"a {self.kind!r} population has no adaptation "
                                                     "(adapt_inc and a0 must be 0; use kind 'alif')")
        scale = np.broadcast_to(np.asarray(self.scale, np.float64), (self.size,)).copy()
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise NetworkError(f"{where}.scale", "expected finite scales > 0")
        scale.setflags(write=False)
        object.__setattr__(self, "scale", scale)

    @property
    def alpha(self) -> float:
        """Current decay of the integer model, (4095 - du) / 4096."""
        return (DECAY_ONE - 1 - self.du) / DECAY_ONE

    @property
    def beta(self) -> float:
        """Membrane decay of the integer model, (4096 - dv) / 4096."""
        return (DECAY_ONE - self.dv) / DECAY_ONE

    @property
    def rho(self) -> float:
        """Adaptation decay of the integer model, (4096 - drho) / 4096."""
        return (DECAY_ONE - self.drho) / DECAY_ONE

    @property
    def spiking(self) -> bool:
        return self.kind != "li"

    @property
    def is_lava_lif(self) -> bool:
        """True when Lava's own LIF (``PyLifModelBitAcc``) runs this population exactly."""
        return self.kind == "lif" and self.reset == "zero" and not np.any(self.refractory)

    @property
    def effective_bias(self) -> np.ndarray:
        """bias_mant << bias_exp (>> for negative exponents), added to v every step."""
        return np.where(self.bias_exp >= 0, self.bias_mant << np.maximum(self.bias_exp, 0),
                        self.bias_mant >> np.maximum(-self.bias_exp, 0))

    @property
    def a_scale(self) -> float:
        """2**a_exp: integer units of a per float unit."""
        return 2.0 ** self.a_exp

    @property
    def adapt(self) -> np.ndarray:
        """The float adapt b that adapt_mant stands for: adapt_mant * 2**(a_exp - adapt_shift) / S."""
        return self.adapt_mant * 2.0 ** (self.a_exp - self.adapt_shift) / self.scale

    @property
    def adapt_gain(self) -> np.ndarray:
        """The float adapt_gain that adapt_inc stands for: adapt_inc / 2**a_exp."""
        return self.adapt_inc / self.a_scale

    def threshold_int(self, a: np.ndarray) -> np.ndarray:
        """A = (vth << 6) + trunc(adapt_mant * a / 2**adapt_shift), in v units (int64)."""
        return (self.vth << 6) + _mul_shift(a, self.adapt_mant, self.adapt_shift)


@dataclass(frozen=True, eq=False)
class FixedProjection:
    """Integer synapses of one projection (what ``Dense``/``DelayDense`` are given).

    weights: int64 mantissas (n_pre, n_post), within :data:`WEIGHT_LIMITS` of `sign_mode`
    (even for 'mixed'); weight_exp: shared exponent; delay: steps >= 1, scalar or
    (n_pre, n_post); sparse: the float projection was CSR (exported as Lava ``Sparse``).
    """

    name: str
    pre: str
    post: str
    weights: np.ndarray
    weight_exp: int
    delay: Union[int, np.ndarray]
    sign_mode: str
    sparse: bool = False

    def __post_init__(self) -> None:
        where = f"projections.{self.name}"
        w = np.asarray(self.weights)
        if w.ndim != 2 or w.dtype.kind not in "iu":
            raise NetworkError(f"{where}.weights", f"expected a 2-D integer array, got {w.dtype} shape {w.shape}")
        if self.sign_mode not in WEIGHT_LIMITS:
            raise NetworkError(f"{where}.sign_mode",
                               f"expected one of {sorted(WEIGHT_LIMITS)}, got {self.sign_mode!r}")
        lo, hi = WEIGHT_LIMITS[self.sign_mode]
        if w.size and (w.min() < lo or w.max() > hi):
            raise NetworkError(f"{where}.weights", f"{self.sign_mode} mantissas must lie in [{lo}, {hi}], "
                                                   f"got [{w.min()}, {w.max()}] (Lava would clip them)")
        if self.sign_mode == "mixed" and np.any(w % 2):
            raise NetworkError(f"{where}.weights", "mixed-sign mantissas must be even (Lava drops their lowest bit)")
        e = self.weight_exp
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or not -16 <= e <= 16:
            raise NetworkError(f"{where}.weight_exp", f"expected an integer exponent, got {e!r}")
        object.__setattr__(self, "weight_exp", int(e))
        object.__setattr__(self, "weights", _frozen(w.astype(np.int64)))
        d = np.asarray(self.delay)
        if d.dtype.kind not in "iu" or (d.ndim and d.shape != w.shape) or (d.size and d.min() < 1):
            raise NetworkError(f"{where}.delay", f"expected whole steps >= 1, scalar or shape {w.shape}")
        object.__setattr__(self, "delay", int(d) if d.ndim == 0 else _frozen(d.astype(np.int64)))

    @property
    def delays(self) -> np.ndarray:
        """Per-synapse delays, (n_pre, n_post)."""
        return np.broadcast_to(np.asarray(self.delay, np.int64), self.weights.shape)

    @property
    def max_delay(self) -> int:
        return int(np.max(self.delay))


@dataclass(frozen=True, eq=False)
class QuantizationReport:
    """Quantisation error of every parameter against the float network it came from.

    populations[name]: kind, reset, vth_mant, du, dv, alpha/alpha_q/alpha_error,
    beta/beta_q/beta_error, theta_max_abs_error, bias_max_abs_error, v0_max_abs_error,
    i0_max_abs_error, state_limit (the smallest |u|, |v| in float units that would leave the
    24-bit range); ALIF also drho, rho/rho_q/rho_error, a_exp, adapt_shift,
    adapt_max_abs_error/adapt_max_rel_error (dequantised - float adapt, relative to the
    largest |adapt|), adapt_gain_max_abs_error/adapt_gain_max_rel_error, a0_max_abs_error and
    a_limit (the smallest float a at which a threshold A would leave the 24-bit range).
    projections[name]: weight_exp, sign_mode, n_synapses, n_zeroed (nonzero float weights
    quantised to 0), max_abs_error, rms_error, max_rel_error (to the largest |w * gain|),
    error_bound (largest allowed |error|: half a mantissa step, a full one for mixed signs,
    in float units of the target's i), error (dequantised - float w * gain, (n_pre, n_post))
    and floor_error_bound (weight_exp < 0 only: Lava floors the summed input of a step,
    which lowers it by up to (1 - 2**e) * theta / vth per step, beyond the weight errors).
    """

    populations: dict[str, dict[str, Any]]
    projections: dict[str, dict[str, Any]]

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        """One line per population and per projection: mantissas, exponents and largest errors."""
        lines = ["population  kind reset     vth   du    dv    |d alpha|  |d beta|   |d bias|   state limit"]
        for k, p in self.populations.items():
            lines.append(f"{k:<11} {p['kind']:<4} {p['reset']:<9} {p['vth_mant']:<5} {p['du']:<5} {p['dv']:<5} "
                         f"{abs(p['alpha_error']):<10.2e} {abs(p['beta_error']):<10.2e} "
                         f"{p['bias_max_abs_error']:<10.2e} {p['state_limit']:.4g}")
        adaptive = {k: p for k, p in self.populations.items() if p["kind"] == "alif"}
        if adaptive:
            lines.append("adaptation  drho  |d rho|    a_exp shift rel |d adapt|  rel |d adapt_gain|  a limit")
            for k, p in adaptive.items():
                lines.append(f"{k:<11} {p['drho']:<5} {abs(p['rho_error']):<10.2e} {p['a_exp']:<5} "
                             f"{p['adapt_shift']:<5} {p['adapt_max_rel_error']:<15.2e} "
                             f"{p['adapt_gain_max_rel_error']:<18.2e} {p['a_limit']:.4g}")
        lines.append("projection  exp  sign        max |dw|   rel       zeroed")
        for k, p in self.projections.items():
            lines.append(f"{k:<11} {p['weight_exp']:<4} {p['sign_mode']:<11} {p['max_abs_error']:<10.2e} "
                         f"{p['max_rel_error']:<9.2e} {p['n_zeroed']}/{p['n_synapses']}")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class FixedPointNetwork:
    """A network in Loihi's integer representation; `report` compares it with its float source."""

    dt: float
    populations: tuple[FixedPopulation, ...]
    projections: tuple[FixedProjection, ...]
    inputs: tuple[SpikeInput, ...] = ()
    name: str = "network"
    report: Optional[QuantizationReport] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "populations", tuple(self.populations))
        object.__setattr__(self, "projections", tuple(self.projections))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        sizes: dict[str, int] = {}
        for node in (*self.inputs, *self.populations):
            if node.name in sizes:
                raise NetworkError(f"populations.{node.name}", "name used twice")
            sizes[node.name] = node.size
        pops = {p.name for p in self.populations}
        for proj in self.projections:
            where = f"projections.{proj.name}"
            if proj.pre not in sizes:
                raise NetworkError(f"{where}.pre", f"no population or input named {proj.pre!r}")
            if proj.post not in pops:
                raise NetworkError(f"{where}.post", f"no population named {proj.post!r}")
            if proj.weights.shape != (sizes[proj.pre], sizes[proj.post]):
                raise NetworkError(f"{where}.weights", f"expected shape {(sizes[proj.pre], sizes[proj.post])}, "
                                                       f"got {proj.weights.shape}")
            if proj.pre in pops and not self.population(proj.pre).spiking:
                raise NetworkError(f"{where}.pre", f"{proj.pre!r} is an LI readout and never spikes")

    def population(self, name: str) -> FixedPopulation:
        for p in self.populations:
            if p.name == name:
                return p
        raise NetworkError(f"populations.{name}", f"no population named {name!r}")


# ------------------------------------------------------------------------------ quantize


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
    """Quantise `network` to Loihi's integer neurons + Dense (see the module docstring).

    vth_mant: threshold mantissa per population (int or {population: int}); by default the
    largest with ``64 * vth * headroom <= 2**23``, so |u|, |v| up to `headroom` thresholds fit
    (2048 for headroom 64), lowered where a fixed `weight_exp`/`bias_exp` needs it.
    weight_exp: one exponent for every projection (NetX files need 0); by default each
    projection gets the smallest in [-8, 7] that fits its largest weight.
    bias_exp: one bias exponent (NetX uses 6); by default the smallest per neuron that fits.
    lava_lif_only: accept only what Lava's own LIF runs (LIF/IF, reset 'zero', no refractory),
    as NetX needs; otherwise ALIF, LI, subtractive reset and refractory periods are quantised
    to the integer neuron (run in Lava by the custom process of :mod:`mapping.lava_export`).
    Raises ExportError (naming the field) for anything the integer model cannot hold.
    """
    if not isinstance(network, Network):
        raise NetworkError("network", f"expected a neurosim.Network, got {type(network).__name__}")
    if not (np.isfinite(headroom) and headroom >= 1):
        raise NetworkError("headroom", f"expected a number >= 1 of thresholds, got {headroom!r}")
    check_lava_inputs(network, target)
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


# ------------------------------------------------------------------------------ simulate


class FixedState(NamedTuple):
    """Integer state after a step; every field (B, N) int64: u, v, a as in the module
    docstring, z the spikes of this step (0/1), r the remaining refractory steps."""

    u: np.ndarray
    v: np.ndarray
    a: np.ndarray
    z: np.ndarray
    r: np.ndarray


def _wrap32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to int32 (kept as int64)."""
    return ((x + 2 ** 31) & 0xFFFFFFFF) - 2 ** 31


def _mul_shift(x: np.ndarray, factor: Any, shift: int = 12) -> np.ndarray:
    """trunc(x * factor / 2**shift) = sign(p) * (|p| >> shift), p = x * factor in int64 (Lava's decay)."""
    p = np.asarray(x, np.int64) * factor
    return np.sign(p) * (np.abs(p) >> shift)


def _clip24(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -UV_MAX + 1, UV_MAX - 1)


def initial_state(pop: FixedPopulation, batch: int) -> FixedState:
    """u0, v0, a0 of `pop` for `batch` trials; no spike and no refractory time before step 0."""
    tile = lambda x: np.broadcast_to(np.asarray(x, np.int64), (batch, pop.size)).copy()  # noqa: E731
    return FixedState(tile(pop.u0), tile(pop.v0), tile(pop.a0), tile(0), tile(0))


def neuron_step_fixed(pop: FixedPopulation, s: FixedState, a_in: np.ndarray,
                      counters: Optional[dict[str, int]] = None) -> FixedState:
    """One step of the integer neuron (module docstring) on int64 arrays; for Lava's own LIF
    (``pop.is_lava_lif``) exactly Lava's PyLifModelBitAcc. `counters` gains the number of
    24-bit wraps of u ('u_wraps') and clips of v ('v_clips') and a ('a_clips')."""
    act = _wrap32(_wrap32(a_in) << 6)
    u = _wrap32(_mul_shift(s.u, DECAY_ONE - (pop.du + 1)) + act)
    wrapped = np.where(u > UV_MAX, u - 2 * UV_MAX, np.where(u <= -UV_MAX, u + 2 * UV_MAX, u))
    raw_v = _wrap32(_mul_shift(s.v, DECAY_ONE - pop.dv) + wrapped + pop.effective_bias)
    raw_a = _mul_shift(s.a, DECAY_ONE - pop.drho) + pop.adapt_inc * s.z
    held = s.r > 0
    v, a = np.where(held, s.v, _clip24(raw_v)), _clip24(raw_a)
    z = (v > pop.threshold_int(a)) & ~held & pop.spiking
    sub = v - z * (pop.vth << 6)
    v_out = np.where(z, 0, v) if pop.reset == "zero" else _clip24(sub)
    if counters is not None:
        clipped = ((raw_v != _clip24(raw_v)) & ~held) | ((sub != v_out) & (pop.reset == "subtract"))
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


def simulate_fixed(
    fixed: FixedPointNetwork,
    inputs: Optional[Mapping[str, Any]] = None,
    steps: Optional[int] = None,
    *,
    batch: Optional[int] = None,
    traces: Union[None, Mapping[str, Iterable[str]], Iterable[str]] = None,
) -> SimulationResult:
    """Simulate `fixed` with Lava 0.10's integer arithmetic (module docstring), bit-exactly.

    inputs, steps, batch: as :func:`neurosim.simulate`. traces: {'pop': [...]} or ['pop:var'];
    variables 'v_int', 'u_int', 'a_int' (the integers, int64) and 'v', 'i', 'a', 'threshold'
    (floats in the units of the float network, :func:`fixed_traces`). meta['u_wraps'],
    meta['v_clips'] and meta['a_clips'] count the 24-bit wraps of u and clips of v and a per
    population (0 for a well-scaled network).
    """
    from .simulate import _batch_size, _check_inputs, _check_steps

    t0 = time.perf_counter()
    if not isinstance(fixed, FixedPointNetwork):
        raise NetworkError("network", f"expected a FixedPointNetwork (from quantize), got {type(fixed).__name__}")
    inputs = dict(inputs or {})
    steps = _check_steps(steps, inputs)
    batch = _batch_size(fixed, inputs, batch)
    given = _check_inputs(SimpleNamespace(inputs=fixed.inputs), inputs, steps, batch)
    spec = _trace_spec(fixed, traces)

    rings = {p.name: np.zeros((max([q.max_delay for q in fixed.projections if q.post == p.name], default=1) + 1,
                               batch, p.size), np.int64) for p in fixed.populations}
    routes: dict[str, list[tuple[FixedProjection, list[tuple[int, np.ndarray]]]]] = {}
    for q in fixed.projections:
        by_delay = [(int(d), np.where(q.delays == d, q.weights, 0)) for d in np.unique(q.delays)]
        routes.setdefault(q.pre, []).append((q, by_delay))
    state = {p.name: initial_state(p, batch) for p in fixed.populations}
    spikes = {p.name: np.zeros((steps, batch, p.size), bool) for p in fixed.populations}
    rec = {p: {v: np.zeros((steps, batch, fixed.population(p).size), np.int64) for v in ("u", "v", "a")}
           for p in spec}
    counters = {p.name: {"u_wraps": 0, "v_clips": 0, "a_clips": 0} for p in fixed.populations}
    t_setup = time.perf_counter()

    for t in range(steps):
        for p in fixed.populations:
            ring = rings[p.name]
            slot = t % len(ring)
            a_in = ring[slot].copy()
            ring[slot] = 0
            new = state[p.name] = neuron_step_fixed(p, state[p.name], a_in, counters[p.name])
            spikes[p.name][t] = new.z
            if p.name in rec:
                for var in ("u", "v", "a"):
                    rec[p.name][var][t] = getattr(new, var)
        for pre, outgoing in routes.items():
            s = (spikes[pre][t] if pre in spikes else given[pre][t]).astype(np.int64)
            if not s.any():
                continue
            for q, by_delay in outgoing:
                ring = rings[q.post]
                for d, w in by_delay:
                    acc = s @ w
                    ring[(t + d) % len(ring)] += (acc << q.weight_exp) if q.weight_exp > 0 else (acc >> -q.weight_exp)
    t_run = time.perf_counter()

    trains = {name: _trains(arr, steps, batch) for name, arr in spikes.items()}
    for src in fixed.inputs:
        trains[src.name] = _trains(np.asarray(given[src.name]), steps, batch)
    out_traces: dict[str, dict[str, np.ndarray]] = {}
    for name, variables in spec.items():
        r = rec[name]
        out_traces[name] = fixed_traces(fixed.population(name), r["u"], r["v"], r["a"], variables)
    t_end = time.perf_counter()
    return SimulationResult(
        spikes=trains, traces=out_traces,
        timings={"setup": t_setup - t0, "run": t_run - t_setup, "record": t_end - t_run, "total": t_end - t0},
        backend="fixed-point", dtype="int32", dt=fixed.dt, steps=steps, batch=batch, seed=0,
        meta={"populations": [p.name for p in fixed.populations],
              "u_wraps": {k: c["u_wraps"] for k, c in counters.items()},
              "v_clips": {k: c["v_clips"] for k, c in counters.items()},
              "a_clips": {k: c["a_clips"] for k, c in counters.items()}},
    )


def _trains(dense: np.ndarray, steps: int, batch: int) -> SpikeTrains:
    t, b, j = np.nonzero(dense)
    return SpikeTrains(t.astype(np.int64), b.astype(np.int32), j.astype(np.int32), dense.shape[2], steps, batch)


def _trace_spec(fixed: FixedPointNetwork, traces: Any) -> dict[str, list[str]]:
    if not traces:
        return {}
    items = traces.items() if isinstance(traces, Mapping) else (str(t).split(":", 1) for t in traces)
    spec: dict[str, list[str]] = {}
    names = {p.name for p in fixed.populations}
    for item in items:
        if len(item) != 2:
            raise NetworkError("traces", "expected 'population:variable' entries, e.g. 'exc:v'")
        pop, variables = item
        if pop not in names:
            raise NetworkError(f"traces.{pop}", f"no population named {pop!r}")
        for var in [variables] if isinstance(variables, str) else list(variables):
            if var not in TRACE_VARS:
                raise NetworkError(f"traces.{pop}", f"unknown variable {var!r}, expected one of {TRACE_VARS}")
            spec.setdefault(pop, [])
            if var not in spec[pop]:
                spec[pop].append(var)
    return spec


def _int_vector(value: Any, n: int, lo: int, hi: int, where: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise NetworkError(where, f"expected integers, got dtype {arr.dtype}")
    arr = np.broadcast_to(arr.astype(np.int64), (n,)) if arr.ndim == 0 or arr.shape == (n,) else None
    if arr is None:
        raise NetworkError(where, f"expected a scalar or shape ({n},), got shape {np.shape(value)}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise NetworkError(where, f"expected values in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")
    return _frozen(arr)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a
