"""NIR import of a graph: sub-graphs inlined, shapes checked, every path from a spike source
through weight, scale and delay nodes to a neuron turned into a projection."""
from __future__ import annotations

import math
import os
from typing import Any, Optional, Union

import nir
import numpy as np

from neurosim.errors import ExportError, NetworkError
from neurosim.h5read import Budget
from neurosim.h5read import memory_budget as budget_bytes
from neurosim.models import Discretization
from neurosim.network import NAME_PATTERN, Network

from .common import NS, SUPPORTED_NAMES, ALIFNode, as_text, check_method, type_name, unique_name
from .conventions import resolve
from .conv_import import infer_shapes, with_shapes
from .conv_nodes import SHAPED_TYPES
from .graph_shape import broadcast_scalars, linear_readouts
from .nir_file import read_graph
from .nodes_import import NEURON_IMPORTERS, ImportContext, ReadoutNode, check_meta, make_input, make_population, node_array, shown
from .propagate import biases, projections, trace, weight_matrix
from .timing import first_input_biases, late_resets


def read_nir(path: Union[str, "os.PathLike[str]"], dt: Optional[float] = None,
             discretization: Optional[Discretization] = None, reset: Optional[str] = None, *,
             convention: Optional[str] = None, notes: Optional[list[str]] = None,
             memory_budget: Budget = None) -> Network:
    """Read a NIR HDF5 file (ours, with ``neurosim.ALIF`` nodes, or any tool's) as a Network.

    `convention` names the tool that wrote it (:data:`mapping.nir_graph.conventions.CONVENTIONS`);
    see :func:`from_nir`. Not HDF5 / no ``/node`` group: FileFormatError naming the file. Content
    a Network cannot hold: ExportError naming the node and field, with the file in the message.
    `memory_budget` (bytes): data and dense matrices beyond it are refused before they are
    allocated (default ``NEUROSIM_MEMORY_BUDGET``, else a quarter of the available memory).
    """
    return from_nir(read_graph(os.fspath(path), memory_budget), dt, discretization, reset, convention=convention,
                    notes=notes, source=os.fspath(path), memory_budget=memory_budget)


_TRANSFORMS = (nir.Linear, nir.Affine, nir.Scale, nir.Delay, *SHAPED_TYPES)


def from_nir(graph_or_path: Union["nir.NIRGraph", str, "os.PathLike[str]"], dt: Optional[float] = None,
             discretization: Optional[Discretization] = None, reset: Optional[str] = None, *,
             convention: Optional[str] = None, notes: Optional[list[str]] = None,
             source: Optional[str] = None, memory_budget: Budget = None) -> Network:
    """A Network from a NIR graph (or a file path, read as by :func:`read_nir`).

    The convention (dt, discretisation, reset rule, bias timing, Cuba order; see
    :mod:`mapping.nir_graph.conventions`) is, in this order: `convention` (a name); the file's own
    (our ``neurosim.dt`` metadata: dt must then equal the file's, else ExportError, since its
    delays and refractory periods are whole steps of it); or `dt` with `reset` given one by one.
    Otherwise ExportError asks for the convention in one line. `dt`, `discretization` and `reset`
    given with a convention override its fields. One line saying which convention was used and
    why is appended to `notes`. Unsupported node types, shape mismatches and parameters neurosim
    cannot express raise ExportError naming ``nodes.<node>.<field>``; `source` (a file name) is
    added to those messages. Parameters of shape () or (1,) are broadcast to the layer; an
    Affine/Linear feeding an Output becomes a linear readout population.
    """
    if isinstance(graph_or_path, (str, os.PathLike)):
        return read_nir(graph_or_path, dt, discretization, reset, convention=convention, notes=notes,
                        memory_budget=memory_budget)
    if discretization is not None:
        check_method(discretization)
    if dt is not None and (isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating))
                           or not (np.isfinite(dt) and dt > 0)):
        raise ExportError("nir", "dt", f"expected a finite time step > 0 in seconds, got {dt!r}")
    if reset not in (None, "subtract", "zero", "late_subtract"):
        raise ExportError("nir", "reset", f"expected 'subtract', 'zero' or 'late_subtract', got {reset!r}")
    if not isinstance(graph_or_path, nir.NIRGraph):
        raise ExportError("nir", "graph", f"expected a nir.NIRGraph or a path, got {type(graph_or_path).__name__}")
    gmeta = dict(check_meta(graph_or_path.metadata, "graph", source))
    conv, note = resolve(gmeta, convention, dt, discretization, reset, _has_spiking(graph_or_path))
    if notes is not None:
        notes.append(note)
    ctx = ImportContext(conv, source, gmeta)
    try:
        ctx.budget = budget_bytes(memory_budget)
    except ValueError as exc:
        raise ExportError("nir", "memory_budget", str(exc)) from None
    nodes, edges = _flatten(graph_or_path, ctx)
    nodes, edges = linear_readouts(nodes, edges, ctx)
    infer_shapes(nodes, edges, ctx)
    nodes = broadcast_scalars(nodes, edges, ctx)
    names = _local_names(nodes)
    sizes = _check_shapes(nodes, edges, ctx)
    contributions, bias = trace(nodes, edges, sizes, ctx), biases(nodes, edges, ctx)
    pops = [make_population(n, node, names[n], bias.get(n), ctx) for n, node in nodes.items()
            if type(node) in NEURON_IMPORTERS]
    inputs = [make_input(n, node, names[n], sizes[n], ctx) for n, node in nodes.items() if ctx.is_input(n, node)]
    projs = projections(contributions, names, ctx)
    pops, inputs = with_shapes(pops, inputs, {names[n]: s for n, s in ctx.shapes.items()}, ctx)
    pops = _ordered(pops, gmeta.get(NS + "populations"))
    inputs = _ordered(inputs, gmeta.get(NS + "inputs"))
    projs = _ordered(projs, gmeta.get(NS + "projections"))
    try:
        net = Network(dt=float(conv.dt), populations=pops, projections=projs, inputs=inputs,  # type: ignore[arg-type]
                      name=as_text(gmeta.get(NS + "name", "nir")))
        net = late_resets(net, {names[n] for n in ctx.late})
        if conv.bias == "first_input":
            net, clock = first_input_biases(net, {names[n]: k for n, k in ctx.lag.items()})
            if clock and notes is not None:
                notes.append(f"biases start with each layer's first input: carried by population {clock!r} "
                             "(one neuron spiking at every step)")
        return net
    except NetworkError as exc:
        raise ctx.error(exc.field, exc.message) from None
    except ValueError as exc:
        raise ctx.error("reset", str(exc)) from None


def _has_spiking(graph: "nir.NIRGraph") -> bool:
    """Whether `graph` (sub-graphs included) has a node that spikes (needs a reset rule)."""
    for node in graph.nodes.values():
        if isinstance(node, nir.NIRGraph):
            if _has_spiking(node):
                return True
        elif isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF, ALIFNode)):
            return True
    return False


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
        return weight_matrix(name, node, ctx).shape[1]
    if isinstance(node, nir.Scale):
        return node_array(node, "scale", ctx, name).size
    if isinstance(node, nir.Delay):
        return node_array(node, "delay", ctx, name).size
    if isinstance(node, SHAPED_TYPES):
        return math.prod(ctx.in_shapes[name]) if name in ctx.in_shapes else None
    if ctx.is_output(name, node):
        return _shape_size(name, node, "input", ctx)
    return None


def _neuron_size(name: str, node: Any, ctx: ImportContext) -> int:
    field = "r" if isinstance(node, (nir.I, nir.LI, nir.CubaLI, ReadoutNode)) else \
        "threshold" if isinstance(node, nir.Threshold) else "v_threshold"
    return node_array(node, field, ctx, name).size


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
            out[n] = weight_matrix(n, node, ctx).shape[0]
        elif isinstance(node, SHAPED_TYPES):
            if n not in ctx.shapes:
                raise ctx.error(f"nodes.{n}", f"no input reaches this {type_name(node)} node")
            out[n] = math.prod(ctx.shapes[n])
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
