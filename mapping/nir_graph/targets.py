"""What each NIR export target can express, checked before anything is written.

A strict export (``extensions=False``) writes only NIR that ``nir.read`` accepts and that the
target's own importer reads as neurosim computes it; everything else is refused with the reason
and the nearest expressible alternative (:class:`Refusal`). The targets:

- ``neurosim``: read back by neurosim exactly (``neurosim.*`` metadata carries the per-step values).
  NIR's fields say a zero reset; neurosim's subtract reset, refractory periods and ALIF
  (node type ``neurosim.ALIF``, which ``nir.read`` rejects) are extensions: written only with
  ``extensions=True``, and then misread (subtract, refractory) or refused (ALIF) by every other tool.
- ``nir``: the NIR reference (forward Euler at the network's dt, reset to v_reset, v from the
  previous current): LIF, LI, IF and I nodes with zero reset; alpha > 0 is refused.
- ``snntorch`` (``snntorch.import_from_nir``): LIF as Leaky(reset='zero'), CubaLIF as Synaptic,
  both at dt = 1e-4, euler, input gain 1, one threshold per layer.
- ``norse`` (``norse.torch.from_nir(graph, dt=1e-3)``): LIF as LIFBoxCell (gain must be 1 - beta:
  Norse ignores r), CubaLIF as its CubaLIF module (any gain, through w_in), reset to zero.
- ``spikingjelly`` (``spikingjelly.activation_based.nir_exchange.import_from_nir(graph, dt=1e-4)``):
  LIF as LIFNode with one tau, threshold and reset per layer, gain 1 - beta (decay_input) or 1;
  CubaLIF as CUBALIFNode (``c = alpha*c + x``, ``v = beta*v + c``: neurosim's order) with gain 1.

The three peers run layers without latency: a neurosim network is expressible there only when it
is layered (every projection has delay 1, no recurrence, every population one step after the
populations that feed it) and its biases are zero (neurosim's act from step 0, before a layer's
first input; a peer's from the layer's first input).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from neurosim.errors import ExportError
from neurosim.network import Network

TARGETS = ("neurosim", "nir", "snntorch", "norse", "spikingjelly")
PEERS = ("snntorch", "norse", "spikingjelly")
TARGET_DT = {"snntorch": 1e-4, "norse": 1e-3, "spikingjelly": 1e-4}


@dataclass(frozen=True)
class Refusal:
    """Why `target` cannot hold `field`, and the nearest thing it can."""

    target: str
    field: str
    reason: str
    nearest: str

    def error(self) -> ExportError:
        return ExportError("nir", self.field, f"target {self.target}: {self.reason}; nearest expressible: {self.nearest}")


def check_target(target: str) -> None:
    """Refuse an unknown target name."""
    if target not in TARGETS:
        raise ExportError("nir", "target", f"expected one of {', '.join(TARGETS)}, got {target!r}")


def refusals(net: Network, target: str, extensions: bool) -> list[Refusal]:
    """Everything in `net` that `target` cannot express (empty: the export is exact)."""
    check_target(target)
    out: list[Refusal] = []
    for pop in net.populations:
        out += _population(net, pop.name, target, extensions)
    if target in PEERS:
        out += _layering(net, target)
    return out


def _population(net: Network, name: str, target: str, extensions: bool) -> list[Refusal]:
    pop = net.population(name)
    p, kind = pop.params, pop.model.kind
    field = f"populations.{name}.model"
    reset = getattr(pop.model, "reset", "subtract")
    out: list[Refusal] = []

    def no(reason: str, nearest: str, sub: str = "") -> None:
        out.append(Refusal(target, field + (f".{sub}" if sub else ""), reason, nearest))

    if kind == "alif":
        if not (target == "neurosim" and extensions):
            no("ALIF has no NIR primitive; neurosim writes it as node type neurosim.ALIF, which nir.read and "
               "every peer reject", "LIF (adapt = 0), or target neurosim with extensions (readable by neurosim only)")
        return out
    spiking = kind != "li"
    if spiking and reset == "subtract" and not (target == "neurosim" and extensions):
        no("a subtractive reset has no NIR field (NIR resets to v_reset; every peer's importer resets to v_reset)",
           "reset='zero', or target neurosim with extensions (the reset rule in neurosim.* metadata; misread as "
           "reset to zero by others)", "reset")
    if spiking and np.any(p.refractory > 0) and not (target == "neurosim" and extensions):
        no("NIR has no refractory period", "refractory = 0, or target neurosim with extensions", "refractory")
    if target in ("neurosim",):
        return out
    if target == "nir" and np.any(p.alpha > 0):
        no("NIR's reference CubaLIF takes v from the previous step's current, neurosim from this step's",
           "alpha = 0 (LIF), or target neurosim / snntorch / norse", "alpha")
    if target not in PEERS:
        return out
    if kind == "li":
        no(f"{target}'s NIR importer has no LI (leaky readout) node", "a spiking LIF readout, or read the last "
           "layer's weighted spikes outside the peer")
        return out
    if kind == "if" or np.any(p.beta >= 1):
        no(f"{target}'s importer has no exact IF (snnTorch builds it as a leaky neuron with beta = 0.9)",
           "LIF with beta < 1", "beta")
    if target == "snntorch":
        if np.any(p.gain != 1):
            no("snnTorch's Leaky/Synaptic have no input gain (its importer requires r*dt/tau = 1)",
               "gain = 1 with the gain folded into the weights", "gain")
        if np.unique(p.theta).size > 1:
            no("snnTorch's importer takes one threshold per layer", "one theta per population", "theta")
    if target == "norse" and np.all(p.alpha == 0) and not np.allclose(p.gain, 1 - p.beta, rtol=1e-12, atol=0):
        no("Norse's LIFBoxCell scales its input by dt/tau = 1 - beta and ignores NIR's r",
           "gain = 1 - beta (weights scaled by gain/(1 - beta)), or alpha > 0 (CubaLIF carries the gain)", "gain")
    if target == "spikingjelly":
        for f in ("alpha", "beta", "theta", "gain"):
            if np.unique(getattr(p, f)).size > 1:
                no(f"SpikingJelly's importer takes one {f} per layer", f"one {f} per population", f)
        g, b = float(p.gain[0]), float(p.beta[0])
        if np.any(p.alpha > 0) and g != 1:
            no("SpikingJelly's CUBALIFNode has no input gain (its importer requires w_in = tau_syn/dt and "
               "r = tau_mem/dt)", "gain = 1 with the gain folded into the weights", "gain")
        elif not (g == 1 or np.isclose(g, 1 - b, rtol=1e-12, atol=0)):
            no("SpikingJelly's LIFNode takes its input with gain 1 - beta (decay_input) or 1",
               "gain = 1 or gain = 1 - beta", "gain")
    return out


def _layering(net: Network, target: str) -> list[Refusal]:
    """Zero-latency peers: every projection delay 1, no recurrence, layered, no bias."""
    out: list[Refusal] = []
    depth = {s.name: 0 for s in net.inputs}
    for _ in range(len(net.populations) + 1):
        for j in net.projections:
            if j.pre in depth and j.pre != j.post:
                depth.setdefault(j.post, depth[j.pre] + 1)
    for j in net.projections:
        field = f"projections.{j.name}"
        if j.pre == j.post or depth.get(j.post, 0) <= depth.get(j.pre, 0):
            out.append(Refusal(target, field, f"{target}'s importer does not run a recurrent projection as neurosim "
                                              "does (snnTorch 1.0 routes the layer's input through w_rec; Norse and "
                                              "SpikingJelly load only feed-forward LIF graphs here)",
                               "a feed-forward network, or target neurosim"))
        elif np.any(np.asarray(j.delay) != 1):
            out.append(Refusal(target, f"{field}.delay", f"{target}'s importer has no delays",
                               "delay 1 everywhere"))
        elif depth.get(j.post) != depth.get(j.pre, 0) + 1:
            out.append(Refusal(target, field, f"a projection that skips a layer arrives later in neurosim than in "
                                              f"{target}, whose layers have no latency", "a layered network"))
    for pop in net.populations:
        if np.any(pop.params.bias != 0):
            out.append(Refusal(target, f"populations.{pop.name}.model.bias",
                               f"neurosim's bias acts from step 0, {depth.get(pop.name, 0)} step(s) before the "
                               f"layer's first input; {target}'s Linear bias starts with the first input",
                               "bias = 0 (or import the peer's biased graph with --convention, which carries it "
                               "on a clock population)"))
    return out


def first_refusal(net: Network, target: str, extensions: bool) -> Optional[ExportError]:
    """The first refusal as an ExportError (None: exportable)."""
    found = refusals(net, target, extensions)
    return found[0].error() if found else None
