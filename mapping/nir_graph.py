"""NIR (Neuromorphic Intermediate Representation) export and import of a :class:`Network`.

``to_nir`` / ``write_nir`` turn a Network into a ``nir.NIRGraph`` (HDF5 via ``nir.write``);
``from_nir`` / ``read_nir`` turn a NIR graph, ours or a peer's, back into a Network.

Discretisation (NIR is continuous-time; ``dt`` is the network's step on export, an argument on
import). ``decay(tau)`` is :func:`neurosim.models.decay`: ``1 - dt/tau`` ('euler', what
snnTorch writes with dt = 1e-4 and Norse reads) or ``exp(-dt/tau)`` ('exact'). Each ODE
``tau dy/dt = -y + k u`` becomes ``y <- decay*y + (1 - decay)*k*u`` (forward Euler, or the exact
solution for u held constant over the step; the two ODEs of the Cuba nodes are discretised one
by one, v taking this step's current), so, with our step ``i = alpha*i + gain*(x + bias)``,
``v = beta*v + i``:

=============  =========================================  ==========================================
NIR node       decays                                     input gain and bias
=============  =========================================  ==========================================
LIF, LI        beta = decay(tau)                          gain = r*(1 - beta); bias = v_leak / r
CubaLIF,       alpha = decay(tau_syn),                    gain = w_in*(1 - alpha) * r*(1 - beta);
CubaLI         beta = decay(tau_mem)                      v_leak must be 0
IF, I          beta = 1 (no leak)                         gain = r per step (IF has no time
                                                          constant; Norse reads and writes r so)
=============  =========================================  ==========================================

Export writes ``r = gain/(1 - beta)`` for LIF/LI and ``r = 1/(1 - beta)``, ``w_in = gain/(1 - alpha)``
for the Cuba nodes: snnTorch's own convention, so its importer reads our graphs unchanged.

Latency. NIR edges are instantaneous; a neurosim projection of delay d >= 1 acts d steps later.
Convention (both directions): every path source -> [Delay] -> Linear/Affine/Scale ... -> neuron
is one projection with one step of latency; a ``Delay`` node of k*dt adds k steps, so
``delay = 1 + k``. Export writes delay d as ``source -> Delay((d-1)*dt) -> Linear -> target``
(per-synapse delays: one Linear per distinct delay). A zero-latency peer (snnTorch, Norse) running
a layered graph therefore emits layer L's spikes L steps *earlier* than neurosim; Affine biases act
from step 0 in neurosim (a constant input), so that time shift is exact only without biases.

Resets. NIR's reset is ``v = v_reset``; neurosim's 'zero' reset is v_reset = 0. neurosim's
'subtract' reset has no NIR field (snnTorch also writes its subtractive reset as v_reset = 0): the
rule travels in node metadata ``neurosim.reset``; for graphs without it, ``from_nir(reset=...)``
says which rule the writer meant. A nonzero v_reset is refused.

Graph shape. Export: one Input per input source, one neuron node per population, an Output
after every population that projects to no other population. Import: sub-graphs are inlined,
an Input's shape is flattened, Scale nodes and chains of Linear/Affine nodes multiply into the
projection's weights, Affine biases become the target population's bias.

Extensions (metadata keys ``neurosim.*``, ignored by other NIR tools): reset rule, refractory
steps, initial state (v0, i0, a0), model kind, Poisson input rates, projection names, sparsity,
node order, and the exact per-step parameters (so that a round trip at the same dt and
discretisation is bit-exact; they are checked against the NIR fields and used only when they agree
to 1e-8). ALIF has no NIR primitive: it is written as a node of type ``neurosim.ALIF``
(:class:`ALIFNode`) that ``nir.read`` and snnTorch's importer refuse (Norse 1.1's ``from_nir``
silently skips node types it does not know); :func:`read_nir` reads it.

Peers (checked in tests/test_mapping_nir.py). snnTorch 1.0 writes Euler at dt = 1e-4 and its
subtractive reset as v_reset = 0: read with ``dt=1e-4, reset='subtract'``. Norse 1.1's ``to_nir``
writes ``tau = dt/tau_inv`` (dt times tau): its graphs read back exactly with ``dt = dt_norse**2``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Union

import numpy as np

from neurosim.atomic import atomic_path
from neurosim.errors import ExportError, FileFormatError, NetworkError
from neurosim.models import Discretization, decay, model_from_params
from neurosim.network import _NAME, CSR, MAX_DELAY, Network, PoissonInput, Population, Projection, SpikeInput

try:
    import nir
except ImportError as exc:  # pragma: no cover - nir is a pinned dependency of the mapping extra
    raise ImportError("mapping.nir_graph needs the 'nir' package (pip install nir==1.0.8)") from exc

__all__ = ["to_nir", "from_nir", "write_nir", "read_nir", "ALIFNode", "ALIF_TYPE"]

ALIF_TYPE = "neurosim.ALIF"
_NS = "neurosim."
_METHODS = ("euler", "exact")
_AGREE = dict(rtol=1e-8, atol=1e-12)  # exact metadata vs NIR fields: float round-off only


@dataclass(eq=False)
class ALIFNode(nir.NIRNode):
    """neurosim extension node ``neurosim.ALIF``: the adaptive LIF of :class:`neurosim.ALIF`.

    ``alpha = decay(tau_syn)``, ``beta = decay(tau_mem)``, ``rho = decay(tau_adapt)``;
    ``i = alpha*i + gain*(x + bias)``, ``v = beta*v + i``, ``a = rho*a + adapt_gain*z[t-1]``,
    spike if ``v > v_threshold + adapt*a``. All fields have shape (n,); gain and bias are per step.
    """

    tau_mem: np.ndarray
    tau_syn: np.ndarray
    tau_adapt: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    v_threshold: np.ndarray
    adapt: np.ndarray
    adapt_gain: np.ndarray

    def __post_init__(self) -> None:
        shapes = {np.shape(getattr(self, f)) for f in _ALIF_FIELDS}
        if len(shapes) != 1:
            raise ValueError(f"{ALIF_TYPE}: all parameters must have the same shape, got {shapes}")
        self.input_type = {"input": np.array(np.shape(self.v_threshold))}
        self.output_type = {"output": np.array(np.shape(self.v_threshold))}

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["type"] = ALIF_TYPE
        return out

    @classmethod
    def from_dict(cls, kwargs: dict[str, Any]) -> "ALIFNode":
        kw = {k: v for k, v in kwargs.items() if k != "type"}
        return cls(**kw)


_ALIF_FIELDS = ("tau_mem", "tau_syn", "tau_adapt", "gain", "bias", "v_threshold", "adapt", "adapt_gain")


# ============================================================================ conversions


def _taus(a: np.ndarray, dt: float, method: str) -> np.ndarray:
    """Inverse of :func:`neurosim.models.decay`: the tau whose per-step decay is `a`."""
    a = np.asarray(a, dtype=np.float64)
    safe = np.where((a > 0) & (a < 1), a, 0.5)
    if method == "euler":
        tau = dt / (1.0 - safe)
        return np.where(a >= 1, np.inf, np.where(a <= 0, dt, tau))
    return np.where(a >= 1, np.inf, np.where(a <= 0, 0.0, -dt / np.log(safe)))


_CHECK_DT = "check dt, the time step the graph was made for (snnTorch and SpikingJelly use 1e-4 s, Norse 1e-3 s)"


def _decays(tau: np.ndarray, dt: float, method: str, where: str) -> np.ndarray:
    try:
        out = np.array([decay(dt, float(t), method) for t in tau], dtype=np.float64)
    except NetworkError as exc:
        raise ExportError("nir", where, exc.message) from None
    lost = np.isfinite(tau) & (out == 1.0)  # a finite tau whose leak vanished in rounding
    if np.any(lost):
        t = float(np.asarray(tau, dtype=np.float64)[lost][0])
        raise ExportError("nir", where, f"tau = {t:g} s is {t / dt:.3g} steps of dt = {dt:g} s, too many for a "
                                        f"per-step decay (it rounds to 1: no leak); {_CHECK_DT}, or write tau = inf "
                                        "for a neuron without leak")
    return out


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ExportError("nir", "discretization", f"expected 'euler' or 'exact', got {method!r}")


# ============================================================================ export


def to_nir(network: Network, discretization: Discretization = "euler") -> "nir.NIRGraph":
    """The NIR graph of `network` (dt = ``network.dt``); see the module docstring for the mapping.

    Raises ExportError naming the field for what NIR cannot hold (e.g. beta = 1 mixed with leaky
    neurons in one population, a bias on an IF population without incoming projections).
    """
    if not isinstance(network, Network):
        raise ExportError("nir", "network", f"expected a neurosim.Network, got {type(network).__name__}")
    _check_method(discretization)
    dt = network.dt
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    taken = {s.name for s in network.inputs} | {p.name for p in network.populations}
    for src in network.inputs:
        meta: dict[str, Any] = {}
        if isinstance(src, PoissonInput):
            meta[_NS + "poisson_rate"] = np.array(src.rate, dtype=np.float64)
        nodes[src.name] = nir.Input(input_type={"input": np.array([src.size])}, metadata=meta)
    incoming = {p.name for p in network.populations if any(j.post == p.name for j in network.projections)}
    bias_open = {p.name for p in network.populations
                 if p.model.kind != "alif" and np.any(p.params.bias != 0) and p.name in incoming}
    for pop in network.populations:
        nodes[pop.name] = _neuron_node(pop, dt, discretization, bias_via_affine=pop.name in bias_open)
    for proj in network.projections:
        _export_projection(network, proj, nodes, edges, taken, bias_open)
    senders = {(j.pre) for j in network.projections if j.pre != j.post}
    for pop in network.populations:
        if pop.name not in senders:
            out = _unique(f"{pop.name}_out", taken)
            nodes[out] = nir.Output(output_type={"output": np.array([pop.size])})
            edges.append((pop.name, out))
    meta = {
        _NS + "format": "neurosim-nir/1", _NS + "dt": dt, _NS + "discretization": discretization,
        _NS + "name": network.name,
        _NS + "populations": ",".join(p.name for p in network.populations),
        _NS + "inputs": ",".join(s.name for s in network.inputs),
        _NS + "projections": ",".join(j.name for j in network.projections),
    }
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)
    try:
        graph.check_types()
    except ValueError as exc:  # our own shapes disagree: a bug, not a user error
        raise ExportError("nir", "graph", f"NIR type check failed: {exc}") from None
    return graph


def _unique(base: str, taken: set[str]) -> str:
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _export_projection(network: Network, proj: Projection, nodes: dict[str, Any],
                       edges: list[tuple[str, str]], taken: set[str], bias_open: set[str]) -> None:
    """source -> [Delay((d-1)*dt)] -> Linear|Affine -> target, one Linear per distinct delay d."""
    dense = proj.weights.to_dense() if proj.is_sparse else np.asarray(proj.weights)
    dense = np.asarray(dense, dtype=np.float64)
    csr, delays = proj.to_csr()
    groups = sorted({int(d) for d in delays}) or [int(np.min(proj.delay)) if np.size(proj.delay) else 1]
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    n_pre = dense.shape[0]
    for d in groups:
        if len(groups) == 1:
            w = dense
        else:
            w = np.zeros_like(dense)
            m = delays == d
            w[rows[m], csr.indices[m]] = dense[rows[m], csr.indices[m]]
        suffix = "" if len(groups) == 1 else f"_d{d}"
        src = proj.pre
        if d > 1:
            dname = _unique(f"{proj.name}_delay{suffix}", taken)
            nodes[dname] = nir.Delay(delay=np.full(n_pre, (d - 1) * network.dt))
            edges.append((src, dname))
            src = dname
        lname = _unique(f"{proj.name}{suffix}", taken)
        meta = {_NS + "projection": proj.name, _NS + "delay": d, _NS + "sparse": int(proj.is_sparse)}
        if proj.post in bias_open:
            bias_open.discard(proj.post)
            bias = np.array(network.population(proj.post).params.bias, dtype=np.float64)
            nodes[lname] = nir.Affine(weight=w.T.copy(), bias=bias, metadata=meta)
        else:
            nodes[lname] = nir.Linear(weight=w.T.copy(), metadata=meta)
        edges += [(src, lname), (lname, proj.post)]


def _neuron_node(pop: Population, dt: float, method: str, bias_via_affine: bool) -> Any:
    """One NIR neuron node for `pop`, with the neurosim metadata."""
    where = f"populations.{pop.name}.model"
    p = pop.model.per_neuron(pop.size, where)
    n = pop.size
    zeros = np.zeros(n)
    meta: dict[str, Any] = {_NS + "model": pop.model.kind}
    meta.update({_NS + k: np.array(v, dtype=np.float64) for k, v in p.items()})
    if hasattr(pop.model, "reset"):
        meta[_NS + "reset"] = pop.model.reset
    for init in ("v0", "i0", "a0"):
        if np.any(getattr(pop, init) != 0):
            meta[_NS + init] = np.array(getattr(pop, init), dtype=np.float64)
    kind = pop.model.kind
    if kind == "alif":
        return ALIFNode(tau_mem=_taus(p["beta"], dt, method), tau_syn=_taus(p["alpha"], dt, method),
                        tau_adapt=_taus(p["rho"], dt, method), gain=p["gain"], bias=p["bias"],
                        v_threshold=p["theta"], adapt=p["adapt"], adapt_gain=p["adapt_gain"], metadata=meta)
    alpha = p.get("alpha", zeros)
    beta = p.get("beta", np.ones(n))
    gain, bias = p["gain"], p["bias"]
    node_bias = not bias_via_affine and bool(np.any(bias != 0))  # bias must live in the node (v_leak)
    theta = p.get("theta")
    if np.any(alpha >= 1):
        raise ExportError("nir", f"{where}.alpha", "alpha = 1 (no synaptic decay) has no NIR form (tau_syn = inf)")
    if np.all(beta == 1) and np.all(alpha == 0):  # IF / I
        if node_bias:
            raise ExportError("nir", f"{where}.bias", "a bias on a population without incoming projections "
                                                      "needs NIR v_leak, which IF and I nodes lack")
        if kind == "li":
            return nir.I(r=gain.copy(), metadata=meta)
        return nir.IF(r=gain.copy(), v_threshold=theta.copy(), v_reset=zeros, metadata=meta)
    if np.any(beta >= 1):
        raise ExportError("nir", f"{where}.beta", "beta = 1 (no leak) mixed with leaky neurons, or with alpha > 0, "
                                                  "has no NIR form (tau_mem = inf)")
    tau_mem = _taus(beta, dt, method)
    if np.all(alpha == 0):
        r = gain / (1.0 - beta)
        v_leak = zeros
        if node_bias:
            if np.any((r == 0) & (bias != 0)):
                raise ExportError("nir", f"{where}.bias", "a bias with gain 0 has no NIR v_leak form")
            v_leak = r * bias
        if kind == "li":
            return nir.LI(tau=tau_mem, r=r, v_leak=v_leak, metadata=meta)
        return nir.LIF(tau=tau_mem, r=r, v_leak=v_leak, v_threshold=theta.copy(), v_reset=zeros, metadata=meta)
    if node_bias:
        raise ExportError("nir", f"{where}.bias", "a bias on a population with alpha > 0 and no incoming "
                                                  "projection has no NIR form (CubaLIF's v_leak acts on v, not i)")
    kw = dict(tau_syn=_taus(alpha, dt, method), tau_mem=tau_mem, r=1.0 / (1.0 - beta), v_leak=zeros,
              w_in=gain / (1.0 - alpha), metadata=meta)
    if kind == "li":
        return nir.CubaLI(**kw)
    return nir.CubaLIF(v_threshold=theta.copy(), v_reset=zeros, **kw)


def write_nir(network: Network, path: Union[str, "os.PathLike[str]"],
              discretization: Discretization = "euler") -> None:
    """Write ``to_nir(network, discretization)`` to `path` with ``nir.write``, atomically."""
    graph = to_nir(network, discretization)
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)


# ============================================================================ reading files


def read_nir(path: Union[str, "os.PathLike[str]"], dt: float, discretization: Discretization = "euler",
             reset: str = "subtract") -> Network:
    """Read a NIR HDF5 file (ours, with ``neurosim.ALIF`` nodes, or any tool's) as a Network.

    Not HDF5 / no ``/node`` group: FileFormatError naming the file. Content a Network cannot hold:
    ExportError naming the node and field, with the file in the message.
    """
    return from_nir(_read_graph(os.fspath(path)), dt, discretization, reset, source=os.fspath(path))


def _read_graph(path: str) -> "nir.NIRGraph":
    import h5py

    from neurosim.paths import file_problem

    problem = file_problem(path)
    if problem:
        raise FileFormatError(path, "", f"{problem}; expected a NIR HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(path, "", f"not an HDF5 file, so not a NIR file ({exc})") from None
    from neurosim.storage import global_heap_problem

    where = ["node"]
    with f:
        try:
            problem = global_heap_problem(path)  # NIR keeps its strings there; HDF5 can hang on a corrupt one
            if problem:
                raise FileFormatError(path, "", problem)
            link = f.get("node", getlink=True)
            if link is not None and not isinstance(link, h5py.HardLink):
                raise FileFormatError(path, "node",
                                      f"expected a group stored in this file, found a {type(link).__name__}")
            if link is None or not isinstance(f["node"], h5py.Group):
                raise FileFormatError(path, "node", "no /node group: not a NIR file")
            data = _h5_dict(f["node"], "node", path, where)
        except FileFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, OverflowError) as exc:
            raise FileFormatError(path, where[0], f"cannot be read ({type(exc).__name__}: {exc}); "
                                                  "expected an intact NIR file") from None
    return _node_from_dict(data, "node", path)


_MAX_DEPTH = 32  # graphs nest sub-graphs; deeper is not a NIR file


def _h5_dict(group: Any, where: str, path: str, current: list[str], depth: int = 0) -> dict[str, Any]:
    """`group` as nested dicts (what nir.serialization.hdf2dict gives), reading nothing before
    it is checked: members are groups or datasets stored in this file (no soft or external
    links), datasets hold numbers, booleans or strings, and the file stores the data they
    claim. `current[0]` is the object being read, for the error message."""
    import h5py

    from neurosim.storage import storage_problem

    if depth > _MAX_DEPTH:
        raise FileFormatError(path, where, f"groups nested deeper than {_MAX_DEPTH} levels")
    out: dict[str, Any] = {}
    for key in group.keys():
        name = f"{where}/{key}"
        current[0] = name
        link = group.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise FileFormatError(path, name, f"expected data stored in this file, found a {type(link).__name__}")
        item = group[key]
        if isinstance(item, h5py.Group):
            out[key] = _h5_dict(item, name, path, current, depth + 1)
            continue
        if not isinstance(item, h5py.Dataset):
            raise FileFormatError(path, name, f"expected a group or a dataset, found {type(item).__name__}")
        dt = item.dtype
        text = h5py.check_string_dtype(dt) is not None
        if not text and (dt.kind not in "biuf" or dt.names is not None or dt.subdtype is not None):
            raise FileFormatError(path, name, f"expected numbers or strings, got HDF5 data of dtype {dt}")
        problem = storage_problem(item)
        if problem:
            raise FileFormatError(path, name, problem)
        value = item[()]
        out[key] = value.decode("utf8", "replace") if isinstance(value, bytes) else value
    return out


_NIR_TYPES = ("Input", "Output", "Affine", "Linear", "Scale", "Delay", "LIF", "CubaLIF", "IF", "LI",
              "CubaLI", "I", "NIRGraph", "Conv1d", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d", "Threshold")


def _node_from_dict(d: Any, where: str, path: str) -> Any:
    if not isinstance(d, dict) or "type" not in d:
        raise FileFormatError(path, f"{where}/type", "missing node type")
    kind = d["type"]
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    try:
        if kind == "NIRGraph":
            if not isinstance(d.get("nodes"), dict) or "edges" not in d:
                raise FileFormatError(path, where, "a NIRGraph needs 'nodes' and 'edges'")
            nodes = {k: _node_from_dict(v, f"{where}/nodes/{k}", path) for k, v in d["nodes"].items()}
            edges = [(_s(a), _s(b)) for a, b in np.asarray(d["edges"]).reshape(-1, 2)]
            return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(d.get("metadata", {})), type_check=False)
        if kind == ALIF_TYPE:
            return ALIFNode.from_dict(d)
        if kind in _NIR_TYPES:
            kw = {k: v for k, v in d.items() if k not in ("input_type", "output_type")}
            return nir.dict2NIRNode(kw)
    except (FileFormatError, ExportError):
        raise
    except (AssertionError, TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as exc:
        # nir's node constructors assume arrays where a file may hold text or anything else
        raise FileFormatError(path, where, f"cannot read a NIR {kind} node: {exc!r}") from None
    raise ExportError("nir", where.replace("/", ".").removeprefix("node."),
                      f"unsupported node type {kind!r} (neurosim reads {', '.join(_SUPPORTED_NAMES)}) "
                      f"[file {path}]")


def _s(x: Any) -> str:
    return x.decode("utf8") if isinstance(x, bytes) else str(x)


# ============================================================================ import


_SUPPORTED_NAMES = ("Input", "Output", "Affine", "Linear", "Scale", "Delay", "LIF", "CubaLIF", "IF",
                    "LI", "CubaLI", "I", "NIRGraph (flattened)", ALIF_TYPE)


_META_TEXT = ("model", "reset", "projection", "name", "discretization", "format", "populations", "inputs",
              "projections")
_META_SCALAR = ("dt", "sparse", "delay")


def _check_meta(meta: Any, where: str, source: Optional[str]) -> dict[str, Any]:
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
        if not isinstance(key, str) or not key.startswith(_NS):
            continue
        if key[len(_NS):] in _META_TEXT:
            if not isinstance(value, str):
                raise ExportError("nir", f"{where}.metadata.{key}", f"expected text, got {type(value).__name__}{file}")
            continue
        arr = np.asarray(value)
        scalar = key[len(_NS):] in _META_SCALAR
        if arr.dtype.kind not in "biuf" or arr.size == 0 or not np.all(np.isfinite(arr)) or (scalar and arr.ndim):
            wanted = "a finite number" if scalar else "finite numbers"
            raise ExportError("nir", f"{where}.metadata.{key}", f"expected {wanted}, got {_shown(value)}{file}")
    return meta


def _shown(value: Any) -> str:
    arr = np.asarray(value)
    return f"{arr.dtype} of shape {arr.shape}" if arr.ndim else repr(value)[:60]


class _Ctx:
    """Import context: dt, discretisation, default reset, and where errors point."""

    def __init__(self, dt: float, method: str, reset: str, source: Optional[str], gmeta: dict[str, Any]):
        self.dt, self.method, self.reset, self.source = dt, method, reset, source
        file_dt = gmeta.get(_NS + "dt")
        self.file_dt = float(file_dt) if file_dt is not None else None
        self.exact = (self.file_dt == dt and _s(gmeta.get(_NS + "discretization", "")) == method)
        self.identity: set[str] = set()  # Input/Output nodes of inlined sub-graphs

    def is_input(self, name: str, node: Any) -> bool:
        return isinstance(node, nir.Input) and name not in self.identity

    def is_output(self, name: str, node: Any) -> bool:
        return isinstance(node, nir.Output) and name not in self.identity

    def error(self, field: str, message: str) -> ExportError:
        where = f" [file {self.source}]" if self.source else ""
        return ExportError("nir", field, message + where)


def _arr(node: Any, field: str, ctx: _Ctx, name: str) -> np.ndarray:
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


def _neuron_fields(node: Any, fields: Iterable[str], ctx: _Ctx, name: str) -> dict[str, np.ndarray]:
    out = {f: _arr(node, f, ctx, name).reshape(-1) for f in fields}
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


def _leak_bias(f: dict[str, np.ndarray], ctx: _Ctx, name: str) -> np.ndarray:
    """bias = v_leak / r (LIF, LI)."""
    v_leak, r = f["v_leak"], f["r"]
    if np.any((r == 0) & (v_leak != 0)):
        raise ctx.error(f"nodes.{name}.v_leak", "v_leak != 0 with r = 0 cannot be expressed")
    return np.divide(v_leak, r, out=np.zeros_like(v_leak), where=r != 0)


def _no_leak(f: dict[str, np.ndarray], ctx: _Ctx, name: str) -> None:
    if np.any(f["v_leak"] != 0):
        raise ctx.error(f"nodes.{name}.v_leak", "v_leak != 0 on a node with a synaptic current acts on v, "
                                               "not on the input: neurosim cannot express it")


def _import_lif(node: Any, ctx: _Ctx, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("tau", "r", "v_leak", "v_threshold", "v_reset"), ctx, name)
    beta = _decays(f["tau"], ctx.dt, ctx.method, f"nodes.{name}.tau")
    return "lif", dict(beta=beta, alpha=np.zeros_like(beta), theta=f["v_threshold"],
                       gain=f["r"] * (1 - beta), bias=_leak_bias(f, ctx, name))


def _import_cubalif(node: Any, ctx: _Ctx, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("tau_syn", "tau_mem", "r", "w_in", "v_leak", "v_threshold", "v_reset"), ctx, name)
    _no_leak(f, ctx, name)
    alpha = _decays(f["tau_syn"], ctx.dt, ctx.method, f"nodes.{name}.tau_syn")
    beta = _decays(f["tau_mem"], ctx.dt, ctx.method, f"nodes.{name}.tau_mem")
    return "lif", dict(beta=beta, alpha=alpha, theta=f["v_threshold"],
                       gain=f["w_in"] * (1 - alpha) * f["r"] * (1 - beta), bias=np.zeros_like(beta))


def _import_if(node: Any, ctx: _Ctx, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("r", "v_threshold", "v_reset"), ctx, name)
    return "if", dict(theta=f["v_threshold"], gain=f["r"], bias=np.zeros_like(f["r"]))


def _import_li(node: Any, ctx: _Ctx, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("tau", "r", "v_leak"), ctx, name)
    beta = _decays(f["tau"], ctx.dt, ctx.method, f"nodes.{name}.tau")
    return "li", dict(beta=beta, alpha=np.zeros_like(beta), gain=f["r"] * (1 - beta),
                      bias=_leak_bias(f, ctx, name))


def _import_cubali(node: Any, ctx: _Ctx, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("tau_syn", "tau_mem", "r", "w_in", "v_leak"), ctx, name)
    _no_leak(f, ctx, name)
    alpha = _decays(f["tau_syn"], ctx.dt, ctx.method, f"nodes.{name}.tau_syn")
    beta = _decays(f["tau_mem"], ctx.dt, ctx.method, f"nodes.{name}.tau_mem")
    return "li", dict(beta=beta, alpha=alpha, gain=f["w_in"] * (1 - alpha) * f["r"] * (1 - beta),
                      bias=np.zeros_like(beta))


def _import_i(node: Any, ctx: _Ctx, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, ("r",), ctx, name)
    return "li", dict(beta=np.ones_like(f["r"]), alpha=np.zeros_like(f["r"]), gain=f["r"],
                      bias=np.zeros_like(f["r"]))


def _import_alif(node: Any, ctx: _Ctx, name: str) -> tuple[str, dict[str, np.ndarray]]:
    f = _neuron_fields(node, _ALIF_FIELDS, ctx, name)
    return "alif", dict(beta=_decays(f["tau_mem"], ctx.dt, ctx.method, f"nodes.{name}.tau_mem"),
                        alpha=_decays(f["tau_syn"], ctx.dt, ctx.method, f"nodes.{name}.tau_syn"),
                        rho=_decays(f["tau_adapt"], ctx.dt, ctx.method, f"nodes.{name}.tau_adapt"),
                        theta=f["v_threshold"], gain=f["gain"], bias=f["bias"], adapt=f["adapt"],
                        adapt_gain=f["adapt_gain"])


_NEURONS = {nir.LIF: _import_lif, nir.CubaLIF: _import_cubalif, nir.IF: _import_if, nir.LI: _import_li,
            nir.CubaLI: _import_cubali, nir.I: _import_i, ALIFNode: _import_alif}
_TRANSFORMS = (nir.Linear, nir.Affine, nir.Scale, nir.Delay)


def from_nir(graph_or_path: Union["nir.NIRGraph", str, "os.PathLike[str]"], dt: float,
             discretization: Discretization = "euler", reset: str = "subtract", *,
             source: Optional[str] = None) -> Network:
    """A Network from a NIR graph (or a file path, read as by :func:`read_nir`).

    dt: the step in seconds used to discretise every time constant (`discretization`, see the
    module docstring). reset: 'subtract' or 'zero', for spiking nodes without ``neurosim.reset``
    metadata (NIR has no field for it). Unsupported node types, shape mismatches and parameters
    neurosim cannot express raise ExportError naming ``nodes.<node>.<field>``; `source` (a file
    name) is added to those messages.
    """
    if isinstance(graph_or_path, (str, os.PathLike)):
        return read_nir(graph_or_path, dt, discretization, reset)
    _check_method(discretization)
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating)) or not (np.isfinite(dt) and dt > 0):
        raise ExportError("nir", "dt", f"expected a finite time step > 0 in seconds, got {dt!r}")
    if reset not in ("subtract", "zero"):
        raise ExportError("nir", "reset", f"expected 'subtract' or 'zero', got {reset!r}")
    if not isinstance(graph_or_path, nir.NIRGraph):
        raise ExportError("nir", "graph", f"expected a nir.NIRGraph or a path, got {type(graph_or_path).__name__}")
    gmeta = dict(_check_meta(graph_or_path.metadata, "graph", source))
    ctx = _Ctx(float(dt), discretization, reset, source, gmeta)
    nodes, edges = _flatten(graph_or_path, ctx)
    names = _local_names(nodes)
    sizes = _check_shapes(nodes, edges, ctx)
    contributions, biases = _trace(nodes, edges, sizes, ctx)
    pops = [_population(n, node, names[n], biases.get(n), ctx) for n, node in nodes.items()
            if type(node) in _NEURONS]
    inputs = [_input(n, node, names[n], sizes[n], ctx) for n, node in nodes.items() if ctx.is_input(n, node)]
    projs = _projections(contributions, names, nodes, ctx)
    pops = _ordered(pops, gmeta.get(_NS + "populations"))
    inputs = _ordered(inputs, gmeta.get(_NS + "inputs"))
    projs = _ordered(projs, gmeta.get(_NS + "projections"))
    try:
        return Network(dt=float(dt), populations=pops, projections=projs, inputs=inputs,
                       name=_s(gmeta.get(_NS + "name", "nir")))
    except NetworkError as exc:
        raise ctx.error(exc.field, exc.message) from None


def _ordered(items: list[Any], order: Any) -> list[Any]:
    if order is None:
        return items
    rank = {n: k for k, n in enumerate(_s(order).split(",")) if n}
    return sorted(items, key=lambda it: rank.get(it.name, len(rank)))


# ---------------------------------------------------------------- graph structure


def _flatten(graph: "nir.NIRGraph", ctx: _Ctx) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Inline sub-graphs: their Input/Output nodes become identity pass-throughs named
    ``<sub>.<node>``; top-level Input/Output keep their role."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}
    exit_: dict[str, list[str]] = {}

    def add(g: "nir.NIRGraph", prefix: str) -> None:
        for name, node in g.nodes.items():
            full = f"{prefix}{name}"
            if isinstance(node, nir.NIRGraph):
                add(node, full + ".")
                entry[full] = [f"{full}.{k}" for k, v in node.nodes.items() if isinstance(v, nir.Input)]
                exit_[full] = [f"{full}.{k}" for k, v in node.nodes.items() if isinstance(v, nir.Output)]
                for role, ends in (("Input", entry[full]), ("Output", exit_[full])):
                    if len(ends) != 1:
                        raise ctx.error(f"nodes.{full}", f"a sub-graph needs exactly one {role} node, has {len(ends)}")
                ctx.identity.update(entry[full] + exit_[full])
            elif type(node) in _NEURONS or isinstance(node, _TRANSFORMS + (nir.Input, nir.Output)):
                _check_meta(getattr(node, "metadata", None), f"nodes.{full}", ctx.source)
                nodes[full] = node
            else:
                raise ctx.error(f"nodes.{full}", f"unsupported node type {_type_name(node)!r} "
                                                 f"(neurosim reads {', '.join(_SUPPORTED_NAMES)})")
        for a, b in g.edges:
            a, b = _s(a), _s(b)
            for end in (a, b):
                if end not in g.nodes:
                    raise ctx.error(f"edges.({prefix}{a} -> {prefix}{b})", f"no node named {prefix}{end!r}")
            edges.append((f"{prefix}{a}", f"{prefix}{b}"))

    add(graph, "")
    resolved = []
    for a, b in edges:
        a = exit_[a][0] if a in exit_ else a
        b = entry[b][0] if b in entry else b
        resolved.append((a, b))
    return nodes, resolved


def _type_name(node: Any) -> str:
    return ALIF_TYPE if isinstance(node, ALIFNode) else type(node).__name__


def _local_names(nodes: dict[str, Any]) -> dict[str, str]:
    """neurosim names for NIR node names: invalid characters become '_', clashes get a suffix."""
    taken: set[str] = set()
    out = {}
    for n in nodes:
        base = n if _NAME.match(n) else "".join(c if c.isalnum() or c in "_-" else "_" for c in n)[:60]
        if not base or not (base[0].isalpha() or base[0] == "_"):
            base = "_" + base
        out[n] = _unique(base, taken)
    return out


def _shape_size(name: str, node: Any, key: str, ctx: _Ctx) -> Optional[int]:
    """Values an Input or Output node passes: the product of its shape (whole numbers >= 1,
    at most 2**31 - 1 in all); None without a shape."""
    t = (node.input_type if key == "input" else node.output_type) or {}
    shape = t.get(key)
    if shape is None:
        return None
    dims = np.asarray(shape).reshape(-1)
    if dims.dtype.kind not in "iuf" or not np.all(np.isfinite(dims)) or np.any(dims != np.round(dims)) \
            or np.any(dims < 1) or math.prod(int(d) for d in dims) >= 2**31:
        raise ctx.error(f"nodes.{name}.shape", f"expected whole numbers >= 1 of at most 2**31 - 1 values in all, "
                                               f"got {_shown(shape)}")
    return math.prod(int(d) for d in dims)


def _in_size(name: str, node: Any, ctx: _Ctx) -> Optional[int]:
    """Size a node expects on its input (None: takes whatever comes, identity pass-through)."""
    if type(node) in _NEURONS:
        return _neuron_size(name, node, ctx)
    if isinstance(node, (nir.Linear, nir.Affine)):
        return _weight(name, node, ctx).shape[1]
    if isinstance(node, nir.Scale):
        return _arr(node, "scale", ctx, name).size
    if isinstance(node, nir.Delay):
        return _arr(node, "delay", ctx, name).size
    if ctx.is_output(name, node):
        return _shape_size(name, node, "input", ctx)
    return None


def _neuron_size(name: str, node: Any, ctx: _Ctx) -> int:
    field = "r" if isinstance(node, (nir.I, nir.LI, nir.CubaLI)) else "v_threshold"
    return _arr(node, field, ctx, name).size


def _weight(name: str, node: Any, ctx: _Ctx) -> np.ndarray:
    w = _arr(node, "weight", ctx, name)
    if w.ndim != 2:
        raise ctx.error(f"nodes.{name}.weight", f"expected a 2-D (out, in) matrix, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ctx.error(f"nodes.{name}.weight", "expected finite values")
    if isinstance(node, nir.Affine):
        b = _arr(node, "bias", ctx, name).reshape(-1)
        if b.size != w.shape[0] or not np.all(np.isfinite(b)):
            raise ctx.error(f"nodes.{name}.bias", f"expected {w.shape[0]} finite values, got shape {b.shape}")
    return w


def _check_shapes(nodes: dict[str, Any], edges: list[tuple[str, str]], ctx: _Ctx) -> dict[str, int]:
    """Output size of every node, checking that every edge joins equal sizes."""
    out: dict[str, int] = {}
    for n, node in nodes.items():
        if ctx.is_input(n, node):
            size = _shape_size(n, node, "input", ctx)
            if size is None:
                raise ctx.error(f"nodes.{n}.shape", "an Input node needs a shape")
            out[n] = size
        elif isinstance(node, (nir.Linear, nir.Affine)):
            out[n] = _weight(n, node, ctx).shape[0]
        elif not n in ctx.identity and not ctx.is_output(n, node):
            out[n] = _in_size(n, node, ctx)  # type: ignore[assignment]
    pending = [(a, b) for a, b in edges]
    for _ in range(len(nodes) + 1):  # identity nodes take their size from their inputs
        rest = []
        for a, b in pending:
            if a not in out:
                rest.append((a, b))
                continue
            want = _in_size(b, nodes[b], ctx)
            if b in ctx.identity:
                want = out.setdefault(b, out[a])
            if ctx.is_input(b, nodes[b]):
                raise ctx.error(f"edges.({a} -> {b})", "an edge into a graph Input node")
            if want is not None and want != out[a]:
                raise ctx.error(f"nodes.{b}", f"shape mismatch on edge {a} -> {b}: {a} gives {out[a]} values, "
                                              f"{b} ({_type_name(nodes[b])}) expects {want}")
        if len(rest) == len(pending):
            break
        pending = rest
    return out


# ---------------------------------------------------------------- paths -> projections


@dataclass
class _Path:
    source: str
    target: str
    weights: np.ndarray  # (n_source, n_target)
    delays: np.ndarray  # (n_source, n_target) whole steps >= 1
    last: str  # last weight node on the path (names the projection)
    meta: dict[str, Any]


def _delay_steps(name: str, node: Any, ctx: _Ctx) -> np.ndarray:
    sec = _arr(node, "delay", ctx, name).reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = sec / ctx.dt
    if sec.size and not (np.all(np.isfinite(ratio)) and ratio.max() <= MAX_DELAY):
        raise ctx.error(f"nodes.{name}.delay", f"delays up to {sec.max():g} s are {ratio.max():.3g} steps at "
                                               f"dt = {ctx.dt:g} s, more than the {MAX_DELAY} steps of a neurosim "
                                               f"delay; {_CHECK_DT}")
    steps = np.round(ratio)
    if np.any(sec < 0) or np.any(np.abs(ratio - steps) > 1e-6 * np.maximum(1, steps)):
        raise ctx.error(f"nodes.{name}.delay", f"expected whole multiples >= 0 of dt = {ctx.dt} s, got {sec.min()}..{sec.max()} s")
    return steps.astype(np.int64)


def _trace(nodes: dict[str, Any], edges: list[tuple[str, str]], sizes: dict[str, int],
           ctx: _Ctx) -> tuple[list[_Path], dict[str, np.ndarray]]:
    """Every path from a spike source (Input, neuron) through weight/scale/delay nodes to a neuron,
    and the biases of Affine nodes carried to the neurons they reach."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    paths: list[_Path] = []

    def walk(src: str, at: str, w: Optional[np.ndarray], d_src: np.ndarray, d_cur: Optional[np.ndarray],
             last: str, meta: dict[str, Any], seen: tuple[str, ...], via: str = "") -> None:
        # w: (n_source, n_here) weights so far, None while still the identity; via: last transform node
        for nxt in succ[at]:
            node = nodes[nxt]
            if type(node) in _NEURONS:
                ww = np.eye(sizes[src]) if w is None else w
                post = np.zeros(ww.shape[1], np.int64) if d_cur is None else d_cur
                paths.append(_Path(src, nxt, ww, 1 + d_src[:, None] + post[None, :], last, meta))
                continue
            if ctx.is_output(nxt, node):
                if via:
                    raise ctx.error(f"nodes.{via}", f"{_type_name(nodes[via])} feeds Output {nxt!r} without a neuron "
                                                   "in between; neurosim records neuron populations only")
                continue
            if nxt in seen:
                raise ctx.error(f"nodes.{nxt}", "a cycle through weight/scale/delay nodes only (no neuron)")
            nw, nds, ndc, nlast, nmeta = w, d_src, d_cur, last, meta
            if isinstance(node, (nir.Linear, nir.Affine)):
                if d_cur is not None and np.any(d_cur != d_cur[0]):
                    raise ctx.error(f"nodes.{nxt}", "per-neuron delays between two weight nodes cannot be expressed")
                a = _weight(nxt, node, ctx).T
                nw = a.copy() if w is None else w @ a
                ndc = np.full(nw.shape[1], 0 if d_cur is None else int(d_cur[0]), np.int64)
                nlast, nmeta = nxt, dict(node.metadata or {})
            elif isinstance(node, nir.Scale):
                scale = _arr(node, "scale", ctx, nxt).reshape(-1)
                nw = np.diag(scale) if w is None else w * scale[None, :]
            elif isinstance(node, nir.Delay):
                k = _delay_steps(nxt, node, ctx)
                nds, ndc = (d_src + k, None) if d_cur is None else (d_src, d_cur + k)
            walk(src, nxt, nw, nds, ndc, nlast, nmeta, seen + (nxt,), via if nxt in ctx.identity else nxt)

    for n, node in nodes.items():
        if ctx.is_input(n, node) or type(node) in _NEURONS:
            walk(n, n, None, np.zeros(sizes[n], np.int64), None, "", {}, (n,))
    return paths, _biases(nodes, succ, ctx)


def _biases(nodes: dict[str, Any], succ: dict[str, list[str]], ctx: _Ctx) -> dict[str, np.ndarray]:
    """Affine biases carried forward to the neurons they reach (a constant input from step 0)."""
    out: dict[str, np.ndarray] = {}

    def carry(origin: str, at: str, b: np.ndarray) -> None:
        for nxt in succ[at]:
            node = nodes[nxt]
            if type(node) in _NEURONS:
                out[nxt] = out.get(nxt, 0.0) + b
            elif isinstance(node, (nir.Linear, nir.Affine)):
                carry(origin, nxt, _weight(nxt, node, ctx) @ b)
            elif isinstance(node, nir.Scale):
                carry(origin, nxt, b * _arr(node, "scale", ctx, nxt).reshape(-1))
            elif isinstance(node, nir.Delay):
                if np.any(_delay_steps(nxt, node, ctx) != 0):
                    raise ctx.error(f"nodes.{origin}.bias", f"the bias passes through Delay {nxt!r}; a delayed "
                                                            "constant cannot be expressed (neurosim biases act from step 0)")
                carry(origin, nxt, b)
            elif nxt in ctx.identity:
                carry(origin, nxt, b)

    for n, node in nodes.items():
        if isinstance(node, nir.Affine):
            b = _arr(node, "bias", ctx, n).reshape(-1)
            if np.any(b != 0):
                carry(n, n, b)
    return out


def _projections(paths: list[_Path], names: dict[str, str], nodes: dict[str, Any], ctx: _Ctx) -> list[Projection]:
    """One projection per path; paths written by neurosim for one projection (same
    ``neurosim.projection``, disjoint synapses) are merged back with per-synapse delays."""
    groups: list[list[_Path]] = []
    for p in paths:
        key = _s(p.meta.get(_NS + "projection", "")) or None
        for g in groups:
            q = g[0]
            if (key and _s(q.meta.get(_NS + "projection", "")) == key and (q.source, q.target) == (p.source, p.target)
                    and not np.any(sum((x.weights != 0) for x in g) & (p.weights != 0))):
                g.append(p)
                break
        else:
            groups.append([p])
    taken: set[str] = set()
    out = []
    for g in groups:
        w = sum(p.weights for p in g)
        d = np.ones(w.shape, np.int64)
        for p in g:
            d = np.where(p.weights != 0, p.delays, d)
        nz = w != 0
        if len(g) == 1 and not np.any(nz):
            d = g[0].delays
        uniform = d[nz] if np.any(nz) else d.reshape(-1)
        delay: Any = int(uniform[0]) if np.all(uniform == uniform[0]) else d
        meta = g[0].meta
        base = _s(meta.get(_NS + "projection", "")) or (names[g[0].last] if g[0].last else
                                                       f"{names[g[0].source]}_to_{names[g[0].target]}")
        weights: Any = w
        if int(meta.get(_NS + "sparse", 0)):
            weights = CSR.from_dense(w)
            if not isinstance(delay, int):
                rows = np.repeat(np.arange(w.shape[0]), np.diff(weights.indptr))
                delay = d[rows, weights.indices]
        try:
            out.append(Projection(_unique(base, taken), names[g[0].source], names[g[0].target], weights, delay))
        except NetworkError as exc:
            raise ctx.error(f"nodes.{g[0].last or g[0].target}", exc.message) from None
    return out


# ---------------------------------------------------------------- nodes -> populations, inputs


def _input(name: str, node: Any, local: str, size: int, ctx: _Ctx) -> Any:
    rate = (node.metadata or {}).get(_NS + "poisson_rate")
    try:
        if rate is not None:
            return PoissonInput(local, size, rate=np.asarray(rate, dtype=np.float64))
        return SpikeInput(local, size)
    except NetworkError as exc:
        raise ctx.error(f"nodes.{name}.metadata.{_NS}poisson_rate" if rate is not None else f"nodes.{name}",
                        exc.message) from None


def _population(name: str, node: Any, local: str, bias: Optional[np.ndarray], ctx: _Ctx) -> Population:
    kind, params = _NEURONS[type(node)](node, ctx, name)
    if bias is not None:
        params["bias"] = params["bias"] + bias
    meta = dict(node.metadata or {})
    n = next(iter(params.values())).size
    wanted = _s(meta.get(_NS + "model", kind))
    if wanted != kind:
        if (kind, wanted) != ("if", "lif"):
            raise ctx.error(f"nodes.{name}.metadata.{_NS}model", f"{wanted!r} does not match a NIR {_type_name(node)} node")
        kind = "lif"
        params.update(beta=np.ones(n), alpha=np.zeros(n))
    if ctx.exact:
        for key, value in params.items():
            stored = meta.get(_NS + key)
            if stored is None:
                continue
            stored = np.asarray(stored, dtype=np.float64).reshape(-1)
            if stored.shape != value.shape or not np.allclose(stored, value, **_AGREE):
                raise ctx.error(f"nodes.{name}.metadata.{_NS}{key}",
                                "disagrees with the NIR fields (the file was edited?); remove the neurosim.* "
                                "metadata to use the NIR fields alone")
            params[key] = stored
    if kind in ("lif", "alif", "if"):
        params["refractory"] = _refractory(meta, n, ctx, name)
    reset = _s(meta.get(_NS + "reset", ctx.reset))
    try:
        model = model_from_params(kind, {k: _scalar(v) for k, v in params.items()}, reset,
                                  where=f"nodes.{name}")
        init = {k: np.asarray(meta.get(_NS + k, 0.0), dtype=np.float64) for k in ("v0", "i0", "a0")}
        return Population(local, n, model, **init)
    except NetworkError as exc:
        raise ctx.error(exc.field if exc.field.startswith("nodes.") else f"nodes.{name}", exc.message) from None


def _refractory(meta: dict[str, Any], n: int, ctx: _Ctx, name: str) -> np.ndarray:
    raw = np.asarray(meta.get(_NS + "refractory", 0.0), dtype=np.float64)
    if raw.ndim and raw.shape != (n,):
        raise ctx.error(f"nodes.{name}.metadata.{_NS}refractory",
                        f"expected a number or {n} numbers, got shape {raw.shape}")
    steps = raw * np.ones(n)
    if ctx.file_dt is None or ctx.file_dt == ctx.dt:
        return steps
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = steps * ctx.file_dt / ctx.dt
    if not np.all(np.isfinite(scaled)) or np.any(scaled > 2**53):
        raise ctx.error(f"nodes.{name}.metadata.{_NS}refractory",
                        f"refractory periods of {steps.max()} steps at dt = {ctx.file_dt} are {scaled.max():.3g} "
                        f"steps at dt = {ctx.dt:g} s, more than whole steps can count; {_CHECK_DT}")
    if np.any(np.abs(scaled - np.round(scaled)) > 1e-6):
        raise ctx.error(f"nodes.{name}.metadata.{_NS}refractory",
                        f"refractory periods of {steps.max()} steps at dt = {ctx.file_dt} are not whole steps at dt = {ctx.dt}")
    return np.round(scaled)


def _scalar(v: np.ndarray) -> Any:
    """Uniform arrays become one number (what a user would write); others stay per neuron."""
    v = np.asarray(v, dtype=np.float64)
    return float(v[0]) if v.size and np.all(v == v[0]) else v
