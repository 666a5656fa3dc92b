"""The integer records of Loihi's fixed-point mode and their limits: FixedPopulation,
FixedProjection, FixedPointNetwork, QuantizationReport (equations in the
:mod:`neurosim.fixed_point` docstring)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from ..errors import NetworkError
from ..network import SpikeInput
from .arith import UV_MAX, mul_shift

TARGET = "lava"
DECAY_ONE = 4096                      # decays are 12-bit fractions of 2**12
VTH_MAX = 2 ** 17 - 1                 # unsigned 17-bit threshold mantissa
WEIGHT_EXP_RANGE = (-8, 7)
BIAS_MANT_RANGE = (-4096, 4095)       # signed 13-bit
BIAS_EXP_RANGE = (0, 7)               # unsigned 3-bit
ADAPT_RANGE = (-2 ** 15, 2 ** 15 - 1)  # adapt_inc and adapt_mant: signed 16-bit
ADAPT_SHIFT_RANGE = (0, 31)
A_EXP_RANGE = (-16, 30)               # a = a_int / 2**a_exp
REFRACTORY_MAX = 255                  # 8-bit refractory counter
MAX_DELAY = 64                        # DelayDense holds 0..63 extra steps (6 bits)
WEIGHT_LIMITS = {"mixed": (-256, 254), "excitatory": (0, 255), "inhibitory": (-255, 0)}  # after the bit drop
LAVA_WEIGHT_RANGE = {"mixed": (-256, 255), "excitatory": (0, 255), "inhibitory": (-255, 0)}  # Lava's clip
KINDS = ("lif", "alif", "li")
RESETS = ("zero", "subtract")
TRACE_VARS = ("v", "i", "a", "threshold", "v_int", "u_int", "a_int")


@dataclass(frozen=True, eq=False)
class FixedPopulation:
    """Integer neuron parameters of one population (the :mod:`neurosim.fixed_point` docstring).

    du, dv: decays as Lava takes them (u decays by (4095 - du)/4096, v by (4096 - dv)/4096);
    vth: threshold mantissa (compared as vth << 6); du, dv, vth (and drho) are one int or one
    per neuron, int64 (N,), as Lava 0.10's ``PyLifModelBitAcc`` applies them (an array whose
    values are all equal is kept as one int); bias_mant, bias_exp, u0, v0: int64 (N,);
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
                             ("drho", 0, DECAY_ONE)):
            object.__setattr__(self, name, _int_or_vector(getattr(self, name), self.size, lo, hi, f"{where}.{name}"))
        for name, lo, hi in (("adapt_shift", *ADAPT_SHIFT_RANGE), ("a_exp", *A_EXP_RANGE)):
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
    def alpha(self) -> Any:
        """Current decay of the integer model, (4095 - du) / 4096 (float, or (N,) for per-neuron du)."""
        return (DECAY_ONE - 1 - self.du) / DECAY_ONE

    @property
    def beta(self) -> Any:
        """Membrane decay of the integer model, (4096 - dv) / 4096."""
        return (DECAY_ONE - self.dv) / DECAY_ONE

    @property
    def rho(self) -> Any:
        """Adaptation decay of the integer model, (4096 - drho) / 4096."""
        return (DECAY_ONE - self.drho) / DECAY_ONE

    @property
    def per_neuron(self) -> bool:
        """True when du, dv, vth or drho differ between neurons."""
        return any(np.ndim(getattr(self, k)) for k in ("du", "dv", "vth", "drho"))

    @property
    def bias_on_v(self) -> np.ndarray:
        """Where u0 is stored relative to the float i0: neurons with a current decay (du < 4095),
        whose float bias b appears as b / (1 - alpha) on v (the :mod:`neurosim.fixed_point`
        docstring); with du = 4095 u keeps no memory and u0 = i0 * S."""
        return np.broadcast_to(np.asarray(self.du) < DECAY_ONE - 1, (self.size,))

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
        return (self.vth << 6) + mul_shift(a, self.adapt_mant, self.adapt_shift)


@dataclass(frozen=True, eq=False)
class FixedProjection:
    """Integer synapses of one projection (what ``Dense``/``DelayDense`` are given).

    weights: int64 mantissas (n_pre, n_post) as they are given to Lava's Dense, within
    :data:`LAVA_WEIGHT_RANGE` of `sign_mode` (Lava would clip beyond: refused); the weights
    that act are :attr:`effective_weights`, after Lava's drop of the lowest bit of mixed-sign
    mantissas; weight_exp: shared exponent; delay: steps >= 1, scalar or (n_pre, n_post);
    sparse: the float projection was CSR (exported as Lava ``Sparse``).
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
        lo, hi = LAVA_WEIGHT_RANGE[self.sign_mode]
        if w.size and (w.min() < lo or w.max() > hi):
            raise NetworkError(f"{where}.weights", f"{self.sign_mode} mantissas must lie in [{lo}, {hi}], "
                                                   f"got [{w.min()}, {w.max()}] (Lava would clip them)")
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
    def effective_weights(self) -> np.ndarray:
        """The mantissas Lava's Dense applies: mixed signs lose their lowest bit, ``(w >> 1) << 1``
        (``lava.utils.weightutils.truncate_weights`` with 8 weight bits); others as given."""
        return (self.weights >> 1) << 1 if self.sign_mode == "mixed" else self.weights

    @property
    def n_bit_dropped(self) -> int:
        """Synapses whose mantissa Lava's lowest-bit drop changes (odd mixed-sign mantissas)."""
        return int(np.count_nonzero(self.effective_weights != self.weights))

    @property
    def delays(self) -> np.ndarray:
        """Per-synapse delays, (n_pre, n_post)."""
        return np.broadcast_to(np.asarray(self.delay, np.int64), self.weights.shape)

    @property
    def max_delay(self) -> int:
        return int(np.max(self.delay))

    @property
    def shape(self) -> tuple[int, int]:
        """(n_pre, n_post)."""
        return self.weights.shape  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class QuantizationReport:
    """Quantisation error of every parameter against the float network it came from.

    populations[name]: kind, reset, vth_mant, du, dv, alpha/alpha_q/alpha_error,
    beta/beta_q/beta_error, theta_max_abs_error, bias_max_abs_error, v0_max_abs_error,
    i0_max_abs_error, state_limit (the smallest ``|u|``, ``|v|`` in float units that would leave the
    24-bit range); ALIF also drho, rho/rho_q/rho_error, a_exp, adapt_shift,
    adapt_max_abs_error/adapt_max_rel_error (dequantised - float adapt, relative to the
    largest ``|adapt|``), adapt_gain_max_abs_error/adapt_gain_max_rel_error, a0_max_abs_error and
    a_limit (the smallest float a at which a threshold A would leave the 24-bit range).
    Per-neuron du, dv (drho) are reported as arrays, alpha/beta/rho_error as the signed error
    of largest magnitude; bias_on_v: a bias met a current decay and sits on v as b / (1 - alpha).
    projections[name]: weight_exp, sign_mode, bit_drop (mixed signs: Lava drops the lowest
    mantissa bit, so quantize rounds them on the even grid), n_bit_dropped (synapses the drop
    changed: 0 for quantize's own mantissas), n_synapses, n_zeroed (nonzero float weights
    quantised to 0), max_abs_error, rms_error, max_rel_error (to the largest ``|w * gain|``),
    error_bound (largest allowed ``|error|``: half a mantissa step, a full one for mixed signs,
    in float units of the target's i), error (dequantised - float w * gain, (n_pre, n_post))
    and floor_error_bound (weight_exp < 0 only: Lava floors the summed input of a step,
    which lowers it by up to (1 - 2**e) * theta / vth per step, beyond the weight errors).
    """

    populations: dict[str, dict[str, Any]]
    projections: dict[str, dict[str, Any]]
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        """One line per population and per projection: mantissas, exponents and largest errors."""
        lines = ["population  kind reset     vth   du    dv    |d alpha|  |d beta|   |d bias|   state limit"]
        for k, p in self.populations.items():
            lines.append(f"{k:<11} {p['kind']:<4} {p['reset']:<9} {_span(p['vth_mant']):<5} {_span(p['du']):<5} "
                         f"{_span(p['dv']):<5} "
                         f"{abs(p['alpha_error']):<10.2e} {abs(p['beta_error']):<10.2e} "
                         f"{p['bias_max_abs_error']:<10.2e} {p['state_limit']:.4g}")
        adaptive = {k: p for k, p in self.populations.items() if p["kind"] == "alif"}
        if adaptive:
            lines.append("adaptation  drho  |d rho|    a_exp shift rel |d adapt|  rel |d adapt_gain|  a limit")
            for k, p in adaptive.items():
                lines.append(f"{k:<11} {_span(p['drho']):<5} {abs(p['rho_error']):<10.2e} {p['a_exp']:<5} "
                             f"{p['adapt_shift']:<5} {p['adapt_max_rel_error']:<15.2e} "
                             f"{p['adapt_gain_max_rel_error']:<18.2e} {p['a_limit']:.4g}")
        lines.append("projection  exp  sign        max |dw|   rel       zeroed     lowest bit")
        for k, p in self.projections.items():
            drop = f"dropped ({p['n_bit_dropped']} changed)" if p["bit_drop"] else "kept"
            lines.append(f"{k:<11} {p['weight_exp']:<4} {p['sign_mode']:<11} {p['max_abs_error']:<10.2e} "
                         f"{p['max_rel_error']:<9.2e} {p['n_zeroed']}/{p['n_synapses']:<8} {drop}")
        if any(p["bit_drop"] for p in self.projections.values()):
            lines.append("(mixed-sign weights: Lava's Dense drops the lowest of 8 mantissa bits, (w >> 1) << 1; "
                         "the mantissas are rounded on that even grid)")
        lines.extend(self.notes)
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class FixedPointNetwork:
    """A network in Loihi's integer representation; `report` compares it with its float source."""

    dt: float
    populations: tuple[FixedPopulation, ...]
    projections: tuple[Any, ...]  # FixedProjection, or FixedConv for what Lava's Conv process runs
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
            if proj.shape != (sizes[proj.pre], sizes[proj.post]):
                raise NetworkError(f"{where}.weights", f"expected shape {(sizes[proj.pre], sizes[proj.post])}, "
                                                       f"got {proj.shape}")
            if proj.pre in pops and not self.population(proj.pre).spiking:
                raise NetworkError(f"{where}.pre", f"{proj.pre!r} is an LI readout and never spikes")

    def population(self, name: str) -> FixedPopulation:
        for p in self.populations:
            if p.name == name:
                return p
        raise NetworkError(f"populations.{name}", f"no population named {name!r}")


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


def _span(x: Any) -> str:
    """An int as it is; per-neuron values as 'min..max'."""
    return str(x) if np.ndim(x) == 0 else f"{int(np.min(x))}..{int(np.max(x))}"


def _int_or_vector(value: Any, n: int, lo: int, hi: int, where: str) -> Union[int, np.ndarray]:
    """One int for a scalar or an array of equal values; else a read-only int64 (N,) array."""
    if np.ndim(value) == 0 and not (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
        if not lo <= value <= hi:
            raise NetworkError(where, f"expected an integer in [{lo}, {hi}], got {value!r}")
        return int(value)
    if np.ndim(value) == 0:
        raise NetworkError(where, f"expected an integer in [{lo}, {hi}] or one per neuron, got {value!r}")
    arr = _int_vector(value, n, lo, hi, where)
    return int(arr[0]) if arr.size and np.all(arr == arr[0]) else arr


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a
