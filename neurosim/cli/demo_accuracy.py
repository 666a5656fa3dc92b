"""Accuracy where it will run (issue 24, item 1): the test accuracy of one trained network in
every arithmetic it runs in, each scored by the task's one rule (training.scoring.score).

- torch (float32): the kept torch module's forward pass, readout v of population 'out';
- neurosim (float64): :func:`neurosim.simulate` of the exported Network, readout v;
- neurosim fixed point: :func:`neurosim.fixed_point.simulate_fixed` of ``quantize(network)``,
  the readout's integer state decoded back to float units (its 'v' trace, S_j = 64 vth / theta_j);
- Lava fixed_pt: the cross-check's Lava run (Loihi2SimCfg fixed_pt) on its subset, readout v
  in float units, which must score as neurosim's fixed point does on every trial there.

Each evaluation keeps the score of every trial (``correct`` of ``counted`` answers: one per trial
for label tasks, one per recall window for store-and-recall), so the table can compare all of
them on the same first-k trials of the test split.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

READOUT = "out"  # the readout population of every network the trainer builds (training.rules.Objective)


@dataclass(frozen=True)
class Scores:
    """Per-trial scores of one evaluation: trials 0..n-1 of the test split."""

    name: str
    where: str
    correct: np.ndarray  # (n,) answers right per trial
    counted: np.ndarray  # (n,) answers per trial

    @property
    def n(self) -> int:
        return int(len(self.correct))

    def accuracy(self, k: Optional[int] = None) -> float:
        """Accuracy over the first `k` trials (all when None): sum(correct) / sum(counted)."""
        k = self.n if k is None else k
        if k > self.n:
            raise ValueError(f"{self.name}: scored {self.n} trials, asked for {k}")
        return float(self.correct[:k].sum() / self.counted[:k].sum())


def trial_scores(task: Any, v_out: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    """(correct, counted) per trial of readout potentials `v_out` (T, B, n_out) against the
    split's `targets` of those B trials, each trial scored by training.scoring.score over the
    task's masked steps."""
    import torch

    from training.scoring import score

    v = torch.as_tensor(np.asarray(v_out, np.float64))
    y = torch.as_tensor(np.asarray(targets))
    steps = np.flatnonzero(task.test.loss_mask)
    out = np.array([score(task, {int(t): v[t, k:k + 1] for t in steps}, y[k:k + 1]) for k in range(v.shape[1])],
                   np.int64).reshape(-1, 2)
    return out[:, 0], out[:, 1]


def scores_of(name: str, where: str, task: Any, v_out: Any) -> Scores:
    """:class:`Scores` of readout potentials `v_out` (T, B, n_out) of the first B test trials."""
    correct, counted = trial_scores(task, v_out, task.test.targets[:np.shape(v_out)[1]])
    return Scores(name, where, correct, counted)


def torch_readout(model: Any, task: Any, batch_size: int = 64) -> np.ndarray:
    """Readout v (T, N, n_out) of the torch `model` on every test trial, batch by batch, as the
    trainer feeds it (training.runfiles.to_batch, the model's dtype)."""
    import torch

    from training.runfiles import to_batch

    parts = []
    with torch.no_grad():
        for lo in range(0, len(task.test), batch_size):
            idx = np.arange(lo, min(lo + batch_size, len(task.test)))
            b = to_batch(task.test, idx, model.v0.dtype, model.v0.device)
            rec, _ = model.forward(b.inputs, record=("v",))
            parts.append(rec[READOUT]["v"].double().cpu().numpy())
    return np.concatenate(parts, axis=1)


def test_spikes(task: Any, n: Optional[int] = None) -> np.ndarray:
    """The first `n` (all when None) test trials as bool input spikes (T, n, n_in)."""
    x = np.asarray(task.test.inputs[:n] if n is not None else task.test.inputs) != 0
    return np.ascontiguousarray(x.transpose(1, 0, 2))


def fixed_readout(network: Any, task: Any, n: int, *, chunk: int = 8, progress: bool = False) -> tuple[np.ndarray, Any]:
    """Readout v (T, n, n_out) of neurosim's fixed-point mode on the first `n` test trials, in
    float units decoded from the integer state, and the quantised network; `chunk` trials per
    call of simulate_fixed."""
    from tqdm.auto import tqdm

    from ..fixed_point import quantize, simulate_fixed

    fixed = quantize(network)
    parts = []
    x = test_spikes(task, n)
    with tqdm(total=n, desc="fixed point (test trials)", unit="trial", disable=not progress) as bar:
        for lo in range(0, n, chunk):
            res = simulate_fixed(fixed, {"in": x[:, lo:lo + chunk]}, task.steps, traces={READOUT: ["v"]})
            parts.append(np.asarray(res.traces[READOUT]["v"], np.float64))
            bar.update(min(chunk, n - lo))
    return np.concatenate(parts, axis=1), fixed


def accuracy_rows(evals: Sequence[Scores], columns: Sequence[tuple[str, int]]) -> list[list[str]]:
    """Table rows: evaluation, how it ran, then its accuracy on each (label, first-k trials)
    column where it scored at least k trials ('-' where it did not run that many)."""
    rows = []
    for e in evals:
        cells = [f"{e.accuracy(k):.4f} ({int(e.correct[:k].sum())}/{int(e.counted[:k].sum())})" if e.n >= k else "-"
                 for _, k in columns]
        rows.append([e.name, e.where, *cells])
    return rows


def same_scores(a: Scores, b: Scores) -> tuple[int, int]:
    """(trials where `a` and `b` score the same, trials both scored)."""
    k = min(a.n, b.n)
    return int(np.sum(a.correct[:k] == b.correct[:k])), k
