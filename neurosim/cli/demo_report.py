"""The demo's report: rasters of every simulator side by side, the summary table, report.md,
the self-contained report.html, and the check of the task bar and cross-check agreement.
Every function reads a :class:`neurosim.cli.demo.DemoResult` (`res`)."""
from __future__ import annotations

import base64
import html
import os
from dataclasses import asdict
from typing import Any, Optional

import numpy as np

from ..atomic import write_png


# ------------------------------------------------------------------------------------ figures


def plot_rasters(results: dict[str, Any], path: str, net: Any, trial: int = 0, max_traces: int = 4) -> None:
    """One column per simulator: the spikes of every spiking population in trial `trial` (top)
    and, below, the membrane voltage of up to `max_traces` neurons of every readout population
    (LI: it never spikes, so a raster of it would be an empty band). Populations are stacked
    flat; a shaped one (C, H, W) is banded per channel (neurosim.plot.channel_bands). Legends sit
    outside the axes."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from ..plot import channel_bands

    names = list(results)
    pops = [p.name for p in net.populations if p.spiking]
    shapes = {p.name: p.shape for p in net.populations}
    n_rows = sum(net.population(p).size for p in pops)
    mark = 14 if n_rows <= 500 else 3
    readouts = [p.name for p in net.populations if not p.spiking]
    rows = 2 if readouts else 1
    fig = Figure(figsize=(3.2 * len(names) + 1.6, 3.4 + 1.8 * (rows - 1)), dpi=110, layout="constrained")
    grid = fig.subplots(rows, len(names), squeeze=False, sharex=True, sharey="row",
                        gridspec_kw={"height_ratios": [3, 1.4][:rows]})
    handles: list[Any] = []
    for col, name in enumerate(names):
        res, ax = results[name], grid[0, col]
        offset = 0
        for k, pop in enumerate(pops):
            s = res.spikes[pop]
            m = s.batch == trial
            ax.scatter(s.step[m] * res.dt * 1e3, s.index[m] + offset, s=mark, marker="|" if mark > 5 else ".",
                       linewidths=1.2 if mark > 5 else 0, color=f"C{k}", rasterized=True)
            channel_bands(ax, shapes[pop], offset, labels=col == 0, max_labels=int(24 * s.size / n_rows))
            if k:
                ax.axhline(offset - 0.5, color="0.3", lw=0.6, ls="--")
            offset += s.size
        ax.set_ylim(-0.5, offset - 0.5)
        ax.set_xlim(0, res.steps * res.dt * 1e3)
        ax.set_title(f"{name}\n{res.backend}", fontsize=9)
        for k, pop in enumerate(readouts):
            v = res.traces.get(pop, {}).get("v")
            axr = grid[1, col]
            if v is None:
                axr.text(0.5, 0.5, "v not recorded", transform=axr.transAxes, ha="center", fontsize=8)
                continue
            for j in range(min(max_traces, v.shape[2])):
                axr.plot(np.arange(v.shape[0]) * res.dt * 1e3, v[:, trial, j], lw=0.9,
                         ls=("-", "--", ":", "-.")[k % 4], color=f"C{(len(pops) + j) % 10}")
        grid[-1, col].set_xlabel("time (ms)")
    grid[0, 0].set_ylabel("neuron")
    handles += [Line2D([], [], ls="", marker="|", color=f"C{k}", label=f"{pop} spikes") for k, pop in enumerate(pops)]
    if readouts:
        grid[1, 0].set_ylabel("readout v")
        sizes = {pop: results[names[0]].spikes[pop].size for pop in readouts}
        handles += [Line2D([], [], lw=0.9, ls=("-", "--", ":", "-.")[k % 4], color=f"C{(len(pops) + j) % 10}",
                           label=f"{pop}[{j}] v") for k, pop in enumerate(readouts)
                    for j in range(min(max_traces, sizes[pop]))]
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=7)
    write_png(path, fig)


def plot_activity(result: Any, path: str, net: Any) -> None:
    """Activity maps of every shaped population of `net` in `result` (neurosim.plot.activity_maps):
    spike counts per (C, H, W) summed over the result's trials, one image per channel."""
    from ..plot import activity_maps

    activity_maps(result, path, {p.name: p.shape for p in net.populations if len(p.shape) > 1},
                  title=f"spike counts per neuron, summed over the {result.batch} cross-checked test trials "
                        "(neurosim float64)")


# ------------------------------------------------------------------------------------ reports


def summary_rows(res: Any) -> list[tuple[str, str]]:
    """The report's summary table as (label, value) rows: task, network, kept epoch, accuracy in
    every arithmetic, worst agreements."""
    c = res.config
    bar = "" if res.bar is None else f" (task bar {res.bar:g}: {'met' if res.test_accuracy >= res.bar else 'NOT met'})"
    rows = [("task, rule", f"{c.task}, {c.rule}"), ("network", network_text(res)),
            ("test accuracy (torch, float32)", f"{res.test_accuracy:.4f}{bar}"),
            ("test accuracy (neurosim simulation, float64)", f"{res.simulated_accuracy:.4f}")]
    if getattr(res, "epoch", ""):
        rows.insert(2, ("epoch kept", res.epoch))
    for e in getattr(res, "accuracy", [])[2:]:  # fixed point (and Lava fixed_pt): on their subsets
        which = f"all {e.n} test trials" if e.n == c.n_test else f"first {e.n} trials"
        rows.append((f"test accuracy ({e.name}, {which})", f"{e.accuracy():.4f}"))
    rows += [("worst agreement (bins, exact targets)", _percent(res.check.worst("bins", exact_only=True))),
             ("worst agreement (spike times, exact targets)", _percent(res.check.worst("spikes", exact_only=True)))]
    return rows


def network_text(res: Any) -> str:
    """One line describing the trained network (layers and sizes)."""
    c = res.config
    if not getattr(c, "arch", None):
        return f"{c.model.upper()} x {c.hidden} recurrent, LI readout"
    net = res.check.network
    layers = ", ".join(f"{p.name} {' x '.join(str(x) for x in p.shape)} {type(p.model).__name__}"
                       for p in net.populations)
    return f"layered `{c.arch}`: {layers} ({net.n_neurons} neurons, {net.n_synapses} synapses lowered)"


def accuracy_table(res: Any) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the accuracy in every arithmetic on the whole test set and its subsets."""
    from .demo_accuracy import accuracy_rows

    return (["arithmetic", "run by", *[label for label, _ in res.columns]],
            accuracy_rows(res.accuracy, res.columns))


def accuracy_notes(res: Any) -> list[str]:
    """Where two arithmetics score the test trials alike (trial by trial)."""
    from .demo_accuracy import same_scores

    by = {e.name: e for e in res.accuracy}
    pairs = [("neurosim (float64)", "torch (float32)"), ("neurosim fixed point", "neurosim (float64)"),
             ("Lava fixed_pt", "neurosim fixed point")]
    notes = []
    for a, b in pairs:
        if a in by and b in by:
            same, k = same_scores(by[a], by[b])
            notes.append(f"{a} scores {same} of {k} trials as {b} does" + (" (every one)" if same == k else ""))
    if "Lava fixed_pt" not in by:
        notes.append("Lava fixed_pt did not run: " + res.check.skipped.get("lava-fixed", "not among the targets"))
    return notes


def _percent(worst: Optional[float]) -> str:
    return "no exact comparison made" if worst is None else f"{100 * worst:.3f}%"


def report_markdown(res: Any, out: str) -> str:
    """report.md of the run in directory `out` (files linked relatively)."""
    rel = lambda p: os.path.relpath(p, out)  # noqa: E731
    lines = ["# neurosim demo report", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in summary_rows(res)] + [""]
    if res.accuracy:
        header, rows = accuracy_table(res)
        lines += ["## Accuracy where it will run", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows] + [""]
        lines += [f"- {n}" for n in accuracy_notes(res)] + [""]
    lines += ["## Training curve", "", f"![training curve]({rel(res.files['curve'])})", ""]
    lines += ["## One test trial in every simulator", "", f"![rasters]({rel(res.files['rasters'])})", ""]
    if "activity" in res.files:
        lines += ["## Activity maps", "", f"![activity maps]({rel(res.files['activity'])})", ""]
    lines += ["## Agreement", "", res.check.table(), ""]
    if res.check.skipped:
        lines += [f"- {k} skipped: {v}" for k, v in res.check.skipped.items()] + [""]
    if res.metrics is not None:
        lines += ["## NeuroBench metrics (the test set in neurosim, per trial)", "", "```", res.metrics.table(),
                  "```", ""]
    if isinstance(res.chip, str):
        lines += ["## Resource and cost report: Loihi 2", "", res.chip, ""]
    elif res.chip is not None:
        lines += [res.chip.markdown(heading=2), ""]
    lines += ["## Exports", ""] + [f"- **{k}**: {v}" for k, v in res.exports.items()] + [""]
    lines += ["## Fixed-point quantisation", "", "```", res.quantisation, "```", ""]
    lines += ["## Stage timings", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in res.stages.items()] + [""]
    lines += ["## Versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in res.versions.items()] + [""]
    lines += ["## Configuration", "", "```", *(f"{k} = {v}" for k, v in asdict(res.config).items()), "```", ""]
    lines += ["## Files", ""] + [f"- [{k}]({rel(v)})" for k, v in res.files.items() if k not in ("report", "html")]
    return "\n".join(lines) + "\n"


def report_html(res: Any, out: str) -> str:
    """The report as one HTML page: images inlined as data URIs, files linked relatively."""
    e = html.escape
    rel = lambda p: os.path.relpath(p, out)  # noqa: E731

    def img(path: str, alt: str) -> str:
        with open(path, "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
        return f'<img alt="{e(alt)}" src="data:image/png;base64,{data}" style="max-width:100%">'

    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    agree = [[r.target, r.reference, r.population, f"{r.reference_spikes} / {r.target_spikes}",
              f"{100 * r.count:.3f}%", f"{100 * r.bins:.3f}%", f"{100 * r.spikes:.3f}%",
              "-" if r.max_abs_dv is None else f"{r.max_abs_dv:.3g}",
              "none" if r.divergence is None else f"step {r.divergence.step}, neuron {r.divergence.neuron}: "
                                                   f"{r.divergence.reason}"] for r in res.check.rows]
    overlays = [img(v, k) for k, v in sorted(res.files.items()) if k.startswith("crosscheck_overlay_")]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>neurosim demo report</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}pre{background:#f6f6f6;padding:8px}</style>",
        "</head><body><h1>neurosim demo report</h1>",
        table(["", ""], [list(r) for r in summary_rows(res)]),
        *(["<h2>Accuracy where it will run</h2>", table(*accuracy_table(res)),
           "<ul>" + "".join(f"<li>{e(n)}</li>" for n in accuracy_notes(res)) + "</ul>"] if res.accuracy else []),
        "<h2>Training curve</h2>", img(res.files["curve"], "training curve"),
        "<h2>One test trial in every simulator</h2>", img(res.files["rasters"], "rasters"),
        *(["<h2>Activity maps</h2>", img(res.files["activity"], "activity maps")] if "activity" in res.files else []),
        "<h2>Agreement</h2>",
        table(["target", "reference", "population", "spikes (ref / target)", "count", "bins identical",
               "spike times", "max |dv|", "first divergence"], agree),
        "".join(f"<p>{e(k)} skipped: {e(v)}</p>" for k, v in res.check.skipped.items()),
        *overlays,
        *(["<h2>NeuroBench metrics (the test set in neurosim, per trial)</h2>", f"<pre>{e(res.metrics.table())}</pre>"]
          if res.metrics is not None else []),
        *_chip_html(res.chip, table),
        "<h2>Exports</h2><ul>" + "".join(f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in res.exports.items()) + "</ul>",
        f"<h2>Fixed-point quantisation</h2><pre>{e(res.quantisation)}</pre>",
        "<h2>Stage timings</h2>", table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in res.stages.items()]),
        "<h2>Versions</h2>", table(["package", "version"], [[k, v] for k, v in res.versions.items()]),
        "<h2>Files</h2><ul>" + "".join(f'<li><a href="{e(rel(v))}">{e(k)}</a></li>'
                                        for k, v in res.files.items() if k not in ("report", "html")) + "</ul>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _chip_html(chip: Any, table: Any) -> list[str]:
    """The resource report's headline table (its full text: loihi2.md), or the refusal."""
    if chip is None:
        return []
    head = "<h2>Resource and cost report: Loihi 2</h2>"
    if isinstance(chip, str):
        return [head, f"<p>{html.escape(chip)}</p>"]
    return [head, table(["quantity", "value"], [list(r) for r in chip.rows()]),
            "<p>Every constant with its source, per-core use and per-population figures: loihi2.md.</p>"]


def check_bar(res: Any, min_agreement: float = 1.0) -> list[str]:
    """What falls short: the task bar, or the cross-check's (CrossCheck.shortfalls): a skipped
    target, no exact comparison, or exact-target agreement below `min_agreement` (bins), or a
    failed Brian2 export. A NIR export refused because NIR cannot express the network (ALIF) is
    a reported outcome, not a shortfall."""
    problems = []
    if res.bar is not None and res.test_accuracy < res.bar:
        problems.append(f"test accuracy {res.test_accuracy:.3f} is below the task bar {res.bar:g}")
    problems += [f"cross-check: {p}" for p in res.check.shortfalls("bins", min_agreement)]
    nir_refused = str(res.exports.get("nir", "")).startswith("not exported: nir: ")
    if "brian2" not in res.files or ("nir" not in res.files and not nir_refused):
        problems.append("an export failed: " + "; ".join(f"{k}: {v}" for k, v in res.exports.items()))
    return problems

