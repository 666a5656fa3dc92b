"""lava-dl NetX HDF5: write a network for ``lava.lib.dl.netx.hdf5.Network`` and read one back.

Layout (what NetX 0.6 reads, ``lava/lib/dl/netx/hdf5.py``)::

    /layer/0/type = 'input', shape = [n_in]                   (no neuron: input goes to layer 1)
    /layer/k/type = 'dense' | 'dense_rec', shape = [n]
             weight (n, n_prev) integers      weight_rec (n, n) for 'dense_rec'
             delay  (optional) extra steps: scalar or (n, n_prev); neurosim delay d -> d - 1
             bias   (optional) (n,) mantissas; NetX uses bias_exp = 6
             neuron/type = 'CUBA', iDecay, vDecay, vThMant, refDelay = 1, gradedSpike = False

NetX builds ``LIF(du=iDecay - 1, dv=vDecay, vth=vThMant, bias_exp=6)`` (so iDecay = du + 1
cancels Lava's +1 offset) and ``Dense``/``DelayDense`` whose weight exponent and bit count it
chooses itself (``netx.utils.optimize_weight_bits``); that choice reproduces integer file
weights exactly when they lie in [-256, 254] (mixed signs; it clips beyond), [0, 255]
(excitatory) or [-255, 0] (inhibitory). So the file holds the whole input per spike as an
integer: :func:`to_netx` quantises with ``weight_exp = 0`` and ``bias_exp = 6`` and refuses
what NetX would clip. Float units of :func:`read_netx` follow SLAYER: weights and bias /64,
threshold vThMant / 64 (state scale 4096 = 64 << 6).

Expressible: one SpikeInput feeding a chain of LIF populations (reset 'zero', zero initial
state), each fed by the previous one, optionally with a self-recurrent projection
('dense_rec': then both delays must be 1, as NetX's RecurrentDense drops the weight exponent
and shares one delay matrix when delays are given). Names are kept in HDF5 attributes,
which NetX ignores.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Mapping, Optional, Union

import h5py
import numpy as np

from neurosim.atomic import h5_image
from neurosim.errors import ExportError, FileFormatError, NetworkError
from neurosim.fixed_point import (DECAY_ONE, VTH_MAX, FixedPointNetwork, FixedPopulation,
                                  FixedProjection, QuantizationReport, dequantize, quantize)
from neurosim.h5read import Budget, FileKind, H5Reader, plain_dtype
from neurosim.network import Network, SpikeInput
from neurosim.result import SimulationResult, SpikeTrains

TARGET = "netx"
NETX_BIAS_EXP = 6
NETX_MAX_DELAY = 63            # NetX clamps file delays to 62 extra steps
SLAYER_SCALE = 4096.0          # integer state units per float unit in SLAYER's convention
NETX_LIMITS = {"mixed": (-256, 254), "excitatory": (0, 255), "inhibitory": (-255, 0)}

PathLike = Union[str, "os.PathLike[str]"]


# -------------------------------------------------------------------------------- write


def netx_quantize(network: Network, *, vth_mant: Union[None, int, Mapping[str, int]] = None) -> FixedPointNetwork:
    """The integer network :func:`to_netx` writes: quantize with weight_exp 0, bias_exp 6.

    Multapses on one (pre, post, delay) are summed before rounding (one NetX weight per pair);
    synapses of several delays on one pair are refused (a NetX layer holds one delay per pair)."""
    for j in network.shaped:
        raise ExportError(TARGET, f"projections.{j.name}", f"NetX export of {type(j).__name__} layers is not "
                                                           "supported yet (export network.lowered() for dense layers)")
    _chain(network)
    for j in network.projections:
        if len(j.without_multapses()) > 1:
            raise ExportError(TARGET, f"projections.{j.name}.delay", "NetX holds one weight and one delay per "
                                                                     "(pre, post); this projection has pairs with "
                                                                     "synapses of several delays")
    return quantize(network, vth_mant=vth_mant, weight_exp=0, bias_exp=NETX_BIAS_EXP,
                    max_delay=NETX_MAX_DELAY, target=TARGET, lava_lif_only=True)


def to_netx(network: Union[Network, FixedPointNetwork], path: PathLike, *,
            vth_mant: Union[None, int, Mapping[str, int]] = None) -> Optional[QuantizationReport]:
    """Write `network` as a NetX HDF5 file (atomically); returns the quantisation report.

    A Network is quantised by :func:`netx_quantize`; a FixedPointNetwork is written as it is
    if NetX can hold it (weight_exp 0, bias_exp 6, zero initial state). ExportError names
    the first field NetX cannot express.
    """
    fixed = netx_quantize(network, vth_mant=vth_mant) if isinstance(network, Network) else network
    if not isinstance(fixed, FixedPointNetwork):
        raise NetworkError("network", f"expected a Network or FixedPointNetwork, got {type(network).__name__}")
    layers = _layers(fixed)
    with h5_image(path) as buf:  # built in memory: a full disk cannot crash the HDF5 library
        with h5py.File(buf, "w") as f:
            g = f.create_group("layer/0")
            _string(g, "type", "input")
            g.create_dataset("shape", data=np.array([fixed.inputs[0].size], np.int64))
            _name(g, "name", fixed.inputs[0].name)
            for k, (pop, ff, rec) in enumerate(layers, start=1):
                g = f.create_group(f"layer/{k}")
                _string(g, "type", "dense_rec" if rec is not None else "dense")
                g.create_dataset("shape", data=np.array([pop.size], np.int64))
                g.create_dataset("weight", data=ff.weights.T.astype(np.int64))
                _name(g, "name", pop.name)
                _name(g, "projection", ff.name)
                if rec is not None:
                    g.create_dataset("weight_rec", data=rec.weights.T.astype(np.int64))
                    _name(g, "projection_rec", rec.name)
                if ff.max_delay > 1:
                    extra = np.asarray(ff.delay) - 1
                    g.create_dataset("delay", data=extra.T if extra.ndim else extra)
                if np.any(pop.bias_mant):
                    g.create_dataset("bias", data=pop.bias_mant.astype(np.int64))
                n = g.create_group("neuron")
                _string(n, "type", "CUBA")
                n.create_dataset("iDecay", data=pop.du + 1)
                n.create_dataset("vDecay", data=pop.dv)
                n.create_dataset("vThMant", data=pop.vth)
                n.create_dataset("refDelay", data=1)
                n.create_dataset("gradedSpike", data=False)
    return fixed.report


def _string(group: Any, name: str, value: str) -> None:
    """A fixed-length ASCII string of shape (1,), as SLAYER writes `type`."""
    group.create_dataset(name, (1,), "S10", [value.encode("ascii")])


def _name(group: Any, key: str, value: str) -> None:
    """A fixed-length UTF-8 attribute: kept in the object header, not in the global heap
    (whose corruption can hang HDF5 on reading)."""
    data = value.encode("utf-8")
    group.attrs.create(key, np.bytes_(data), dtype=h5py.string_dtype("utf-8", max(1, len(data))))


def _chain(network: Union[Network, FixedPointNetwork]) -> list[tuple[str, Any, Any]]:
    """(population, feed-forward projection, recurrent projection or None) in chain order."""
    if len(network.inputs) != 1 or not isinstance(network.inputs[0], SpikeInput):
        raise ExportError(TARGET, "inputs", "NetX networks have exactly one spike input")
    prev = network.inputs[0].name
    out = []
    used: set[str] = set()
    for pop in network.populations:
        ff = [q for q in network.projections if q.post == pop.name and q.pre == prev]
        rec = [q for q in network.projections if q.post == pop.name and q.pre == pop.name]
        if len(ff) != 1:
            raise ExportError(TARGET, f"populations.{pop.name}", f"NetX layers form a chain: expected one projection "
                                                                 f"from {prev!r} into {pop.name!r}, found {len(ff)}")
        if len(rec) > 1:
            raise ExportError(TARGET, f"projections.{rec[1].name}", "at most one recurrent projection per layer")
        if rec and (np.max(ff[0].delay) > 1 or np.max(rec[0].delay) > 1):
            bad = rec[0] if np.max(rec[0].delay) > 1 else ff[0]
            raise ExportError(TARGET, f"projections.{bad.name}.delay", "a recurrent NetX layer ('dense_rec') "
                                                                     "takes delay 1 only")
        out.append((pop.name, ff[0], rec[0] if rec else None))
        used.update(q.name for q in ff + rec)
        prev = pop.name
    for q in network.projections:
        if q.name not in used:
            raise ExportError(TARGET, f"projections.{q.name}", "NetX holds a chain input -> layer 1 -> layer 2 ... "
                                                                "with optional self-recurrence only")
    return out


def _layers(fixed: FixedPointNetwork) -> list[tuple[FixedPopulation, FixedProjection, Optional[FixedProjection]]]:
    layers = []
    for name, ff, rec in _chain(fixed):
        pop = fixed.population(name)
        where = f"populations.{name}"
        if not pop.is_lava_lif:
            raise ExportError(TARGET, f"{where}.kind", f"NetX's CUBA neuron is Lava's LIF (reset to zero, no "
                                                      f"refractory period); got kind {pop.kind!r}, reset {pop.reset!r}")
        if np.any(pop.u0) or np.any(pop.v0):
            raise ExportError(TARGET, f"{where}.v0", "NetX starts every neuron at u = v = 0")
        if np.any(pop.bias_mant[pop.bias_exp != NETX_BIAS_EXP]):
            raise ExportError(TARGET, f"{where}.bias_exp", f"NetX fixes bias_exp = {NETX_BIAS_EXP}")
        for q in (ff, rec):
            if q is not None and q.weight_exp != 0:
                raise ExportError(TARGET, f"projections.{q.name}.weight_exp", "NetX files hold weights at exponent 0")
            if q is not None and q.max_delay > NETX_MAX_DELAY:
                raise ExportError(TARGET, f"projections.{q.name}.delay", f"NetX holds delays up to {NETX_MAX_DELAY}")
        combined = np.concatenate([ff.weights] + ([rec.weights] if rec is not None else []), axis=0)
        problem = _netx_problem(combined)
        if problem:
            raise ExportError(TARGET, f"projections.{ff.name}.weights", f"{problem}; pass a smaller vth_mant")
        layers.append((pop, ff, rec))
    return layers


def _netx_problem(w: np.ndarray) -> str:
    """Why NetX + Lava would not reproduce the integer matrix `w` exactly ('' if they would)."""
    if not np.any(w):
        return "NetX cannot load an all-zero weight matrix"
    mode = "excitatory" if w.min() >= 0 else ("inhibitory" if w.max() <= 0 else "mixed")
    lo, hi = NETX_LIMITS[mode]
    if w.min() < lo or w.max() > hi:
        return f"NetX/Lava clip {mode} weights to [{lo}, {hi}], found [{w.min()}, {w.max()}]"
    return ""


# --------------------------------------------------------------------------------- read


def read_netx_fixed(path: PathLike, dt: float, *, memory_budget: Budget = None) -> FixedPointNetwork:
    """The integer network a NetX file describes (chains of input, dense, dense_rec layers of
    CUBA neurons), exactly as NetX runs it; FileFormatError names the offending HDF5 path.
    Layer sizes and datasets needing more than `memory_budget` bytes are refused before they
    are allocated (:func:`neurosim.h5read.memory_budget`)."""
    reader = NetxReader(path, memory_budget)
    return reader.read(NETX, lambda f: reader.network(f, dt))


def read_netx(path: PathLike, dt: float, *, memory_budget: Budget = None) -> Network:
    """A NetX file as a float neurosim Network in SLAYER's units (weights, bias, threshold / 64):
    LIF(alpha = (4096 - iDecay)/4096, beta = (4096 - vDecay)/4096, reset='zero'); memory budget
    as :func:`read_netx_fixed`."""
    fixed = read_netx_fixed(path, dt, memory_budget=memory_budget)
    try:
        return dequantize(fixed)
    except NetworkError as exc:  # e.g. a layer name a Network refuses
        raise FileFormatError(os.fspath(path), "/layer", str(exc)) from None


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

    def size(self, where: str) -> int:
        """Neurons of a layer: the product of its `shape` (1-D), at most 2**31 - 1."""
        n = math.prod(int(s) for s in self.ints(where, 1, 2 ** 31 - 1, (1,)))
        if not 1 <= n < 2 ** 31:
            self.fail(where, f"expected at most {2 ** 31 - 1} neurons, got {n}")
        return n

    def name(self, where: str, key: str, default: str) -> str:
        """Text attribute `key` of `where` (a name NetX ignores), or `default` when absent."""
        obj = self.get(where)
        self.current = f"{where}@{key}"
        if key not in obj.attrs:
            return default
        return self.attr_str(obj, key, where)

    def network(self, f: h5py.File, dt: float) -> FixedPointNetwork:
        """The integer network of the open file `f` at step `dt`."""
        self.f = f
        layers = self.get("/layer", h5py.Group)
        names = list(layers.keys())
        keys = sorted(names, key=lambda k: int(k) if k.isascii() and k.isdigit() and len(k) < 10 else -1)
        if not keys or keys != [str(i) for i in range(len(keys))]:
            self.fail("/layer", f"expected groups 0 .. n-1, got {sorted(names)[:10]}")
        if self.text("/layer/0/type") != "input" or self.has("/layer/0/neuron"):
            self.fail("/layer/0/type", "expected an 'input' layer without neurons first")
        n_prev = self.size("/layer/0/shape")
        src = SpikeInput(self.name("/layer/0", "name", "input"), n_prev)
        prev = src.name
        pops, projs = [], []
        for k in keys[1:]:
            base = f"/layer/{k}"
            kind = self.text(f"{base}/type")
            if kind not in ("dense", "dense_rec"):
                self.fail(f"{base}/type", f"unsupported layer type {kind!r} (expected 'dense' or 'dense_rec')")
            n = self.size(f"{base}/shape")
            # weights read, as int64, dequantised and per-synapse delays: counted before any is made
            self.reserve(3 * 8 * n * n_prev, f"{base}/shape", f"a layer of {n} x {n_prev} synapses")
            w = self.ints(f"{base}/weight", -2 ** 31, 2 ** 31, (1, 2))
            if w.size != n * n_prev:  # checked before anything of size n is made
                self.fail(f"{base}/weight", f"expected shape ({n}, {n_prev}), got {w.shape}")
            w = w.reshape(n, n_prev)
            pop = self.population(base, self.name(base, "name", f"layer{k}"), n)
            w_rec = (self.ints(f"{base}/weight_rec", -2 ** 31, 2 ** 31, (1, 2)).reshape(n, -1)
                     if kind == "dense_rec" else None)
            if w_rec is not None and w_rec.shape != (n, n):
                self.fail(f"{base}/weight_rec", f"expected shape ({n}, {n}), got {w_rec.shape}")
            problem = _netx_problem(np.hstack([w] + ([w_rec] if w_rec is not None else [])))
            if problem:
                self.fail(f"{base}/weight", problem)
            delay = self.delay(base, w.shape) if self.has(f"{base}/delay") else 1
            if w_rec is not None and np.max(delay) > 1:
                self.fail(f"{base}/delay",
                                "NetX's dense_rec with delays drops the weight exponent; unsupported")
            projs.append(self.projection(f"{base}/weight", self.name(base, "projection", f"layer{k}_ff"),
                                         prev, pop.name, w, delay))
            if w_rec is not None:
                projs.append(self.projection(f"{base}/weight_rec", self.name(base, "projection_rec", f"layer{k}_rec"),
                                             pop.name, pop.name, w_rec, 1))
            pops.append(pop)
            prev, n_prev = pop.name, n
        try:
            return FixedPointNetwork(float(dt), tuple(pops), tuple(projs), (src,), name=os.path.basename(self.path))
        except NetworkError as exc:
            raise FileFormatError(self.path, "/layer", str(exc)) from None

    def population(self, base: str, name: str, n: int) -> FixedPopulation:
        nb = f"{base}/neuron"
        if self.text(f"{nb}/type") != "CUBA":
            self.fail(f"{nb}/type", f"unsupported neuron {self.text(f'{nb}/type')!r} (expected 'CUBA')")
        i_decay = int(self.ints(f"{nb}/iDecay", 0, DECAY_ONE, (0,)))
        v_decay = int(self.ints(f"{nb}/vDecay", 0, DECAY_ONE, (0,)))
        vth = int(self.ints(f"{nb}/vThMant", 0, VTH_MAX, (0,)))
        if self.has(f"{nb}/gradedSpike") and np.any(self.ints(f"{nb}/gradedSpike", 0, 1, (0, 1))):
            self.fail(f"{nb}/gradedSpike", "graded spikes are not supported")
        bias = self.ints(f"{base}/bias", -4096, 4095, (0, 1)) if self.has(f"{base}/bias") else np.zeros(n, np.int64)
        if bias.ndim and bias.shape != (n,):
            self.fail(f"{base}/bias", f"expected shape ({n},), got {bias.shape}")
        return FixedPopulation(name, n, i_decay - 1, v_decay, vth, np.broadcast_to(bias, (n,)), NETX_BIAS_EXP,
                               0, 0, scale=SLAYER_SCALE)

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
        mode = "excitatory" if w.min() >= 0 else ("inhibitory" if w.max() <= 0 else "mixed")
        d = delay if np.ndim(delay) == 0 else (int(delay.flat[0]) if np.all(delay == delay.flat[0]) else delay)
        try:
            return FixedProjection(name, pre, post, w.T, 0, d, mode)
        except NetworkError as exc:
            raise FileFormatError(self.path, where, exc.message) from None


# ---------------------------------------------------------------------------------- run


def run_netx(path: PathLike, inputs: Mapping[str, Any], steps: int, *, traces: bool = False) -> SimulationResult:
    """Load `path` with ``lava.lib.dl.netx.hdf5.Network`` and run it in Lava fixed_pt for one trial.

    inputs: {input name: spikes (steps, n_in)}; spikes of every layer are recorded under the
    population names :func:`read_netx_fixed` gives; traces=True adds 'u_int' and 'v_int'.
    NetX's blocks have fixed_pt process models only.
    """
    from .lava_compat import import_lava, import_netx
    from .lava_compat import stopped

    lava, netx = import_lava(), import_netx()
    fixed = read_netx_fixed(path, 1.0)
    src_name = fixed.inputs[0].name
    x = np.asarray(inputs[src_name]).reshape(np.shape(inputs[src_name])[0], -1)[:steps] != 0
    if x.shape != (steps, fixed.inputs[0].size):
        raise NetworkError(f"inputs.{src_name}", f"expected shape ({steps}, {fixed.inputs[0].size}), got {x.shape}")
    t0 = time.perf_counter()
    net = netx.Network(net_config=os.fspath(path))
    source = lava.RingBufferSource(data=x.T.astype(np.int32))
    source.s_out.connect(net.inp)
    monitors = {}
    for pop, layer in zip(fixed.populations, net.layers):
        probes = [("s", layer.neuron.s_out)] + ([("u", layer.neuron.u), ("v", layer.neuron.v)] if traces else [])
        for var, target in probes:
            mon = lava.Monitor()
            mon.probe(target, steps)
            monitors[(pop.name, var)] = (mon, layer.neuron)
    with stopped(net):
        net.run(condition=lava.RunSteps(num_steps=steps), run_cfg=lava.Loihi2SimCfg(select_tag="fixed_pt"))
        data = {key: np.asarray(mon.get_data()[proc.name][{"s": "s_out"}.get(key[1], key[1])])
                for key, (mon, proc) in monitors.items()}
    spikes, rec = {}, {}
    for pop in fixed.populations:
        s = data[(pop.name, "s")] != 0
        t, j = np.nonzero(s)
        spikes[pop.name] = SpikeTrains(t.astype(np.int64), np.zeros(len(t), np.int32), j.astype(np.int32),
                                       pop.size, steps, 1)
        if traces:
            rec[pop.name] = {f"{v}_int": np.round(data[(pop.name, v)]).astype(np.int64)[:, None, :]
                             for v in ("u", "v")}
    t, j = np.nonzero(x)
    spikes[src_name] = SpikeTrains(t.astype(np.int64), np.zeros(len(t), np.int32), j.astype(np.int32),
                                   x.shape[1], steps, 1)
    run_s = time.perf_counter() - t0
    return SimulationResult(spikes=spikes, traces=rec, timings={"run": run_s, "total": run_s},
                            backend="lava-netx-fixed_pt",
                            dtype="int32", dt=fixed.dt, steps=steps, batch=1, seed=0,
                            meta={"populations": [p.name for p in fixed.populations]})
