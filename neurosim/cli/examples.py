"""The bundled example networks of ``neurosim example`` and ``neurosim cuba``, and the CUBA run's summary."""
from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

from ..version import __version__
from .common import CLIError

CUBA_N, CUBA_SYN = 4000, 80  # the CUBA example's default size and mean outgoing synapses per neuron


def synaptic_events(network: Any, result: Any) -> int:
    """Synapses driven by the spikes of the run: sum over spikes of the sender's out-degree."""
    total = 0
    for proj in network.projections:
        spikes = result.spikes.get(proj.pre)
        if spikes is None or not len(spikes):
            continue
        csr, _ = proj.to_csr()
        degree = np.diff(np.asarray(csr.indptr))
        total += int(degree[np.asarray(spikes.index)].sum())
    return total


def cuba_summary(net: Any, result: Any, events: int, stages: dict[str, float], files: dict[str, str]) -> str:
    """summary.md of `neurosim cuba`: the run, rates per population, timings, versions."""
    import h5py

    sim_s = result.steps * result.dt
    run = result.timings.get("run", float("nan"))
    lines = [
        f"# neurosim cuba: CUBA network, {net.n_neurons} neurons, {sim_s:g} s",
        "",
        f"- network: `{net.name}`, {net.n_neurons} LIF neurons, {net.n_synapses} synapses, "
        f"dt = {net.dt * 1e3:g} ms ({os.path.basename(files['model'])})",
        f"- simulation: {result.steps} steps ({sim_s:g} s of model time), {result.batch} trial(s), "
        f"backend **{result.backend}** ({result.dtype}), seed {result.seed} ({os.path.basename(files['result'])})",
        f"- synaptic events: {events} ({events / max(run, 1e-12):.3g} per second of run time); "
        f"steps per second: {result.steps / max(run, 1e-12):.3g}",
        f"- raster: {os.path.basename(files['raster'])}",
        "",
        "## Rates per population",
        "",
        "| population | neurons | spikes | rate (Hz) |",
        "|---|---:|---:|---:|",
    ]
    for name, spikes in result.spikes.items():
        lines.append(f"| {name} | {spikes.size} | {len(spikes)} | {spikes.rate_hz(result.dt):.2f} |")
    lines += ["", "## Timings (wall clock, seconds)", "", "| stage | s |", "|---|---:|"]
    for key in ("setup", "run", "record", "total"):
        if key in result.timings:
            lines.append(f"| simulate: {key} | {result.timings[key]:.3f} |")
    lines += [f"| {key} | {value:.3f} |" for key, value in stages.items()]
    lines += ["", "## Versions", "",
              f"- neurosim {__version__}, Python {platform.python_version()}, numpy {np.__version__}, "
              f"h5py {h5py.__version__}" + _numba_version(result.backend),
              f"- machine: {platform.machine()}, {platform.system()} {platform.release()}, "
              f"{os.cpu_count()} CPUs", ""]
    return "\n".join(lines)


def _numba_version(backend: str) -> str:
    if backend != "numba":
        return ""
    try:
        import numba

        return f", numba {numba.__version__}"
    except ImportError:  # pragma: no cover - the backend would not have run
        return ""


def build_cuba(n: int, syn_per_neuron: int, seed: int) -> Any:
    """The CUBA network of assets/cuba.py (n neurons, `syn_per_neuron` outgoing synapses on average)."""
    try:
        from assets.cuba import cuba_network
    except ImportError as exc:
        raise CLIError(f"the CUBA example needs the 'assets' package of neurosim (assets/cuba.py): {exc}") from None
    return cuba_network(n=n, syn_per_neuron=syn_per_neuron, seed=seed)


def default_input(network: Any, steps: int, rate_hz: float, seed: int) -> dict[str, np.ndarray]:
    """Spikes for every SpikeInput of `network`: bool (steps, size), each channel spiking in a step
    with probability ``rate_hz * dt`` (one trial; a generator seeded with (seed, k) for input k)."""
    from ..network import SpikeInput

    p = rate_hz * network.dt
    if not 0 <= p <= 1:
        raise CLIError(f"default input: {rate_hz:g} Hz at dt {network.dt:g} s is not a probability per step")
    return {s.name: np.random.default_rng([seed, k]).random((steps, s.size)) < p
            for k, s in enumerate(network.inputs) if isinstance(s, SpikeInput)}


def asset_path(name: str) -> str:
    """The path of bundled file `name` of the assets package; CLIError when it is missing."""
    try:
        import assets
    except ImportError as exc:
        raise CLIError(f"the examples need the 'assets' package of neurosim: {exc}") from None
    path = os.path.join(os.path.dirname(os.path.abspath(assets.__file__)), name)
    if not os.path.exists(path):
        raise CLIError(f"{path}: bundled example file is missing from this installation")
    return path
