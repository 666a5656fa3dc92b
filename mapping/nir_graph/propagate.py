"""NIR import: the linear part of a graph (weight, scale and delay nodes between spike sources
and neurons) turned into projections in time polynomial in the graph.

Every source (Input or neuron node) propagates once through the DAG of the transform nodes it
reaches, in topological order: the contribution arriving at a node is the sum over its incoming
edges, kept apart only where the projection it becomes would differ (last weight node, delays).
Parallel paths therefore cost one sum each, never one walk each (2**k paths through k layers of
two Scale nodes cost 2k sums). Weights stay sparse (COO triplets) until a weight node makes them
dense, so a 1:1 or diagonal path of n neurons holds n numbers, never n x n; the resulting
projection is dense when small or dense enough, else CSR. Shaped nodes (Conv, pooling, Flatten)
multiply in their exact sparse lowering (:mod:`mapping.nir_graph.conv_import`). Dense
intermediates are checked against the memory budget (:func:`neurosim.h5read.memory_budget`)
before they are allocated.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional, Union

import nir
import numpy as np

from neurosim.errors import NetworkError
from neurosim.h5read import budget_problem
from neurosim.network import CSR, MAX_DELAY, Projection

from .common import CHECK_DT, NS, as_text, type_name, unique_name
from .conv_import import apply_shaped, bias_origin, bias_through, shaped_record
from .conv_nodes import SHAPED_TYPES
from .coo import Coo
from .nodes_import import NEURON_IMPORTERS, ImportContext, node_array

DENSE_ELEMENTS = 2**22  # projections up to this many (pre, post) pairs stay dense, as before
DENSE_FILL = 0.25  # larger ones stay dense from this fraction of nonzero synapses


Weights = Union[np.ndarray, Coo]


def weight_matrix(name: str, node: Any, ctx: ImportContext) -> np.ndarray:
    """The (out, in) weight matrix of a Linear or Affine node, finite, with a matching bias."""
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


def delay_steps(name: str, node: Any, ctx: ImportContext) -> np.ndarray:
    """The delays of a Delay node in whole steps of ctx.dt."""
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


def check_memory(ctx: ImportContext, need: int, field: str, what: str) -> None:
    """Refuse (ExportError at `field`) `need` bytes beyond the import's memory budget."""
    problem = budget_problem(int(need), ctx.budget, what)
    if problem:
        raise ctx.error(field, problem)


@dataclass
class Path:
    """The sum of the paths from `source` to `target` that become one projection: weights
    (n_source, n_target), delay of synapse (j, k) = 1 + d_src[j] + d_cur[k] steps."""

    source: str
    target: str
    weights: Weights
    d_src: np.ndarray
    d_cur: Optional[np.ndarray]  # None before the first weight node
    last: str  # last weight node on the path (names the projection)
    meta: dict[str, Any]
    rank: tuple[int, int]  # discovery order (projections keep the order of a depth-first walk)


# one contribution in flight: weights, d_src, d_cur, last weight node, its metadata
_Flow = tuple[Weights, np.ndarray, Optional[np.ndarray], str, dict[str, Any]]


def _key(flow: _Flow) -> tuple[Any, ...]:
    _, d_src, d_cur, last, _ = flow
    return last, d_src.tobytes(), None if d_cur is None else d_cur.tobytes()


def _add(a: Weights, b: Weights) -> Weights:
    if isinstance(a, Coo) and isinstance(b, Coo):
        return Coo(np.concatenate([a.rows, b.rows]), np.concatenate([a.cols, b.cols]),
                   np.concatenate([a.vals, b.vals]), a.shape).summed()  # summed: sizes never grow with paths
    dense, other = (a.copy(), b) if isinstance(a, np.ndarray) else (b.copy(), a)
    if isinstance(other, Coo):
        np.add.at(dense, (other.rows, other.cols), other.vals)
    else:
        dense += other
    return dense


def _merge(flows: dict[tuple[Any, ...], _Flow], flow: _Flow) -> None:
    key = _key(flow)
    if key in flows:
        w, *rest = flows[key]
        flows[key] = (_add(w, flow[0]), *rest)  # type: ignore[assignment]
    else:
        flows[key] = flow


def _apply(name: str, node: Any, flow: _Flow, ctx: ImportContext) -> _Flow:
    """`flow` after transform node `name` (identity nodes pass it on)."""
    w, d_src, d_cur, last, meta = flow
    if isinstance(node, (nir.Linear, nir.Affine)):
        if d_cur is not None and np.any(d_cur != d_cur[0]):
            raise ctx.error(f"nodes.{name}", "per-neuron delays between two weight nodes cannot be expressed")
        a = weight_matrix(name, node, ctx)
        check_memory(ctx, 8 * w.shape[0] * a.shape[0], f"nodes.{name}.weight",
                     f"the weights from a source of {w.shape[0]} values through this node")
        if isinstance(w, Coo):
            out = np.zeros((w.shape[0], a.shape[0]))
            w = w.summed()  # sorted by row: each chunk adds one block per row it holds
            step = max(1, out.shape[0])  # bounded temporary: at most the result's size
            for lo in range(0, w.rows.size, step):
                rows, cols, vals = w.rows[lo:lo + step], w.cols[lo:lo + step], w.vals[lo:lo + step]
                starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
                out[rows[starts]] += np.add.reduceat(vals[:, None] * a[:, cols].T, starts, axis=0)
        else:
            out = w @ a.T
        d = np.full(a.shape[0], 0 if d_cur is None else int(d_cur[0]), np.int64)
        return out, d_src, d, name, dict(node.metadata or {})
    if isinstance(node, nir.Scale):
        scale = node_array(node, "scale", ctx, name).reshape(-1)
        if isinstance(w, Coo):
            return Coo(w.rows, w.cols, w.vals * scale[w.cols], w.shape), d_src, d_cur, last, meta
        return w * scale[None, :], d_src, d_cur, last, meta
    if isinstance(node, nir.Delay):
        k = delay_steps(name, node, ctx)
        return (w, d_src + k, None, last, meta) if d_cur is None else (w, d_src, d_cur + k, last, meta)
    if isinstance(node, SHAPED_TYPES):
        return apply_shaped(name, node, flow, ctx)  # type: ignore[return-value]
    return flow


def trace(nodes: dict[str, Any], edges: list[tuple[str, str]], sizes: dict[str, int],
          ctx: ImportContext) -> list[Path]:
    """The contributions of every spike source (Input, neuron) through weight/scale/delay nodes
    to every neuron, parallel paths summed (see the module docstring)."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    is_neuron = {n: type(node) in NEURON_IMPORTERS for n, node in nodes.items()}
    out: list[Path] = []
    for s_rank, (src, node) in enumerate(nodes.items()):
        if ctx.is_input(src, node) or is_neuron[src]:
            out += _from_source(src, s_rank, nodes, succ, is_neuron, sizes, ctx)
    return out


def reach(src: str, succ: dict[str, list[str]], passes: Any, ctx: ImportContext) -> tuple[list[str], dict[tuple[str, int], int]]:
    """Transform nodes reachable from `src` (`passes(name)`: the walk goes on through it) in a
    topological order, and the depth-first discovery rank of every edge (node, index) leaving
    `src` or one of them. A node met again while on the depth-first stack is a cycle without a
    neuron (ExportError naming it)."""
    seen = {src}
    order: list[str] = []  # reverse postorder = a topological order
    rank: dict[tuple[str, int], int] = {}
    stack: list[tuple[str, int]] = [(src, 0)]
    on_stack = {src}
    while stack:
        at, i = stack[-1]
        if i < len(succ[at]):
            stack[-1] = (at, i + 1)
            rank[(at, i)] = len(rank)
            nxt = succ[at][i]
            if not passes(nxt):
                continue
            if nxt in on_stack:
                raise ctx.error(f"nodes.{nxt}", "a cycle through weight/scale/delay nodes only (no neuron)")
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, 0))
                on_stack.add(nxt)
        else:
            stack.pop()
            on_stack.discard(at)
            if at != src:
                order.append(at)
    order.reverse()
    return order, rank


def _incoming(src: str, order: list[str], succ: dict[str, list[str]]) -> dict[str, list[str]]:
    incoming: dict[str, list[str]] = {n: [] for n in order}
    for a in [src, *order]:
        for b in succ[a]:
            if b in incoming:
                incoming[b].append(a)
    return incoming


def _from_source(src: str, s_rank: int, nodes: dict[str, Any], succ: dict[str, list[str]],
                 is_neuron: dict[str, bool], sizes: dict[str, int], ctx: ImportContext) -> list[Path]:
    order, rank = reach(src, succ, lambda n: not (is_neuron[n] or ctx.is_output(n, nodes[n])), ctx)
    incoming = _incoming(src, order, succ)
    start: _Flow = (Coo.eye(sizes[src]), np.zeros(sizes[src], np.int64), None, "", {})
    state: dict[str, dict[tuple[Any, ...], _Flow]] = {src: {_key(start): start}}
    via: dict[str, str] = {src: ""}  # a non-identity transform node on some path to here
    for n in order:
        flows: dict[tuple[Any, ...], _Flow] = {}
        via[n] = n if n not in ctx.identity else ""
        for p in incoming[n]:
            for flow in state[p].values():
                _merge(flows, flow)
            via[n] = via[n] or via[p]
        state[n] = {}
        for flow in flows.values():
            _merge(state[n], _apply(n, nodes[n], flow, ctx))
    found: dict[tuple[Any, ...], Path] = {}
    for p in [src, *order]:
        for e, nxt in enumerate(succ[p]):
            if ctx.is_output(nxt, nodes[nxt]):
                if via[p]:
                    raise ctx.error(f"nodes.{via[p]}", f"{type_name(nodes[via[p]])} feeds Output {nxt!r} without a "
                                                       "neuron in between; neurosim records neuron populations only")
                continue
            if not is_neuron[nxt]:
                continue
            for flow in state[p].values():
                key = (nxt, *_key(flow))
                w, d_src, d_cur, last, meta = flow
                if key in found:
                    found[key].weights = _add(found[key].weights, w)
                    found[key].rank = min(found[key].rank, (s_rank, rank[(p, e)]))
                else:
                    found[key] = Path(src, nxt, w, d_src, d_cur, last, meta, (s_rank, rank[(p, e)]))
    return sorted(found.values(), key=lambda q: q.rank)


def biases(nodes: dict[str, Any], edges: list[tuple[str, str]], ctx: ImportContext) -> dict[str, np.ndarray]:
    """Affine biases carried forward to the neurons they reach (a constant input from step 0),
    each origin's bias propagated once through the DAG it reaches."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    carried = (nir.Linear, nir.Affine, nir.Scale, nir.Delay, *SHAPED_TYPES)
    out: dict[str, np.ndarray] = {}
    for origin, node in nodes.items():
        if isinstance(node, nir.Affine):
            b0 = node_array(node, "bias", ctx, origin).reshape(-1)
        else:
            b0 = bias_origin(origin, node, ctx)
        if b0 is None or not np.any(b0 != 0):
            continue
        order, _ = reach(origin, succ, lambda n: isinstance(nodes[n], carried) or n in ctx.identity, ctx)
        val: dict[str, np.ndarray] = {origin: b0}
        incoming = _incoming(origin, order, succ)
        for n in order:
            parts = [val[p] for p in incoming[n]]
            b = sum(parts[1:], parts[0].copy())
            at = nodes[n]
            if isinstance(at, (nir.Linear, nir.Affine)):
                b = weight_matrix(n, at, ctx) @ b
            elif isinstance(at, nir.Scale):
                b = b * node_array(at, "scale", ctx, n).reshape(-1)
            elif isinstance(at, SHAPED_TYPES):
                b = bias_through(n, b, ctx)
            elif isinstance(at, nir.Delay) and np.any(delay_steps(n, at, ctx) != 0):
                raise ctx.error(f"nodes.{origin}.bias", f"the bias passes through Delay {n!r}; a delayed "
                                                        "constant cannot be expressed (neurosim biases act from step 0)")
            val[n] = b
        for p in [origin, *order]:
            for nxt in succ[p]:
                if type(nodes[nxt]) in NEURON_IMPORTERS:
                    out[nxt] = out.get(nxt, 0.0) + val[p]
    return out


def _nonzero(p: Path, lag: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns, weights and delays of the nonzero synapses of `p`, sorted by (row, column);
    `lag`: extra steps of the target node (a CubaLIF whose v takes the previous current)."""
    if isinstance(p.weights, Coo):
        c = p.weights.summed()
        keep = c.vals != 0
        rows, cols, vals = c.rows[keep], c.cols[keep], c.vals[keep]
    else:
        rows, cols = np.nonzero(p.weights)
        vals = p.weights[rows, cols]
    d = 1 + lag + p.d_src[rows] + (0 if p.d_cur is None else p.d_cur[cols])
    return rows.astype(np.int64), cols.astype(np.int64), vals, np.asarray(d, np.int64)


def projections(paths: list[Path], names: dict[str, str], ctx: ImportContext) -> list[Any]:
    """One projection per contribution; contributions written by neurosim for one projection
    (same ``neurosim.projection``, disjoint synapses) are merged back with per-synapse delays; a
    contribution that is one shaped node is that shaped record (:func:`conv_import.shaped_record`)."""
    groups: list[list[tuple[Path, tuple[np.ndarray, ...]]]] = []
    for p in paths:
        nz = _nonzero(p, ctx.lag.get(p.target, 0))
        key = as_text(p.meta.get(NS + "projection", "")) or None
        n_post = p.weights.shape[1]
        for g in groups:
            q = g[0][0]
            if (key and as_text(q.meta.get(NS + "projection", "")) == key and (q.source, q.target) == (p.source, p.target)
                    and not np.intersect1d(np.concatenate([x[1][0] * n_post + x[1][1] for x in g]),
                                           nz[0] * n_post + nz[1]).size):
                g.append((p, nz))
                break
        else:
            groups.append([(p, nz)])
    taken: set[str] = set()
    out = []
    for g in groups:
        first = g[0][0]
        try:
            meta = first.meta
            base = as_text(meta.get(NS + "projection", "")) or (names[first.last] if first.last else
                                                              f"{names[first.source]}_to_{names[first.target]}")
            pre, post = names[first.source], names[first.target]
            rec = shaped_record(g, first.source, first.target, ctx)
            if rec is not None:  # one conv/pool/flatten node: kept as the shaped record
                out.append(replace(rec, name=unique_name(base, taken), pre=pre, post=post, in_shape=None))
                continue
            weights, delay = _weights_and_delay(g, ctx)
            out.append(Projection(unique_name(base, taken), pre, post, weights, delay))
        except NetworkError as exc:
            raise ctx.error(f"nodes.{first.last or first.target}", exc.message) from None
    return out


def _weights_and_delay(g: list[tuple[Path, tuple[np.ndarray, ...]]], ctx: ImportContext) -> tuple[Any, Any]:
    first = g[0][0]
    n, m = first.weights.shape
    rows, cols, vals, dly = (np.concatenate([x[1][k] for x in g]) for k in range(4))
    order = np.argsort(rows * m + cols, kind="stable")
    rows, cols, vals, dly = rows[order], cols[order], vals[order], dly[order]
    field = f"nodes.{first.last or first.target}"
    if rows.size:
        uniform = bool(np.all(dly == dly[0]))
        delay: Any = int(dly[0]) if uniform else None
    else:
        d_cur = first.d_cur if first.d_cur is not None else np.zeros(1, np.int64)
        uniform = bool(np.all(first.d_src == first.d_src[0]) and np.all(d_cur == d_cur[0]))
        delay = int(1 + ctx.lag.get(first.target, 0) + first.d_src[0] + d_cur[0])
    sparse = bool(int(first.meta.get(NS + "sparse", 0)))
    if sparse or not (n * m <= DENSE_ELEMENTS or rows.size >= DENSE_FILL * n * m):
        check_memory(ctx, 24 * rows.size, field, f"a sparse projection of {rows.size} synapses")
        return CSR.from_coo(rows, cols, vals, (n, m)), (delay if uniform else dly)
    check_memory(ctx, 8 * n * m * (1 if uniform else 2), field, f"a dense ({n}, {m}) projection")
    w = np.zeros((n, m))
    w[rows, cols] = vals
    if uniform:
        return w, delay
    if rows.size:
        d = np.ones((n, m), np.int64)
        d[rows, cols] = dly
    else:
        d = 1 + ctx.lag.get(first.target, 0) + first.d_src[:, None] + (0 if first.d_cur is None else first.d_cur[None, :])
    return w, d
