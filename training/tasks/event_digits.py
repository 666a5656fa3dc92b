"""`nmnist_digits`: N-MNIST made the N-MNIST way from scikit-learn's bundled 8x8 digits, no
download: each digit, magnified and centred in a 34 x 34 field, moves in three saccades in
front of a simulated DVS (training.tasks.dvs) that emits ON/OFF events; the sample is the
(T, 2, 34, 34) event frames, flattened to (T, 2312) channel-major (ON plane, then OFF plane,
rows, columns), the label the digit."""
from __future__ import annotations

from typing import Any

import numpy as np

from neurosim.errors import NetworkError

from .base import (Split, Task, float_option, int_option, resolve_options, sample_count, split_rngs, step_mask)
from .dvs import pixel_thresholds, saccade_recording
from .images import N_DIGITS, digit_images

NMNIST_DEFAULTS: dict[str, Any] = dict(size=34, zoom=3.0, saccade_steps=6, amplitude=4.0, threshold=0.3,
                                       mismatch=0.05, background=0.1, n_val=None, loss_steps=None, dt=1e-3)


def nmnist_digits(seed: int, n_train: int | None, n_test: int | None, **options: Any) -> Task:
    """Event-camera digits (module docstring; the sensor model in training.tasks.dvs).

    Options: `size` (field, 34 as N-MNIST), `zoom` (magnification of the 8x8 image, 3: 24 x 24),
    `saccade_steps` (steps per saccade, 6: T = 18), `amplitude` (saccade triangle side in pixels,
    4), `threshold` (DVS contrast threshold C on log intensity, 0.3), `mismatch` (relative
    per-pixel threshold spread, 0.05), `background` (intensity added before the log, 0.1),
    `n_val` (validation samples taken from the train split, stratified, at least 10 or 0 for none;
    default 10% of the training samples, 144 of 1437, and none when that is under 10),
    `loss_steps` (readout over the last loss_steps steps; default all T), `dt` (seconds per step).

    Splits: test is the digits task's test split (``train_test_split(stratify=label,
    random_state=seed)``, 360 by default); validation `n_val` samples drawn stratified from the
    rest with the seed's train stream, train the remaining ones (1293 by default); the sensor's
    thresholds are drawn from the seed too. Inputs (N, T, 2312) uint8 0/1. Labels: the digit.

    Bar: 0.97 test accuracy (issue 19's bar for a conv SNN trained with BPTT).
    """
    name = "nmnist_digits"
    o = resolve_options(name, NMNIST_DEFAULTS, options)
    size = int_option(name, "size", o["size"], 8)
    zoom = float_option(name, "zoom", o["zoom"], 0.0)
    steps = int_option(name, "saccade_steps", o["saccade_steps"], 1)
    amplitude = float_option(name, "amplitude", o["amplitude"], 0.0, lo_open=False)
    threshold = float_option(name, "threshold", o["threshold"], 0.0)
    mismatch = float_option(name, "mismatch", o["mismatch"], 0.0, lo_open=False)
    background = float_option(name, "background", o["background"], 0.0)
    dt = float_option(name, "dt", o["dt"], 0.0)
    T = 3 * steps
    loss_steps = T if o["loss_steps"] is None else int_option(name, "loss_steps", o["loss_steps"], 1, T)
    n_te = sample_count(name, "n_test", n_test, 360, lo=10)
    n_tr = sample_count(name, "n_train", n_train, N_DIGITS - n_te)
    n_val = (int(round(0.1 * n_tr)) if round(0.1 * n_tr) >= 10 else 0) if o["n_val"] is None else \
        int_option(name, "n_val", o["n_val"], 0)
    if 0 < n_val < 10:
        raise NetworkError(f"{name}.n_val", f"expected 0 (no validation split) or at least 10 (one per class), got {n_val}")
    if n_tr - n_val < 10 or n_tr + n_te > N_DIGITS:
        raise NetworkError(f"{name}.n_train", f"expected n_train - n_val >= 10 and n_train + n_test <= {N_DIGITS}, "
                                              f"got {n_tr} - {n_val} and {n_tr} + {n_te}")
    images, labels, tr_idx, te_idx = digit_images(seed, n_tr, n_te)
    rng_train, _ = split_rngs(name, seed)
    thresholds = pixel_thresholds(rng_train, size, threshold, mismatch)
    val_idx = np.zeros(0, np.int64)
    if n_val:
        from sklearn.model_selection import train_test_split

        tr_idx, val_idx = train_test_split(tr_idx, test_size=n_val, stratify=labels[tr_idx],
                                           random_state=int(rng_train.integers(2**31)))
    mask = step_mask(T, T - loss_steps, T)

    def split(idx: np.ndarray) -> Split:
        x = np.stack([saccade_recording(images[i], thresholds, steps, amplitude, zoom, background) for i in idx])
        return Split(x.reshape(len(idx), T, -1), labels[idx].copy(), mask.copy())

    params = dict(o, T=T, loss_steps=loss_steps, n_train=len(tr_idx), n_val=len(val_idx), n_test=n_te,
                  shape=(2, size, size))
    return Task(name=name, n_in=2 * size * size, n_out=10, steps=T, dt=dt, kind="classification",
                train=split(tr_idx), test=split(te_idx), val=split(val_idx) if n_val else None,
                description="sklearn digits moved in three saccades before a simulated DVS (N-MNIST's method), "
                            f"2 x {size} x {size} event frames, {T} steps",
                bar=0.97, bar_source="issue 19: a conv SNN trained with BPTT reaches 97% test accuracy",
                params=params)
