"""The layers of a NetX file, planned from a network: which population becomes which NetX block.

NetX 0.6 (``hdf5.Network._create``) builds a chain: 'input' (no neurons), then 'conv' blocks
(Lava's Conv synapse + LIF on (X, Y, C) neurons), then 'dense' / 'dense_rec' blocks, a
'flatten' entry between the last conv and the first dense (NetX then feeds the dense block
``out.transpose([2, 1, 0]).flatten()``: (X, Y, C) read as (C, Y, X) in C order, which is
neurosim's (C, H, W) flat order, so dense weights are written unpermuted). NetX 0.6 raises
NotImplementedError for its own 'pool' type, so pooling is written as the depthwise
convolution it is (groups = C, a constant kernel): one Conv block. Conv1d on (C, L) is the
2-D convolution of (C, 1, L). Lava's Conv synapse carries no delay (a spike acts one step
later, neurosim's delay 1) and no recurrence; a dense block takes delays (DelayDense) and,
with delay 1 only, one self-recurrent matrix ('dense_rec').
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from neurosim.conv import (AvgPool2d, ConvGeometry, Conv1d, Conv2d, Flatten, ShapedProjection, SumPool2d)
from neurosim.errors import ExportError
from neurosim.fixed_point import FixedPointNetwork
from neurosim.network import Network, SpikeInput

from .netx_layout import TARGET

CONV_KINDS = {Conv2d: "conv2d", Conv1d: "conv1d", SumPool2d: "sumpool2d", AvgPool2d: "avgpool2d"}


@dataclass(frozen=True)
class NetxLayer:
    """One NetX block: population `name` fed by projection `ff` (and `rec`, 'dense_rec').

    kind: 'conv' or 'dense'; flatten: a 'flatten' entry precedes it (its input is shaped);
    geometry: the grouped 2-D convolution of a conv block (in (C, H, W) -> out (C, H, W));
    record: neurosim's kind of `ff` ('conv2d', 'conv1d', 'sumpool2d', 'avgpool2d', 'flatten',
    'dense'); shape: the population's neurosim shape."""

    name: str
    ff: str
    rec: Optional[str]
    kind: str
    flatten: bool
    geometry: Optional[ConvGeometry]
    record: str
    shape: tuple[int, ...]


def plan_layers(network: Union[Network, FixedPointNetwork]) -> list[NetxLayer]:
    """The NetX blocks of `network` in chain order; ExportError names the first field NetX
    cannot hold (module docstring). A FixedPointNetwork carries no shapes: dense blocks only."""
    if len(network.inputs) != 1 or not isinstance(network.inputs[0], SpikeInput):
        raise ExportError(TARGET, "inputs", "NetX networks have exactly one spike input")
    shaped = isinstance(network, Network)
    shapes = {n.name: (tuple(n.shape) if shaped else (n.size,)) for n in (*network.inputs, *network.populations)}
    prev = network.inputs[0].name
    prev_conv = True  # the input may feed a conv block
    out: list[NetxLayer] = []
    used: set[str] = set()
    for pop in network.populations:
        ff = [q for q in network.projections if q.post == pop.name and q.pre == prev]
        rec = [q for q in network.projections if q.post == pop.name and q.pre == pop.name]
        if len(ff) != 1:
            raise ExportError(TARGET, f"populations.{pop.name}", f"NetX layers form a chain: expected one projection "
                                                                 f"from {prev!r} into {pop.name!r}, found {len(ff)}")
        if len(rec) > 1:
            raise ExportError(TARGET, f"projections.{rec[1].name}", "at most one recurrent projection per layer")
        q, r = ff[0], (rec[0] if rec else None)
        layer = _conv_layer(q, pop.name, shapes, prev_conv) if type(q) in CONV_KINDS else None
        if layer is not None and r is not None:
            raise ExportError(TARGET, f"projections.{r.name}", "NetX has no recurrent conv block (only 'dense_rec' "
                                                               "takes a recurrent matrix)")
        if r is not None and isinstance(r, ShapedProjection):
            raise ExportError(TARGET, f"projections.{r.name}", f"NetX's 'dense_rec' takes a dense recurrent matrix, "
                                                               f"not {type(r).__name__}")
        if layer is None:
            if isinstance(q, ShapedProjection) and not isinstance(q, Flatten):
                raise ExportError(TARGET, f"projections.{q.name}", f"NetX has no block for {type(q).__name__}")
            if r is not None and (np.max(q.delay) > 1 or np.max(r.delay) > 1):
                bad = r if np.max(r.delay) > 1 else q
                raise ExportError(TARGET, f"projections.{bad.name}.delay", "a recurrent NetX layer ('dense_rec') "
                                                                         "takes delay 1 only")
            layer = NetxLayer(pop.name, q.name, r.name if r is not None else None, "dense",
                              len(shapes[prev]) > 1, None, "flatten" if isinstance(q, Flatten) else "dense",
                              shapes[pop.name])
        out.append(layer)
        used.update(j.name for j in ff + rec)
        prev, prev_conv = pop.name, layer.kind == "conv"
    for q in network.projections:
        if q.name not in used:
            raise ExportError(TARGET, f"projections.{q.name}", "NetX holds a chain input -> layer 1 -> layer 2 ... "
                                                                "with optional self-recurrence only")
    return out


def _conv_layer(q: Any, name: str, shapes: dict[str, tuple[int, ...]], after_conv: bool) -> NetxLayer:
    where = f"projections.{q.name}"
    if not after_conv:
        raise ExportError(TARGET, where, f"NetX feeds a conv block from the input or another conv block only, "
                                         f"not from the dense block {q.pre!r}")
    if np.max(q.delay) != 1:
        raise ExportError(TARGET, f"{where}.delay", f"Lava's Conv synapse (NetX's conv block) has no delays: a spike "
                                                    f"acts one step later (delay 1); got "
                                                    f"{'per-tap delays' if np.ndim(q.delay) else q.delay}")
    geometry = q.geometry()
    return NetxLayer(name, q.name, None, "conv", False, geometry, CONV_KINDS[type(q)], shapes[name])
