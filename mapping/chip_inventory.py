"""What a network asks of a chip, per population and per projection: neurons, synapses, fan-in
and fan-out, weight and state bits, delays used.

Counts are of the chip form (:func:`mapping.chip_partition.chip_network`): a shaped projection
(convolution, pooling, flatten) counts through its exact lowering (:meth:`Network.lowered`),
each (pre, post, delay) holds one synapse (multapses summed) and zero weights are not synapses.
Weight and state bits come from neurosim's fixed-point quantisation
(:func:`neurosim.fixed_point.quantize`, Lava's arithmetic) where the network quantises; where it
does not, the chip file's nominal widths are used and the reason is kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from neurosim.conv import Convolution, Flatten, ShapedProjection
from neurosim.errors import NeurosimError
from neurosim.models import ALIF, LI
from neurosim.network import Network, Projection

from .chips import Chip


@dataclass(frozen=True)
class Quantisation:
    """Per projection: (weight bits, exponent, sign mode, bit-dropped count); per population:
    state bits and the variables held; `refused`: why the network does not quantise (or '')."""

    weights: dict[str, dict[str, Any]] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: str = ""


def quantisation(network: Network, chip: Chip) -> Quantisation:
    """The bits neurosim's fixed-point model gives each projection and population on `chip`."""
    from neurosim.fixed_point import quantize

    w_bits = int(chip.value("arithmetic", "weight_bits") or 0)
    s_bits = int(chip.value("arithmetic", "state_bits") or 0)
    try:
        fixed = quantize(network)
    except NeurosimError as exc:
        states = {p.name: _state_bits(_kind(p.model), bool(np.any(p.params.refractory > 0)), s_bits)
                  for p in network.populations}
        return Quantisation({}, states, " ".join(str(exc).split()))
    weights: dict[str, dict[str, Any]] = {}
    for q in fixed.projections:
        rep = fixed.report.projections[q.name]
        base = next((j.name for j in network.projections if q.name == j.name or q.name.startswith(j.name + "_d")),
                    q.name)
        entry = weights.setdefault(base, {"bits": w_bits, "exponents": [], "sign": rep["sign_mode"],
                                          "bit_dropped": 0})
        entry["exponents"].append(int(rep["weight_exp"]))
        entry["bit_dropped"] += int(rep["n_bit_dropped"])
        if entry["sign"] != rep["sign_mode"]:
            entry["sign"] = "mixed"
    states = {p.name: _state_bits(p.kind, bool(np.any(np.asarray(p.refractory) > 0)), s_bits)
              for p in fixed.populations}
    return Quantisation(weights, states)


def _kind(model: Any) -> str:
    return "alif" if isinstance(model, ALIF) else ("li" if isinstance(model, LI) else "lif")


def _state_bits(kind: str, refractory: bool, width: int) -> dict[str, Any]:
    """State variables per neuron of the integer model: u, v (+ a for ALIF) of `width` bits, and
    the refractory counter (neurosim.fixed_point.REFRACTORY_MAX: 8 bits) where one is used."""
    from neurosim.fixed_point import REFRACTORY_MAX

    r_bits = int(REFRACTORY_MAX).bit_length() if refractory else 0
    names = ["u", "v"] + (["a"] if kind == "alif" else [])
    return {"bits": width * len(names) + r_bits,
            "variables": "+".join(names) + (f"+r({r_bits})" if refractory else "")}


def _kind_of(proj: Any) -> str:
    if isinstance(proj, ShapedProjection):
        return f"{type(proj).__name__} (counted through its lowering)"
    return "csr" if proj.is_sparse else "dense"


def _stats(x: np.ndarray) -> dict[str, float]:
    if not x.size:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": int(x.min()), "mean": float(x.mean()), "max": int(x.max())}


def synapse_rows(proj: Projection) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(delay, presynaptic row, postsynaptic column) of every chip synapse of a lowered
    projection, one list per delay class (duplicates summed, zeros dropped)."""
    out = []
    for d, csr in proj.delay_classes():
        nz = np.asarray(csr.values) != 0
        out.append((d, csr.rows()[nz], np.asarray(csr.indices)[nz]))
    return out


def projection_rows(network: Network, quant: Quantisation, chip: Chip) -> list[dict[str, Any]]:
    """One row per projection: kind, synapses, fan-in and fan-out (min/mean/max over the neurons
    that have any), delays used, weight bits and exponent."""
    lowered = {j.name: j for j in network.lowered().projections}
    max_delay = chip.value("arithmetic", "max_delay")
    rows = []
    for proj in network.projections:
        low = lowered[proj.name]
        parts = synapse_rows(low)
        pre = np.concatenate([r for _, r, _ in parts]) if parts else np.zeros(0, np.int64)
        post = np.concatenate([c for _, _, c in parts]) if parts else np.zeros(0, np.int64)
        pairs = np.unique(pre * low.shape[1] + post)
        fan_in = np.bincount(pairs % low.shape[1], minlength=low.shape[1])
        fan_out = np.bincount(pairs // low.shape[1], minlength=low.shape[0])
        delays = sorted({d for d, r, _ in parts if r.size})
        w = quant.weights.get(proj.name)
        rows.append({
            "projection": proj.name, "pre": proj.pre, "post": proj.post, "kind": _kind_of(proj),
            "synapses": int(pre.size),
            "fan_in": _stats(fan_in[fan_in > 0]), "fan_out": _stats(fan_out[fan_out > 0]),
            "delays": delays, "delay_bits": int(max(delays) - 1).bit_length() if delays else 0,
            "delay_fits": bool(max_delay is None or not delays or max(delays) <= max_delay),
            "weight_bits": w["bits"] if w else int(chip.value("arithmetic", "weight_bits") or 0),
            "weight_exp": (sorted(set(w["exponents"])) if w else None),
            "sign": w["sign"] if w else None, "bit_dropped": w["bit_dropped"] if w else None,
            "neurobench_layer": not isinstance(proj, ShapedProjection) or isinstance(proj, Convolution),
            "flatten": isinstance(proj, Flatten),
        })
    return rows


def population_rows(network: Network, quant: Quantisation) -> list[dict[str, Any]]:
    """One row per population: model, neurons, state bits, total fan-in and fan-out (distinct
    presynaptic sources and postsynaptic targets per neuron, over all its projections)."""
    lowered = network.lowered()
    src: dict[str, list[np.ndarray]] = {p.name: [] for p in network.populations}
    tgt: dict[str, list[np.ndarray]] = {p.name: [] for p in network.populations}
    offsets, k = {}, 0
    for node in (*network.inputs, *network.populations):
        offsets[node.name] = k
        k += node.size
    for proj in lowered.projections:
        for _, r, c in synapse_rows(proj):
            src[proj.post].append(c.astype(np.int64) * k + offsets[proj.pre] + r)
            if proj.pre in tgt:
                tgt[proj.pre].append(r.astype(np.int64) * k + offsets[proj.post] + c)
    rows = []
    for p in network.populations:
        counts = []
        for pairs in (src[p.name], tgt[p.name]):
            u = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, np.int64)
            counts.append(np.bincount(u // k, minlength=p.size) if u.size else np.zeros(p.size, np.int64))
        st = quant.states.get(p.name, {"bits": None, "variables": ""})
        rows.append({"population": p.name, "model": type(p.model).__name__, "neurons": p.size,
                     "shape": list(p.shape), "state_bits": st["bits"], "state_variables": st["variables"],
                     "fan_in": _stats(counts[0]), "fan_out": _stats(counts[1])})
    return rows


def delay_problem(rows: list[dict[str, Any]], chip: Chip) -> Optional[str]:
    """Why a projection's delays do not fit the chip (None when they all do)."""
    for r in rows:
        if not r["delay_fits"]:
            fig = chip.figure("arithmetic", "max_delay")
            return (f"{chip.name}: projections.{r['projection']}.delay: delays up to {max(r['delays'])} steps, "
                    f"more than the {fig.cite() if fig else ''} a synapse holds")
    return None
