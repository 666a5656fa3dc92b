"""NIR import of shaped nodes: the shapes that flow through a graph, shaped nodes applied to a
path's weights, conv biases, and shaped projections rebuilt from the paths that are one node.

Shapes (:func:`infer_shapes`): an Input's ``input_type``; a neuron node takes the shape of the
layer feeding it when the sizes agree (or its parameters broadcast to it: one value, or one per
channel), else its parameters' shape; a Linear/Affine gives ``(weight.shape[0],)``; Scale, Delay
and pass-through nodes keep their input's; a shaped node's output follows from its input
(:func:`mapping.nir_graph.conv_nodes.node_record`). A flat input of the right size feeding a
conv node takes the node's declared input shape (``input_shape`` / ``input_type``). A leading
batch axis of one on a 4-D Input, or before a conv/pool input, is dropped (Norse 1.1 writes one).

Rebuilt records (:func:`shaped_record`): a path source -> [uniform Delay] -> one shaped node ->
neuron becomes that record (with the path's delay); neurosim's own per-tap delays, written as one
masked conv per delay class with ``neurosim.tap_delay``, come back as one record. A candidate is
kept only when its lowering equals the path's synapses (weights and delays) exactly; otherwise
the path stays the CSR projection it already is.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Optional

import nir
import numpy as np

from neurosim.conv import Convolution, ShapedProjection
from neurosim.csr import CSR
from neurosim.h5read import budget_problem

from .common import NS
from .conv_nodes import SHAPED_TYPES, Shape, conv_bias, lowering, node_record
from .coo import Coo
from .nodes_import import NEURON_IMPORTERS, ImportContext, ReadoutNode, node_array

CANDIDATE = "nir_graph.shaped_candidate"  # flow metadata: the path so far is this one shaped node


def _param_shape(node: Any) -> Shape:
    if isinstance(node, ReadoutNode):
        return (node.r.size,)
    field = "r" if isinstance(node, (nir.I, nir.LI, nir.CubaLI)) else \
        "threshold" if isinstance(node, nir.Threshold) else "v_threshold"
    value = getattr(node, field)
    return tuple(int(d) for d in np.shape(value.detach() if hasattr(value, "detach") else value))


def _declared_in(node: Any) -> Optional[Shape]:
    """The input shape a shaped node states itself (None where it does not)."""
    if isinstance(node, (nir.Conv1d, nir.Conv2d)) and node.input_shape is not None:
        w = np.shape(node.weight)
        return (int(w[1]) * int(np.asarray(node.groups).reshape(-1)[0]),
                *(int(d) for d in np.asarray(node.input_shape).reshape(-1)))
    given = (node.input_type or {}).get("input")
    return None if given is None else tuple(int(d) for d in np.asarray(given).reshape(-1))


def _neuron_shape(own: Shape, known: list[Shape]) -> Optional[Shape]:
    size = math.prod(own)
    for s in known:
        if math.prod(s) == size or size == 1 or (len(own) == len(s) and _broadcasts(own, s)):
            return s
    return None


def _broadcasts(own: Shape, to: Shape) -> bool:
    try:
        return np.broadcast_shapes(own, to) == tuple(to)
    except ValueError:
        return False


def infer_shapes(nodes: dict[str, Any], edges: list[tuple[str, str]], ctx: ImportContext) -> None:
    """Set ``ctx.shapes`` (every node's output shape), ``ctx.records`` (shaped node -> bound
    record or None) and ``ctx.in_shapes`` (shaped node -> input shape)."""
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        preds[b].append(a)
    shapes: dict[str, Shape] = {}
    for n, node in nodes.items():
        if ctx.is_input(n, node):
            given = (node.input_type or {}).get("input")
            if given is not None:
                shape = tuple(int(d) for d in np.asarray(given).reshape(-1))
                shapes[n] = shape[1:] if len(shape) == 4 and shape[0] == 1 else shape  # Norse's batch axis of one
    pending = [n for n in nodes if n not in shapes]
    stalled = False
    while pending:
        rest = []
        for n in pending:
            shape = _shape_of(n, nodes[n], [shapes[a] for a in preds[n] if a in shapes], ctx, stalled)
            if shape is None:
                rest.append(n)
            else:
                shapes[n] = shape
        if len(rest) == len(pending):
            if stalled:
                break  # nothing reaches these nodes: the size checks report them
            stalled = True
        else:
            stalled = False
        pending = rest
    ctx.shapes = shapes


def _shape_of(n: str, node: Any, known: list[Shape], ctx: ImportContext, stalled: bool) -> Optional[Shape]:
    if type(node) in NEURON_IMPORTERS:
        own = _param_shape(node)
        got = _neuron_shape(own, known)
        if got is not None or not stalled:
            return got
        return own if len(own) else (1,)
    if isinstance(node, (nir.Linear, nir.Affine)):
        return (int(np.shape(node_array(node, "weight", ctx, n))[0]),)
    if not known:
        if not stalled:
            return None
        if isinstance(node, nir.Scale):
            return (node_array(node, "scale", ctx, n).size,)
        if isinstance(node, nir.Delay):
            return tuple(np.shape(node_array(node, "delay", ctx, n))) or (1,)
        return None
    if isinstance(node, SHAPED_TYPES):
        return _shaped(n, node, known, ctx)
    return known[0]


def _shaped(n: str, node: Any, known: list[Shape], ctx: ImportContext) -> Shape:
    sizes = {math.prod(s) for s in known}
    if len(sizes) != 1:
        raise ctx.error(f"nodes.{n}", f"inputs of different sizes {sorted(sizes)} meet at a {type(node).__name__}")
    in_shape = known[0]
    rank = {nir.Conv1d: 2, nir.Conv2d: 3, nir.SumPool2d: 3, nir.AvgPool2d: 3}.get(type(node))
    if rank is not None and len(in_shape) == rank + 1 and in_shape[0] == 1:
        in_shape = in_shape[1:]  # a batch axis of one (Norse 1.1 writes its Input as (1, C, H, W))
    declared = _declared_in(node)
    if rank is not None and len(in_shape) != rank and declared is not None and math.prod(declared) == sizes.pop():
        in_shape = declared
    rec, out = node_record(n, node, in_shape, ctx)
    ctx.records[n] = rec
    ctx.in_shapes[n] = in_shape
    return out


def lowered(name: str, ctx: ImportContext) -> CSR:
    """The (n_in, n_out) matrix of shaped node `name`, built once per import."""
    if name not in ctx.lowered:
        ctx.lowered[name] = lowering(ctx.records[name], math.prod(ctx.in_shapes[name]))
    return ctx.lowered[name]


def apply_shaped(name: str, node: Any, flow: tuple[Any, ...], ctx: ImportContext) -> tuple[Any, ...]:
    """A path's flow (weights (n_source, n_in), delays, last weight node, metadata) after shaped
    node `name`: weights times the node's lowering; the node becomes the path's last weight node."""
    w, d_src, d_cur, last, meta = flow
    if d_cur is not None and np.any(d_cur != d_cur[0]):
        raise ctx.error(f"nodes.{name}", "per-neuron delays between two weight nodes cannot be expressed")
    m = lowered(name, ctx)
    if isinstance(w, Coo):
        out: Any = w.times(m)
    else:
        need = 8 * (w.shape[0] + m.shape[0]) * m.shape[1]
        problem = budget_problem(need, ctx.budget, f"the weights through {type(node).__name__} {name!r}")
        if problem:
            raise ctx.error(f"nodes.{name}", problem)
        out = w @ m.to_dense()
    new_meta = dict(node.metadata or {})
    if not last and ctx.records.get(name) is not None:
        new_meta[CANDIDATE] = name
    return out, d_src, np.full(m.shape[1], 0 if d_cur is None else int(d_cur[0]), np.int64), name, new_meta


def bias_origin(name: str, node: Any, ctx: ImportContext) -> Optional[np.ndarray]:
    """A Conv node's bias per output neuron (None: none)."""
    if not isinstance(node, (nir.Conv1d, nir.Conv2d)):
        return None
    return conv_bias(name, node, ctx.shapes[name], ctx)


def bias_through(name: str, b: np.ndarray, ctx: ImportContext) -> np.ndarray:
    """A constant input `b` (n_in,) through shaped node `name`: ``lowering.T @ b``."""
    m = lowered(name, ctx)
    out = np.zeros(m.shape[1])
    np.add.at(out, np.asarray(m.indices), np.asarray(m.values) * b[m.rows()])
    return out


def shaped_record(members: list[tuple[Any, tuple[np.ndarray, ...]]], source: str, target: str,
                  ctx: ImportContext) -> Optional[ShapedProjection]:
    """The shaped record that the paths `members` (each (Path, (rows, cols, vals, delays)) of
    its nonzero synapses) are, or None (see the module docstring)."""
    cands = [p.meta.get(CANDIDATE) for p, _ in members]
    if None in cands or any(len(ctx.shapes.get(x, (0, 0, 0, 0))) > 3 for x in (source, target)):
        return None
    recs = [ctx.records[c] for c in cands]
    base = recs[0]
    if len(recs) > 1 and not all(isinstance(r, Convolution) and type(r) is type(base) and _geometry(r) == _geometry(base)
                                 for r in recs):
        return None
    delays = [np.unique(nz[3]) for _, nz in members]
    if any(d.size > 1 for d in delays) or (len(recs) > 1 and not isinstance(base, Convolution)):
        return None
    uniform = [int(d[0]) if d.size else None for d in delays]
    if isinstance(base, Convolution):
        kernel = sum((np.asarray(r.kernel) for r in recs[1:]), np.array(recs[0].kernel))
        tap = _tap_delays(members, recs, uniform, kernel.shape)
        cand = replace(base, kernel=kernel, delay=tap)
    elif uniform[0] is None:
        return None
    else:
        cand = replace(base, delay=uniform[0])
    csr, dl = cand.to_csr()
    keep = np.asarray(csr.values) != 0
    rows, cols, vals = csr.rows()[keep], np.asarray(csr.indices)[keep], np.asarray(csr.values)[keep]
    got = [np.concatenate([nz[k] for _, nz in members]) for k in range(4)]
    order = np.lexsort((got[1], got[0]))
    if not all(np.array_equal(a, b[order]) for a, b in zip((rows, cols, vals, dl[keep]), got)):
        return None
    return cand


def _geometry(r: Any) -> tuple[Any, ...]:
    return r.kernel.shape, r.stride, r.padding, r.dilation, r.groups, r.in_shape


def _tap_delays(members: list[tuple[Any, tuple[np.ndarray, ...]]], recs: list[Any], uniform: list[Optional[int]],
                shape: tuple[int, ...]) -> Any:
    """Per-tap delays: ``neurosim.tap_delay`` where the file carries it, else each member's delay
    on its nonzero taps (the first member's on taps no member uses); one number where all agree."""
    stored = members[0][0].meta.get(NS + "tap_delay")
    if stored is not None and np.shape(stored) == shape:
        tap = np.asarray(stored, np.int64)
    else:
        tap = np.full(shape, next((d for d in uniform if d is not None), 1), np.int64)
        for r, d in zip(recs, uniform):
            if d is not None:
                tap[np.asarray(r.kernel) != 0] = d
    return int(tap.reshape(-1)[0]) if np.all(tap == tap.reshape(-1)[0]) else tap


def with_shapes(pops: list[Any], inputs: list[Any], shapes: dict[str, Shape],
                ctx: ImportContext) -> tuple[list[Any], list[Any]]:
    """Populations and inputs given the shapes their nodes carry (rank 2 or 3, same size)."""
    def shaped(item: Any) -> Any:
        s = shapes.get(item.name)
        if s is None or len(s) not in (2, 3) or math.prod(s) != item.size:
            return item
        return replace(item, size=item.size, shape=tuple(s))
    return [shaped(p) for p in pops], [shaped(s) for s in inputs]
