"""Activity of a simulated run on the chip's cores and its energy and latency estimate.

From a :class:`~neurosim.result.SimulationResult` of the network (per trial, i.e. per inference):

- **synaptic events**: ``sum_j spikes_j * synapses_j`` over every chip synapse (lowered shaped
  projections included, pooling and flatten too: the chip stores and updates them); the events
  of the NeuroBench layers (dense, CSR, convolution) are NeuroBench's effective synaptic
  operations (:mod:`neurosim.metrics`), counted here from the spikes independently. A spike is
  counted when it is sent.
- **neuron updates**: every neuron every step (the cores are clock-driven per step).
- **spike messages**: each spike of a neuron goes once to each distinct core its synapses reach;
  input spikes enter from off the cores (counted apart).

Energy (J per inference) = events * E_synop + updates * E_update + messages * E_spike, a band
from the inactive to the active neuron-update figure; latency (s per inference) = sum over steps
of (the busiest core's events * t_synop + its neurons * t_update) + a barrier per step, a band
likewise (barrier: one tile's figure below, the largest published above). A term whose figure the
chip file marks 'not published' (or omits) is not priced, and the estimate lists it; without the
synaptic-op or the neuron-update figure there is no energy total (nan), without a time figure no
latency.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from neurosim.network import Network
from neurosim.result import SimulationResult

from .chip_inventory import synapse_rows
from .chip_partition import ChipGraph, Partition
from .chips import Chip


@dataclass(frozen=True)
class Activity:
    """Per-inference counts of one run (averaged over its trials)."""

    steps: int
    trials: int
    events: dict[str, float]            # projection -> synaptic events per inference
    neurobench_events: float            # of the NeuroBench layers
    neuron_updates: float
    spikes: dict[str, float]            # population or input -> spikes per inference
    messages: float                     # neuron spike messages to cores
    input_messages: float               # input spikes to cores
    core_events: np.ndarray             # (steps, trials, cores): synaptic events per step and core


def activity(network: Network, result: SimulationResult, graph: ChipGraph, part: Partition,
             neurobench: dict[str, bool]) -> Activity:
    """Count what the run did (see the module docstring); `neurobench`: projection -> whether it
    is a NeuroBench connection layer."""
    trials, steps = result.batch, result.steps
    counts = {name: np.bincount(tr.index, minlength=tr.size) for name, tr in result.spikes.items()}
    missing = [j.pre for j in network.projections if j.pre not in counts]
    if missing:
        raise ValueError(f"result.spikes: no spikes of {missing[0]!r}; simulate the same network")
    events: dict[str, float] = {}
    lowered = {j.name: j for j in network.lowered().projections}
    for proj in network.projections:
        total = 0
        for _, rows, _ in synapse_rows(lowered[proj.name]):
            total += int(np.dot(np.bincount(rows, minlength=proj.shape[0]), counts[proj.pre].astype(np.int64)))
        events[proj.name] = total / trials
    n_cores = part.n_cores
    n_in = graph.n_sources - graph.n_neurons
    # R[source, core]: synapses from each source onto each core
    reach = np.zeros((graph.n_sources, n_cores), np.int64)
    np.add.at(reach, (graph.pre, part.core_of[graph.post]), 1)
    cores_reached = (reach > 0).sum(axis=1)
    core_events = np.zeros((steps, trials, n_cores), np.float64)
    messages = input_messages = 0
    for name, off in graph.source_offset.items():
        tr = result.spikes.get(name)
        if tr is None or not len(tr):
            continue
        src = off + tr.index.astype(np.int64)
        np.add.at(core_events, (tr.step, tr.batch), reach[src])
        if off >= n_in:
            messages += int(cores_reached[src].sum())
        else:
            input_messages += int(cores_reached[src].sum())
    return Activity(steps, trials, events, sum(v for k, v in events.items() if neurobench[k]),
                    float(network.n_neurons * steps),
                    {k: float(c.sum()) / trials for k, c in counts.items()},
                    messages / trials, input_messages / trials, core_events)


@dataclass(frozen=True)
class Estimate:
    """Energy (J) and latency (s) per inference as (low, high) bands, the terms that make them,
    and the terms left unpriced because the chip file marks their figure 'not published'."""

    energy: tuple[float, float]
    latency: tuple[float, float]
    terms: dict[str, tuple[float, float]] = field(default_factory=dict)
    unpriced: list[str] = field(default_factory=list)
    figures: list[tuple[str, Any]] = field(default_factory=list)


def estimate(act: Activity, part: Partition, chip: Chip) -> Estimate:
    """Energy and latency per inference from `act` on `part` with the chip's figures."""
    terms: dict[str, tuple[float, float]] = {}
    unpriced: list[str] = []
    used: list[tuple[str, Any]] = []

    def fig(group: str, name: str) -> Optional[float]:
        f = chip.figure(group, name)
        if f is None:
            return None
        used.append((f"{group}.{name}", f))
        return f.value

    synop = sum(act.events.values())
    e_syn = fig("energy", "synaptic_op")
    e_lo, e_hi = fig("energy", "neuron_update_inactive"), fig("energy", "neuron_update_active")
    e_msg, e_in = fig("energy", "spike_within_tile"), fig("energy", "input_spike")
    static = fig("energy", "static_power")
    for label, count, lo, hi in (("synaptic ops", synop, e_syn, e_syn),
                                 ("neuron updates", act.neuron_updates, e_lo, e_hi),
                                 ("spike messages", act.messages, e_msg, e_msg),
                                 ("input spikes", act.input_messages, e_in, e_in)):
        if count == 0:
            continue
        if lo is None or hi is None:
            unpriced.append(f"{label} ({count:,.0f} per inference): energy figure not published")
            continue
        terms[label] = (count * lo, count * hi)
    if static is None:
        unpriced.append("static (leakage) power: not published")
    core_terms = [("synaptic ops", synop), ("neuron updates", act.neuron_updates)]
    if any(count > 0 and label not in terms for label, count in core_terms):  # no total without the main terms
        energy = (float("nan"), float("nan"))
    else:
        energy = (sum(t[0] for t in terms.values()), sum(t[1] for t in terms.values()))

    t_syn = fig("time", "synaptic_op")
    t_lo, t_hi = fig("time", "neuron_update_inactive"), fig("time", "neuron_update_active")
    s_one, s_max = fig("time", "barrier_sync_one_tile"), fig("time", "barrier_sync_32_tiles")
    per_tile = fig("time", "cores_per_tile") or 1
    latency = (float("nan"), float("nan"))
    if None not in (t_syn, t_lo, t_hi, s_one, s_max):
        neurons = part.usage["neurons"].astype(np.float64)
        tiles = int(np.ceil(part.n_cores / per_tile))
        lo_step = act.core_events * t_syn + neurons * t_lo          # (steps, trials, cores)
        hi_step = act.core_events * t_syn + neurons * t_hi
        sync_hi = s_one if tiles <= 1 else s_max
        latency = (float(np.mean(lo_step.max(axis=2).sum(axis=0))) + act.steps * s_one,
                   float(np.mean(hi_step.max(axis=2).sum(axis=0))) + act.steps * sync_hi)
        if tiles > 32:
            unpriced.append(f"barrier synchronisation across {tiles} tiles: published only up to 32 tiles")
    else:
        unpriced.append("latency: a time figure is not published")
    return Estimate(energy, latency, terms, unpriced, used)
