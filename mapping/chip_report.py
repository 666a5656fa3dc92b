"""The resource and cost report of a network on a chip: :func:`chip_report` (the public entry
point, also for the demo report), its markdown and JSON renderings and an optional plot.

Per population and projection: neurons, synapses, fan-in and fan-out, weight and state bits,
delays (:mod:`mapping.chip_inventory`); the cores under the chip's per-core limits and the
limit that binds (:mod:`mapping.chip_partition`); synaptic operations and neuron updates per
inference from a simulated run, and energy and latency estimates (:mod:`mapping.chip_cost`).
Every constant used is listed with its citation and status; figures the chip file marks 'not
published' are named as such and left out of the estimate.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from neurosim.metrics import neurobench_metrics
from neurosim.network import Network
from neurosim.result import SimulationResult

from .chip_cost import Estimate, activity, estimate
from .chip_inventory import delay_problem, population_rows, projection_rows, quantisation
from .chip_partition import Partition, binding, binding_limits, chip_graph, partition
from .chips import LIMITS, Chip, ChipError


@dataclass(frozen=True)
class ChipReport:
    """The report's figures: `summary` (one dict of headline numbers), `populations`,
    `projections` and `cores` (lists of row dicts), the constants used (`constants`: rows with
    name, value, unit, status, source) and `notes` (lowering, quantisation, unpriced terms)."""

    chip: Chip
    network: str
    summary: dict[str, Any]
    populations: list[dict[str, Any]]
    projections: list[dict[str, Any]]
    cores: list[dict[str, Any]]
    constants: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    partition: Optional[Partition] = None

    def as_dict(self) -> dict[str, Any]:
        """Everything as plain JSON types."""
        return _plain({"chip": self.chip.name, "chip_title": self.chip.title, "network": self.network,
                       "summary": self.summary, "populations": self.populations, "projections": self.projections,
                       "cores": self.cores, "constants": self.constants, "notes": self.notes})

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"

    def rows(self) -> list[tuple[str, str]]:
        """The headline table as (quantity, value) rows (the demo report's summary lines)."""
        s = self.summary
        e, lat = s["energy_J"], s["latency_s"]
        return [
            ("chip", self.chip.title),
            ("cores", f"{s['cores']}" + (f" ({s['chips']} chip(s) of {s['cores_per_chip']:g} cores)"
                                          if s["chips"] else " (cores per chip not given)")),
            ("binding limit", s["binding_text"]),
            ("fullest limit on any core", s["fullest_text"]),
            ("synaptic ops / inference (NeuroBench, neurosim.metrics)", f"{s['synops_neurobench']:,.1f}"),
            ("synaptic events / inference (every chip synapse)", f"{s['synaptic_events']:,.1f}"),
            ("neuron updates / inference", f"{s['neuron_updates']:,.0f}"),
            ("energy / inference (estimate)", f"{_si(e[0], 'J')} .. {_si(e[1], 'J')}"),
            ("latency / inference (estimate)", f"{_si(lat[0], 's')} .. {_si(lat[1], 's')}"),
        ]

    def markdown(self, heading: int = 1) -> str:
        """The whole report as markdown, its title at heading level `heading` (2 to embed it as a
        section of another report, e.g. the demo's)."""
        s = self.summary
        h = "#" * (heading + 1)
        out = [f"{'#' * heading} Resource and cost report: {self.network} on {self.chip.title}", ""]
        out += [f"Run: {s['steps']} steps x {s['trials']} trial(s); figures per inference are per trial.", ""]
        out += ["| quantity | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in self.rows()] + [""]
        out += [f"{h} Cores and limits", "",
                "| limit | per core | status | most used on a core | cores with only this limit removed |",
                "|---|---|---|---|---|"]
        for name in LIMITS:
            fig = self.chip.figure("limits", name)
            used = max((c[name] for c in self.cores), default=0)
            shown = "not checked (not published)" if fig is None or fig.value is None else f"{fig.value:,.0f} {fig.unit}"
            status = fig.status if fig is not None else "absent"
            relaxed = s["cores_without"].get(name, "-")
            out.append(f"| {name} | {shown} | {status} | {used:,} | {relaxed} |")
        out += ["", f"Cores closed by each limit while filling: "
                    f"{', '.join(f'{k} {v}' for k, v in sorted(s['closed_by'].items())) or 'none'}.", ""]
        out += [f"{h} Populations", "", "| population | model | neurons | state bits | fan-in (min/mean/max) | "
                "fan-out (min/mean/max) | cores | spikes / inference |", "|---|---|---|---|---|---|---|---|"]
        for r in self.populations:
            out.append(f"| {r['population']} | {r['model']} | {r['neurons']:,} | {r['state_bits']} ({r['state_variables']}) "
                       f"| {_mm(r['fan_in'])} | {_mm(r['fan_out'])} | {r['cores']} | {r['spikes']:,.1f} |")
        out += ["", f"{h} Projections", "", "| projection | pre -> post | kind | synapses | fan-in (min/mean/max) | "
                "fan-out (min/mean/max) | delays | weight bits (exp) | synaptic events / inference |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in self.projections:
            exp = "" if r["weight_exp"] is None else f" (exp {','.join(map(str, r['weight_exp']))}, {r['sign']})"
            out.append(f"| {r['projection']} | {r['pre']} -> {r['post']} | {r['kind']} | {r['synapses']:,} | "
                       f"{_mm(r['fan_in'])} | {_mm(r['fan_out'])} | {_delays(r['delays'])} | {r['weight_bits']}{exp} "
                       f"| {r['events']:,.1f} |")
        out += ["", f"{h} Per core", "", "| core | neurons | fan-in axons | synaptic memory (bits) | fan-out axons | "
                "synaptic events / step (mean, max) |", "|---|---|---|---|---|---|"]
        for c in self.cores[:64]:
            out.append(f"| {c['core']} | {c['neurons']:,} | {c['fan_in_axons']:,} | {c['synaptic_memory']:,} | "
                       f"{c['fan_out_axons']:,} | {c['events_mean']:,.1f}, {c['events_max']:,.0f} |")
        if len(self.cores) > 64:
            out.append(f"| ... | {len(self.cores) - 64} more cores in the JSON report | | | | |")
        out += ["", f"{h} Energy and latency estimate", ""]
        for k, (lo, hi) in s["energy_terms"].items():
            out.append(f"- {k}: {_si(lo, 'J')}" + (f" .. {_si(hi, 'J')}" if hi != lo else ""))
        out += [f"- not priced: {u}" for u in s["unpriced"]]
        out += ["", f"{h} Constants and their sources", "", "| constant | value | status | source | note |",
                "|---|---|---|---|---|"]
        for c in self.constants:
            val = ("not published" if c["status"] == "not published" else "rule" if c["value"] is None
                   else f"{c['value']:g} {c['unit']}")
            out.append(f"| {c['name']} | {val} | {c['status']} | {c['source']} | {c['note']} |")
        cited = sorted({c["source"] for c in self.constants})
        out += ["", "Sources:", ""] + [f"- **{k}**: {self.chip.sources[k]}" for k in cited if k in self.chip.sources]
        out += ["", f"{h} Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(out)

    def plot(self, path: str) -> None:
        """Per core, the used fraction of every checked limit (bars), written as a PNG."""
        from matplotlib.figure import Figure

        from neurosim.atomic import write_png

        names = [n for n in LIMITS if self.chip.limit(n)]
        fig = Figure(figsize=(max(4.0, 0.5 * len(self.cores) + 2), 3.2), dpi=110, layout="constrained")
        ax = fig.subplots()
        width = 0.8 / max(len(names), 1)
        x = np.arange(len(self.cores))
        for k, n in enumerate(names):
            ax.bar(x + k * width, [c[n] / self.chip.limit(n) for c in self.cores], width, label=n)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xlabel("core")
        ax.set_ylabel("fraction of the per-core limit")
        ax.set_title(f"{self.network} on {self.chip.title}: {len(self.cores)} core(s)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        write_png(path, fig)


def chip_report(network: Network, result: SimulationResult, chip: Chip) -> ChipReport:
    """The resource and cost report of `network` on `chip`, with the activity of `result` (a
    simulation of `network`: :func:`neurosim.simulate`). Raises ChipError, one line with the
    reason, when the network cannot be placed (a neuron no core can hold, a delay too long)."""
    quant = quantisation(network, chip)
    projs = projection_rows(network, quant, chip)
    problem = delay_problem(projs, chip)
    if problem:
        raise ChipError(problem)
    weight_bits = {r["projection"]: r["weight_bits"] for r in projs}
    graph = chip_graph(network, chip, weight_bits)
    part = partition(graph, chip)
    relaxed = binding_limits(graph, chip, part.n_cores)
    binds = binding(relaxed, part.n_cores)
    act = activity(network, result, graph, part, {r["projection"]: r["neurobench_layer"] for r in projs})
    est = estimate(act, part, chip)
    metrics = neurobench_metrics(network, result)
    pops = population_rows(network, quant)
    for r in pops:
        off, size = graph.neuron_offset[r["population"]], r["neurons"]
        r["cores"] = len(np.unique(part.core_of[off:off + size]))
        r["spikes"] = act.spikes.get(r["population"], 0.0)
    for r in projs:
        r["events"] = act.events[r["projection"]]
    cores = [{"core": c, **{k: int(part.usage[k][c]) for k in LIMITS},
              "events_mean": float(act.core_events[:, :, c].mean()) if act.core_events.size else 0.0,
              "events_max": float(act.core_events[:, :, c].max()) if act.core_events.size else 0.0}
             for c in range(part.n_cores)]
    per_chip = chip.value("chip", "cores")
    fullest = {k: float(part.usage[k].max()) / chip.limit(k) for k in LIMITS if chip.limit(k) and part.n_cores}
    top = max(fullest, key=fullest.get) if fullest else None
    summary = {
        "cores": part.n_cores, "chips": _chips(chip, part.n_cores, network.n_neurons, int(graph.pre.size)),
        "cores_per_chip": per_chip, "binding": binds, "binding_text": _binding_text(binds, part, relaxed),
        "cores_without": relaxed, "closed_by": dict(part.closed_by), "fullest": fullest,
        "fullest_text": f"{top}: {fullest[top]:.1%} of the per-core limit" if top else "no limit checked",
        "steps": result.steps, "trials": result.batch,
        "synops_neurobench": metrics.effective_acs + metrics.effective_macs,
        "synops_neurobench_counted": act.neurobench_events,
        "synaptic_events": float(sum(act.events.values())), "neuron_updates": act.neuron_updates,
        "spike_messages": act.messages, "input_spike_messages": act.input_messages,
        "energy_J": est.energy, "latency_s": est.latency, "energy_terms": est.terms, "unpriced": est.unpriced,
        "neurons": network.n_neurons, "synapses": int(graph.pre.size),
    }
    return ChipReport(chip, network.name, summary, pops, projs, cores, _constants(chip, est),
                      _notes(network, quant, projs, chip), part)


def _chips(chip: Chip, cores: int, neurons: int, synapses: int) -> Optional[int]:
    """Chips needed: for the cores, and for the chip's neuron and synapse totals where given."""
    need = [int(np.ceil(n / cap)) for n, cap in ((cores, chip.value("chip", "cores")),
                                                 (neurons, chip.value("chip", "neurons")),
                                                 (synapses, chip.value("chip", "synapses"))) if cap]
    return max(need) if need and chip.value("chip", "cores") else None


def _binding_text(binds: list[str], part: Partition, relaxed: dict[str, int]) -> str:
    if part.n_cores <= 1:
        return "none: the network fits one core"
    if not binds:
        closed = ", ".join(f"{k} {v}" for k, v in sorted(part.closed_by.items()))
        return (f"several together: removing any one alone saves no core (cores closed by: {closed}; a core "
                "filled further under one limit may then be split for fan-out)")
    return ", ".join(f"{b} (without it: {relaxed[b]} core(s))" for b in binds)


def _constants(chip: Chip, est: Estimate) -> list[dict[str, Any]]:
    """Every figure of the chip file that the report used (limits, memory model, arithmetic,
    chip totals and the estimate's), with citation and status."""
    rows, seen = [], set()
    named = [(f"{g}.{n}", f) for g in ("chip", "limits", "memory_model", "arithmetic") for n, f in
             chip.groups.get(g, {}).items()] + est.figures
    for name, f in named:
        if name in seen:
            continue
        seen.add(name)
        rows.append({"name": name, "value": f.value, "unit": f.unit, "status": f.status, "source": f.ref,
                     "citation": f.source, "note": f.note})
    return rows


def _notes(network: Network, quant: Any, projs: list[dict[str, Any]], chip: Chip) -> list[str]:
    notes = []
    shaped = [r["projection"] for r in projs if "lowering" in r["kind"]]
    if shaped:
        notes.append(f"Shaped projections ({', '.join(shaped)}) are counted through their exact lowering "
                     "(Network.lowered()): one synapse per (pre, post) pair the kernel reaches; pooling and flatten "
                     "are synapses on the chip but not NeuroBench connection layers.")
    if quant.refused:
        notes.append(f"Fixed-point quantisation refused the network ({quant.refused}); weight and state bits are "
                     f"the chip file's nominal widths.")
    else:
        notes.append("Weight and state bits are those of neurosim's fixed-point model (neurosim.fixed_point.quantize,"
                     " Lava's arithmetic).")
    stand_ins = sorted({f"{g}.{n}" for g, figs in chip.groups.items() for n, f in figs.items()
                        if f.status == "stand-in"})
    if stand_ins:
        notes.append(f"Stand-in figures (another chip's, because {chip.title}'s are not published): "
                     f"{', '.join(stand_ins)}.")
    notes.append("The energy band runs from every neuron update at the inactive figure to every one at the active "
                 "figure; the latency assumes unthrottled steps, cores in parallel, each step as long as its busiest "
                 "core plus a barrier; spike routing between tiles (hops) is not placed and not priced.")
    return notes


def _mm(s: dict[str, float]) -> str:
    return f"{s['min']:,} / {s['mean']:,.1f} / {s['max']:,}"


def _delays(d: list[int]) -> str:
    if not d:
        return "-"
    return str(d[0]) if len(d) == 1 else f"{d[0]}..{d[-1]} ({len(d)} values)"


def _si(x: float, unit: str) -> str:
    if x != x:
        return "not estimated"
    for f, p in ((1e-12, "p"), (1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, "")):
        if abs(x) < f * 1000:
            return f"{x / f:.3g} {p}{unit}"
    return f"{x:.3g} {unit}"


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, float) and x != x:
        return None
    return x
