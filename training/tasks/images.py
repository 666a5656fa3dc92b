"""Sequential or static digits from scikit-learn's bundled 8x8 digits (`digits`, `digit_images`)."""
from __future__ import annotations

from typing import Any

import numpy as np

from neurosim.errors import NetworkError

from .base import (Split, Task, bernoulli_spikes, choice_option, float_option, int_option, regular_spikes,
                   resolve_options, sample_count, split_rngs, step_mask)


DIGITS_DEFAULTS: dict[str, Any] = dict(mode="rows", row_steps=10, pixel_steps=1, steps=20, gain=1.0, dt=1e-3,
                                       coding="poisson", loss_steps=None)
N_DIGITS = 1797  # sklearn.datasets.load_digits: 1797 8x8 images, intensities 0..16


def digit_images(seed: int, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits and the split every digits task uses: (images
    (1797, 8, 8) float32 in [0, 1], labels int64, train indices, test indices) from
    ``train_test_split(stratify=label, random_state=seed % 2**32)``. Sizes are checked by the caller."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise NetworkError("digits", "needs scikit-learn (the 'train' extra: pip install neurosim[train])") from e

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    labels = data.target.astype(np.int64)
    tr_idx, te_idx = train_test_split(np.arange(N_DIGITS), train_size=n_train, test_size=n_test, stratify=labels,
                                      random_state=seed % 2**32)
    return images, labels, tr_idx, te_idx


def digits(seed: int, n_train: int | None, n_test: int | None, **options: Any) -> Task:
    """Sequential or static digits from scikit-learn's bundled 8x8 digits
    (``sklearn.datasets.load_digits``: 1797 images, intensities x in 0..16, shipped with sklearn).

    Rate coding at ``p = gain * x / 16`` per step for a pixel of intensity x (max rate ``gain / dt``):
    ``coding="poisson"`` (default) spikes independently with probability p in each step of the
    presentation; ``coding="regular"`` spikes deterministically whenever the running sum of p
    passes the next half-integer, so each presentation window carries within one spike of its
    expected count (no sampling noise: the linear oracle below rises from 0.91 to 0.96 on rows).

    | mode | presentation | T (default) | n_in | loss mask |
    |---|---|---|---|---|
    | rows (default) | row r, 8 pixels, steps [r, r+1) * row_steps | 8 row_steps (80) | 8 | last row |
    | pixels | pixel i (row-major), steps [i, i+1) * pixel_steps | 64 pixel_steps (64) | 1 | last pixel |
    | static | all 64 pixels during all `steps` | steps (20) | 64 | all steps |

    Sequential modes read out after the whole image has been seen; static reads out everywhere.
    ``loss_steps`` (1..T) widens or narrows the loss mask to the last `loss_steps` steps: T puts an
    instantaneous loss on every step, the per-step loss of OTTT's and rate-based BP's papers.
    Train/test: ``train_test_split(stratify=label, random_state=seed % 2**32)``, 1437 / 360 by default
    (``n_train, n_test >= 10``, ``n_train + n_test <= 1797``). Label: the digit (n_out = 10).

    Bar: 0.90 (rows, static), 0.80 (pixels): our own criterion, below what a logistic regression on
    the spike counts of each presentation window reaches at the defaults (tests/test_tasks.py).
    """
    name = "digits"
    o = resolve_options(name, DIGITS_DEFAULTS, options)
    mode = choice_option(name, "mode", o["mode"], ("rows", "pixels", "static"))
    coding = choice_option(name, "coding", o["coding"], ("poisson", "regular"))
    dt = float_option(name, "dt", o["dt"], 0.0)
    gain = float_option(name, "gain", o["gain"], 0.0, 1.0)
    row_steps = int_option(name, "row_steps", o["row_steps"], 1)
    pixel_steps = int_option(name, "pixel_steps", o["pixel_steps"], 1)
    n_steps = int_option(name, "steps", o["steps"], 1)
    n_tr = sample_count(name, "n_train", n_train, 1437)
    n_te = sample_count(name, "n_test", n_test, 360, lo=10)
    if n_tr < 10 or n_tr + n_te > N_DIGITS:
        raise NetworkError(f"{name}.n_train", f"expected n_train >= 10 and n_train + n_test <= {N_DIGITS}, "
                                              f"got {n_tr} + {n_te}")
    images, labels, tr_idx, te_idx = digit_images(seed, n_tr, n_te)
    if mode == "rows":
        steps, n_in, readout = 8 * row_steps, 8, row_steps

        def prob(img: np.ndarray) -> np.ndarray:
            return np.repeat(img, row_steps, axis=1)                   # (n, 8 rows * row_steps, 8)
    elif mode == "pixels":
        steps, n_in, readout = 64 * pixel_steps, 1, pixel_steps

        def prob(img: np.ndarray) -> np.ndarray:
            return np.repeat(img.reshape(-1, 64, 1), pixel_steps, axis=1)
    else:
        steps, n_in, readout = n_steps, 64, n_steps

        def prob(img: np.ndarray) -> np.ndarray:
            return np.broadcast_to(img.reshape(-1, 1, 64), (img.shape[0], n_steps, 64))

    if o["loss_steps"] is not None:
        readout = int_option(name, "loss_steps", o["loss_steps"], 1, steps)

    def split(rng: np.random.Generator, idx: np.ndarray) -> Split:
        p = prob(images[idx] * np.float32(gain))
        spikes = bernoulli_spikes(rng, p) if coding == "poisson" else regular_spikes(p)
        return Split(spikes, labels[idx], step_mask(steps, steps - readout, steps))

    r_train, r_test = split_rngs(name, seed)
    return Task(name, n_in, 10, steps, dt, "classification", split(r_train, tr_idx), split(r_test, te_idx),
                f"sklearn 8x8 digits, mode {mode!r}, {coding} rate code (p = {gain} x / 16 per step); label = digit",
                0.80 if mode == "pixels" else 0.90,
                "own criterion, below the logistic-regression oracle on spike counts (tests/test_tasks.py)",
                {"pixels": (0, n_in)}, dict(o, steps=steps, readout_steps=readout,
                                            train_index=tr_idx, test_index=te_idx))
