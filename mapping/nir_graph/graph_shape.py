"""Two rewrites of a flattened NIR graph before it is imported, both exact:

- :func:`linear_readouts`: an Output fed by Affine/Linear nodes (the usual final readout of an
  snnTorch or Norse network) becomes a linear readout population (:class:`ReadoutNode`, LI with
  beta = 0 and gain = 1: ``v[t]`` is the weighted input of step t plus the bias).
- :func:`broadcast_scalars`: a neuron node whose parameters all have one value (Norse 1.1 writes
  shape () or (1,)), or one per channel, takes its shape from the layer that feeds it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import nir
import numpy as np

from .nodes_import import ImportContext, ReadoutNode, node_array

_SCALAR_TYPES = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI, nir.I)


def linear_readouts(nodes: dict[str, Any], edges: list[tuple[str, str]],
                    ctx: ImportContext) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Outputs whose every input is an Affine/Linear node of one size n become ReadoutNode(n)
    (same name: the population is named after the Output)."""
    out = dict(nodes)
    for name, node in nodes.items():
        if not ctx.is_output(name, node):
            continue
        preds = [a for a, b in edges if b == name]
        if not preds or not all(isinstance(nodes[a], (nir.Linear, nir.Affine)) for a in preds):
            continue
        sizes = {np.shape(node_array(nodes[a], "weight", ctx, a))[0] for a in preds}
        if len(sizes) == 1:
            out[name] = ReadoutNode(int(sizes.pop()))
    return out, edges


def _size_from(name: str, node: Any, ctx: ImportContext) -> int | None:
    """How many values node `name` sends on (None when it cannot be told alone)."""
    if isinstance(node, (nir.Linear, nir.Affine)):
        w = node_array(node, "weight", ctx, name)
        return int(w.shape[0]) if w.ndim == 2 else None
    if ctx.is_input(name, node):
        shape = (node.input_type or {}).get("input")
        return None if shape is None else math.prod(int(d) for d in np.asarray(shape).reshape(-1))
    return None


def _numbers(value: Any) -> np.ndarray:
    """A parameter as float64 numbers (torch tensors, as peers leave them, included)."""
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)


def broadcast_scalars(nodes: dict[str, Any], edges: list[tuple[str, str]], ctx: ImportContext) -> dict[str, Any]:
    """Neuron nodes with one value per parameter (or one per channel, shape (C, 1, 1)), fed by
    layers of one size n > 1, rebuilt with every parameter broadcast to the feeding layer's
    shape (``ctx.shapes``; metadata kept)."""
    out = dict(nodes)
    for name, node in nodes.items():
        if type(node) not in _SCALAR_TYPES:
            continue
        params = {f.name: _numbers(getattr(node, f.name)) for f in dataclasses.fields(node)
                  if f.init and f.name != "metadata"}
        feeds = [a for a, b in edges if b == name]
        sizes = {ctx.shapes.get(a) or _size_from(a, nodes[a], ctx) for a in feeds}
        sizes = {(s,) if isinstance(s, int) else s for s in sizes}
        if len(sizes) != 1 or None in sizes:
            continue
        shape = tuple(sizes.pop())  # type: ignore[arg-type]
        n = math.prod(shape)
        if n == 1 or all(v.size == n for v in params.values()):
            continue
        try:
            kw = {k: np.broadcast_to(v.reshape(-1)[0] if v.size == 1 else v, shape).copy() for k, v in params.items()}
        except ValueError:
            continue  # the size check names the mismatch
        out[name] = type(node)(metadata=dict(node.metadata or {}), **kw)
    return out
