"""Neuron models: typed parameter records and the one canonical discrete-time step.

Every model (LIF, ALIF, IF, LI) lowers onto one set of per-neuron arrays, :class:`NeuronParams`,
and one update, :func:`neuron_step`. The simulators, the torch layers and the exporters all use
or are tested against :func:`neuron_step`. Time unit: seconds. Decays are per-step factors.

Order inside one step t (identical everywhere):
1. input ``x[t]``: weighted spikes arriving at t (sent at t - d, delay d >= 1 step);
2. state update; 3. threshold; 4. reset; 5. record.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar, Literal, NamedTuple, Optional, Union

import numpy as np

from .errors import NetworkError

ArrayLike = Union[float, int, np.ndarray, list]
Reset = Literal["subtract", "zero"]
Discretization = Literal["exact", "euler"]


def decay(dt: float, tau: float, method: Discretization = "exact") -> float:
    """Per-step decay of ``tau * dy/dt = -y``: ``exp(-dt/tau)`` (exact) or ``1 - dt/tau`` (euler).

    ``tau = inf`` gives 1 (no leak); ``tau = 0`` gives 0 (no memory).
    """
    if not (dt > 0 and math.isfinite(dt)):
        raise NetworkError("dt", f"expected a finite time step > 0 in seconds, got {dt!r}")
    if not tau >= 0:
        raise NetworkError("tau", f"expected a time constant >= 0 in seconds, got {tau!r}")
    if tau == 0:
        return 0.0
    if math.isinf(tau):
        return 1.0
    if method == "exact":
        return math.exp(-dt / tau)
    if method == "euler":
        if dt > tau:
            raise NetworkError("tau", f"euler decay 1 - dt/tau needs tau >= dt ({dt}), got {tau}")
        return 1.0 - dt / tau
    raise NetworkError("method", f"expected 'exact' or 'euler', got {method!r}")


# --------------------------------------------------------------------------------------------
# Canonical lowered form


class NeuronParams(NamedTuple):
    """Per-neuron parameters of the canonical step; every field has shape (N,).

    alpha: current decay; beta: membrane decay; theta: base threshold; bias: constant input;
    gain: input scale; rho: adaptation decay; adapt: adaptation strength b;
    adapt_gain: scale of a spike into the adaptation variable; refractory: steps (integer-valued);
    reset_zero: 1 for reset to zero, 0 for subtractive reset; spiking: 0 for LI readouts.
    """

    alpha: Any
    beta: Any
    theta: Any
    bias: Any
    gain: Any
    rho: Any
    adapt: Any
    adapt_gain: Any
    refractory: Any
    reset_zero: Any
    spiking: Any


class NeuronState(NamedTuple):
    """State after a step; every field has shape (B, N) in the simulation dtype.

    i: synaptic current; v: membrane potential (after reset); a: adaptation variable;
    z: spikes of this step (0/1); r: remaining refractory steps (integer-valued).
    """

    i: Any
    v: Any
    a: Any
    z: Any
    r: Any


def _namespace(a: Any) -> Any:
    """numpy, cupy or torch, whichever `a` belongs to."""
    mod = type(a).__module__.split(".")[0]
    if mod == "torch":
        import torch

        return torch
    if mod == "cupy":
        import cupy

        return cupy
    return np


def heaviside(u: Any) -> Any:
    """``H(u) = 1 if u > 0 else 0`` in the dtype of `u` (strict: equality does not spike)."""
    b = u > 0
    if hasattr(b, "astype"):
        return b.astype(u.dtype)
    return b.to(u.dtype)


def neuron_step(
    p: NeuronParams,
    s: NeuronState,
    x: Any,
    spike_fn: Callable[[Any], Any] = heaviside,
) -> NeuronState:
    """One step of the canonical neuron map (all models). Arrays are numpy, cupy or torch.

    ::

        i[t] = alpha * i[t-1] + gain * (x[t] + bias)
        a[t] = rho * a[t-1] + adapt_gain * z[t-1]
        A[t] = theta + adapt * a[t]                          (adaptive threshold)
        v~   = beta * v[t-1] + i[t]    if r[t-1] == 0  else  v[t-1]   (held while refractory)
        z[t] = H(v~ - A[t]) * [r[t-1] == 0] * spiking          (strict >)
        v[t] = v~ - z[t] * theta   (subtract)   or   v~ * (1 - z[t])   (zero)
        r[t] = refractory  if z[t]  else  max(r[t-1] - 1, 0)

    LIF: adapt = 0. IF: alpha = 0, beta = 1, adapt = 0. LI: spiking = 0.
    ALIF (LSNN): adapt = b > 0; the subtractive reset removes theta, not A[t].
    `spike_fn` replaces H (torch layers pass a surrogate-gradient Heaviside).
    """
    xp = _namespace(s.v)
    i = p.alpha * s.i + p.gain * (x + p.bias)
    a = p.rho * s.a + p.adapt_gain * s.z
    active = s.r <= 0
    v = xp.where(active, p.beta * s.v + i, s.v)
    z = spike_fn(v - (p.theta + p.adapt * a)) * (active * p.spiking)
    v = v - z * xp.where(p.reset_zero > 0, v, p.theta)
    r = xp.where(z > 0, p.refractory, xp.where(s.r > 0, s.r - 1, s.r * 0))
    return NeuronState(i, v, a, z, r)


def threshold(p: NeuronParams, s: NeuronState) -> Any:
    """The adaptive threshold ``A[t] = theta + adapt * a[t]`` of state `s`."""
    return p.theta + p.adapt * s.a


# --------------------------------------------------------------------------------------------
# Typed model records (what users write); each lowers to NeuronParams.


NOT_PARAMS = ("reset", "discretization")  # model fields that are not per-neuron numbers


def _check_reset(reset: str, field_: str) -> None:
    if reset not in ("subtract", "zero"):
        raise NetworkError(field_, f"expected 'subtract' or 'zero', got {reset!r}")


@dataclass(frozen=True, eq=False)
class _Model:
    """Shared lowering and validation of the model records."""

    kind: ClassVar[str] = ""
    decays: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        """Array parameters are copied and frozen, so later edits by the caller cannot leak in."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (list, tuple, np.ndarray)):
                try:
                    arr = np.array(value, dtype=np.float64)
                except (TypeError, ValueError):
                    continue  # left for per_neuron() to report with the field's name
                arr.setflags(write=False)
                object.__setattr__(self, f.name, arr)
        self.check_ranges(type(self).__name__)

    def check_ranges(self, where: str) -> None:
        """Refuse, naming ``<where>.<field>``, a decay outside [0, 1] and, for a spiking model with
        the subtractive reset, a threshold theta <= 0 (subtracting it could never bring v below
        it). Values that are not finite numbers are left for :meth:`per_neuron` to name."""
        for name in self.param_names():
            try:
                vals = np.asarray(getattr(self, name), dtype=np.float64)
            except (TypeError, ValueError):
                continue
            finite = vals[np.isfinite(vals)]
            if name in self.decays and np.any((finite < 0) | (finite > 1)):
                bad = float(finite[(finite < 0) | (finite > 1)][0])
                raise NetworkError(f"{where}.{name}", f"a decay must lie in [0, 1] (a factor per step "
                                                      f"such as exp(-dt/tau)), got {bad:g}")
            if name == "theta" and getattr(self, "reset", None) == "subtract" and np.any(finite <= 0):
                raise NetworkError(f"{where}.theta", f"expected a threshold > 0 with reset='subtract' (a spike "
                                                     f"subtracts theta from v), got {float(finite[finite <= 0][0]):g}; "
                                                     "reset='zero' allows theta <= 0")

    def __repr__(self) -> str:
        """One line: scalars as numbers, per-neuron arrays as their count and range."""
        parts = [f"{f.name}={short_repr(getattr(self, f.name))}" for f in fields(self)]
        return f"{type(self).__name__}({', '.join(parts)})"

    def param_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if f.name not in NOT_PARAMS)

    def per_neuron(self, n: int, where: str = "model") -> dict[str, np.ndarray]:
        """Every numeric parameter broadcast to shape (n,) float64, validated."""
        out: dict[str, np.ndarray] = {}
        for name in self.param_names():
            out[name] = per_neuron_vector(getattr(self, name), n, f"{where}.{name}")
            vals = out[name]
            if name in self.decays and np.any((vals < 0) | (vals > 1)):
                bad = float(vals[(vals < 0) | (vals > 1)][0])
                raise NetworkError(f"{where}.{name}", f"a decay must lie in [0, 1], got {bad}")
            if name == "refractory" and (np.any(vals < 0) or np.any(vals != np.round(vals))):
                raise NetworkError(f"{where}.{name}", "expected a whole number of steps >= 0")
        reset = getattr(self, "reset", "subtract")
        _check_reset(reset, f"{where}.reset")
        method = getattr(self, "discretization", None)
        if method not in (None, "exact", "euler"):
            raise NetworkError(f"{where}.discretization", f"expected None, 'exact' or 'euler', got {method!r}")
        return out

    def lower(self, n: int, where: str = "model") -> NeuronParams:
        raise NotImplementedError


def short_repr(value: Any) -> str:
    """A parameter in a few characters: a number, a short list, or '<n values in [lo, hi]>'."""
    if isinstance(value, str):
        return repr(value)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return f"<{type(value).__name__}>"
    if arr.ndim == 0:
        return f"{float(arr):g}"
    if arr.size <= 4:
        return "[" + ", ".join(f"{v:g}" for v in arr.ravel()) + "]"
    finite = arr[np.isfinite(arr)]
    span = f" in [{finite.min():g}, {finite.max():g}]" if finite.size else ""
    return f"<{arr.size} values{span}>"


def per_neuron_vector(value: ArrayLike, n: int, where: str) -> np.ndarray:
    """`value` (a number or `n` numbers) as `n` finite float64 values; NetworkError names `where`."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NetworkError(where, f"expected a number or an array of {n} numbers ({exc})") from None
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise NetworkError(where, f"expected a scalar or shape ({n},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise NetworkError(where, "expected finite values, found NaN or inf")
    return arr


def _lowered(n: int, **kw: np.ndarray) -> NeuronParams:
    zeros = np.zeros(n)
    ones = np.ones(n)
    base = dict(
        alpha=zeros, beta=ones, theta=ones, bias=zeros, gain=ones, rho=zeros, adapt=zeros,
        adapt_gain=ones, refractory=zeros, reset_zero=zeros, spiking=ones,
    )
    base.update(kw)
    return NeuronParams(**{k: np.array(v, dtype=np.float64) for k, v in base.items()})


@dataclass(frozen=True, eq=False, repr=False)
class LIF(_Model):
    """Current-based leaky integrate-and-fire (Loihi/Lava CUBA order; alpha = 0: snnTorch Leaky).

    ``i = alpha*i + gain*(x + bias)``; ``v = beta*v + i``; spike if ``v > theta``; reset by
    subtracting theta or to zero; `refractory` steps during which v is held and cannot spike.
    """

    beta: ArrayLike = 0.9
    alpha: ArrayLike = 0.0
    theta: ArrayLike = 1.0
    bias: ArrayLike = 0.0
    gain: ArrayLike = 1.0
    refractory: ArrayLike = 0
    reset: Reset = "subtract"
    discretization: Optional[Discretization] = None  # how the decays were made from taus (from_tau)

    kind: ClassVar[str] = "lif"
    decays: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    @classmethod
    def from_tau(
        cls, dt: float, tau_mem: float, tau_syn: float = 0.0,
        method: Discretization = "exact", refractory_s: float = 0.0, **kw: Any,
    ) -> "LIF":
        """Build from time constants in seconds; `method` names the discretization (kept on the
        record: exporters write the time constants back with it)."""
        return cls(beta=decay(dt, tau_mem, method), alpha=decay(dt, tau_syn, method),
                   refractory=int(round(refractory_s / dt)), discretization=method, **kw)

    def lower(self, n: int, where: str = "model") -> NeuronParams:
        p = self.per_neuron(n, where)
        return _lowered(n, alpha=p["alpha"], beta=p["beta"], theta=p["theta"], bias=p["bias"],
                        gain=p["gain"], refractory=p["refractory"],
                        reset_zero=np.full(n, float(self.reset == "zero")))


@dataclass(frozen=True, eq=False, repr=False)
class ALIF(_Model):
    """Adaptive LIF (LSNN, Bellec et al. 2018; e-prop 2020).

    As LIF, plus ``a = rho*a + adapt_gain*z[t-1]``, threshold ``A = theta + adapt*a``; the
    subtractive reset removes theta. The LSNN code scales input by (1 - beta) and spikes into
    `a` by (1 - rho); the e-prop code only the latter: set `gain` and `adapt_gain` (or use
    :meth:`from_tau` with ``input_scaling`` / ``adapt_scaling``) to match either.
    """

    beta: ArrayLike = 0.9
    rho: ArrayLike = 0.99
    adapt: ArrayLike = 1.8
    alpha: ArrayLike = 0.0
    theta: ArrayLike = 1.0
    bias: ArrayLike = 0.0
    gain: ArrayLike = 1.0
    adapt_gain: ArrayLike = 1.0
    refractory: ArrayLike = 0
    reset: Reset = "subtract"
    discretization: Optional[Discretization] = None  # how the decays were made from taus (from_tau)

    kind: ClassVar[str] = "alif"
    decays: ClassVar[tuple[str, ...]] = ("alpha", "beta", "rho")

    @classmethod
    def from_tau(
        cls, dt: float, tau_mem: float, tau_adapt: float, tau_syn: float = 0.0,
        method: Discretization = "exact", refractory_s: float = 0.0,
        input_scaling: Literal["none", "one_minus_beta"] = "none",
        adapt_scaling: Literal["none", "one_minus_rho"] = "one_minus_rho", **kw: Any,
    ) -> "ALIF":
        """Build from time constants in seconds; scalings select the LSNN or e-prop convention."""
        beta = decay(dt, tau_mem, method)
        rho = decay(dt, tau_adapt, method)
        if input_scaling not in ("none", "one_minus_beta"):
            raise NetworkError("input_scaling", f"expected 'none' or 'one_minus_beta', got {input_scaling!r}")
        if adapt_scaling not in ("none", "one_minus_rho"):
            raise NetworkError("adapt_scaling", f"expected 'none' or 'one_minus_rho', got {adapt_scaling!r}")
        gain = 1.0 - beta if input_scaling == "one_minus_beta" else 1.0
        adapt_gain = 1.0 - rho if adapt_scaling == "one_minus_rho" else 1.0
        return cls(beta=beta, rho=rho, alpha=decay(dt, tau_syn, method), gain=gain,
                   adapt_gain=adapt_gain, refractory=int(round(refractory_s / dt)), discretization=method, **kw)

    def lower(self, n: int, where: str = "model") -> NeuronParams:
        p = self.per_neuron(n, where)
        return _lowered(n, alpha=p["alpha"], beta=p["beta"], theta=p["theta"], bias=p["bias"],
                        gain=p["gain"], rho=p["rho"], adapt=p["adapt"], adapt_gain=p["adapt_gain"],
                        refractory=p["refractory"],
                        reset_zero=np.full(n, float(self.reset == "zero")))


@dataclass(frozen=True, eq=False, repr=False)
class IF(_Model):
    """Integrate-and-fire, no leak: ``v = v + gain*(x + bias)``; spike if ``v > theta``."""

    theta: ArrayLike = 1.0
    bias: ArrayLike = 0.0
    gain: ArrayLike = 1.0
    refractory: ArrayLike = 0
    reset: Reset = "subtract"

    kind: ClassVar[str] = "if"

    def lower(self, n: int, where: str = "model") -> NeuronParams:
        p = self.per_neuron(n, where)
        return _lowered(n, theta=p["theta"], bias=p["bias"], gain=p["gain"],
                        refractory=p["refractory"],
                        reset_zero=np.full(n, float(self.reset == "zero")))


@dataclass(frozen=True, eq=False, repr=False)
class LI(_Model):
    """Leaky integrator readout that never spikes: ``i = alpha*i + gain*(x + bias)``; ``v = beta*v + i``."""

    beta: ArrayLike = 0.9
    alpha: ArrayLike = 0.0
    bias: ArrayLike = 0.0
    gain: ArrayLike = 1.0
    discretization: Optional[Discretization] = None  # how the decays were made from taus (from_tau)

    kind: ClassVar[str] = "li"
    decays: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    @classmethod
    def from_tau(cls, dt: float, tau_mem: float, tau_syn: float = 0.0,
                 method: Discretization = "exact", **kw: Any) -> "LI":
        """Build from time constants in seconds; `method` names the discretization."""
        return cls(beta=decay(dt, tau_mem, method), alpha=decay(dt, tau_syn, method), discretization=method, **kw)

    def lower(self, n: int, where: str = "model") -> NeuronParams:
        p = self.per_neuron(n, where)
        return _lowered(n, alpha=p["alpha"], beta=p["beta"], theta=np.zeros(n), bias=p["bias"],
                        gain=p["gain"], spiking=np.zeros(n))


MODELS: dict[str, type[_Model]] = {m.kind: m for m in (LIF, ALIF, IF, LI)}
Model = Union[LIF, ALIF, IF, LI]


def model_from_params(kind: str, params: dict[str, Any], reset: str = "subtract",
                      where: str = "model", discretization: Optional[str] = None) -> Model:
    """Rebuild a model record from its kind and parameter dict (used by loaders)."""
    if kind not in MODELS:
        raise NetworkError(f"{where}.kind", f"expected one of {sorted(MODELS)}, got {kind!r}")
    cls = MODELS[kind]
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in NOT_PARAMS and n not in params]
    if missing:
        raise NetworkError(f"{where}.{missing[0]}", f"missing parameter of a {kind} model")
    extra = sorted(set(params) - set(names))
    if extra:
        raise NetworkError(f"{where}.{extra[0]}", f"not a parameter of a {kind} model (expected {names})")
    kw = dict(params)
    if "reset" in names:
        kw["reset"] = reset
    if "discretization" in names:
        kw["discretization"] = discretization
    try:
        return cls(**kw)
    except NetworkError as exc:  # name the field where the caller found the parameters
        prefix = f"{cls.__name__}."
        if exc.field.startswith(prefix):
            raise NetworkError(f"{where}.{exc.field[len(prefix):]}", exc.message) from None
        raise
