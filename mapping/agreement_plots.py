"""The cross-check's figures (mapping.agreement): the raster and membrane overlay of a target
against its reference, and activity maps of shaped populations (neurosim.plot.activity_maps)."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from neurosim.atomic import write_png
from neurosim.result import SimulationResult


def plot_activity(result: SimulationResult, reference: Optional[SimulationResult], path: str,
                  shapes: Mapping[str, Sequence[int]], name: str) -> None:
    """Spike counts per channel of every shaped population of `result`, summed over its trials
    (with `reference`: the differences result - reference). `name` titles the figure."""
    from neurosim.plot import activity_maps

    what = "spike-count difference" if reference is not None else "spike counts"
    activity_maps(result, path, shapes, reference=reference,
                  title=f"{name}: {what} per neuron, summed over {result.batch} trial(s)")


def plot_overlay(reference: SimulationResult, target: SimulationResult, path: str, trial: int = 0,
                 title: str = "", max_neurons: int = 200, readouts: Sequence[str] = (),
                 shapes: Optional[Mapping[str, Sequence[int]]] = None) -> None:
    """PNG: per spiking population, spikes in both (black), only in the reference (red), only in
    the target (blue); per readout population (never spikes), the voltage traces of up to 4
    neurons in both (solid: reference, dashed: target); at the bottom, the membrane trace of the
    first diverging neuron (or neuron 0) in both. Every panel shares one time axis [0, steps*dt)
    in ms, and every legend sits outside the axes, on the right. A flat population shows its
    first `max_neurons` neurons; a population of `shapes` with a channel axis (C, H, W) shows
    every neuron, flat (k = (c*H + y)*W + x), banded per channel (neurosim.plot.channel_bands)."""
    from neurosim.plot import channel_bands

    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    pops = [p for p in reference.meta.get("populations", list(reference.spikes)) if p in target.spikes]
    fig = Figure(figsize=(11, 2.2 * len(pops) + 2.4), dpi=110, layout="constrained")
    axes = fig.subplots(len(pops) + 1, 1, squeeze=False, sharex=True)[:, 0]
    scale = reference.dt * 1e3
    outside = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7)
    focus: Optional[tuple[str, int]] = None
    for ax, pop in zip(axes, pops):
        if pop in readouts:
            handles = []
            for j, color in zip(range(min(4, reference.spikes[pop].size)), ("C0", "C1", "C2", "C3")):
                for res, style in ((reference, "-"), (target, "--")):
                    v = res.traces.get(pop, {}).get("v")
                    if v is not None:
                        ax.plot(np.arange(res.steps) * scale, v[:, trial, j], style, color=color, lw=0.9)
                handles.append(Line2D([], [], color=color, lw=0.9, label=f"{pop}[{j}]"))
            handles += [Line2D([], [], color="0.3", ls="-", lw=0.9, label="reference"),
                        Line2D([], [], color="0.3", ls="--", lw=0.9, label="target")]
            ax.set_ylabel(f"{pop} v")
            ax.legend(handles=handles, title="readout v", title_fontsize=7, **outside)
            continue
        shape = tuple((shapes or {}).get(pop, ()))
        shown = reference.spikes[pop].size if len(shape) > 1 else max_neurons
        a = reference.spikes[pop].dense()[:, trial, :shown]
        b = target.spikes[pop].dense()[:, trial, :shown]
        for mask, color, label in ((a & b, "k", "both"), (a & ~b, "tab:red", "reference only"),
                                   (~a & b, "tab:blue", "target only")):
            t, j = np.nonzero(mask)
            ax.scatter(t * scale, j, s=4 if color == "k" else 14, c=color, marker="|" if color == "k" else "x",
                       label=f"{label} ({len(t)})", linewidths=0.8, rasterized=True)
        if len(shape) > 1:
            channel_bands(ax, shape)
            ax.set_ylim(-0.5, a.shape[1] - 0.5)
        ax.set_ylabel(f"{pop}\nneuron" + (f"\n({' x '.join(str(x) for x in shape)})" if len(shape) > 1 else ""))
        ax.legend(title="spikes", title_fontsize=7, **outside)
        if focus is None and np.any(a != b):
            focus = (pop, int(np.argwhere(a != b)[0][1]))
    spiking = [p for p in pops if p not in readouts] or pops
    pop, j = focus if focus is not None else (spiking[0], 0)
    ax = axes[-1]
    time_ms = np.arange(reference.steps) * scale
    for res, style, label in ((reference, "k-", "reference"), (target, "C1--", "target")):
        v = res.traces.get(pop, {}).get("v")
        if v is not None:
            ax.plot(time_ms, v[:, trial, j], style, lw=0.9, label=f"{label} v")
    ax.set_ylabel(f"{pop}[{j}] v")
    ax.set_xlabel("time (ms)")
    ax.set_xlim(0, reference.steps * scale)
    if ax.lines:
        ax.legend(**outside)
    fig.suptitle(title or "cross-check")
    write_png(path, fig)
