"""Convolutions and pooling in Loihi's fixed-point mode, as Lava 0.10's own ``Conv`` process
(``lava.proc.conv``, ``PyConvModelFixed``) computes them: :class:`FixedConv`.

What Lava's fixed-point Conv does (read from ``lava/proc/conv/models.py`` and ``utils.py``,
checked by running it in test_mapping_conv): each step it sends the activation it computed the
step before (so a spike of step t reaches the target's ``u`` at t + 1, neurosim's delay 1, as
Dense), then convolves the binary spikes with its integer kernel and keeps the result as a
signed 24-bit value with wrap-around (``utils.signed_clamp(x, 24)``, ``(x + 2**23) mod 2**24 -
2**23``). Unlike Dense it clips nothing, drops no bit and ignores its ``weight_exp`` Var: the
kernel integers act as given. A quantised kernel is therefore 8-bit mantissas m (on the even
grid [-256, 254] for mixed signs, [0, 255] / [-255, 0] otherwise, the grid SLAYER writes) and
an exponent e in [0, 7], and Lava's Conv is given the integers ``m << e`` (its Python model
would ignore a separate exponent; a negative one, which Dense applies as a floor of the summed
input, has no counterpart). Per step and target neuron:

::

    c = wrap24(sum of (m << e)[o, c_in, ky, kx] over the taps whose pre neuron spiked at t - 1)

which :func:`neurosim.fixed_point.simulate_fixed` adds to the input a_in of step t (int32, as
Lava sums the InPorts) before the integer neuron step of :mod:`neurosim.fixed_point.step`.

Which shaped projections Lava's Conv can carry (:func:`lava_conv_refusal`): convolutions and
pooling (a Conv with a fixed kernel of ones, or 1/(kh*kw), and groups = channels) with delay 1
on every tap, into a population whose per-neuron input factor (gain times the Lava scale) is one
value per output channel (a kernel is shared across positions). Anything else (Flatten, delays,
per-position factors) is given to Lava as its exact CSR lowering.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..conv import Conv1d, Conv2d, ConvGeometry, ShapedProjection
from ..errors import ExportError, NetworkError
from .arith import mantissas, sign_mode, wrap24
from .records import WEIGHT_LIMITS

CONV_WEIGHT_EXP_RANGE = (0, 7)
CONV_WEIGHT_LIMITS = WEIGHT_LIMITS  # the 8-bit grids of Dense after its bit drop (SLAYER writes the same)


def lava_conv_refusal(proj: Any, factor: Optional[np.ndarray] = None) -> Optional[str]:
    """None when Lava's Conv process can carry `proj` (a bound shaped projection), else the
    reason it cannot (the projection then goes to Lava as its CSR lowering).

    factor: the per-neuron factor (n_post,) the target applies to its input (gain, times the
    Lava scale in floating_pt or the integer scale in fixed_pt); it must be one value per
    output channel, since the kernel is shared across positions.
    """
    if not isinstance(proj, ShapedProjection):
        return "a dense or CSR projection"
    geom = proj.geometry()
    if geom is None:
        return "a Flatten is a one-to-one copy (a Sparse identity)"
    d = np.asarray(getattr(proj, "delay"))
    if np.any(d != 1):
        span = f"delay {int(d.min())}" if d.min() == d.max() else f"delays {int(d.min())}..{int(d.max())}"
        return f"Lava's Conv has no synaptic delay (it delivers after 1 step); {span} go through DelaySparse"
    if factor is not None:
        per = np.asarray(factor, np.float64).reshape(geom.out_shape[0], -1)
        if np.any(per != per[:, :1]):
            return ("the target's input factor (gain / threshold scale) differs between neurons of one "
                    "channel; a Conv kernel is shared across positions")
    return None


@dataclass(frozen=True, eq=False)
class FixedConv:
    """Integer convolution of one shaped projection (the module docstring).

    geometry: the projection as a grouped 2-D convolution (Conv1d on H = 1; pooling with
    groups = channels), its float kernel unused; kernel: int64 mantissas (C_out, C_in // groups,
    kh, kw) in :data:`CONV_WEIGHT_LIMITS` of `sign_mode`; weight_exp in [0, 7]; kind: the
    shaped record's kind ('conv1d', 'conv2d', 'sumpool2d', 'avgpool2d'). Delay is 1.
    It offers FixedProjection's reading interface (``weights``, ``effective_weights`` as the
    dense lowering (n_pre, n_post), ``delays``, ``max_delay``, ``n_bit_dropped``, ``shape``).
    """

    name: str
    pre: str
    post: str
    geometry: ConvGeometry
    kernel: np.ndarray
    weight_exp: int
    sign_mode: str
    kind: str = "conv2d"

    sparse = True
    delay = 1
    n_bit_dropped = 0

    def __post_init__(self) -> None:
        where = f"projections.{self.name}"
        k = np.asarray(self.kernel)
        if k.shape != self.geometry.kernel.shape or k.dtype.kind not in "iu":
            raise NetworkError(f"{where}.kernel", f"expected integers of shape {self.geometry.kernel.shape}, "
                                                  f"got {k.dtype} {k.shape}")
        if self.sign_mode not in CONV_WEIGHT_LIMITS:
            raise NetworkError(f"{where}.sign_mode", f"expected one of {sorted(CONV_WEIGHT_LIMITS)}, "
                                                     f"got {self.sign_mode!r}")
        lo, hi = CONV_WEIGHT_LIMITS[self.sign_mode]
        if k.size and (k.min() < lo or k.max() > hi):
            raise NetworkError(f"{where}.kernel", f"{self.sign_mode} mantissas must lie in [{lo}, {hi}], got "
                                                  f"[{k.min()}, {k.max()}]")
        e = self.weight_exp
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or not (
                CONV_WEIGHT_EXP_RANGE[0] <= e <= CONV_WEIGHT_EXP_RANGE[1]):
            raise NetworkError(f"{where}.weight_exp", f"expected an integer in {list(CONV_WEIGHT_EXP_RANGE)} "
                                                      f"(Lava's Conv cannot shift its sum right), got {e!r}")
        k = np.array(k, np.int64)
        k.setflags(write=False)
        object.__setattr__(self, "kernel", k)
        object.__setattr__(self, "weight_exp", int(e))

    @property
    def lava_kernel(self) -> np.ndarray:
        """The integers Lava's Conv applies, ``m << e``, (C_out, C_in // groups, kh, kw) int64."""
        return self.kernel << self.weight_exp

    @property
    def shape(self) -> tuple[int, int]:
        """(n_pre, n_post)."""
        return int(np.prod(self.geometry.in_shape)), int(np.prod(self.geometry.out_shape))

    def lowering(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pre, post, mantissa) of every tap, int64: the CSR lowering of the integer kernel."""
        csr, _ = self.geometry._replace(kernel=self.kernel.astype(np.float64), delay=1).to_csr()
        rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
        return rows, np.asarray(csr.indices, np.int64), np.rint(csr.values).astype(np.int64)

    @property
    def weights(self) -> np.ndarray:
        """Dense lowering of the mantissas, (n_pre, n_post) int64 (Lava applies them << weight_exp)."""
        pre, post, m = self.lowering()
        w = np.zeros(self.shape, np.int64)
        w[pre, post] = m
        return w

    effective_weights = weights

    @property
    def delays(self) -> np.ndarray:
        return np.ones(self.shape, np.int64)

    @property
    def max_delay(self) -> int:
        return 1

    def step_input(self, spikes: np.ndarray, table: Optional[tuple[np.ndarray, ...]] = None) -> np.ndarray:
        """wrap24 of the convolution of `spikes` (B, n_pre) 0/1 with ``m << e``: (B, n_post) int64,
        Lava's ``PyConvModelFixed`` output for one step. table: :meth:`lowering`, to reuse."""
        pre, post, m = table if table is not None else self.lowering()
        w = (m << self.weight_exp).astype(np.float64)   # exact: |sum| < 2**53
        out = np.zeros((spikes.shape[0], self.shape[1]), np.int64)
        for b in range(spikes.shape[0]):
            hit = np.asarray(spikes[b], bool)[pre]
            out[b] = np.rint(np.bincount(post[hit], weights=w[hit], minlength=self.shape[1])).astype(np.int64)
        return wrap24(out)

    def to_float(self, scale_post: np.ndarray) -> ShapedProjection:
        """The float record it stands for: kernel ``m * 2**e * 64 / S`` per output channel (pooling
        comes back as a grouped Conv2d with that kernel)."""
        g = self.geometry
        s = np.asarray(scale_post, np.float64).reshape(g.out_shape[0], -1)[:, 0]
        k = self.kernel * (2.0 ** self.weight_exp * 64.0 / s)[:, None, None, None]
        if self.kind == "conv1d":
            return Conv1d(self.name, self.pre, self.post, k[:, :, 0, :], g.stride[1], g.padding[1], g.dilation[1],
                          g.groups, 1)
        return Conv2d(self.name, self.pre, self.post, k, g.stride, g.padding, g.dilation, g.groups, 1)


def quantize_conv(proj: ShapedProjection, gain: np.ndarray, scale: np.ndarray, weight_exp: Optional[int],
                  target: str) -> tuple["FixedConv", dict[str, Any]]:
    """A convolution or pooling for Lava's Conv and its report entry (the keys of
    :class:`~neurosim.fixed_point.QuantizationReport`'s projections; 'error' and 'error_bound'
    per kernel entry, in float units of the target's i): mantissas of kernel * gain * S / 64 per
    output channel (gain, scale: the target's, (n_post,), with gain * S one value per channel,
    :func:`lava_conv_refusal`), the smallest exponent in [0, 7] that fits (or `weight_exp`).
    n_synapses and n_zeroed count kernel entries (shared by every position)."""
    g = proj.geometry()
    if g is None:
        raise NetworkError(f"projections.{proj.name}", "a Flatten has no kernel (quantise its lowering)")
    factor = (np.asarray(gain) * scale / 64.0).reshape(g.out_shape[0], -1)[:, 0]
    units = g.kernel * factor[:, None, None, None]
    mode = sign_mode(units)
    lo, hi = WEIGHT_LIMITS[mode]
    exps = [weight_exp] if weight_exp is not None else range(CONV_WEIGHT_EXP_RANGE[0], CONV_WEIGHT_EXP_RANGE[1] + 1)
    for e in exps:
        m = mantissas(units, e, mode)
        if m.min() >= lo and m.max() <= hi:
            break
    else:
        raise ExportError(target, f"projections.{proj.name}.kernel",
                          f"largest |weight| needs {np.abs(units).max():.4g} input units, more than an 8-bit "
                          f"{mode} mantissa << {exps[-1]} holds without clipping; lower vth_mant")
    fc = FixedConv(proj.name, proj.pre, proj.post, g, m, int(e), mode, kind=proj.kind)
    gain = np.reshape(np.broadcast_to(gain, scale.shape), (g.out_shape[0], -1))[:, 0, None, None, None]
    step = 2.0 ** e * gain / factor[:, None, None, None]  # float value (on i) of one mantissa unit, per channel
    err = m * step - g.kernel * gain                      # error per kernel entry, (C_out, C_in // groups, kh, kw)
    nz = g.kernel != 0
    rep = {
        "weight_exp": int(e), "sign_mode": mode, "n_synapses": int(nz.sum()), "n_zeroed": int((nz & (m == 0)).sum()),
        "bit_drop": False, "n_bit_dropped": 0, "conv": proj.kind,
        "max_abs_error": float(np.abs(err).max()), "rms_error": float(np.sqrt(np.mean(err[nz] ** 2))) if nz.any() else 0.0,
        "max_rel_error": float(np.abs(err).max() / np.abs(g.kernel * gain).max()) if nz.any() else 0.0,
        "error_bound": np.broadcast_to(step * (1.0 if mode == "mixed" else 0.5), err.shape), "error": err,
        "floor_error_bound": 0.0,
    }
    return fc, rep
