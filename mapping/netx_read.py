"""Read a lava-dl NetX HDF5 file (layout in :mod:`mapping.netx`) as the integer network NetX runs,
or as a float neurosim Network in SLAYER's units."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import h5py
import numpy as np

from neurosim.conv import ConvGeometry, Conv1d, Conv2d
from neurosim.errors import FileFormatError, NetworkError
from neurosim.fixed_point import DECAY_ONE, VTH_MAX, FixedPointNetwork, FixedPopulation, FixedProjection, dequantize
from neurosim.h5read import Budget, FileKind, H5Reader, plain_dtype
from neurosim.network import Network, SpikeInput

from .netx_conv import conv_geometry, lowered_weights
from .netx_layout import NETX_BIAS_EXP, NETX_MAX_DELAY, SLAYER_SCALE, from_xyc, netx_problem
from .netx_readout import LI_VTH_INT, li_bound

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class NetxFile:
    """What a NetX file describes: the integer network (conv layers lowered) and the shapes
    NetX gives its layers. shapes: neurosim shape of the input and of every population
    ((C, H, W) for conv layers, (C, L) for a layer marked conv1d); convs: {population: the
    integer convolution feeding it}; records: {population: neurosim kind written, e.g. 'sumpool2d'}."""

    fixed: FixedPointNetwork
    shapes: dict[str, tuple[int, ...]]
    convs: dict[str, ConvGeometry] = field(default_factory=dict)
    records: dict[str, str] = field(default_factory=dict)


def read_netx_file(path: PathLike, dt: float, *, memory_budget: Budget = None) -> NetxFile:
    """The :class:`NetxFile` of `path`; FileFormatError names the offending HDF5 path. Layer
    sizes and datasets needing more than `memory_budget` bytes are refused before they are
    allocated (:func:`neurosim.h5read.memory_budget`)."""
    reader = NetxReader(path, memory_budget)
    return reader.read(NETX, lambda f: reader.network(f, dt))


def read_netx_fixed(path: PathLike, dt: float, *, memory_budget: Budget = None) -> FixedPointNetwork:
    """The integer network a NetX file describes (input, conv, flatten, dense, dense_rec layers of
    CUBA neurons; conv layers as their exact lowering), exactly as NetX runs it; errors and
    memory budget as :func:`read_netx_file`."""
    return read_netx_file(path, dt, memory_budget=memory_budget).fixed


def read_netx(path: PathLike, dt: float, *, memory_budget: Budget = None) -> Network:
    """A NetX file as a float neurosim Network in SLAYER's units (weights, bias, threshold / 64):
    LIF(alpha = (4096 - iDecay)/4096, beta = (4096 - vDecay)/4096, reset='zero'); conv layers as
    Conv2d (Conv1d where marked) with kernel / 64 on shaped populations (a pooling layer is read as
    the depthwise Conv2d it is in the file); memory budget as :func:`read_netx_file`."""
    netx = read_netx_file(path, dt, memory_budget=memory_budget)
    try:
        flat = dequantize(netx.fixed)
        pops = tuple(dataclasses.replace(p, shape=netx.shapes[p.name]) if len(netx.shapes[p.name]) > 1 else p
                     for p in flat.populations)
        projs = tuple(_conv_record(q.name, q.pre, q.post, netx.convs[q.post], netx.records.get(q.post))
                      if q.post in netx.convs and q.pre != q.post else q for q in flat.projections)
        return flat.replace(populations=pops, projections=projs)
    except NetworkError as exc:  # e.g. a layer name a Network refuses
        raise FileFormatError(os.fspath(path), "/layer", str(exc)) from None


def _conv_record(name: str, pre: str, post: str, g: ConvGeometry, record: Optional[str]) -> Any:
    kernel = np.asarray(g.kernel, np.float64) * 64.0 / SLAYER_SCALE
    if record == "conv1d":
        return Conv1d(name, pre, post, kernel[:, :, 0, :], g.stride[1], g.padding[1], g.dilation[1], g.groups)
    return Conv2d(name, pre, post, kernel, g.stride, g.padding, g.dilation, g.groups)


NETX = FileKind(expected="a NetX HDF5 file", unopened="cannot be opened as HDF5 ({exc})",
                intact="an intact NetX file", heap_first=True)


class NetxReader(H5Reader):
    """The layer's reader addressing objects by absolute HDF5 path, as NetX lays them out."""

    def __init__(self, path: PathLike, budget: Budget = None) -> None:
        super().__init__(path, budget)
        self.f: Any = None  # the open file, set by network()

    def has(self, where: str) -> bool:
        """True when `where` exists, reached through hard links only."""
        self.current = where
        obj = self.f
        for part in where.strip("/").split("/"):
            if not isinstance(obj, h5py.Group):
                return False
            obj = self.follow(obj, part, where)
            if obj is None:
                return False
        return True

    def get(self, where: str, kind: Optional[type] = None) -> Any:
        """The group or dataset at `where` (a `kind` when given)."""
        if not self.has(where):
            self.fail(where, "missing")
        obj = self.f[where]
        kind = kind or (h5py.Group, h5py.Dataset)
        if not isinstance(obj, kind):
            self.fail(where, f"expected {'a group' if kind is h5py.Group else 'a dataset'}, "
                             f"found {type(obj).__name__}")
        return obj

    def values(self, where: str, kinds: str, max_size: Optional[int] = None) -> np.ndarray:
        """Dataset `where` after checking its dtype kind and that the file stores its data."""
        ds = self.get(where, h5py.Dataset)
        if not plain_dtype(ds.dtype, kinds, text="S" in kinds):
            self.fail(where, f"expected {'a string' if kinds == 'S' else 'numbers'}, got dtype {ds.dtype}")
        if max_size is not None and (ds.shape is None or int(np.prod(ds.shape)) > max_size):
            self.fail(where, f"expected at most {max_size} values, got shape {ds.shape}")
        return np.asarray(self.data(ds, where))

    def text(self, where: str) -> str:
        """A short ASCII string dataset (how SLAYER writes `type`)."""
        value = self.values(where, "S", 16)
        try:
            value = value.reshape(-1)[0] if value.ndim else value[()]
            return value.decode("ascii") if isinstance(value, bytes) else str(value)
        except (TypeError, ValueError, IndexError, AttributeError, UnicodeDecodeError):
            self.fail(where, "expected an ASCII string")

    def ints(self, where: str, lo: int, hi: int, ndim: Optional[tuple[int, ...]] = None) -> np.ndarray:
        """Whole numbers in [lo, hi] (of `ndim` dimensions when given) as int64."""
        arr = self.values(where, "biuf")
        if ndim is not None and arr.ndim not in ndim:
            self.fail(where, f"expected {' or '.join(f'{d}-D' for d in ndim)} data, got shape {arr.shape}")
        with np.errstate(invalid="ignore"):
            if arr.size and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
                self.fail(where, "expected whole numbers (NetX truncates others)")
            if arr.size and (arr.min() < lo or arr.max() > hi):
                self.fail(where, f"expected values in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")
        return arr.astype(np.int64)

    def shape(self, where: str) -> tuple[int, ...]:
        """A layer's `shape` (1-D, e.g. [n] or [C, H, W]) of at most 2**31 - 1 neurons."""
        dims = tuple(int(s) for s in self.ints(where, 1, 2 ** 31 - 1, (1,)))
        if not 1 <= len(dims) <= 3 or not 1 <= math.prod(dims) < 2 ** 31:
            self.fail(where, f"expected [n], [C, L] or [C, H, W] of at most {2 ** 31 - 1} neurons, got {list(dims)}")
        return dims

    def name(self, where: str, key: str, default: str) -> str:
        """Text attribute `key` of `where` (a name NetX ignores), or `default` when absent."""
        obj = self.get(where)
        self.current = f"{where}@{key}"
        if key not in obj.attrs:
            return default
        return self.attr_str(obj, key, where)

    def network(self, f: h5py.File, dt: float) -> NetxFile:
        """The :class:`NetxFile` of the open file `f` at step `dt`."""
        self.f = f
        layers = self.get("/layer", h5py.Group)
        names = list(layers.keys())
        keys = sorted(names, key=lambda k: int(k) if k.isascii() and k.isdigit() and len(k) < 10 else -1)
        if not keys or keys != [str(i) for i in range(len(keys))]:
            self.fail("/layer", f"expected groups 0 .. n-1, got {sorted(names)[:10]}")
        if self.text("/layer/0/type") != "input" or self.has("/layer/0/neuron"):
            self.fail("/layer/0/type", "expected an 'input' layer without neurons first")
        shape = self.shape("/layer/0/shape")
        first = self.text("/layer/1/type") if len(keys) > 1 and self.has("/layer/1/type") else ""
        conv1d = first == "conv" and self.name("/layer/1", "neurosim_kind", "") == "conv1d" and len(shape) == 3
        in_shape = (shape[0], shape[2]) if conv1d and shape[1] == 1 else (shape if len(shape) > 1 else None)
        src = SpikeInput(self.name("/layer/0", "name", "input"), math.prod(shape), shape=in_shape)
        prev, prev_shape = src.name, shape
        pops, projs = [], []
        out = NetxFile(FixedPointNetwork(float(dt), (), (), ()), {src.name: tuple(src.shape)})
        flatten = False
        for k in keys[1:]:
            base = f"/layer/{k}"
            kind = self.text(f"{base}/type")
            if kind == "flatten":
                flatten = True
                continue
            if kind not in ("dense", "dense_rec", "conv"):
                self.fail(f"{base}/type", f"unsupported layer type {kind!r} (expected 'conv', 'flatten', 'dense' "
                                          "or 'dense_rec')")
            n_prev = math.prod(prev_shape)
            if kind == "conv":
                if flatten:
                    self.fail(f"{base}/type", "a conv layer after 'flatten' (NetX flattens for dense layers only)")
                layer_shape = self.shape(f"{base}/shape")
                if len(layer_shape) != 3:
                    self.fail(f"{base}/shape", f"expected [C, H, W] for a conv layer, got {list(layer_shape)}")
                n = math.prod(layer_shape)
                self.reserve(2 * 8 * n * n_prev, f"{base}/shape", f"a layer of {n} x {n_prev} synapses")
                g = conv_geometry(self, base, prev_shape, layer_shape)  # type: ignore[arg-type]
                w, w_rec, delay = lowered_weights(g).T, None, 1  # (n, n_prev) as a dense layer's
            else:
                if len(prev_shape) > 1 and not flatten:
                    self.fail(f"{base}/type", f"a dense layer after a conv layer needs a 'flatten' layer between "
                                              f"(NetX connects the (X, Y, C) output otherwise)")
                n = math.prod(self.shape(f"{base}/shape"))
                layer_shape = (n,)
                # weights read, as int64, dequantised and per-synapse delays: counted before any is made
                self.reserve(3 * 8 * n * n_prev, f"{base}/shape", f"a layer of {n} x {n_prev} synapses")
                w, w_rec, delay = self.dense(base, kind, n, n_prev)
            flatten = False
            record = self.name(base, "neurosim_kind", "")
            pop = self.population(base, self.name(base, "name", f"layer{k}"), layer_shape, kind == "conv")
            projs.append(self.projection(f"{base}/weight", self.name(base, "projection", f"layer{k}_ff"),
                                         prev, pop.name, w.T, delay))
            if w_rec is not None:
                projs.append(self.projection(f"{base}/weight_rec", self.name(base, "projection_rec", f"layer{k}_rec"),
                                             pop.name, pop.name, w_rec.T, 1))
            pops.append(pop)
            if kind == "conv":
                out.convs[pop.name] = g
                out.records[pop.name] = record
                one_d = record == "conv1d" and layer_shape[1] == 1
                shape_of = (layer_shape[0], layer_shape[2]) if one_d else layer_shape
            else:
                shape_of = layer_shape
            out.shapes[pop.name] = tuple(shape_of)
            prev, prev_shape = pop.name, layer_shape
        if flatten:
            self.fail(f"/layer/{keys[-1]}/type", "a 'flatten' layer must be followed by a dense layer")
        try:
            net = FixedPointNetwork(float(dt), tuple(pops), tuple(projs), (src,), name=os.path.basename(self.path))
            # a layer marked 'li' is read as one only if Lava's LIF provably never spikes there
            lif = [dataclasses.replace(p, kind="lif") if p.kind == "li" and li_bound(net, p.name) > LI_VTH_INT else p
                   for p in pops]
            net = dataclasses.replace(net, populations=tuple(lif)) if lif != pops else net
        except NetworkError as exc:
            raise FileFormatError(self.path, "/layer", str(exc)) from None
        return dataclasses.replace(out, fixed=net)

    def dense(self, base: str, kind: str, n: int, n_prev: int) -> tuple[np.ndarray, Optional[np.ndarray], Any]:
        """(weight (n, n_prev), weight_rec (n, n) or None, delay) of a dense layer."""
        w = self.ints(f"{base}/weight", -2 ** 31, 2 ** 31, (1, 2))
        if w.size != n * n_prev:  # checked before anything of size n is made
            self.fail(f"{base}/weight", f"expected shape ({n}, {n_prev}), got {w.shape}")
        w = w.reshape(n, n_prev)
        w_rec = (self.ints(f"{base}/weight_rec", -2 ** 31, 2 ** 31, (1, 2)).reshape(n, -1)
                 if kind == "dense_rec" else None)
        if w_rec is not None and w_rec.shape != (n, n):
            self.fail(f"{base}/weight_rec", f"expected shape ({n}, {n}), got {w_rec.shape}")
        problem = netx_problem(np.hstack([w] + ([w_rec] if w_rec is not None else [])))
        if problem:
            self.fail(f"{base}/weight", problem)
        delay = self.delay(base, w.shape) if self.has(f"{base}/delay") else 1
        if w_rec is not None and np.max(delay) > 1:
            self.fail(f"{base}/delay", "NetX's dense_rec with delays drops the weight exponent; unsupported")
        return w, w_rec, delay

    def population(self, base: str, name: str, shape: tuple[int, ...], conv: bool) -> FixedPopulation:
        n = math.prod(shape)
        nb = f"{base}/neuron"
        if self.text(f"{nb}/type") != "CUBA":
            self.fail(f"{nb}/type", f"unsupported neuron {self.text(f'{nb}/type')!r} (expected 'CUBA')")
        i_decay, v_decay, vth = (self.per_neuron(f"{nb}/{key}", hi, shape, conv) for key, hi in
                                 (("iDecay", DECAY_ONE), ("vDecay", DECAY_ONE), ("vThMant", VTH_MAX)))
        if self.has(f"{nb}/gradedSpike") and np.any(self.ints(f"{nb}/gradedSpike", 0, 1, (0, 1))):
            self.fail(f"{nb}/gradedSpike", "graded spikes are not supported")
        if self.has(f"{base}/bias"):
            bias = self.ints(f"{base}/bias", -4096, 4095, (0, 1, 3) if conv else (0, 1))
            bias = self.arranged(f"{base}/bias", bias, shape) if conv else bias
            if bias.ndim and bias.shape != (n,):
                self.fail(f"{base}/bias", f"expected shape ({n},), got {bias.shape}")
        else:
            bias = np.zeros(n, np.int64)
        kind = "li" if self.name(base, "neurosim_kind", "lif") == "li" else "lif"
        return FixedPopulation(name, n, i_decay - 1, v_decay, vth, np.broadcast_to(bias, (n,)), NETX_BIAS_EXP,
                               0, 0, scale=SLAYER_SCALE, kind=kind)

    def arranged(self, where: str, arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """A conv layer's per-neuron array (scalar, (C,) or (W, H, C)) as the flat C-order vector."""
        c, h, w = shape
        if arr.ndim == 0 or arr.shape in ((c,), (w, h, c)):
            return from_xyc(arr, shape)
        self.fail(where, f"expected a scalar, ({c},) or (W, H, C) = ({w}, {h}, {c}), got {arr.shape}")

    def per_neuron(self, where: str, hi: int, shape: tuple[int, ...], conv: bool) -> Any:
        """A neuron parameter in [0, hi]: one int, or one per neuron, as NetX hands it to Lava's
        LIF ((n,) for dense layers; (C,) or (W, H, C) for conv layers)."""
        arr = self.ints(where, 0, hi, (0, 1, 3) if conv else (0, 1))
        if arr.ndim == 0:
            return int(arr)
        if conv:
            return self.arranged(where, arr, shape)
        if arr.shape != (shape[0],):
            self.fail(where, f"expected a scalar or shape ({shape[0]},), got {arr.shape}")
        return arr

    def delay(self, base: str, shape: tuple[int, int]) -> np.ndarray:
        """Extra steps as NetX reads them: scalar, per row (n_out), per column (n_in) or full."""
        d = self.ints(f"{base}/delay", 0, NETX_MAX_DELAY - 1, (0, 1, 2))
        if d.ndim == 1 and d.size == shape[0]:
            d = np.repeat(d[:, None], shape[1], axis=1)
        elif d.ndim == 1 and d.size == shape[1]:
            d = np.repeat(d[None, :], shape[0], axis=0)
        elif d.ndim != 0 and d.shape != shape:
            self.fail(f"{base}/delay",
                      f"expected a scalar, ({shape[0]},), ({shape[1]},) or {shape}, got {d.shape}")
        return np.broadcast_to(d, shape).T + 1  # (n_pre, n_post), neurosim steps

    def projection(self, where: str, name: str, pre: str, post: str, w: np.ndarray, delay: Any) -> FixedProjection:
        """`w` (n_pre, n_post) and `delay` (steps >= 1) as a FixedProjection at exponent 0."""
        mode = "excitatory" if w.min() >= 0 else ("inhibitory" if w.max() <= 0 else "mixed")
        d = delay if np.ndim(delay) == 0 else (int(delay.flat[0]) if np.all(delay == delay.flat[0]) else delay)
        try:
            return FixedProjection(name, pre, post, w, 0, d, mode)
        except NetworkError as exc:
            raise FileFormatError(self.path, where, exc.message) from None
