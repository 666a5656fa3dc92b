"""NIR import of a graph: sub-graphs inlined, shapes checked, every path from a spike source
through weight, scale and delay nodes to a neuron turned into a projection."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Optional, Union

import nir
import numpy as np

from neurosim.errors import ExportError, NetworkError
from neurosim.models import Discretization
from neurosim.network import CSR, MAX_DELAY, NAME_PATTERN, Network, Projection

from .common import CHECK_DT, NS, SUPPORTED_NAMES, as_text, check_method, type_name, unique_name
from .nir_file import read_graph
from .nodes_import import NEURON_IMPORTERS, ImportContext, check_meta, make_input, make_population, node_array, shown


def read_nir(path: Union[str, "os.PathLike[str]"], dt: float, discretization: Discretization = "euler",
             reset: str = "subtract") -> Network:
    """Read a NIR HDF5 file (ours, with ``neurosim.ALIF`` nodes, or any tool's) as a Network.

    Not HDF5 / no ``/node`` group: FileFormatError naming the file. Content a Network cannot hold:
    ExportError naming the node and field, with the file in the message.
    """
    return from_nir(read_graph(os.fspath(path)), dt, discretization, reset, source=os.fspath(path))


_TRANSFORMS = (nir.Linear, nir.Affine, nir.Scale, nir.Delay)


def from_nir(graph_or_path: Union["nir.NIRGraph", str, "os.PathLike[str]"], dt: float,
             discretization: Discretization = "euler", reset: str = "subtract", *,
             source: Optional[str] = None) -> Network:
    """A Network from a NIR graph (or a file path, read as by :func:`read_nir`).

    dt: the step in seconds used to discretise every time constant (`discretization`, see
    :mod:`mapping.nir_graph`). reset: 'subtract' or 'zero', for spiking nodes without
    ``neurosim.reset`` metadata (NIR has no field for it). Unsupported node types, shape mismatches and parameters
    neurosim cannot express raise ExportError naming ``nodes.<node>.<field>``; `source` (a file
    name) is added to those messages.
    """
    if isinstance(graph_or_path, (str, os.PathLike)):
        return read_nir(graph_or_path, dt, discretization, reset)
    check_method(discretization)
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating)) or not (np.isfinite(dt) and dt > 0):
        raise ExportError("nir", "dt", f"expected a finite time step > 0 in seconds, got {dt!r}")
    if reset not in ("subtract", "zero"):
        raise ExportError("nir", "reset", f"expected 'subtract' or 'zero', got {reset!r}")
    if not isinstance(graph_or_path, nir.NIRGraph):
        raise ExportError("nir", "graph", f"expected a nir.NIRGraph or a path, got {type(graph_or_path).__name__}")
    gmeta = dict(check_meta(graph_or_path.metadata, "graph", source))
    ctx = ImportContext(float(dt), discretization, reset, source, gmeta)
    nodes, edges = _flatten(graph_or_path, ctx)
    names = _local_names(nodes)
    sizes = _check_shapes(nodes, edges, ctx)
    contributions, biases = _trace(nodes, edges, sizes, ctx)
    pops = [make_population(n, node, names[n], biases.get(n), ctx) for n, node in nodes.items()
            if type(node) in NEURON_IMPORTERS]
    inputs = [make_input(n, node, names[n], sizes[n], ctx) for n, node in nodes.items() if ctx.is_input(n, node)]
    projs = _projections(contributions, names, nodes, ctx)
    pops = _ordered(pops, gmeta.get(NS + "populations"))
    inputs = _ordered(inputs, gmeta.get(NS + "inputs"))
    projs = _ordered(projs, gmeta.get(NS + "projections"))
    try:
        return Network(dt=float(dt), populations=pops, projections=projs, inputs=inputs,
                       name=as_text(gmeta.get(NS + "name", "nir")))
    except NetworkError as exc:
        raise ctx.error(exc.field, exc.message) from None


def _ordered(items: list[Any], order: Any) -> list[Any]:
    if order is None:
        return items
    rank = {n: k for k, n in enumerate(as_text(order).split(",")) if n}
    return sorted(items, key=lambda it: rank.get(it.name, len(rank)))


# ---------------------------------------------------------------- graph structure


def _flatten(graph: "nir.NIRGraph", ctx: ImportContext) -> tuple[dict[str, Any], list[tuple[str, str]]]:
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
            elif type(node) in NEURON_IMPORTERS or isinstance(node, _TRANSFORMS + (nir.Input, nir.Output)):
                check_meta(getattr(node, "metadata", None), f"nodes.{full}", ctx.source)
                nodes[full] = node
            else:
                raise ctx.error(f"nodes.{full}", f"unsupported node type {type_name(node)!r} "
                                                 f"(neurosim reads {', '.join(SUPPORTED_NAMES)})")
        for a, b in g.edges:
            a, b = as_text(a), as_text(b)
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


def _local_names(nodes: dict[str, Any]) -> dict[str, str]:
    """neurosim names for NIR node names: invalid characters become '_', clashes get a suffix."""
    taken: set[str] = set()
    out = {}
    for n in nodes:
        base = n if NAME_PATTERN.match(n) else "".join(c if c.isalnum() or c in "_-" else "_" for c in n)[:60]
        if not base or not (base[0].isalpha() or base[0] == "_"):
            base = "_" + base
        out[n] = unique_name(base, taken)
    return out


def _shape_size(name: str, node: Any, key: str, ctx: ImportContext) -> Optional[int]:
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
                                               f"got {shown(shape)}")
    return math.prod(int(d) for d in dims)


def _in_size(name: str, node: Any, ctx: ImportContext) -> Optional[int]:
    """Size a node expects on its input (None: takes whatever comes, identity pass-through)."""
    if type(node) in NEURON_IMPORTERS:
        return _neuron_size(name, node, ctx)
    if isinstance(node, (nir.Linear, nir.Affine)):
        return _weight(name, node, ctx).shape[1]
    if isinstance(node, nir.Scale):
        return node_array(node, "scale", ctx, name).size
    if isinstance(node, nir.Delay):
        return node_array(node, "delay", ctx, name).size
    if ctx.is_output(name, node):
        return _shape_size(name, node, "input", ctx)
    return None


def _neuron_size(name: str, node: Any, ctx: ImportContext) -> int:
    field = "r" if isinstance(node, (nir.I, nir.LI, nir.CubaLI)) else "v_threshold"
    return node_array(node, field, ctx, name).size


def _weight(name: str, node: Any, ctx: ImportContext) -> np.ndarray:
    w = node_array(node, "weight", ctx, name)
    if w.ndim != 2:
        raise ctx.error(f"nodes.{name}.weight", f"expected a 2-D (out, in) matrix, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ctx.error(f"nodes.{name}.weight", "expected finite values")
    if isinstance(node, nir.Affine):
        b = node_array(node, "bias", ctx, name).reshape(-1)
        if b.size != w.shape[0] or not np.all(np.isfinite(b)):
            raise ctx.error(f"nodes.{name}.bias", f"expected {w.shape[0]} finite values, got shape {b.shape}")
    return w


def _check_shapes(nodes: dict[str, Any], edges: list[tuple[str, str]], ctx: ImportContext) -> dict[str, int]:
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
                                              f"{b} ({type_name(nodes[b])}) expects {want}")
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


def _delay_steps(name: str, node: Any, ctx: ImportContext) -> np.ndarray:
    sec = node_array(node, "delay", ctx, name).reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = sec / ctx.dt
    if sec.size and not (np.all(np.isfinite(ratio)) and ratio.max() <= MAX_DELAY):
        raise ctx.error(f"nodes.{name}.delay", f"delays up to {sec.max():g} s are {ratio.max():.3g} steps at "
                                               f"dt = {ctx.dt:g} s, more than the {MAX_DELAY} steps of a neurosim "
                                               f"delay; {CHECK_DT}")
    steps = np.round(ratio)
    if np.any(sec < 0) or np.any(np.abs(ratio - steps) > 1e-6 * np.maximum(1, steps)):
        raise ctx.error(f"nodes.{name}.delay", f"expected whole multiples >= 0 of dt = {ctx.dt} s, got {sec.min()}..{sec.max()} s")
    return steps.astype(np.int64)


def _trace(nodes: dict[str, Any], edges: list[tuple[str, str]], sizes: dict[str, int],
           ctx: ImportContext) -> tuple[list[_Path], dict[str, np.ndarray]]:
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
            if type(node) in NEURON_IMPORTERS:
                ww = np.eye(sizes[src]) if w is None else w
                post = np.zeros(ww.shape[1], np.int64) if d_cur is None else d_cur
                paths.append(_Path(src, nxt, ww, 1 + d_src[:, None] + post[None, :], last, meta))
                continue
            if ctx.is_output(nxt, node):
                if via:
                    raise ctx.error(f"nodes.{via}", f"{type_name(nodes[via])} feeds Output {nxt!r} without a neuron "
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
                scale = node_array(node, "scale", ctx, nxt).reshape(-1)
                nw = np.diag(scale) if w is None else w * scale[None, :]
            elif isinstance(node, nir.Delay):
                k = _delay_steps(nxt, node, ctx)
                nds, ndc = (d_src + k, None) if d_cur is None else (d_src, d_cur + k)
            walk(src, nxt, nw, nds, ndc, nlast, nmeta, seen + (nxt,), via if nxt in ctx.identity else nxt)

    for n, node in nodes.items():
        if ctx.is_input(n, node) or type(node) in NEURON_IMPORTERS:
            walk(n, n, None, np.zeros(sizes[n], np.int64), None, "", {}, (n,))
    return paths, _biases(nodes, succ, ctx)


def _biases(nodes: dict[str, Any], succ: dict[str, list[str]], ctx: ImportContext) -> dict[str, np.ndarray]:
    """Affine biases carried forward to the neurons they reach (a constant input from step 0)."""
    out: dict[str, np.ndarray] = {}

    def carry(origin: str, at: str, b: np.ndarray) -> None:
        for nxt in succ[at]:
            node = nodes[nxt]
            if type(node) in NEURON_IMPORTERS:
                out[nxt] = out.get(nxt, 0.0) + b
            elif isinstance(node, (nir.Linear, nir.Affine)):
                carry(origin, nxt, _weight(nxt, node, ctx) @ b)
            elif isinstance(node, nir.Scale):
                carry(origin, nxt, b * node_array(node, "scale", ctx, nxt).reshape(-1))
            elif isinstance(node, nir.Delay):
                if np.any(_delay_steps(nxt, node, ctx) != 0):
                    raise ctx.error(f"nodes.{origin}.bias", f"the bias passes through Delay {nxt!r}; a delayed "
                                                            "constant cannot be expressed (neurosim biases act from step 0)")
                carry(origin, nxt, b)
            elif nxt in ctx.identity:
                carry(origin, nxt, b)

    for n, node in nodes.items():
        if isinstance(node, nir.Affine):
            b = node_array(node, "bias", ctx, n).reshape(-1)
            if np.any(b != 0):
                carry(n, n, b)
    return out


def _projections(paths: list[_Path], names: dict[str, str], nodes: dict[str, Any], ctx: ImportContext) -> list[Projection]:
    """One projection per path; paths written by neurosim for one projection (same
    ``neurosim.projection``, disjoint synapses) are merged back with per-synapse delays."""
    groups: list[list[_Path]] = []
    for p in paths:
        key = as_text(p.meta.get(NS + "projection", "")) or None
        for g in groups:
            q = g[0]
            if (key and as_text(q.meta.get(NS + "projection", "")) == key and (q.source, q.target) == (p.source, p.target)
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
        base = as_text(meta.get(NS + "projection", "")) or (names[g[0].last] if g[0].last else
                                                       f"{names[g[0].source]}_to_{names[g[0].target]}")
        weights: Any = w
        if int(meta.get(NS + "sparse", 0)):
            weights = CSR.from_dense(w)
            if not isinstance(delay, int):
                rows = np.repeat(np.arange(w.shape[0]), np.diff(weights.indptr))
                delay = d[rows, weights.indices]
        try:
            out.append(Projection(unique_name(base, taken), names[g[0].source], names[g[0].target], weights, delay))
        except NetworkError as exc:
            raise ctx.error(f"nodes.{g[0].last or g[0].target}", exc.message) from None
    return out
