"""NIR import of single nodes: metadata checks, the import context, neuron nodes as
populations (one function per NIR neuron type) and Input nodes as inputs."""
from __future__ import annotations

from typing import Any, Iterable, Optional

import nir
import numpy as np

from neurosim.errors import ExportError, NetworkError
from neurosim.models import decay, model_from_params
from neurosim.network import PoissonInput, Population, SpikeInput

from .common import ALIF_FIELDS, CHECK_DT, NS, ALIFNode, as_text, type_name
from .conventions import Convention

_AGREE = dict(rtol=1e-8, atol=1e-12)  # exact metadata vs NIR fields: float round-off only


def _decays(tau: np.ndarray, ctx: "ImportContext", where: str) -> np.ndarray:
    dt, method = ctx.dt, ctx.node_method or ctx.method
    tau = np.asarray(tau, dtype=np.float64) * ctx.tau_scale  # Norse writes dt*tau: the true tau is tau/dt
    try:
        out = np.array([decay(dt, float(t), method) for t in tau], dtype=np.float64)
    except NetworkError as exc:
        raise ExportError("nir", where, exc.message) from None
    lost = np.isfinite(tau) & (out == 1.0)  # a finite tau whose leak vanished in rounding
    if np.any(lost):
        t = float(np.asarray(tau, dtype=np.float64)[lost][0])
        raise ExportError("nir", where, f"tau = {t:g} s is {t / dt:.3g} steps of dt = {dt:g} s, too many for a "
                                        f"per-step decay (it rounds to 1: no leak); {CHECK_DT}, or write tau = inf "
                                        "for a neuron without leak")
    return out


_META_TEXT = ("model", "reset", "projection", "name", "discretization", "format", "populations", "inputs",
              "projections", "target", "convention", "kind")
_META_SCALAR = ("dt", "sparse", "delay", "target_dt", "groups")


def check_meta(meta: Any, where: str, source: Optional[str]) -> dict[str, Any]:
    """`meta` (a node's or the graph's metadata) with its ``neurosim.*`` entries type-checked
    before any is used: the names in _META_TEXT hold text, every other one finite real
    numbers (a scalar or an array). ExportError names ``<where>.metadata.<key>``."""
    file = f" [file {source}]" if source else ""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ExportError("nir", f"{where}.metadata",
                          f"expected a group of named values, got {type(meta).__name__}{file}")
    for key, value in meta.items():
        if not isinstance(key, str) or not key.startswith(NS):
            continue
        if key[len(NS):] in _META_TEXT:
            if not isinstance(value, str):
                raise ExportError("nir", f"{where}.metadata.{key}", f"expected text, got {type(value).__name__}{file}")
            continue
        arr = np.asarray(value)
        scalar = key[len(NS):] in _META_SCALAR
        if arr.dtype.kind not in "biuf" or arr.size == 0 or not np.all(np.isfinite(arr)) or (scalar and arr.ndim):
            wanted = "a finite number" if scalar else "finite numbers"
            raise ExportError("nir", f"{where}.metadata.{key}", f"expected {wanted}, got {shown(value)}{file}")
    return meta


def shown(value: Any) -> str:
    """A short description of a value read from a graph, for error messages."""
    arr = np.asarray(value)
    return f"{arr.dtype} of shape {arr.shape}" if arr.ndim else repr(value)[:60]


class ImportContext:
    """Import context: the convention (dt, discretisation, reset, bias timing...), where errors
    point, and what the importer learns per node (late resets, extra latency of CubaLIF nodes)."""

    def __init__(self, conv: Convention, source: Optional[str], gmeta: dict[str, Any]):
        if conv.dt is None:  # conventions.resolve always sets it
            raise ExportError("nir", "dt", f"convention {conv.name} has no time step: give dt")
        self.conv = conv
        self.dt, self.method, self.source = float(conv.dt), conv.discretization, source
        self.reset = conv.reset
        self.tau_scale = 1.0 / self.dt if conv.tau_field == "dt*tau" else 1.0
        self.lag: dict[str, int] = {}  # node -> extra steps on every projection into it
        self.late: set[str] = set()  # nodes whose subtractive reset acts one step late
        self.node_method: Optional[str] = None  # the node's own discretisation (our files name it)
        file_dt = gmeta.get(NS + "dt")
        self.file_dt = float(file_dt) if file_dt is not None else None
        self.exact = (self.file_dt == self.dt and as_text(gmeta.get(NS + "discretization", "")) == self.method)
        self.identity: set[str] = set()  # Input/Output nodes of inlined sub-graphs
        self.budget = 2**62  # bytes; from_nir sets the caller's (neurosim.h5read.memory_budget)
        self.shapes: dict[str, tuple[int, ...]] = {}  # node -> output shape (conv_import.infer_shapes)
        self.in_shapes: dict[str, tuple[int, ...]] = {}  # shaped node -> input shape
        self.records: dict[str, Any] = {}  # shaped node -> bound neurosim record (None: identity)
        self.lowered: dict[str, Any] = {}  # shaped node -> CSR lowering, built once

    def is_input(self, name: str, node: Any) -> bool:
        return isinstance(node, nir.Input) and name not in self.identity

    def is_output(self, name: str, node: Any) -> bool:
        return isinstance(node, nir.Output) and name not in self.identity

    def error(self, field: str, message: str) -> ExportError:
        where = f" [file {self.source}]" if self.source else ""
        return ExportError("nir", field, message + where)


def node_array(node: Any, field: str, ctx: ImportContext, name: str) -> np.ndarray:
    """Field `field` of node `name` as float64 numbers without NaN (ExportError otherwise)."""
    value = getattr(node, field, None)
    if value is None:
        raise ctx.error(f"nodes.{name}.{field}", "missing")
    try:
        a = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ctx.error(f"nodes.{name}.{field}", f"expected numbers, got {type(value).__name__}") from None
    if np.any(np.isnan(a)):
        raise ctx.error(f"nodes.{name}.{field}", "NaN values")
    return a


def _neuron_fields(node: Any, fields: Iterable[str], ctx: ImportContext, name: str) -> dict[str, np.ndarray]:
    out = {f: node_array(node, f, ctx, name).reshape(-1) for f in fields}
    sizes = {f: v.size for f, v in out.items()}
    if len(set(sizes.values())) != 1:
        raise ctx.error(f"nodes.{name}", f"parameter shapes disagree: {sizes}")
    for f in ("v_threshold", "r", "w_in", "gain", "bias", "adapt", "adapt_gain", "v_leak", "v_reset"):
        if f in out and not np.all(np.isfinite(out[f])):
            raise ctx.error(f"nodes.{name}.{f}", "expected finite values")
    for f in ("tau", "tau_mem", "tau_syn", "tau_adapt"):
        if f in out and np.any(out[f] < 0):
            raise ctx.error(f"nodes.{name}.{f}", "expected time constants >= 0 s")
    if "v_reset" in out and np.any(out["v_reset"] != 0):
        raise ctx.error(f"nodes.{name}.v_reset", "neurosim resets to 0 ('zero') or by subtracting the "
                                                 f"threshold ('subtract'); v_reset = {out['v_reset'][out['v_reset'] != 0][0]} "
                                                 "cannot be expressed")
    return out


def _leak_bias(f: dict[str, np.ndarray], ctx: ImportContext, name: str) -> np.ndarray:
    """bias = v_leak / r (LIF, LI)."""
    v_leak, r = f["v_leak"], f["r"]
    if np.any((r == 0) & (v_leak != 0)):
        raise ctx.error(f"nodes.{name}.v_leak", "v_leak != 0 with r = 0 cannot be expressed")
    return np.divide(v_leak, r, out=np.zeros_like(v_leak), where=r != 0)


def _no_leak(f: dict[str, np.ndarray], ctx: ImportContext, name: str) -> None:
    if np.any(f["v_leak"] != 0):
        raise ctx.error(f"nodes.{name}.v_leak", "v_leak != 0 on a node with a synaptic current acts on v, "
                                               "not on the input: neurosim cannot express it")


def _import_lif(node: Any, ctx: ImportContext, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("tau", "r", "v_leak", "v_threshold", "v_reset"), ctx, name)
    beta = _decays(f["tau"], ctx, f"nodes.{name}.tau")
    return "lif", dict(beta=beta, alpha=np.zeros_like(beta), theta=f["v_threshold"],
                       gain=f["r"] * (1 - beta), bias=_leak_bias(f, ctx, name))


def _cuba_gain(f: dict[str, np.ndarray], alpha: np.ndarray, beta: np.ndarray, ctx: ImportContext,
               name: str) -> np.ndarray:
    """Input gain of a Cuba node: ``w_in*(1-alpha)*r*(1-beta)`` (NIR's ODE) or ``w_in*r*(1-beta)``
    (Norse's LIFCell); v from the previous current adds one step to the node's inputs."""
    if ctx.conv.cuba_v_from == "previous":
        ctx.lag[name] = 1
    scale = (1 - alpha) if ctx.conv.cuba_input == "w_in*(1-alpha)" else 1.0
    return f["w_in"] * scale * f["r"] * (1 - beta)


def _import_cubalif(node: Any, ctx: ImportContext, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("tau_syn", "tau_mem", "r", "w_in", "v_leak", "v_threshold", "v_reset"), ctx, name)
    _no_leak(f, ctx, name)
    alpha = _decays(f["tau_syn"], ctx, f"nodes.{name}.tau_syn")
    beta = _decays(f["tau_mem"], ctx, f"nodes.{name}.tau_mem")
    return "lif", dict(beta=beta, alpha=alpha, theta=f["v_threshold"],
                       gain=_cuba_gain(f, alpha, beta, ctx, name), bias=np.zeros_like(beta))


def _import_if(node: Any, ctx: ImportContext, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("r", "v_threshold", "v_reset"), ctx, name)
    return "if", dict(theta=f["v_threshold"], gain=f["r"], bias=np.zeros_like(f["r"]))


def _import_li(node: Any, ctx: ImportContext, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("tau", "r", "v_leak"), ctx, name)
    beta = _decays(f["tau"], ctx, f"nodes.{name}.tau")
    return "li", dict(beta=beta, alpha=np.zeros_like(beta), gain=f["r"] * (1 - beta),
                      bias=_leak_bias(f, ctx, name))


def _import_cubali(node: Any, ctx: ImportContext, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("tau_syn", "tau_mem", "r", "w_in", "v_leak"), ctx, name)
    _no_leak(f, ctx, name)
    alpha = _decays(f["tau_syn"], ctx, f"nodes.{name}.tau_syn")
    beta = _decays(f["tau_mem"], ctx, f"nodes.{name}.tau_mem")
    return "li", dict(beta=beta, alpha=alpha, gain=_cuba_gain(f, alpha, beta, ctx, name),
                      bias=np.zeros_like(beta))


def _import_i(node: Any, ctx: ImportContext, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("r",), ctx, name)
    return "li", dict(beta=np.ones_like(f["r"]), alpha=np.zeros_like(f["r"]), gain=f["r"],
                      bias=np.zeros_like(f["r"]))


def _import_alif(node: Any, ctx: ImportContext, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ALIF_FIELDS, ctx, name)
    return "alif", dict(beta=_decays(f["tau_mem"], ctx, f"nodes.{name}.tau_mem"),
                        alpha=_decays(f["tau_syn"], ctx, f"nodes.{name}.tau_syn"),
                        rho=_decays(f["tau_adapt"], ctx, f"nodes.{name}.tau_adapt"),
                        theta=f["v_threshold"], gain=f["gain"], bias=f["bias"], adapt=f["adapt"],
                        adapt_gain=f["adapt_gain"])


def _import_threshold(node: Any, ctx: ImportContext, name: str) -> tuple[str, dict[str, np.ndarray]]:
    """NIR Threshold ``z = v > threshold`` with v the input of this step: an LIF with no memory
    (alpha = beta = 0, gain 1), so ``v[t] = x[t]`` whatever the reset."""
    f = {"v_threshold": node_array(node, "threshold", ctx, name).reshape(-1)}
    if not np.all(np.isfinite(f["v_threshold"])):
        raise ctx.error(f"nodes.{name}.threshold", "expected finite values")
    z = np.zeros_like(f["v_threshold"])
    return "lif", dict(beta=z, alpha=z.copy(), theta=f["v_threshold"], gain=np.ones_like(z), bias=z.copy())


class ReadoutNode:
    """A linear readout (not a NIR type): what an Affine/Linear feeding an Output becomes, an LI
    population with beta = 0 and gain = 1, so that ``v[t]`` is the weighted input of step t."""

    def __init__(self, n: int):
        self.r = np.ones(n)
        self.metadata: dict[str, Any] = {}


def _import_readout(node: Any, ctx: ImportContext, name: str) -> tuple[str, dict[str, np.ndarray]]:
    n = node.r.size
    return "li", dict(beta=np.zeros(n), alpha=np.zeros(n), gain=np.ones(n), bias=np.zeros(n))


NEURON_IMPORTERS = {nir.LIF: _import_lif, nir.CubaLIF: _import_cubalif, nir.IF: _import_if, nir.LI: _import_li,
                    nir.CubaLI: _import_cubali, nir.I: _import_i, ALIFNode: _import_alif, nir.Threshold: _import_threshold,
                    ReadoutNode: _import_readout}  # NIR type -> (kind, params)


def make_input(name: str, node: Any, local: str, size: int, ctx: ImportContext) -> Any:
    """The neurosim input (spikes, or Poisson with ``neurosim.poisson_rate``) of Input node `name`."""
    rate = (node.metadata or {}).get(NS + "poisson_rate")
    try:
        if rate is not None:
            return PoissonInput(local, size, rate=np.asarray(rate, dtype=np.float64))
        return SpikeInput(local, size)
    except NetworkError as exc:
        raise ctx.error(f"nodes.{name}.metadata.{NS}poisson_rate" if rate is not None else f"nodes.{name}",
                        exc.message) from None


def make_population(name: str, node: Any, local: str, bias: Optional[np.ndarray], ctx: ImportContext) -> Population:
    """The population of neuron node `name` (named `local`), Affine biases `bias` added."""
    meta = dict(node.metadata or {})
    ctx.node_method = None
    if ctx.reset == "metadata" and as_text(meta.get(NS + "discretization", "")) in ("euler", "exact"):
        ctx.node_method = as_text(meta[NS + "discretization"])  # our own file: each node says its own
    kind, params = NEURON_IMPORTERS[type(node)](node, ctx, name)
    method = ctx.node_method or ctx.method
    ctx.node_method = None
    if bias is not None:
        params["bias"] = params["bias"] + bias
    n = next(iter(params.values())).size
    wanted = as_text(meta.get(NS + "model", kind))
    if wanted != kind:
        if (kind, wanted) != ("if", "lif"):
            raise ctx.error(f"nodes.{name}.metadata.{NS}model", f"{wanted!r} does not match a NIR {type_name(node)} node")
        kind = "lif"
        params.update(beta=np.ones(n), alpha=np.zeros(n))
    if ctx.exact and (ctx.conv.name == "neurosim" or method == ctx.method):
        for key, value in params.items():
            stored = meta.get(NS + key)
            if stored is None:
                continue
            stored = np.asarray(stored, dtype=np.float64).reshape(-1)
            if stored.shape != value.shape or not np.allclose(stored, value, **_AGREE):
                raise ctx.error(f"nodes.{name}.metadata.{NS}{key}",
                                "disagrees with the NIR fields (the file was edited?); remove the neurosim.* "
                                "metadata to use the NIR fields alone")
            params[key] = stored
    if kind in ("lif", "alif", "if"):
        params["refractory"] = _refractory(meta, n, ctx, name)
    reset = "zero" if isinstance(node, nir.Threshold) else _reset_rule(meta, ctx, name) if kind != "li" else "subtract"
    if ctx.conv.threshold == ">=" and "theta" in params:  # v >= theta is v > (the float just below theta)
        params["theta"] = np.nextafter(params["theta"], -np.inf)
    try:
        model = model_from_params(kind, {k: _scalar(v) for k, v in params.items()}, reset,
                                  where=f"nodes.{name}", discretization=method if kind != "if" else None)
        init = {k: np.asarray(meta.get(NS + k, 0.0), dtype=np.float64) for k in ("v0", "i0", "a0")}
        return Population(local, n, model, **init)
    except NetworkError as exc:
        raise ctx.error(exc.field if exc.field.startswith("nodes.") else f"nodes.{name}", exc.message) from None


def _reset_rule(meta: dict[str, Any], ctx: ImportContext, name: str) -> str:
    """neurosim's reset for node `name`: the node's ``neurosim.reset`` under the neurosim
    convention, else the convention's rule (v_reset: NIR's v_reset = 0 is 'zero'; late_subtract:
    'subtract', the late part added by :func:`mapping.nir_graph.timing.late_resets`)."""
    rule = ctx.reset
    if rule == "metadata":
        return as_text(meta.get(NS + "reset", "zero"))
    if rule == "v_reset":
        return "zero"
    if rule == "late_subtract":
        ctx.late.add(name)
        return "subtract"
    return rule


def _refractory(meta: dict[str, Any], n: int, ctx: ImportContext, name: str) -> np.ndarray:
    raw = np.asarray(meta.get(NS + "refractory", 0.0), dtype=np.float64)
    if raw.ndim and raw.shape != (n,):
        raise ctx.error(f"nodes.{name}.metadata.{NS}refractory",
                        f"expected a number or {n} numbers, got shape {raw.shape}")
    steps = raw * np.ones(n)
    if ctx.file_dt is None or ctx.file_dt == ctx.dt:
        return steps
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = steps * ctx.file_dt / ctx.dt
    if not np.all(np.isfinite(scaled)) or np.any(scaled > 2**53):
        raise ctx.error(f"nodes.{name}.metadata.{NS}refractory",
                        f"refractory periods of {steps.max()} steps at dt = {ctx.file_dt} are {scaled.max():.3g} "
                        f"steps at dt = {ctx.dt:g} s, more than whole steps can count; {CHECK_DT}")
    if np.any(np.abs(scaled - np.round(scaled)) > 1e-6):
        raise ctx.error(f"nodes.{name}.metadata.{NS}refractory",
                        f"refractory periods of {steps.max()} steps at dt = {ctx.file_dt} are not whole steps at dt = {ctx.dt}")
    return np.round(scaled)


def _scalar(v: np.ndarray) -> Any:
    """Uniform arrays become one number (what a user would write); others stay per neuron."""
    v = np.asarray(v, dtype=np.float64)
    return float(v[0]) if v.size and np.all(v == v[0]) else v
