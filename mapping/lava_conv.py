"""Convolutions and pooling as Lava's own ``Conv`` process (``lava.proc.conv``), both modes.

Layout. neurosim's shaped nodes are flat, channel first: neuron ``(c*H + y)*W + x`` of a
``(C, H, W)`` node (``c*L + l`` of ``(C, L)``, taken as ``(C, 1, L)``). Lava's Conv ports are
``(X, Y, C)`` = ``(W, H, C)`` and its kernel is ``(C_out, kw, kh, C_in // groups)``; its
``conv_scipy`` uses ``scipy.signal.convolve2d`` (a true convolution), so the torch kernel
(a cross-correlation, ``(C_out, C_in // groups, kh, kw)``) is given transposed and flipped in
both spatial axes: ``weight[o, a, b, c] = kernel[o, c, kh-1-b, kw-1-a]``. stride, padding and
dilation are given as (x, y) = (w, h). The neuron processes keep their flat shape; the
connection goes through Lava's virtual ports: ``s_out.reshape((C, H, W)).transpose((2, 1, 0))``
into the Conv, ``a_out.transpose((2, 1, 0)).reshape((N,))`` out of it.

Arithmetic (``lava/proc/conv/models.py``): each step the Conv sends what it computed the
step before, then convolves the binary spikes it received: a spike of step t reaches the
target at t + 1, neurosim's delay 1, exactly as Dense. ``floating_pt``: float64 kernel, the
sum in scipy's order. ``fixed_pt``: int32 kernel applied as given (no clip, no bit drop; the
``weight_exp`` Var is ignored), the sum wrapped to signed 24 bits: the integers ``m << e`` of
:class:`neurosim.fixed_point.FixedConv`, which :func:`neurosim.fixed_point.simulate_fixed`
reproduces bit for bit.

Pooling (SumPool2d, AvgPool2d) runs as a Conv with a fixed kernel (ones, or 1/(kh*kw) in
floating_pt; its quantised mantissas in fixed_pt) and groups = channels. What a Conv cannot
carry (Flatten; delays other than 1, which Lava's Conv has no way to hold; a target whose input
factor differs within a channel) goes to Lava as the exact CSR lowering, a
Sparse/DelaySparse: :func:`neurosim.fixed_point.lava_conv_refusal` says why, and
``run_lava``'s ``meta['shaped']`` records, per convolution or pooling, 'Conv' or the reason.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from neurosim.conv import ConvGeometry, ShapedProjection
from neurosim.fixed_point import FixedConv, lava_conv_refusal
from neurosim.network import Network, Projection


def lava_weight(kernel: np.ndarray) -> np.ndarray:
    """A torch-layout kernel (C_out, C_in // groups, kh, kw) in Lava's Conv layout
    (C_out, kw, kh, C_in // groups), flipped in both spatial axes (Lava convolves)."""
    return np.ascontiguousarray(np.asarray(kernel)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def conv_process(lava: Any, name: str, geom: ConvGeometry, kernel: np.ndarray) -> Any:
    """Lava's Conv for `geom` with the torch-layout `kernel` (float64 for floating_pt, integers
    for fixed_pt: given as int32 with weight_exp 0, as Lava's fixed model applies them)."""
    c, h, w = geom.in_shape
    weight = lava_weight(kernel)
    if np.asarray(kernel).dtype.kind in "iu":
        weight = weight.astype(np.int32)
    return lava.Conv(weight=weight, weight_exp=0, input_shape=(w, h, c), padding=geom.padding[::-1],
                     stride=geom.stride[::-1], dilation=geom.dilation[::-1], groups=geom.groups, name=name)


def wire_conv(pre_port: Any, conv: Any, post_port: Any, geom: ConvGeometry) -> None:
    """Connect flat `pre_port` -> `conv` -> flat `post_port` through (C, H, W) -> (W, H, C) virtual ports."""
    c, h, w = geom.in_shape
    co, ho, wo = geom.out_shape
    pre_port.reshape((c, h, w)).transpose((2, 1, 0)).connect(conv.s_in)
    conv.a_out.transpose((2, 1, 0)).reshape((co * ho * wo,)).connect(post_port)


def float_conv(lava: Any, proj: ShapedProjection, factor: np.ndarray) -> Any:
    """floating_pt Conv of `proj`, its kernel scaled per output channel by the target's input
    `factor` (n_post,), one value per channel (:func:`float_ready` checked it)."""
    geom = proj.geometry()
    per = np.asarray(factor, np.float64).reshape(geom.out_shape[0], -1)[:, 0]  # type: ignore[union-attr]
    return conv_process(lava, proj.name, geom, geom.kernel * per[:, None, None, None])  # type: ignore[union-attr]


def fixed_conv(lava: Any, q: FixedConv) -> Any:
    """fixed_pt Conv of `q`: the integers ``m << e`` (Lava's model ignores a separate exponent)."""
    return conv_process(lava, q.name, q.geometry, q.lava_kernel)


def float_ready(network: Network, factors: Mapping[str, np.ndarray]) -> tuple[Network, dict[str, str]]:
    """`network` with the shaped projections Lava's Conv cannot carry replaced by their CSR
    lowering, and convolution or pooling name -> 'Conv' or the reason it was lowered. factors:
    population -> per-neuron factor its Lava process applies to a weight (n,)."""
    projs, how = [], {}
    for j in network.projections:
        if isinstance(j, ShapedProjection):
            why = lava_conv_refusal(j, factors[j.post])
            if j.geometry() is not None:  # Flatten is always the Sparse identity: not listed
                how[j.name] = "Conv" if why is None else f"Sparse (CSR lowering): {why}"
            if why is not None:
                csr, d = j.to_csr()
                j = Projection(j.name, j.pre, j.post, csr, int(d[0]) if d.size and np.all(d == d[0]) else d)
        projs.append(j)
    return (network.replace(projections=tuple(projs)) if how else network), how


def fixed_kinds(projections: Any, notes: Any) -> dict[str, str]:
    """Shaped projection name -> 'Conv' or the reason it was lowered, from a FixedPointNetwork's
    projections and its quantisation report's notes ('name: kind quantised as ...: why')."""
    how = {q.name: "Conv" for q in projections if isinstance(q, FixedConv)}
    for note in notes:
        name, _, rest = note.partition(": ")
        if " quantised as its CSR lowering" in rest:
            how[name] = "Sparse (CSR lowering): " + rest.split(": ", 1)[-1]
    return how
