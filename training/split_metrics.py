"""NeuroBench metrics of a trained network on a task's test split (``neurosim train`` writes them
into metrics.csv every epoch).

The network is simulated in neurosim (the target users deploy, as the demo does) batch by
batch, so a streamed split never has to fit in memory; events per channel are summed over the
batches and turned into metrics by :func:`neurosim.metrics.metrics_from_counts`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from neurosim.metrics import Metrics, event_counts, metrics_from_counts
from neurosim.network import Network, SpikeInput
from neurosim.simulate import simulate

from .runfiles import to_batch


def split_metrics(network: Network, split: Any, batch_size: int = 256, dtype: str = "float64",
                     backend: str = "numpy") -> Metrics:
    """Metrics of `network` run on every trial of `split` (its inputs feed the network's
    SpikeInputs in order, as training feeds them); footprint at `dtype`. The default numpy
    backend compiles nothing, so a streamed epoch's peak memory stays that of training."""
    names = [s for s in network.inputs if isinstance(s, SpikeInput)]
    if len(names) != len(network.inputs):
        raise ValueError("network: test-set metrics need spike inputs only (Poisson inputs are drawn, not given)")
    counts: dict[str, np.ndarray] = {}
    graded: set[str] = set()
    n, steps = len(split.inputs), 0
    for lo in range(0, n, batch_size):
        idx = np.arange(lo, min(lo + batch_size, n))
        x = to_batch(split, idx, torch.float32).inputs.cpu().numpy()  # (T, B, S); counts are exact in float32
        steps = x.shape[0]
        given, col = {}, 0
        for s in names:
            part = x[:, :, col:col + s.size]
            col += s.size
            if np.any((part != 0) & (part != 1)):
                graded.add(s.name)
            given[s.name] = part if s.name in graded else part != 0
        res = simulate(network, given, steps, backend=backend, dtype=dtype)
        for name, c in event_counts(res).items():
            counts[name] = counts.get(name, 0) + c
    return metrics_from_counts(network, counts, steps, n, dtype, graded)
