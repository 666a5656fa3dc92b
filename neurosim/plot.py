"""Plots of simulation results: spike rasters with population rates, state traces, and activity
maps of shaped populations (spike counts per (C, H, W) as one image per channel).

Figures are built on matplotlib's object API with the Agg canvas (no pyplot, no display,
no global state) and written atomically: a temporary file in the target directory, then
``os.replace``. Time axes are in milliseconds (``step * dt``), rates in Hz.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from .atomic import write_png
from .errors import NetworkError
from .result import SimulationResult, SpikeTrains

SpikesLike = Union[SimulationResult, Mapping[str, SpikeTrains], SpikeTrains]


def raster(
    result_or_spikes: SpikesLike,
    path: Union[str, os.PathLike],
    populations: Optional[Iterable[str]] = None,
    trial: int = 0,
    max_points: int = 200_000,
    title: Optional[str] = None,
    *,
    dt: Optional[float] = None,
    readouts: Optional[Iterable[str]] = None,
    max_traces: int = 4,
    shapes: Optional[Mapping[str, Sequence[int]]] = None,
) -> None:
    """Write a PNG raster of one trial: spikes (top) and population rates in Hz (bottom).

    result_or_spikes: a :class:`SimulationResult`, a mapping name -> :class:`SpikeTrains`, or
    one SpikeTrains. populations: names to stack bottom to top (default: the result's neuron
    populations, else every entry). trial: index into the batch. max_points: if the trial
    has more spikes than this, an evenly spaced subset is drawn (the rates use every spike)
    and the title says so. dt: step in seconds for mappings/SpikeTrains (a result carries
    its own); without it the time axis is in steps and rates are per step.
    readouts: populations that never spike (LI); default: a result's ``meta['readouts']``. They
    are drawn as the voltage of up to `max_traces` neurons in a panel of their own (when 'v' was
    recorded), not as an empty raster band. Legends sit outside the axes.
    shapes: population -> shape (C, H, W) or (C, L) (``{p.name: p.shape for p in
    network.populations}``); a shaped population's rows are banded per channel
    (:func:`channel_bands`: flat index k = (c*H + y)*W + x, so channel c is one block of H*W rows).
    """
    spikes, dt, default = _spikes_of(result_or_spikes, dt)
    names = _select(spikes, populations, default)
    if readouts is None:
        readouts = result_or_spikes.meta.get("readouts", []) if isinstance(result_or_spikes, SimulationResult) else []
    readouts = [n for n in ([readouts] if isinstance(readouts, str) else readouts) if n in names]
    names = [n for n in names if n not in readouts] or names
    readouts = [n for n in readouts if n not in names]
    n_steps = max(s.n_steps for s in spikes.values())
    trial = _check_trial(trial, spikes[names[0]].n_batch)
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) or max_points < 1:
        raise NetworkError("max_points", f"expected a whole number >= 1, got {max_points!r}")
    scale, unit = (dt * 1e3, "time (ms)") if dt else (1.0, "time (steps)")

    # Stack populations: y = offset of the population + neuron index.
    xs, ys, groups, offsets = [], [], [], [0]
    for k, name in enumerate(names):
        s = spikes[name]
        m = s.batch == trial
        xs.append(np.asarray(s.step[m], np.float64) * scale)
        ys.append(np.asarray(s.index[m], np.int64) + offsets[-1])
        groups.append(np.full(int(m.sum()), k, np.int32))
        offsets.append(offsets[-1] + s.size)
    x, y, g = np.concatenate(xs), np.concatenate(ys), np.concatenate(groups)
    total = len(x)
    shown = total
    if total > max_points:
        keep = np.linspace(0, total - 1, int(max_points)).round().astype(np.int64)
        x, y, g = x[keep], y[keep], g[keep]
        shown = int(max_points)

    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 6.5 + 1.8 * bool(readouts)), dpi=100, layout="constrained")
    panels = fig.subplots(2 + bool(readouts), 1, sharex=True,
                          gridspec_kw={"height_ratios": [3, 1.2, 1][-2 - bool(readouts):]})
    ax, ax_rate = panels[0], panels[-1]
    colors = _colors(len(names))
    dot = 6.0 if shown < 5_000 else 3.0 if shown < 50_000 else 1.5
    for k, name in enumerate(names):
        m = g == k
        ax.scatter(x[m], y[m], s=dot, marker=".", linewidths=0, color=colors[k], rasterized=True)
    for k, name in enumerate(names):
        if k:
            ax.axhline(offsets[k] - 0.5, color="0.3", lw=0.8, ls="--")
        ax.text(1.005, (offsets[k] + offsets[k + 1]) / 2 / max(offsets[-1], 1), name, color=colors[k],
                transform=ax.transAxes, va="center", ha="left", fontsize=9, rotation=90)
        if shapes is not None and name in shapes:  # labels in proportion to the population's share of rows
            share = (offsets[k + 1] - offsets[k]) / max(offsets[-1], 1)
            channel_bands(ax, shapes[name], offsets[k], max_labels=int(24 * share))
    ax.set_ylim(-0.5, offsets[-1] - 0.5)
    ax.set_xlim(0, n_steps * scale)
    ax.set_ylabel("neuron (populations stacked)")
    if readouts:
        _readout_panel(panels[1], result_or_spikes, readouts, trial, scale, max_traces)

    bin_steps = max(1, n_steps // 200)
    edges = np.arange(0, n_steps + bin_steps, bin_steps)
    for k, name in enumerate(names):
        s = spikes[name]
        counts, _ = np.histogram(s.step[s.batch == trial], bins=edges)
        width = np.diff(edges).astype(np.float64)
        rate = counts / (s.size * width * (dt if dt else 1.0))
        ax_rate.step(edges[:-1] * scale, rate, where="post", color=colors[k], lw=1.0,
                     label=f"{name} ({len(s.step[s.batch == trial]) / (s.size * s.n_steps * (dt or 1.0)):.3g})")
    ax_rate.set_ylim(bottom=0)
    ax_rate.set_xlabel(unit)
    ax_rate.set_ylabel("rate (Hz)" if dt else "spikes/neuron/step")
    ax_rate.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8,
                   title="mean rate (Hz)" if dt else "mean rate", title_fontsize=8)

    head = title if title is not None else "spike raster"
    detail = f"trial {trial}, {total} spikes"
    if shown < total:
        detail = f"trial {trial}, showing {shown} of {total} spikes (evenly subsampled)"
    elif total == 0:
        detail = f"trial {trial}, no spikes"
    bin_text = f"rate bins {bin_steps * scale:g} ms" if dt else f"rate bins {bin_steps} steps"
    ax.set_title(f"{head}\n{detail}; {bin_text}", fontsize=10)
    _save_atomic(fig, path)


def traces(
    result: SimulationResult,
    path: Union[str, os.PathLike],
    population: str,
    var: str = "v",
    neurons: Sequence[int] = (0, 1, 2),
    trial: int = 0,
) -> None:
    """Write a PNG of recorded state `var` of `neurons` of `population` in one trial.

    The trace must have been recorded (``simulate(..., traces={population: [var]})`` or
    ``neurosim simulate --trace population:var``). With var 'v' and a recorded 'threshold',
    each neuron's threshold is drawn dashed. Time in ms. `neurons` are positions among the
    recorded neurons (all of the population unless the recording picked some: then labelled
    with their indices, neurosim.traces; a stride spaces the samples).
    """
    if not isinstance(result, SimulationResult):
        raise NetworkError("result", f"expected a SimulationResult, got {type(result).__name__}")
    recorded = result.traces.get(population)
    if recorded is None:
        raise NetworkError(f"traces.{population}", f"no traces recorded for {population!r} "
                                                   f"(recorded: {sorted(result.traces) or 'none'})")
    if var not in recorded:
        raise NetworkError(f"traces.{population}.{var}", f"variable {var!r} was not recorded "
                                                          f"(recorded: {sorted(recorded)})")
    data = np.asarray(recorded[var])
    trial = _check_trial(trial, data.shape[1])
    neurons = [int(j) for j in neurons]
    bad = [j for j in neurons if not 0 <= j < data.shape[2]]
    if bad or not neurons:
        raise NetworkError("neurons", f"expected indices in [0, {data.shape[2]}) of {population!r}, got {neurons}")
    picked = result.trace_selection.get(population)
    label = (lambda j: j) if picked is None or picked.neurons is None else (lambda j: picked.neurons[j])
    t = np.arange(data.shape[0]) * (1 if picked is None else picked.stride) * result.dt * 1e3

    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=100, layout="constrained")
    ax = fig.subplots()
    colors = _colors(len(neurons))
    thr = recorded.get("threshold") if var == "v" else None
    for k, j in enumerate(neurons):
        ax.plot(t, data[:, trial, j], color=colors[k], lw=1.0, label=f"neuron {label(j)}")
        if thr is not None:
            ax.plot(t, np.asarray(thr)[:, trial, j], color=colors[k], lw=0.8, ls="--")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(var)
    ax.set_xlim(0, max(t[-1], 1e-12) if len(t) else 1)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{population}.{var}, trial {trial}" + (" (dashed: threshold)" if thr is not None else ""),
                 fontsize=10)
    _save_atomic(fig, path)


def channel_bands(ax: Any, shape: Sequence[int], offset: int = 0, labels: bool = True, max_labels: int = 16) -> None:
    """Shade every other channel of a population of `shape` (C, ...) whose flat neurons sit at
    rows [offset, offset + prod(shape)) of raster axes `ax` (channel c: rows offset + c*n ...
    offset + (c + 1)*n - 1, n = prod(shape[1:])), and label channels on the left inside the axes
    (every channel up to `max_labels`, else every 2nd, 4th, ... so that at most `max_labels`
    are labelled; c0 always). Nothing for C = 1 or a flat shape."""
    shape = tuple(int(x) for x in shape)
    if len(shape) < 2 or shape[0] < 2:
        return
    c, n = shape[0], int(np.prod(shape[1:]))
    most = max(1, int(max_labels))
    every = 1 if c <= most else int(2 ** np.ceil(np.log2(c / most)))
    trans = ax.get_yaxis_transform()  # x in axes fraction, y in data
    for k in range(c):
        lo = offset + k * n - 0.5
        if k % 2:
            ax.axhspan(lo, lo + n, color="0.92", lw=0, zorder=0)
        if labels and k % every == 0:
            ax.text(0.002, lo + n / 2, f"c{k}", transform=trans, fontsize=6, va="center", ha="left", color="0.35",
                    clip_on=True)


def activity_maps(
    result: SimulationResult,
    path: Union[str, os.PathLike],
    shapes: Mapping[str, Sequence[int]],
    trial: Optional[int] = None,
    populations: Optional[Iterable[str]] = None,
    reference: Optional[SimulationResult] = None,
    title: Optional[str] = None,
    columns: int = 16,
) -> None:
    """Write a PNG of spike counts per neuron of shaped populations, one image per channel.

    shapes: population -> (C, H, W) or (C, L) (an (C, L) channel is drawn as a 1 x L image).
    trial: the trial counted (None: summed over every trial). populations: which (default: every
    population of `shapes` with a channel axis that `result` has). One block per population,
    `columns` channels per row, one colour scale per population (its colour bar on the right).
    With `reference`, each image is the difference result - reference of the counts (blue: the
    reference spiked more, red: `result` did), on a symmetric scale; white is no difference.
    """
    names = [n for n in (shapes if populations is None else populations)]
    names = [n for n in names if n in result.spikes and len(tuple(shapes[n])) >= 2]
    if not names:
        raise NetworkError("shapes", "expected at least one population with a shape (C, H, W) or (C, L) "
                                     f"among the result's populations {sorted(result.spikes)}")
    counts = {}
    for n in names:
        shape = tuple(int(x) for x in shapes[n])
        if int(np.prod(shape)) != result.spikes[n].size:
            raise NetworkError(f"shapes.{n}", f"expected {result.spikes[n].size} neurons, got shape {shape}")
        c = _counts(result, n, trial)
        if reference is not None:
            c = c - _counts(reference, n, trial)
        counts[n] = c.reshape((shape[0], 1, shape[1]) if len(shape) == 2 else shape)

    from matplotlib.figure import Figure

    blocks = [int(np.ceil(counts[n].shape[0] / columns)) for n in names]
    cols = min(columns, max(counts[n].shape[0] for n in names))
    fig = Figure(figsize=(max(7.5, 1.0 * cols + 1.6), sum(1.05 * b + 0.45 for b in blocks) + 0.6), dpi=100,
                 layout="constrained")
    subs = fig.subfigures(len(names), 1, squeeze=False, height_ratios=[1.05 * b + 0.45 for b in blocks])[:, 0]
    for sub, n, rows in zip(subs, names, blocks):
        data = counts[n]
        axes = sub.subplots(rows, cols, squeeze=False)
        if reference is not None:
            lim = max(1.0, float(np.abs(data).max()))
            kw = dict(cmap="bwr", vmin=-lim, vmax=lim)
        else:
            kw = dict(cmap="viridis", vmin=0.0, vmax=max(1.0, float(data.max())))
        image = None
        for k, ax in enumerate(axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if k >= data.shape[0]:
                ax.set_axis_off()
                continue
            image = ax.imshow(data[k], interpolation="nearest", aspect="equal", **kw)
            ax.set_title(f"c{k}", fontsize=7, pad=2)
        what = "count difference" if reference is not None else "spikes"
        sub.colorbar(image, ax=axes, shrink=0.9, label=what)
        sub.suptitle(f"{n}: {' x '.join(str(x) for x in shapes[n])} (C x H x W), {int(np.abs(data).sum())} "
                     f"{'spikes differ' if reference is not None else 'spikes'}", fontsize=9)
    which = "all trials" if trial is None else f"trial {trial}"
    fig.suptitle(title or f"spike counts per neuron ({which})", fontsize=10)
    _save_atomic(fig, path)


# ----------------------------------------------------------------------------------- helpers


def _counts(result: SimulationResult, name: str, trial: Optional[int]) -> np.ndarray:
    """Spike count per neuron of `name` in `trial` (all trials when None), float64."""
    s = result.spikes[name]
    if trial is None:
        return np.bincount(s.index, minlength=s.size).astype(np.float64)
    trial = _check_trial(trial, s.n_batch)
    return np.bincount(s.index[s.batch == trial], minlength=s.size).astype(np.float64)


def _readout_panel(ax: Any, result: Any, readouts: Sequence[str], trial: int, scale: float, max_traces: int) -> None:
    """Voltage traces of up to `max_traces` neurons per readout population, legend outside."""
    styles = ("-", "--", ":", "-.")
    missing = []
    for k, name in enumerate(readouts):
        v = result.traces.get(name, {}).get("v") if isinstance(result, SimulationResult) else None
        if v is None:
            missing.append(name)
            continue
        v = np.asarray(v)
        for j in range(min(max_traces, v.shape[2])):
            ax.plot(np.arange(v.shape[0]) * scale, v[:, trial, j], lw=1.0, ls=styles[k % 4],
                    color=f"C{j % 10}", label=f"{name}[{j}]")
    if missing:
        ax.text(0.5, 0.5, f"v of {', '.join(missing)} not recorded (traces={{name: ['v']}})",
                transform=ax.transAxes, ha="center", va="center", fontsize=8)
    ax.set_ylabel("readout v")
    if ax.lines:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, title="readout v",
                  title_fontsize=8)


def _spikes_of(obj: Any, dt: Optional[float]) -> tuple[dict[str, SpikeTrains], Optional[float], list[str]]:
    if isinstance(obj, SimulationResult):
        pops = [p for p in obj.meta.get("populations", []) if p in obj.spikes]
        return dict(obj.spikes), obj.dt, pops or list(obj.spikes)
    if isinstance(obj, SpikeTrains):
        return {"spikes": obj}, dt, ["spikes"]
    if isinstance(obj, Mapping) and obj and all(isinstance(v, SpikeTrains) for v in obj.values()):
        return dict(obj), dt, list(obj)
    raise NetworkError("result_or_spikes", "expected a SimulationResult, a SpikeTrains or a non-empty "
                                           f"mapping name -> SpikeTrains, got {type(obj).__name__}")


def _select(spikes: Mapping[str, SpikeTrains], populations: Optional[Iterable[str]], default: list[str]) -> list[str]:
    if populations is None:
        names = list(default)
    else:
        names = [populations] if isinstance(populations, str) else list(populations)
    if not names:
        raise NetworkError("populations", "expected at least one population name")
    unknown = [n for n in names if n not in spikes]
    if unknown:
        raise NetworkError("populations", f"no population or input named {unknown[0]!r} "
                                          f"(have {sorted(spikes)})")
    return names


def _check_trial(trial: Any, n_batch: int) -> int:
    if isinstance(trial, bool) or not isinstance(trial, (int, np.integer)) or not 0 <= trial < n_batch:
        raise NetworkError("trial", f"expected a trial index in [0, {n_batch}), got {trial!r}")
    return int(trial)


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(k % 10) for k in range(n)]


def _save_atomic(fig: Any, path: Union[str, os.PathLike]) -> None:
    """Save `fig` as PNG to `path` atomically (rendered in memory, neurosim.atomic.write_png)."""
    write_png(path, fig)


