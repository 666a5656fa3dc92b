"""Simulation results: sparse spike trains per population and optional state traces."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .traces import TraceSelection


@dataclass(frozen=True, eq=False)
class SpikeTrains:
    """Sparse spikes of one population: event k is neuron `index[k]` of trial `batch[k]` at step `step[k]`.

    Events are sorted by (step, batch, index).
    """

    step: np.ndarray
    batch: np.ndarray
    index: np.ndarray
    size: int
    n_steps: int
    n_batch: int

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> "SpikeTrains":
        """The sparse form of boolean (or 0/1) spikes of shape (n_steps, n_batch, size)."""
        t, b, j = np.nonzero(dense)
        return cls(t.astype(np.int64), b.astype(np.int32), j.astype(np.int32), dense.shape[2],
                   dense.shape[0], dense.shape[1])

    def dense(self) -> np.ndarray:
        """Boolean array of shape (n_steps, n_batch, size)."""
        out = np.zeros((self.n_steps, self.n_batch, self.size), dtype=bool)
        out[self.step, self.batch, self.index] = True
        return out

    def counts(self) -> np.ndarray:
        """Spike count per trial and neuron, shape (n_batch, size)."""
        out = np.zeros((self.n_batch, self.size), dtype=np.int64)
        np.add.at(out, (self.batch, self.index), 1)
        return out

    def rate_hz(self, dt: float) -> float:
        """Mean firing rate over neurons, trials and time, in Hz."""
        return len(self.step) / (self.size * self.n_batch * self.n_steps * dt)

    def __len__(self) -> int:
        return int(len(self.step))


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What :func:`neurosim.simulate` returns.

    spikes: name -> SpikeTrains for every population and input; traces: population ->
    variable ('v', 'i', 'a', 'threshold') -> array (steps, batch, size), or (kept steps, batch,
    kept neurons) for a population in trace_selection (neurosim.traces.TraceSelection: the
    neurons kept and the stride);
    timings: seconds for 'setup', 'run' (the simulation loop), 'record' and 'total'.
    """

    spikes: dict[str, SpikeTrains]
    traces: dict[str, dict[str, np.ndarray]]
    timings: dict[str, float]
    backend: str
    dtype: str
    dt: float
    steps: int
    batch: int
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)
    trace_selection: dict[str, TraceSelection] = field(default_factory=dict)

    def rates_hz(self) -> dict[str, float]:
        """Mean firing rate of every population and input, Hz."""
        return {k: v.rate_hz(self.dt) for k, v in self.spikes.items()}

    def n_spikes(self) -> int:
        """Total spikes across populations (inputs excluded)."""
        return int(sum(len(self.spikes[k]) for k in self.meta.get("populations", self.spikes)))

    def summary(self) -> str:
        lines = [f"{self.steps} steps x {self.batch} trials at dt = {self.dt:g} s on {self.backend} "
                 f"({self.dtype}); run {self.timings.get('run', float('nan')):.3f} s, "
                 f"total {self.timings.get('total', float('nan')):.3f} s"]
        for name, s in self.spikes.items():
            lines.append(f"  {name:<16} {len(s):>10} spikes  {s.rate_hz(self.dt):9.2f} Hz")
        return "\n".join(lines)
