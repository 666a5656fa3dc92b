"""One definition of a task's accuracy, used by every trainer (the rules' loop, SAB) and evaluation.

`readouts` maps each masked step t to the readout (B, n_out) at t; `targets` are the batch's
(B,) labels or (B, T, n_out) per-step targets. The score of a batch is ``(correct, counted)``:

- labels: argmax of the mean readout over the masked steps; one count per sequence.
- per-step classes: one count per window of `Task.windows` (argmax of the window's mean readout
  against the class of its one-hot target) or, without windows, per masked step.
- regression: a sequence counts when every masked readout is within ``params["tolerance"]`` of
  its target.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from neurosim.errors import NeurosimError


def score(task: Any, readouts: Mapping[int, torch.Tensor], targets: torch.Tensor) -> tuple[int, int]:
    """(correct, counted) of one batch of `task` (see the module docstring)."""
    if not readouts:
        raise NeurosimError(f"task {task.name}: no masked step was read out, nothing to score")
    steps = sorted(readouts)
    if targets.ndim == 1:
        mean = torch.stack([readouts[t] for t in steps]).mean(0)
        return int((mean.argmax(1) == targets).sum()), int(targets.shape[0])
    if task.kind == "regression":
        tol = float(task.params.get("tolerance", 0.0))
        ok = torch.ones(targets.shape[0], dtype=torch.bool, device=targets.device)
        for t in steps:
            ok &= ((readouts[t] - targets[:, t]).abs() <= tol).all(1)
        return int(ok.sum()), int(targets.shape[0])
    windows = tuple(getattr(task, "windows", ())) or tuple((t, t + 1) for t in steps)
    correct = 0
    for lo, hi in windows:
        missing = [t for t in range(lo, hi) if t not in readouts]
        if missing:
            raise NeurosimError(f"task {task.name}: window [{lo}, {hi}) has steps outside the loss mask "
                                f"(first: {missing[0]})")
        mean = torch.stack([readouts[t] for t in range(lo, hi)]).mean(0)
        correct += int((mean.argmax(1) == targets[:, lo].argmax(1)).sum())
    return correct, len(windows) * int(targets.shape[0])
