"""A simulated DVS (event camera) looking at a moving image: the way N-MNIST was recorded from
MNIST (Orchard et al. 2015, "Converting static image datasets to spiking neuromorphic datasets
using saccades"), here in discrete time.

Scene. The static image ``g`` (values in [0, 1]) is magnified by `zoom` (bilinear) and placed on
a ``size x size`` field of background 0; at step t it is shifted by ``p[t]`` pixels
(sub-pixel, bilinear interpolation, zero outside). ``p`` follows three saccades along an
isosceles triangle of side about `amplitude` pixels, as N-MNIST's pan-tilt unit did::

    (0, 0) -> (amplitude, amplitude / 2) -> (0, amplitude) -> (0, 0)     (dy, dx), each leg
                                                                          `steps` steps at constant speed

The whole path is centred on the field.

Pixel. Each pixel sees the log intensity ``L[t] = log(I[t] + eps)`` with ``I = background +
g_shifted`` and keeps the reference level ``R`` of its last event (``R = L[0]`` at the start).
At step t::

    ON  event  if L[t] - R > C_pixel     then R <- R + C_pixel
    OFF event  if R - L[t] > C_pixel     then R <- R - C_pixel

at most one event per pixel and step (a refractory period of one step; a larger change is sent
over the following steps, as a real DVS pixel's refractoriness spreads it). ``C_pixel = C *
(1 + mismatch * N(0, 1))``, clipped to [C/4, 4C], drawn once per sensor from the seed (the
threshold mismatch of real sensors). Output: frames (T, 2, size, size) of 0/1, channel 0 ON,
channel 1 OFF.
"""
from __future__ import annotations

import numpy as np


def saccade_path(steps: int, amplitude: float) -> np.ndarray:
    """(3 * steps + 1, 2) positions (dy, dx) of the three saccades (module docstring), centred."""
    corners = np.array([[0.0, 0.0], [amplitude, amplitude / 2], [0.0, amplitude], [0.0, 0.0]])
    legs = [a + (b - a) * (np.arange(steps) / steps)[:, None] for a, b in zip(corners[:-1], corners[1:])]
    path = np.concatenate(legs + [corners[-1:]])
    return path - (path.max(0) + path.min(0)) / 2


def scene(image: np.ndarray, shifts: np.ndarray, size: int, zoom: float) -> np.ndarray:
    """Intensity frames (len(shifts), size, size): `image` magnified by `zoom`, centred on the
    field, shifted by each (dy, dx); bilinear, 0 outside the image."""
    from scipy.ndimage import map_coordinates  # scipy comes with scikit-learn (the 'train' extra)

    h, w = image.shape
    yy, xx = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    out = np.empty((len(shifts), size, size))
    for k, (dy, dx) in enumerate(shifts):
        # field pixel centre (y, x) sees image coordinate ((y - dy - c) / zoom + (h - 1) / 2)
        cy = (yy - dy - (size - 1) / 2) / zoom + (h - 1) / 2
        cx = (xx - dx - (size - 1) / 2) / zoom + (w - 1) / 2
        out[k] = map_coordinates(image, [cy, cx], order=1, mode="constant", cval=0.0)
    return out


def pixel_thresholds(rng: np.random.Generator, size: int, threshold: float, mismatch: float) -> np.ndarray:
    """Per-pixel contrast thresholds C * (1 + mismatch * N(0, 1)), clipped to [C/4, 4C]."""
    c = threshold * (1.0 + mismatch * rng.standard_normal((size, size)))
    return np.clip(c, threshold / 4, 4 * threshold)


def dvs_events(intensity: np.ndarray, thresholds: np.ndarray, background: float = 0.1,
               eps: float = 1e-3) -> np.ndarray:
    """ON/OFF events (T - 1, 2, H, W) as uint8 0/1 of the DVS pixel model (module docstring) for
    intensity frames (T, H, W); frame 0 sets the reference levels and emits nothing."""
    log_i = np.log(intensity + background + eps)
    ref = log_i[0].copy()
    out = np.zeros((len(log_i) - 1, 2) + log_i.shape[1:], dtype=np.uint8)
    for t in range(1, len(log_i)):
        on = log_i[t] - ref > thresholds
        off = ref - log_i[t] > thresholds
        ref = ref + thresholds * on - thresholds * off
        out[t - 1, 0], out[t - 1, 1] = on, off
    return out


def saccade_recording(image: np.ndarray, thresholds: np.ndarray, steps: int, amplitude: float,
                      zoom: float, background: float = 0.1) -> np.ndarray:
    """Events (3 * steps, 2, size, size) of `image` moved in three saccades before a DVS with
    per-pixel `thresholds` (size, size)."""
    size = thresholds.shape[0]
    frames = scene(image, saccade_path(steps, amplitude), size, zoom)
    return dvs_events(frames, thresholds, background)
