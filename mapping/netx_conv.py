"""Conv blocks of a NetX file: the integer kernel of a quantised conv (or pooling) projection,
and the conv layer's datasets written and read in NetX's layout.

A conv layer ``/layer/k`` (what ``hdf5.Network.create_conv`` reads)::

    type 'conv'; shape [C_out, H_out, W_out]; weight (C_out, C_in // groups, kh, kw) integers,
    torch's order (NetX flips and transposes it for Lava's Conv, whose convolution undoes the
    flip: the layer computes torch's cross-correlation); stride, padding, dilation [h, w];
    groups (scalar); bias (optional) (C_out,) or (W, H, C) mantissas; neuron/ as a dense layer's,
    each parameter a scalar, (C_out,) or (W, H, C) (:mod:`mapping.netx_layout`).

The integer kernel is read off the fixed-point network itself (:func:`integer_kernel`): every
entry of the quantised lowering must hold its tap's one integer, so what NetX runs is exactly
the integer network :func:`neurosim.fixed_point.simulate_fixed` runs.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from neurosim.conv import ConvGeometry, out_size
from neurosim.errors import ExportError
from neurosim.fixed_point import FixedPopulation, FixedProjection

from .netx_chain import NetxLayer
from .netx_layout import TARGET, conv_problem, to_xyc


def _geometry(layer: NetxLayer) -> ConvGeometry:
    if layer.geometry is None:
        raise ExportError(TARGET, f"projections.{layer.ff}", "a conv block needs the convolution's geometry")
    return layer.geometry


def tap_lowering(g: ConvGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pre, post, tap) of every entry of `g`'s exact lowering; tap indexes ``g.kernel.flat``."""
    taps = np.arange(1, g.kernel.size + 1, dtype=np.float64).reshape(g.kernel.shape)
    csr, _ = g._replace(kernel=taps, delay=1).to_csr()
    return csr.rows(), np.asarray(csr.indices), np.asarray(csr.values).astype(np.int64) - 1


def integer_kernel(layer: NetxLayer, q: FixedProjection, pop: FixedPopulation) -> np.ndarray:
    """The integer kernel (C_out, C_in // groups, kh, kw) whose lowering is `q.weights` exactly;
    ExportError when the quantised weights of one tap differ between output positions (they do
    when the neurons of one output channel have different scales, i.e. thresholds theta or gains:
    NetX's conv shares one integer kernel). Taps no position reaches are 0 (they act nowhere)."""
    g = _geometry(layer)
    if not np.array_equal(q.effective_weights, q.weights):
        raise ExportError(TARGET, f"projections.{q.name}.weights",
                          "the fixed-point network drops the lowest bit of these odd mixed-sign weights (as Lava's "
                          "Dense does); NetX's conv block (Lava's Conv) uses them whole")
    pre, post, tap = tap_lowering(g)
    w = q.weights[pre, post]
    if np.count_nonzero(w) != np.count_nonzero(q.weights):
        raise ExportError(TARGET, f"projections.{q.name}.weights", "weights outside the convolution's reach")
    order = np.argsort(tap, kind="stable")
    t_sorted, w_sorted = tap[order], w[order]
    starts = np.flatnonzero(np.r_[True, t_sorted[1:] != t_sorted[:-1]])
    lo, hi = np.minimum.reduceat(w_sorted, starts), np.maximum.reduceat(w_sorted, starts)
    if np.any(lo != hi):
        k = int(t_sorted[starts[np.argmax(lo != hi)]])
        tap_ix = np.unravel_index(k, g.kernel.shape)
        raise ExportError(TARGET, f"populations.{pop.name}.model.theta",
                          f"NetX's conv shares one integer kernel, but tap {tuple(int(i) for i in tap_ix)} of "
                          f"{q.name!r} quantises to {int(lo[lo != hi][0])}..{int(hi[lo != hi][0])} at different "
                          f"output positions (per-neuron scales: theta and gain must be constant per channel)")
    kernel = np.zeros(g.kernel.size, np.int64)
    kernel[t_sorted[starts]] = lo
    return kernel.reshape(g.kernel.shape)


def write_conv(group: Any, layer: NetxLayer, kernel: np.ndarray, pop: FixedPopulation) -> None:
    """The conv datasets of `layer` (module docstring) into `group` (neuron/ is written apart)."""
    g = _geometry(layer)
    problem = conv_problem(kernel)
    if problem:
        raise ExportError(TARGET, f"projections.{layer.ff}.weights", f"{problem}; pass a smaller vth_mant")
    group.create_dataset("shape", data=np.array(g.out_shape, np.int64))
    group.create_dataset("weight", data=kernel.astype(np.int64))
    for key in ("stride", "padding", "dilation"):
        group.create_dataset(key, data=np.array(getattr(g, key), np.int64))
    group.create_dataset("groups", data=np.int64(g.groups))
    if np.any(pop.bias_mant):
        bias = to_xyc(pop.bias_mant, g.out_shape)
        group.create_dataset("bias", data=np.full(g.out_shape[0], bias) if np.ndim(bias) == 0 else bias)


def neuron_values(values: Any, layer_shape: Optional[tuple[int, ...]]) -> Any:
    """A neuron parameter as NetX takes it: dense layers a scalar or (n,), conv layers
    :func:`~mapping.netx_layout.to_xyc` of their (C, H, W) shape."""
    return values if layer_shape is None else to_xyc(values, layer_shape)


def conv_geometry(reader: Any, base: str, in_shape: tuple[int, ...], out_shape: tuple[int, int, int]) -> ConvGeometry:
    """The integer convolution of the conv layer at `base` fed by (C, H, W) `in_shape`
    (kernel int64 as read; delay 1); FileFormatError names the dataset that does not fit."""
    if len(in_shape) != 3:
        reader.fail(f"{base}/type", f"a conv layer needs a (C, H, W) input, got shape {list(in_shape)}")
    w = reader.ints(f"{base}/weight", -2 ** 31, 2 ** 31, (4, 5))
    if w.ndim == 5 and w.shape[4] != 1:
        reader.fail(f"{base}/weight", f"expected (C_out, C_in // groups, kh, kw[, 1]), got shape {w.shape}")
    w = w.reshape(w.shape[:4])
    pairs = {}
    for key, lo in (("stride", 1), ("padding", 0), ("dilation", 1)):
        v = reader.ints(f"{base}/{key}", lo, 127, (0, 1)) if reader.has(f"{base}/{key}") else np.array(lo)
        if v.ndim and v.shape != (2,):
            reader.fail(f"{base}/{key}", f"expected a scalar or [h, w], got shape {v.shape}")
        pairs[key] = tuple(int(x) for x in np.broadcast_to(v, (2,)))
    groups = 1
    if reader.has(f"{base}/groups"):
        groups = int(reader.ints(f"{base}/groups", 1, 2 ** 15, (0, 1)).reshape(-1)[0])
    c_in = in_shape[0]
    if c_in % groups or out_shape[0] % groups or w.shape[:2] != (out_shape[0], c_in // groups):
        reader.fail(f"{base}/weight", f"expected shape ({out_shape[0]}, {c_in} // groups {groups}, kh, kw) for input "
                                      f"{list(in_shape)} and output {list(out_shape)}, got {w.shape}")
    spatial = tuple(out_size(n, k, s, p, d) for n, k, s, p, d in
                    zip(in_shape[1:], w.shape[2:], pairs["stride"], pairs["padding"], pairs["dilation"]))
    if spatial != tuple(out_shape[1:]):
        reader.fail(f"{base}/shape", f"expected [{out_shape[0]}, {spatial[0]}, {spatial[1]}] for input "
                                     f"{list(in_shape)}, "
                                     f"kernel {w.shape[2:]}, stride {pairs['stride']}, padding {pairs['padding']}, "
                                     f"dilation {pairs['dilation']}; got {list(out_shape)}")
    problem = conv_problem(w)
    if problem:
        reader.fail(f"{base}/weight", problem)
    if w.min() < 0 < w.max() and np.any(w % 2):
        reader.fail(f"{base}/weight", "odd mixed-sign weights: Lava's Conv uses them whole, the lowered fixed-point "
                                      "network (Lava's Dense) would drop their lowest bit; expected even values")
    return ConvGeometry(tuple(in_shape), tuple(out_shape), w, 1,  # type: ignore[arg-type]
                        pairs["stride"], pairs["padding"], pairs["dilation"], groups)


def lowered_weights(g: ConvGeometry) -> np.ndarray:
    """The dense (n_pre, n_post) integer matrix of the integer convolution `g`."""
    pre, post, tap = tap_lowering(g)
    n_pre, n_post = int(np.prod(g.in_shape)), int(np.prod(g.out_shape))
    w = np.zeros((n_pre, n_post), np.int64)
    w[pre, post] = np.asarray(g.kernel, np.int64).reshape(-1)[tap]
    return w
