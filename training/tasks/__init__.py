"""Bundled tasks for training spiking networks: generated on the fly or from data shipped with a
package, never downloaded.

A task is two `Split` records of spike inputs, targets and a loss mask, plus the sizes a network needs::

    task = make_task("evidence", seed=0)           # defaults: CI-sized, see each builder
    x = task.train.inputs                           # (N, T, n_in) float32, 0/1 (event counts for the
                                                    # tonic datasets: a lazy EventFrames, x[idx] reads)
    y = task.train.targets                          # (N,) int64 labels, or (N, T, n_out) float32
    m = task.train.loss_mask                        # (T,) bool: steps where the loss/readout counts

Conventions, common to every task:

- Time unit seconds (``dt``, durations); rates in Hz. A population firing at rate ``r`` spikes in a
  step independently with probability ``r * dt`` (Bernoulli approximation of Poisson, ``r*dt <= 1``).
- Durations given in seconds are rounded to whole steps, ``round(d / dt)``, and must give >= 1 step.
- Labels are balanced exactly (a shuffled ``arange(N) % n_classes``) wherever the generator chooses
  them; `digits` uses a stratified split.
- Deterministic in ``seed``; the train and test splits draw from two independent streams spawned
  from ``SeedSequence([seed, crc32(name)])``, so ``n_test`` never changes the train split.
- Classification with ``(N,)`` labels: read out over the masked steps (e.g. mean logits), then
  argmax. Classification with per-step one-hot targets ``(N, T, n_out)``: argmax at every masked
  step (`Split.per_step`).
- Arrays are plain writable numpy arrays (so ``torch.from_numpy`` works without a copy); treat them
  as read-only.

Errors name the option: ``make_task("evidence", n_cues=6)`` raises ``NetworkError`` with field
``evidence.n_cues``; an unknown option or task name lists the expected ones.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from neurosim.errors import NetworkError

from .base import Kind, Split, Task
from .event_digits import NMNIST_DEFAULTS, nmnist_digits
from .images import DIGITS_DEFAULTS, N_DIGITS, digit_images, digits
from .long_memory import adding, copy_memory
from .sequences import delayed_copy, delayed_xor
from .tonic_data import dvs_gesture, nmnist, shd, ssc
from .working_memory import evidence, store_recall

# ---------------------------------------------------------------------------------------------
# registry



TASKS: dict[str, Callable[..., Task]] = {
    "store_recall": store_recall,
    "evidence": evidence,
    "delayed_xor": delayed_xor,
    "delayed_copy": delayed_copy,
    "digits": digits,
    "nmnist_digits": nmnist_digits,
    "copy": copy_memory,
    "adding": adding,
    # event datasets from local files through tonic (training.tasks.tonic_data): inputs are event counts
    "shd": shd,
    "ssc": ssc,
    "nmnist": nmnist,
    "dvs_gesture": dvs_gesture,
}


def make_task(name: str, *, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
              **options: Any) -> Task:
    """Build task `name` (a key of `TASKS`) with `options` overriding its defaults (see its builder)."""
    if name not in TASKS:
        raise NetworkError("task", f"expected one of {sorted(TASKS)}, got {name!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise NetworkError(f"{name}.seed", f"expected a whole number >= 0, got {seed!r}")
    return TASKS[name](int(seed), n_train, n_test, **options)
