"""The dense switch shared by the CPU backends: which dense blocks (:class:`neurosim.plan.DenseBlock`,
dense projections from an input source with one delay) run as a product over the batch for a
chunk of input, by the measured input density.

A block switched on adds ``s[t] @ W`` (one GEMM) to its targets' input at step t + delay
instead of its spikes' rows. The product sums in BLAS's order: the input then equals the
event-driven sum to rounding, and bit for bit where every partial sum is exact (weights and
counts on a grid of 2**-k; tests/test_fast_sim.py).
"""
from __future__ import annotations

import numpy as np

from .errors import NetworkError
from .plan import Plan

MODES = ("auto", "never", "always")
OPTION = ("when a dense projection from an input runs as one product over the batch instead of its spikes' "
          "rows: 'auto' (when the chunk's input density reaches the backend's DENSE_CROSSOVER), 'never' "
          "(event-driven: bit for bit the NumPy reference) or 'always'")


def check_mode(mode: str) -> str:
    """`mode` if it is one of :data:`MODES`, else NetworkError on 'backend_options.dense'."""
    if mode not in MODES:
        raise NetworkError("backend_options.dense", f"expected one of {MODES}, got {mode!r}")
    return mode


def switched_on(plan: Plan, src: np.ndarray, mode: str, crossover: float) -> np.ndarray:
    """bool (len(plan.blocks),): the blocks that run as a product over the chunk `src` (steps,
    batch, n_sources): all ('always'), none ('never'), or those whose inputs' density (nonzero
    entries / entries over the chunk and batch) is at least `crossover` ('auto')."""
    on = np.zeros(len(plan.blocks), np.bool_)
    for k, blk in enumerate(plan.blocks):
        if mode == "always":
            on[k] = True
        elif mode == "auto":
            part = src[:, :, blk.pre_lo - plan.n_neurons:blk.pre_hi - plan.n_neurons]
            on[k] = np.count_nonzero(part) >= crossover * max(part.size, 1)
    return on
