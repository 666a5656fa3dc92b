"""Write a network as a lava-dl NetX HDF5 file (layout in :mod:`mapping.netx`)."""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Union

import h5py
import numpy as np

from neurosim.atomic import h5_image
from neurosim.errors import ExportError, NetworkError
from neurosim.fixed_point import (VTH_MAX, FixedPointNetwork, FixedPopulation, FixedProjection, QuantizationReport,
                                  quantize)
from neurosim.network import Network

from .netx_chain import NetxLayer, plan_layers
from .netx_conv import integer_kernel, neuron_values, write_conv
from .netx_layout import NETX_BIAS_EXP, NETX_MAX_DELAY, TARGET, h5_name, h5_string, netx_problem
from .netx_readout import LI_VTH_INT, li_bound, with_notes

PathLike = Union[str, "os.PathLike[str]"]


def netx_quantize(network: Network, *, vth_mant: Union[None, int, Mapping[str, int]] = None) -> FixedPointNetwork:
    """The integer network :func:`to_netx` writes: quantize with weight_exp 0, bias_exp 6.

    Conv, pooling and Flatten projections are quantised as their exact lowering (one integer
    per lowered synapse; :func:`to_netx` then checks that each tap holds one integer).
    Multapses on one (pre, post, delay) are summed before rounding (one NetX weight per pair);
    synapses of several delays on one pair are refused (a NetX layer holds one delay per pair)."""
    plan_layers(network)
    for j in network.projections:
        if not hasattr(j, "without_multapses"):
            continue
        if len(j.without_multapses()) > 1:
            raise ExportError(TARGET, f"projections.{j.name}.delay", "NetX holds one weight and one delay per "
                                                                     "(pre, post); this projection has pairs with "
                                                                     "synapses of several delays")
    given: dict[str, int] = (dict(vth_mant) if isinstance(vth_mant, Mapping) else
                             {} if vth_mant is None else {p.name: vth_mant for p in network.populations})
    chosen = set(given)  # the caller's mantissas are kept as they are
    for _ in range(8):  # lower an LI readout's scale until its worst case provably stays below vth
        fixed = quantize(network, vth_mant=given or None, weight_exp=0, bias_exp=NETX_BIAS_EXP,
                         max_delay=NETX_MAX_DELAY, target=TARGET, lava_lif_only=True)
        over = {p.name: li_bound(fixed, p.name) for p in fixed.populations if p.kind == "li"}
        over = {k: b for k, b in over.items() if b > LI_VTH_INT}
        if not over:
            return with_notes(fixed)
        for name, bound in over.items():
            lower = int(np.floor(fixed.population(name).vth * LI_VTH_INT / bound * 0.999)) if np.isfinite(bound) else 0
            if lower < 1 or name in chosen:
                raise ExportError(TARGET, f"populations.{name}",
                                  "an LI readout is written as a CUBA layer that must never spike; its worst-case "
                                  f"|v| ({bound:.4g}) is not kept below {LI_VTH_INT} (a smaller vth_mant, or "
                                  "beta < 1, would)")
            given[name] = lower
    raise ExportError(TARGET, "populations", "no LI readout scale keeps the worst-case |v| below threshold")


def to_netx(network: Union[Network, FixedPointNetwork], path: PathLike, *,
            vth_mant: Union[None, int, Mapping[str, int]] = None) -> Optional[QuantizationReport]:
    """Write `network` as a NetX HDF5 file (atomically); returns the quantisation report.

    A Network is quantised by :func:`netx_quantize` (its conv, pooling and Flatten layers
    become NetX conv blocks and flatten entries); a FixedPointNetwork (no shapes) is written as
    dense layers as it is if NetX can hold it (weight_exp 0, bias_exp 6, zero initial state).
    ExportError names the first field NetX cannot express.
    """
    if isinstance(network, Network):
        plan = plan_layers(network)
        fixed = netx_quantize(network, vth_mant=vth_mant)
        shapes = {s.name: tuple(s.shape) for s in network.inputs}
    elif isinstance(network, FixedPointNetwork):
        fixed, plan = network, plan_layers(network)
        shapes = {s.name: (s.size,) for s in network.inputs}
    else:
        raise NetworkError("network", f"expected a Network or FixedPointNetwork, got {type(network).__name__}")
    layers = checked_layers(fixed, plan)
    src = fixed.inputs[0]
    first = plan[0]
    in_shape = first.geometry.in_shape if first.kind == "conv" and first.geometry is not None else shapes[src.name]
    with h5_image(path) as buf:  # built in memory: a full disk cannot crash the HDF5 library
        with h5py.File(buf, "w") as f:
            g = f.create_group("layer/0")
            h5_string(g, "type", "input")
            g.create_dataset("shape", data=np.array(in_shape, np.int64))
            h5_name(g, "name", src.name)
            k = 1
            for layer, (pop, ff, rec) in zip(plan, layers):
                if layer.flatten:
                    h5_string(f.create_group(f"layer/{k}"), "type", "flatten")
                    k += 1
                g = f.create_group(f"layer/{k}")
                k += 1
                h5_string(g, "type", "conv" if layer.kind == "conv" else ("dense_rec" if rec is not None else "dense"))
                if layer.kind == "conv":
                    write_conv(g, layer, integer_kernel(layer, ff, pop), pop)
                    h5_name(g, "name", pop.name)
                    h5_name(g, "projection", ff.name)
                    h5_name(g, "neurosim_kind", layer.record)  # conv1d, sumpool2d ...: how it was made
                else:
                    _write_dense(g, pop, ff, rec)
                _write_neuron(g, pop, layer.geometry.out_shape if layer.kind == "conv" else None)
    return fixed.report


def _write_dense(g: Any, pop: FixedPopulation, ff: FixedProjection, rec: Optional[FixedProjection]) -> None:
    g.create_dataset("shape", data=np.array([pop.size], np.int64))
    g.create_dataset("weight", data=ff.weights.T.astype(np.int64))
    h5_name(g, "name", pop.name)
    h5_name(g, "projection", ff.name)
    if rec is not None:
        g.create_dataset("weight_rec", data=rec.weights.T.astype(np.int64))
        h5_name(g, "projection_rec", rec.name)
    if ff.max_delay > 1:
        extra = np.asarray(ff.delay) - 1
        g.create_dataset("delay", data=extra.T if extra.ndim else extra)
    if np.any(pop.bias_mant):
        g.create_dataset("bias", data=pop.bias_mant.astype(np.int64))


def _write_neuron(g: Any, pop: FixedPopulation, conv_shape: Optional[tuple[int, ...]]) -> None:
    n = g.create_group("neuron")
    h5_string(n, "type", "CUBA")
    n.create_dataset("iDecay", data=neuron_values(np.asarray(pop.du) + 1, conv_shape))
    n.create_dataset("vDecay", data=neuron_values(pop.dv, conv_shape))
    n.create_dataset("vThMant", data=VTH_MAX if pop.kind == "li" else neuron_values(pop.vth, conv_shape))
    if pop.kind == "li":
        h5_name(g, "neurosim_kind", "li")
    n.create_dataset("refDelay", data=1)
    n.create_dataset("gradedSpike", data=False)


def checked_layers(fixed: FixedPointNetwork, plan: list[NetxLayer]
                   ) -> list[tuple[FixedPopulation, FixedProjection, Optional[FixedProjection]]]:
    """(population, feed-forward, recurrent) of every planned layer, after checking that NetX
    and Lava run them exactly (ExportError names the field otherwise)."""
    layers = []
    proj = {q.name: q for q in fixed.projections}
    for layer in plan:
        pop, ff, rec = fixed.population(layer.name), proj[layer.ff], proj.get(layer.rec) if layer.rec else None
        name, where = pop.name, f"populations.{pop.name}"
        if not (pop.is_lava_lif or (pop.kind == "li" and layer is plan[-1])):
            raise ExportError(TARGET, f"{where}.kind", f"NetX's CUBA neuron is Lava's LIF (reset to zero, no "
                                                      f"refractory period; a non-spiking LI readout only as the "
                                                      f"last layer); got kind {pop.kind!r}, reset {pop.reset!r}")
        if pop.kind == "li" and li_bound(fixed, name) > LI_VTH_INT:
            raise ExportError(TARGET, f"{where}.vth", f"the LI readout's worst-case |v| ({li_bound(fixed, name):.4g}) "
                                                      f"could reach the CUBA threshold {LI_VTH_INT}; quantise with "
                                                      "netx_quantize")
        if pop.kind == "li" and np.ndim(pop.vth):
            raise ExportError(TARGET, f"{where}.vth", "an LI readout is written with one vThMant (131071)")
        if np.any(pop.u0[pop.bias_on_v]) or np.any(pop.v0):  # u0 acts only where u keeps memory (du < 4095)
            raise ExportError(TARGET, f"{where}.v0", "NetX starts every neuron at u = v = 0")
        if np.any(pop.bias_mant[pop.bias_exp != NETX_BIAS_EXP]):
            raise ExportError(TARGET, f"{where}.bias_exp", f"NetX fixes bias_exp = {NETX_BIAS_EXP}")
        for q in (ff, rec):
            if q is not None and q.weight_exp != 0:
                raise ExportError(TARGET, f"projections.{q.name}.weight_exp", "NetX files hold weights at exponent 0")
            if q is not None and q.max_delay > NETX_MAX_DELAY:
                raise ExportError(TARGET, f"projections.{q.name}.delay", f"NetX holds delays up to {NETX_MAX_DELAY}")
        if layer.kind == "dense":
            combined = np.concatenate([ff.weights] + ([rec.weights] if rec is not None else []), axis=0)
            problem = netx_problem(combined)
            if problem:
                raise ExportError(TARGET, f"projections.{ff.name}.weights", f"{problem}; pass a smaller vth_mant")
        layers.append((pop, ff, rec))
    return layers
