"""Shaped projections: Conv1d, Conv2d, SumPool2d, AvgPool2d and Flatten, weights stored once.

The contract (the torch layers, the simulators and the HDF5 schema all code against it):

**Shapes.** A population or input may carry a shape ``(C, H, W)`` or ``(C, L)``
(``Population(name, size, model, shape=(C, H, W))``, or the shape given in place of `size`;
``SpikeInput(name, size, shape=...)`` likewise). Its `size` is ``prod(shape)`` and flat index
``k = (c*H + y)*W + x`` (``c*L + l``) is element (c, y, x) of the array flattened in C order,
channel first: torch's ``x.flatten(1)`` of a (B, C, H, W) tensor. Dense and CSR projections see
shaped nodes flat, in that order. A node given no shape has shape ``(size,)``.

**Records** (frozen; `pre` a population or input, `post` a population; delays in whole steps >= 1):

- ``Conv2d(name, pre, post, kernel, stride=1, padding=0, dilation=1, groups=1, delay=1)``:
  kernel ``(C_out, C_in // groups, kh, kw)`` float64; pre shape ``(C_in, H, W)``, post shape
  ``(C_out, H_out, W_out)`` with ``H_out = (H + 2*p_h - d_h*(kh - 1) - 1) // s_h + 1`` (and W
  alike); stride, padding, dilation: a whole number or an (h, w) pair; delay: scalar or one per
  kernel entry (``kernel.shape``). A spike of pre neuron (c, y, x) sent at step t adds
  ``kernel[o, c % (C_in/groups), ky, kx]`` to the input x of post neuron (o, oy, ox) at step
  t + delay, for every o of c's group (``o // (C_out/groups) == c // (C_in/groups)``) and every
  (ky, kx, oy, ox) inside the output with ``oy*s_h - p_h + ky*d_h = y``, ``ox*s_w - p_w + kx*d_w = x``.
  With one delay d: ``x[t + d] += torch.nn.functional.conv2d(s[t], kernel, None, stride, padding,
  dilation, groups)`` (cross-correlation, zero padding).
- ``Conv1d``: the same on ``(C, L)`` nodes, kernel ``(C_out, C_in // groups, k)``; torch's conv1d.
- ``SumPool2d(name, pre, post, kernel_size, stride=None, padding=0, delay=1)``: pre ``(C, H, W)``,
  post ``(C, H_out, W_out)`` (the formula above with dilation 1; stride defaults to kernel_size;
  ``2*padding <= kernel_size``): each spike adds 1 to every window holding it, i.e.
  ``kh*kw * avg_pool2d(s)``. ``AvgPool2d``: adds ``1/(kh*kw)``, torch's ``avg_pool2d`` with
  ``count_include_pad=True`` (padded zeros count). Scalar delay only.
- ``Flatten(name, pre, post, delay=1)``: post shape ``(pre.size,)``; pre neuron k reaches post
  neuron k with weight 1 (a one-to-one copy of a shaped node into a flat one).

**Bias.** A convolution's bias is not part of the projection: neuron models carry a per-neuron
``bias`` (``i = alpha*i + gain*(x + bias)``, added at every step from step 0), so a conv layer's
bias ``b`` (C_out,) is the post population's ``bias = channel_bias(b, post_shape)``, constant
over each output channel. The HDF5 file stores such a vector per channel, not per neuron.

**Binding.** A record's ``in_shape`` is the shape of its `pre` node; left None, a
:class:`~neurosim.network.Network` fills it (its `projections` hold bound copies), given, the
network checks it. Its ``out_shape`` follows from ``in_shape`` and the record's parameters, and
the network checks that `post` has exactly that shape. Errors name the field and the expected
form, e.g. ``projections.c1.kernel: expected (16, 2, 5, 5) for in (2, 34, 34) -> out
(16, 16, 16) with stride 2, padding 1``.

**Lowering (the reference).** ``to_csr()`` of a bound record gives ``(CSR (n_pre, n_post),
delays (nnz,))``: one entry per (pre, post) pair the kernel reaches, kernel zeros included, no
duplicates, rows in pre order and columns ascending; ``Network.lowered()`` replaces every shaped
projection by that CSR :class:`~neurosim.network.Projection`, the dense-lowered reference.
``geometry()`` gives every shaped record but Flatten as one grouped 2-D convolution
(:class:`ConvGeometry`, 1-D on H = 1), the form the event-driven simulators use.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, NamedTuple, Optional, Union

import numpy as np

from .csr import CSR
from .errors import NetworkError
from .fields import check_delay, check_ints, check_name, readonly

Shape = tuple[int, ...]


class ConvGeometry(NamedTuple):
    """A grouped 2-D convolution: in (C, H, W) -> out (C_out, H_out, W_out); kernel
    (C_out, C // groups, kh, kw) float64; delay an int or an int64 array of the kernel's shape;
    stride, padding, dilation as (h, w)."""

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: np.ndarray
    delay: Union[int, np.ndarray]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    def n_taps(self) -> int:
        """Entries of :meth:`to_csr` (counted, not built)."""
        cig, kh, kw = self.kernel.shape[1:]
        per_axis = []
        for n, m, k, s, p, d in zip(self.in_shape[1:], self.out_shape[1:], (kh, kw), self.stride, self.padding,
                                    self.dilation):
            pos = np.arange(m)[None, :] * s - p + np.arange(k)[:, None] * d
            per_axis.append(((pos >= 0) & (pos < n)).sum(axis=1))
        return int(self.out_shape[0] * cig * np.outer(*per_axis).sum())

    def to_csr(self) -> tuple[CSR, np.ndarray]:
        """(CSR, per-entry delays): one entry per (pre, post, kernel tap), rows ascending, columns
        ascending within a row (each pair is reached by at most one tap)."""
        (c_in, h, w), (c_out, ho, wo) = self.in_shape, self.out_shape
        cig, kh, kw = self.kernel.shape[1:]
        cog = c_out // self.groups
        ci, ky, kx, oy, ox = np.ix_(np.arange(cig), np.arange(kh), np.arange(kw), np.arange(ho), np.arange(wo))
        y = oy * self.stride[0] - self.padding[0] + ky * self.dilation[0]
        x = ox * self.stride[1] - self.padding[1] + kx * self.dilation[1]
        full = (cig, kh, kw, ho, wo)
        valid = np.broadcast_to((y >= 0) & (y < h) & (x >= 0) & (x < w), full)
        delays = np.broadcast_to(np.asarray(self.delay, np.int64), self.kernel.shape)
        pre_l, post_l, w_l, d_l = [], [], [], []
        for o in range(c_out):  # one output channel at a time bounds the temporary arrays
            c = (o // cog) * cig + ci
            pre_l.append(np.broadcast_to((c * h + y) * w + x, full)[valid])
            post_l.append(np.broadcast_to((o * ho + oy) * wo + ox, full)[valid])
            w_l.append(np.broadcast_to(self.kernel[o][:, :, :, None, None], full)[valid])
            d_l.append(np.broadcast_to(delays[o][:, :, :, None, None], full)[valid])
        pre, post = np.concatenate(pre_l), np.concatenate(post_l)
        order = np.lexsort((post, pre))
        csr = CSR.from_coo(pre[order], post[order], np.concatenate(w_l)[order], (c_in * h * w, c_out * ho * wo))
        return csr, np.concatenate(d_l)[order]


def out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    """torch's output length: ``(n + 2p - d(k - 1) - 1) // s + 1`` (< 1: nothing fits)."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def channel_bias(bias: Any, post_shape: Shape) -> np.ndarray:
    """A conv layer's bias (C_out,) as the post population's per-neuron bias (size,): b[c]
    for every neuron of channel c."""
    b = np.asarray(bias, dtype=np.float64)
    if b.shape != (post_shape[0],):
        raise NetworkError("bias", f"expected one value per output channel, shape ({post_shape[0]},), got {b.shape}")
    return np.repeat(b, math.prod(post_shape[1:]))


def _kernel(k: Any, ndim: int, where: str) -> np.ndarray:
    try:
        a = np.asarray(k, dtype=np.float64)
    except (TypeError, ValueError):
        raise NetworkError(where, f"expected a {ndim}-D array of numbers") from None
    if a.ndim != ndim or 0 in a.shape:
        form = "(C_out, C_in // groups, kh, kw)" if ndim == 4 else "(C_out, C_in // groups, k)"
        raise NetworkError(where, f"expected a {ndim}-D array {form}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise NetworkError(where, "expected finite values, found NaN or inf")
    return readonly(a)


def _text(shape: Shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


@dataclass(frozen=True, eq=False)
class ShapedProjection:
    """Common part of the shaped projections (see the module docstring for the contract)."""

    name: str
    pre: str
    post: str
    kind: ClassVar[str] = ""
    in_rank: ClassVar[int] = 3  # rank of the pre shape the record takes (0: any)

    def _check_common(self) -> str:
        where = f"projections.{self.name}"
        check_name(self.name, "projections.name")
        check_name(self.pre, f"{where}.pre")
        check_name(self.post, f"{where}.post")
        return where

    def _check_in_shape(self, where: str) -> None:
        shape = getattr(self, "in_shape")
        if shape is None:
            return
        if not isinstance(shape, (tuple, list)) or (self.in_rank and len(shape) != self.in_rank):
            raise NetworkError(f"{where}.in_shape", f"expected {self._rank_form()} or None, got {shape!r}")
        dims = check_ints(tuple(shape), len(shape), f"{where}.in_shape", 1, self._rank_form())
        object.__setattr__(self, "in_shape", dims)
        self._out(dims, f"{where}.in_shape")

    def _rank_form(self) -> str:
        return {3: "(C, H, W)", 2: "(C, L)"}.get(self.in_rank, "a node shape")

    # ----------------------------------------------------------------- per kind
    def _out(self, in_shape: Shape, where: str) -> Shape:
        """The post shape for pre shape `in_shape`; NetworkError at `where` when nothing fits."""
        raise NotImplementedError

    def geometry(self) -> Optional[ConvGeometry]:
        """The grouped 2-D convolution this record is (None for Flatten)."""
        raise NotImplementedError

    def params_text(self) -> str:
        """'stride 2, padding 1' style text of the non-default parameters."""
        return ""

    # ----------------------------------------------------------------- shared
    def _bound(self) -> Shape:
        if getattr(self, "in_shape") is None:
            raise NetworkError(f"projections.{self.name}.in_shape",
                               "unknown until the record is part of a Network (or give in_shape)")
        return getattr(self, "in_shape")

    @property
    def out_shape(self) -> Shape:
        """Shape of the post population (needs in_shape)."""
        return self._out(self._bound(), f"projections.{self.name}.in_shape")

    @property
    def shape(self) -> tuple[int, int]:
        """(n_pre, n_post) of the lowered matrix."""
        return math.prod(self._bound()), math.prod(self.out_shape)

    def bind(self, pre_shape: Shape, post_shape: Shape) -> "ShapedProjection":
        """This record with in_shape = `pre_shape`, after checking both node shapes."""
        where = f"projections.{self.name}"
        if self.in_rank and len(pre_shape) != self.in_rank:
            raise NetworkError(f"{where}.pre", f"expected a node of shape {self._rank_form()} for a "
                                               f"{type(self).__name__}, got shape {_text(pre_shape)}")
        if getattr(self, "in_shape") is not None and tuple(getattr(self, "in_shape")) != tuple(pre_shape):
            raise NetworkError(f"{where}.in_shape", f"expected the shape of {self.pre!r}, {_text(pre_shape)}, "
                                                    f"got {_text(getattr(self, 'in_shape'))}")
        self._check_channels(pre_shape, post_shape, where)
        expected = self._out(tuple(pre_shape), f"{where}.post")
        if tuple(post_shape) != expected:
            k = getattr(self, "kernel", None)
            extra = ", ".join(p for p in ("kernel " + "x".join(str(n) for n in k.shape[2:]) if k is not None else "",
                                          self.params_text()) if p)
            raise NetworkError(f"{where}.post", f"expected shape {_text(expected)} for in {_text(pre_shape)}"
                                                f"{' with ' + extra if extra else ''}, got {_text(post_shape)}")
        return replace(self, in_shape=tuple(pre_shape))

    def _check_channels(self, pre_shape: Shape, post_shape: Shape, where: str) -> None:
        """Channel counts (and the kernel's shape) against the nodes; spatial sizes are checked after."""

    def to_csr(self) -> tuple[CSR, np.ndarray]:
        """(CSR (n_pre, n_post), per-entry delays): the exact lowering (module docstring)."""
        g = self.geometry()
        assert g is not None  # Flatten overrides to_csr
        return g.to_csr()

    @property
    def max_delay(self) -> int:
        d = getattr(self, "delay")
        return int(np.max(d))

    @property
    def n_synapses(self) -> int:
        """Entries of the lowering: (pre, post) pairs reached."""
        g = self.geometry()
        return g.n_taps() if g is not None else self.shape[0]

    @property
    def n_weights(self) -> int:
        """Numbers stored: the kernel's size (1 for pooling and Flatten)."""
        k = getattr(self, "kernel", None)
        return int(np.size(k)) if k is not None else 1

    def delay_classes(self) -> list[tuple[int, CSR]]:
        """(d, CSR of the lowered synapses with delay d) for each distinct delay, ascending."""
        csr, delays = self.to_csr()
        rows, out = csr.rows(), []
        for d in np.unique(delays):
            sel = delays == d
            out.append((int(d), CSR.from_coo(rows[sel], np.asarray(csr.indices)[sel],
                                             np.asarray(csr.values)[sel], csr.shape)))
        return out

    def describe(self) -> str:
        """One line: kind, kernel, parameters, delay."""
        k = getattr(self, "kernel", None)
        size = f"kernel {_text(k.shape)}" if k is not None else ""
        parts = [p for p in (self.kind, size, self.params_text()) if p]
        d = getattr(self, "delay")
        parts.append(f"delay {d if np.ndim(d) == 0 else f'{int(np.min(d))}..{int(np.max(d))}'}")
        return ", ".join(parts)


@dataclass(frozen=True, eq=False)
class Conv2d(ShapedProjection):
    """2-D convolution, torch's conv2d of the spike frame (module docstring)."""

    kernel: Any
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    delay: Any = 1
    in_shape: Optional[Shape] = None
    kind: ClassVar[str] = "conv2d"
    in_rank: ClassVar[int] = 3

    def __post_init__(self) -> None:
        where = self._check_common()
        nd = self.in_rank - 1
        object.__setattr__(self, "kernel", _kernel(self.kernel, nd + 2, f"{where}.kernel"))
        object.__setattr__(self, "stride", check_ints(self.stride, nd, f"{where}.stride", 1, "steps"))
        object.__setattr__(self, "padding", check_ints(self.padding, nd, f"{where}.padding", 0, "zeros each side"))
        object.__setattr__(self, "dilation", check_ints(self.dilation, nd, f"{where}.dilation", 1, "kernel spacing"))
        object.__setattr__(self, "groups", check_ints(self.groups, 1, f"{where}.groups", 1, "channel groups")[0])
        if self.kernel.shape[0] % self.groups:
            raise NetworkError(f"{where}.groups", f"expected a divisor of the kernel's {self.kernel.shape[0]} "
                                                  f"output channels, got {self.groups}")
        object.__setattr__(self, "delay", check_delay(self.delay, f"{where}.delay", self.kernel.shape))
        self._check_in_shape(where)

    def params_text(self) -> str:
        parts = [f"stride {_pair(self.stride)}", f"padding {_pair(self.padding)}"]
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation {_pair(self.dilation)}")
        if self.groups != 1:
            parts.append(f"groups {self.groups}")
        return ", ".join(parts)

    def _out(self, in_shape: Shape, where: str) -> Shape:
        spatial = []
        for n, k, s, p, d in zip(in_shape[1:], self.kernel.shape[2:], self.stride, self.padding, self.dilation):
            m = out_size(n, k, s, p, d)
            if m < 1:
                raise NetworkError(f"projections.{self.name}.kernel",
                                   f"expected a dilated kernel (d*(k-1)+1 = {d * (k - 1) + 1}) that fits the padded "
                                   f"input ({n} + 2*{p}) of {_text(in_shape)}")
            spatial.append(m)
        return (self.kernel.shape[0], *spatial)

    def _check_channels(self, pre_shape: Shape, post_shape: Shape, where: str) -> None:
        if pre_shape[0] % self.groups or post_shape[0] % self.groups:
            raise NetworkError(f"{where}.groups", f"expected a divisor of in channels {pre_shape[0]} and out "
                                                  f"channels {post_shape[0]}, got {self.groups}")
        expected = (post_shape[0], pre_shape[0] // self.groups, *self.kernel.shape[2:])
        if self.kernel.shape != expected:
            raise NetworkError(f"{where}.kernel", f"expected {_text(expected)} for in {_text(pre_shape)} -> out "
                                                  f"{_text(post_shape)} with {self.params_text()}, "
                                                  f"got {_text(self.kernel.shape)}")

    def geometry(self) -> ConvGeometry:
        c, *spatial = self._bound()
        out = self.out_shape
        if self.in_rank == 2:  # (C, L) as (C, 1, L)
            return ConvGeometry((c, 1, spatial[0]), (out[0], 1, out[1]), self.kernel[:, :, None, :],
                                self.delay if np.ndim(self.delay) == 0 else self.delay[:, :, None, :],
                                (1, self.stride[0]), (0, self.padding[0]), (1, self.dilation[0]), self.groups)
        return ConvGeometry((c, spatial[0], spatial[1]), tuple(out), self.kernel, self.delay,  # type: ignore[arg-type]
                            self.stride, self.padding, self.dilation, self.groups)


@dataclass(frozen=True, eq=False)
class Conv1d(Conv2d):
    """1-D convolution on (C, L) nodes, torch's conv1d; kernel (C_out, C_in // groups, k)."""

    kind: ClassVar[str] = "conv1d"
    in_rank: ClassVar[int] = 2


@dataclass(frozen=True, eq=False)
class SumPool2d(ShapedProjection):
    """Sum pooling: each spike adds `weight` to every window holding it (module docstring)."""

    kernel_size: Any
    stride: Any = None
    padding: Any = 0
    delay: Any = 1
    in_shape: Optional[Shape] = None
    kind: ClassVar[str] = "sumpool2d"

    def __post_init__(self) -> None:
        where = self._check_common()
        k = check_ints(self.kernel_size, 2, f"{where}.kernel_size", 1, "window")
        object.__setattr__(self, "kernel_size", k)
        stride = k if self.stride is None else self.stride
        object.__setattr__(self, "stride", check_ints(stride, 2, f"{where}.stride", 1, "steps"))
        p = check_ints(self.padding, 2, f"{where}.padding", 0, "zeros each side")
        if any(2 * pi > ki for pi, ki in zip(p, k)):
            raise NetworkError(f"{where}.padding", f"expected at most half the kernel size {k}, got {p}")
        object.__setattr__(self, "padding", p)
        object.__setattr__(self, "delay", check_delay(self.delay, f"{where}.delay", None))
        self._check_in_shape(where)

    @property
    def weight(self) -> float:
        """What one spike adds to each window holding it."""
        return 1.0

    def params_text(self) -> str:
        return f"kernel_size {_pair(self.kernel_size)}, stride {_pair(self.stride)}, padding {_pair(self.padding)}"

    def _out(self, in_shape: Shape, where: str) -> Shape:
        spatial = [out_size(n, k, s, p, 1) for n, k, s, p in zip(in_shape[1:], self.kernel_size, self.stride, self.padding)]
        if min(spatial) < 1:
            raise NetworkError(f"projections.{self.name}.kernel_size",
                               f"expected a window {self.kernel_size} that fits the padded input {_text(in_shape)}")
        return (in_shape[0], *spatial)

    def _check_channels(self, pre_shape: Shape, post_shape: Shape, where: str) -> None:
        if len(post_shape) != 3 or post_shape[0] != pre_shape[0]:
            raise NetworkError(f"{where}.post", f"expected {pre_shape[0]} channels (C, H_out, W_out) like "
                                                f"{self.pre!r}, got shape {_text(post_shape)}")

    def geometry(self) -> ConvGeometry:
        c = self._bound()[0]
        kernel = readonly(np.full((c, 1, *self.kernel_size), self.weight))
        return ConvGeometry(tuple(self._bound()), tuple(self.out_shape), kernel, self.delay,  # type: ignore[arg-type]
                            self.stride, self.padding, (1, 1), c)


@dataclass(frozen=True, eq=False)
class AvgPool2d(SumPool2d):
    """Average pooling, torch's avg_pool2d (count_include_pad=True): each spike adds 1/(kh*kw)."""

    kind: ClassVar[str] = "avgpool2d"

    @property
    def weight(self) -> float:
        return 1.0 / (self.kernel_size[0] * self.kernel_size[1])


@dataclass(frozen=True, eq=False)
class Flatten(ShapedProjection):
    """One-to-one copy of a shaped node into a flat population of the same size, weight 1."""

    delay: Any = 1
    in_shape: Optional[Shape] = None
    kind: ClassVar[str] = "flatten"
    in_rank: ClassVar[int] = 0

    def __post_init__(self) -> None:
        where = self._check_common()
        object.__setattr__(self, "delay", check_delay(self.delay, f"{where}.delay", None))
        self._check_in_shape(where)

    def _out(self, in_shape: Shape, where: str) -> Shape:
        return (math.prod(in_shape),)

    def geometry(self) -> None:
        return None

    def to_csr(self) -> tuple[CSR, np.ndarray]:
        n = self.shape[0]
        csr = CSR(np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.int64), np.ones(n), (n, n))
        return csr, np.full(n, int(self.delay), np.int64)


def _pair(v: tuple[int, ...]) -> str:
    return str(v[0]) if len(set(v)) == 1 else _text(v)


SHAPED_KINDS: dict[str, type] = {cls.kind: cls for cls in (Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten)}


def record_fields(rec: ShapedProjection) -> dict[str, Any]:
    """Constructor arguments of `rec` other than name, pre, post (for storage and copies)."""
    return {f.name: getattr(rec, f.name) for f in fields(rec) if f.name not in ("name", "pre", "post")}
