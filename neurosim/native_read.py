"""Reading the native HDF5 schema (:mod:`neurosim.native_format`) through the hardened
reading layer :mod:`neurosim.h5read`: a network or a result, each attribute, dtype and shape
checked before use; every defect raises :class:`FileFormatError` naming the file and the field.
"""
from __future__ import annotations

import json
import math
from dataclasses import fields
from typing import Any, Union

import h5py
import numpy as np

from .errors import FileFormatError, NetworkError
from .h5read import FLOAT, INT, REAL, Budget, FileKind, H5Reader, PathLike, describe, plain_dtype, storage_problem
from .models import MODELS, model_from_params
from .native_format import MAX_SIZE, MAX_STEPS, NETWORK_FORMAT, OLDEST_SCHEMA, RESULT_FORMAT, SCHEMA_VERSION
from .native_shapes import SHAPED_FORMATS, read_per_neuron, read_shape, read_shaped
from .conv import ShapedProjection
from .network import CSR, Network, PoissonInput, Population, Projection, SpikeInput
from .result import SimulationResult, SpikeTrains

NATIVE = FileKind(expected="an HDF5 file written by neurosim",
                  unopened="cannot be opened as HDF5 ({exc}); expected an intact HDF5 file written by neurosim",
                  intact="an intact file written by neurosim")


def read_network(path: PathLike, memory_budget: Budget = None) -> Network:
    """The network of a file written by :func:`neurosim.storage.save`; refused before any data is
    read when its declared sizes need more than `memory_budget` bytes (:func:`neurosim.h5read.memory_budget`)."""
    r = NativeReader(path, memory_budget)
    return r.read(NATIVE, lambda f: r.translated(_read_network, f))


def read_result(path: PathLike, memory_budget: Budget = None) -> SimulationResult:
    """The result of a file written by :func:`neurosim.storage.save_result` (memory budget as
    :func:`read_network`)."""
    r = NativeReader(path, memory_budget)
    return r.read(NATIVE, lambda f: r.translated(_read_result, f))


# Loading n neurons allocates each per-neuron dataset (model parameters and v0, i0, a0) about
# three times: the array read, its float64 copy and the model's validated arrays (the issue's
# 2**25-neuron file took 8 GB for under 3 GB of float64 data). Synapses: weights and delays, twice.
COPIES = {"populations": 3, "inputs": 3, "projections": 2}


def declared_network_bytes(r: "NativeReader", groups: dict[str, h5py.Group]) -> tuple[int, str]:
    """Bytes loading the network will allocate, from the shapes its datasets declare (8 bytes a
    value, times COPIES; nothing read). A per-neuron dataset stored compactly (one value, or one
    per channel) counts as the `size` values it expands to. Datasets the file does not store
    (storage_problem) or that are not plain numbers count 0 here, and so does a `size` attribute
    that is not a valid one: the schema reader reports them in its own order.
    Returns the total and the dataset declaring the most."""
    total, largest, field = 0, -1, ""
    for key in ("populations", "inputs", "projections"):
        for name in groups[key].keys():
            obj = r.follow(groups[key], name, f"{key}/{name}", "a group")
            if not isinstance(obj, h5py.Group):
                continue
            size = 0
            if key != "projections":
                try:
                    size = r.attr_int(obj, "size", f"{key}/{name}", 1, MAX_SIZE)
                except FileFormatError:
                    size = 0
            for member in obj.keys():
                where = f"{key}/{name}/{member}"
                d = r.follow(obj, member, where)
                if not isinstance(d, h5py.Dataset) or not plain_dtype(d.dtype, REAL) or storage_problem(d):
                    continue
                need = COPIES[key] * 8 * max(math.prod(d.shape or ()), size)
                total += need
                if need > largest:
                    largest, field = need, where
    return total, field


class NativeReader(H5Reader):
    """The layer's reader plus what the native schema adds: members in their ``order``, the
    format header, and a constructor's NetworkError mapped onto the HDF5 field."""

    def __init__(self, path: PathLike, budget: Budget = None) -> None:
        super().__init__(path, budget)
        self.names: dict[str, list[str]] = {"populations": [], "inputs": [], "projections": []}
        self.csr: set[str] = set()

    def translated(self, body: Any, f: h5py.File) -> Any:
        """`body(self, f)`, with a NetworkError of a record's constructor named by its HDF5 field."""
        try:
            return body(self, f)
        except FileFormatError:
            raise
        except NetworkError as exc:
            message = str(exc)[len(exc.field) + 2:]
            raise FileFormatError(self.path, self.h5_field(exc.field), message) from None

    def ordered(self, parent: h5py.Group, where: str, kind: type = h5py.Group) -> list[tuple[str, Any]]:
        """Members of `parent` sorted by their `order` attrs, which must be 0 .. n-1."""
        names = list(parent.keys())
        items = []
        what = "a group" if kind is h5py.Group else "a dataset"
        for name in names:
            obj = self.member(parent, name, where, kind, what)
            items.append((self.attr_int(obj, "order", f"{where}/{name}", 0, len(names) - 1), name, obj))
        seen: dict[int, str] = {}
        for k, name, _ in items:
            if k in seen:
                self.fail(f"{where}/{name}@order", f"expected a unique position in 0..{len(names) - 1}, "
                                                   f"{k} is also used by {seen[k]!r}")
            seen[k] = name
        return [(name, obj) for _, name, obj in sorted(items, key=lambda item: item[0])]

    def only(self, group: h5py.Group, where: str, allowed: set[str]) -> None:
        """Refuse members of `group` other than `allowed`."""
        for name in group.keys():
            if name not in allowed:
                self.fail(f"{where}/{name}" if where else name,
                          f"unexpected member; expected only {sorted(allowed) or 'attributes'}")

    def array(self, group: h5py.Group, name: str, where: str, kinds: str,
              shapes: Union[tuple[tuple[int, ...], ...], int]) -> np.ndarray:
        """Dataset `name` after checking its dtype (kinds), shape (one of `shapes`, or any shape of
        that many dimensions) and that the file really stores that much data."""
        field = f"{where}/{name}"
        label = {REAL: "real numbers", INT: "integers", FLOAT: "floating-point numbers"}[kinds]
        if isinstance(shapes, int):
            form = f"a {shapes}-D array"
        else:
            form = " or ".join("a scalar" if s == () else f"shape {s}" for s in shapes)
        d = self.member(group, name, where, h5py.Dataset, f"a dataset of {label} ({form})")
        ok = d.shape is not None and (len(d.shape) == shapes if isinstance(shapes, int) else d.shape in shapes)
        if not plain_dtype(d.dtype, kinds):
            self.fail(field, f"expected {label} ({form}), got dtype {d.dtype}")
        if not ok:
            self.fail(field, f"expected {form} of {label}, got shape {d.shape}")
        data = np.asarray(self.data(d, field))
        if kinds == INT and data.dtype.kind == "u" and data.size and data.max() > np.iinfo(np.int64).max:
            self.fail(field, "expected integers that fit in int64")
        return data

    def header(self, f: h5py.File, fmt: str) -> None:
        """Check the format, schema_version and neurosim_version attributes of the root."""
        found = self.attr_str(f, "format", "", expected=repr(fmt))
        if found != fmt:
            other = {NETWORK_FORMAT: "neurosim.load", RESULT_FORMAT: "neurosim.load_result"}.get(found)
            self.fail("@format", f"expected {fmt!r}, got {found!r}" + (f" (read it with {other})" if other else ""))
        version = self.attr(f, "schema_version", "", f"the integer {SCHEMA_VERSION}")
        if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
            self.fail("@schema_version", f"expected the integer {SCHEMA_VERSION}, got {describe(version)}")
        if int(version) > SCHEMA_VERSION:
            self.fail("@schema_version", f"written by a newer neurosim (schema_version {int(version)}); "
                                         f"this version reads schema_version {SCHEMA_VERSION}")
        if not OLDEST_SCHEMA <= int(version) <= SCHEMA_VERSION:
            self.fail("@schema_version", f"expected {OLDEST_SCHEMA} to {SCHEMA_VERSION}, got {int(version)}")
        self.attr_str(f, "neurosim_version", "")

    # ---------------------------------------------------------- NetworkError -> HDF5 field
    def h5_field(self, field: str) -> str:
        """Map a constructor's dotted field (``projections.ee.weights``) onto an HDF5 path."""
        head, _, rest = field.partition(".")
        if head == "dt":
            return "@dt"
        if head not in self.names:
            return self.current or field
        for name in sorted(self.names[head], key=len, reverse=True):
            if rest == name or rest.startswith(name + "."):
                sub = rest[len(name) + 1:]
                return f"{head}/{name}" + self._sub_field(sub, csr=head == "projections" and name in self.csr)
        return self.current or head

    @staticmethod
    def _sub_field(sub: str, csr: bool) -> str:
        if not sub:
            return ""
        fixed = {"size": "@size", "model": "@model", "model.kind": "@model", "model.reset": "@reset",
                 "pre": "@pre", "post": "@post", "weights": "@shape" if csr else "/weights", "shape": "@shape",
                 **{k: "@" + k for k in ("stride", "padding", "dilation", "groups", "kernel_size")}}
        if sub in fixed:
            return fixed[sub]
        for prefix in ("model.", "weights."):
            if sub.startswith(prefix):
                return "/" + sub[len(prefix):]
        return "/" + sub


# ----------------------------------------------------------------------------- network reader
def _read_network(r: NativeReader, f: h5py.File) -> Network:
    r.header(f, NETWORK_FORMAT)
    dt = r.attr_real(f, "dt", "")
    name = r.attr_str(f, "name", "")
    groups = {key: r.member(f, key, "", h5py.Group, "a group") for key in ("populations", "inputs", "projections")}
    r.only(f, "", set(groups))
    need, field = declared_network_bytes(r, groups)
    r.reserve(need, field, "the datasets this network declares (this one the largest)")
    r.reserved = 0  # the declared total is a bound; each dataset is counted again as it is read
    populations = [_read_population(r, n, g) for n, g in r.ordered(groups["populations"], "populations")]
    inputs = [_read_input(r, n, g) for n, g in r.ordered(groups["inputs"], "inputs")]
    for src in inputs:
        if any(p.name == src.name for p in populations):
            r.fail(f"inputs/{src.name}", "name already used by a population; expected unique names")
    pop_sizes = {p.name: p.size for p in populations}
    node_sizes = {**{s.name: s.size for s in inputs}, **pop_sizes}
    projections = [_read_projection(r, n, g, node_sizes, pop_sizes)
                   for n, g in r.ordered(groups["projections"], "projections")]
    r.current = ""
    return Network(dt=dt, populations=populations, projections=projections, inputs=inputs, name=name)


def _read_population(r: NativeReader, name: str, g: h5py.Group) -> Population:
    where = f"populations/{name}"
    r.names["populations"].append(name)
    kind = r.attr_str(g, "model", where, tuple(MODELS))
    size = r.attr_int(g, "size", where, 1, MAX_SIZE)
    shape = read_shape(r, g, where, size)
    cls = MODELS[kind]
    params = cls().param_names()
    init = ("v0", "i0", "a0")
    r.only(g, where, {*params, *init})
    values = {p: read_per_neuron(r, g, p, where, size, shape) for p in params}
    has_reset = any(fl.name == "reset" for fl in fields(cls))
    reset = r.attr_str(g, "reset", where, ("subtract", "zero")) if has_reset else "subtract"
    state = {k: read_per_neuron(r, g, k, where, size, shape) for k in init}
    r.current = where
    model = model_from_params(kind, values, reset, where=f"populations.{name}.model")
    return Population(name, size, model, shape=shape, **state)


def _read_input(r: NativeReader, name: str, g: h5py.Group) -> Union[SpikeInput, PoissonInput]:
    where = f"inputs/{name}"
    r.names["inputs"].append(name)
    kind = r.attr_str(g, "kind", where, ("spikes", "poisson"))
    size = r.attr_int(g, "size", where, 1, MAX_SIZE)
    shape = read_shape(r, g, where, size)
    if kind == "spikes":
        r.only(g, where, set())
        r.current = where
        return SpikeInput(name, size, shape=shape)
    r.only(g, where, {"rate"})
    rate = read_per_neuron(r, g, "rate", where, size, shape)
    r.current = where
    return PoissonInput(name, size, rate, shape=shape)


def _read_projection(r: NativeReader, name: str, g: h5py.Group, nodes: dict[str, int],
                     pops: dict[str, int]) -> Union[Projection, ShapedProjection]:
    where = f"projections/{name}"
    r.names["projections"].append(name)
    pre = r.attr_str(g, "pre", where)
    post = r.attr_str(g, "post", where)
    if pre not in nodes:
        r.fail(f"{where}@pre", f"expected the name of a population or input (have {sorted(nodes)}), got {pre!r}")
    if post not in pops:
        r.fail(f"{where}@post", f"expected the name of a population (have {sorted(pops)}), got {post!r}")
    shape = (nodes[pre], pops[post])
    fmt = r.attr_str(g, "format", where, ("dense", "csr", *SHAPED_FORMATS))
    if fmt in SHAPED_FORMATS:
        return read_shaped(r, g, name, pre, post, fmt)
    weights: Union[np.ndarray, CSR]
    if fmt == "dense":
        r.only(g, where, {"weights", "delay"})
        weights = r.array(g, "weights", where, REAL, (shape,)).astype(np.float64, copy=False)
        per_synapse = shape
    else:
        r.csr.add(name)
        r.only(g, where, {"indptr", "indices", "values", "delay"})
        claimed = r.attr(g, "shape", where, f"two whole numbers {shape}")
        if not (isinstance(claimed, np.ndarray) and claimed.dtype.kind in INT and claimed.shape == (2,)
                and tuple(int(s) for s in claimed) == shape):
            r.fail(f"{where}@shape", f"expected two whole numbers {shape} (pre.size, post.size), "
                                     f"got {describe(claimed)}")
        indptr = r.array(g, "indptr", where, INT, ((shape[0] + 1,),)).astype(np.int64)
        if indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            r.fail(f"{where}/indptr", f"expected {shape[0] + 1} non-decreasing offsets starting at 0")
        nnz = int(indptr[-1])
        indices = r.array(g, "indices", where, INT, ((nnz,),)).astype(np.int64)
        values = r.array(g, "values", where, REAL, ((nnz,),)).astype(np.float64, copy=False)
        weights = CSR(indptr, indices, values, shape)
        per_synapse = (nnz,)
    delay = r.array(g, "delay", where, INT, ((), per_synapse))
    delay = delay.astype(np.int64) if delay.ndim else np.int64(delay)
    r.current = where
    return Projection(name, pre, post, weights, delay)


# ------------------------------------------------------------------------------ result reader
def _read_result(r: NativeReader, f: h5py.File) -> SimulationResult:
    r.header(f, RESULT_FORMAT)
    backend = r.attr_str(f, "backend", "")
    dtype = r.attr_str(f, "dtype", "")
    dt = r.attr_real(f, "dt", "")
    if not (math.isfinite(dt) and dt > 0):
        r.fail("@dt", f"expected a finite time step > 0 in seconds, got {dt!r}")
    steps = r.attr_int(f, "steps", "", 1, MAX_STEPS)
    batch = r.attr_int(f, "batch", "", 1, MAX_SIZE)
    seed = r.attr_int(f, "seed", "", -2**63, 2**63 - 1)
    try:
        meta = json.loads(r.attr_str(f, "meta", ""))
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        r.fail("@meta", "expected a JSON object")
    groups = {key: r.member(f, key, "", h5py.Group, "a group") for key in ("timings", "spikes", "traces")}
    r.only(f, "", set(groups))
    r.only(groups["timings"], "timings", set())
    timings = {key: r.attr_real(groups["timings"], key, "timings") for key in groups["timings"].attrs}
    spikes = {name: _read_spikes(r, name, g, steps, batch) for name, g in r.ordered(groups["spikes"], "spikes")}
    traces: dict[str, dict[str, np.ndarray]] = {}
    for pop, g in r.ordered(groups["traces"], "traces"):
        where = f"traces/{pop}"
        size = spikes[pop].size if pop in spikes else None
        traces[pop] = {}
        for var, _ in r.ordered(g, where, h5py.Dataset):
            data = r.array(g, var, where, FLOAT, 3)
            if data.shape[:2] != (steps, batch) or (size is not None and data.shape[2] != size):
                r.fail(f"{where}/{var}", f"expected shape ({steps}, {batch}, {size if size else 'size'}) "
                                         f"(steps, batch, size), got {data.shape}")
            traces[pop][var] = data
    pops = meta.get("populations")
    if pops is not None and not (isinstance(pops, list) and all(isinstance(p, str) and p in spikes for p in pops)):
        r.fail("@meta", f"expected 'populations' to list names of spike groups {list(spikes)}, got {pops!r}")
    return SimulationResult(spikes=spikes, traces=traces, timings=timings, backend=backend, dtype=dtype,
                            dt=dt, steps=steps, batch=batch, seed=seed, meta=meta)


def _read_spikes(r: NativeReader, name: str, g: h5py.Group, steps: int, batch: int) -> SpikeTrains:
    where = f"spikes/{name}"
    size = r.attr_int(g, "size", where, 1, MAX_SIZE)
    r.only(g, where, {"step", "batch", "index"})
    step = r.array(g, "step", where, INT, 1).astype(np.int64)
    n = (len(step),)
    trial = r.array(g, "batch", where, INT, (n,))
    index = r.array(g, "index", where, INT, (n,))
    for label, arr, hi in (("step", step, steps), ("batch", trial, batch), ("index", index, size)):
        if arr.size and (arr.min() < 0 or arr.max() >= hi):
            r.fail(f"{where}/{label}", f"expected values in [0, {hi}), got [{arr.min()}, {arr.max()}]")
    trial, index = trial.astype(np.int32), index.astype(np.int32)
    if len(step) > 1:
        ds, db, di = np.diff(step), np.diff(trial.astype(np.int64)), np.diff(index.astype(np.int64))
        if not np.all((ds > 0) | ((ds == 0) & ((db > 0) | ((db == 0) & (di > 0))))):
            r.fail(f"{where}/step", "expected events sorted by (step, batch, index) without repeats")
    return SpikeTrains(step, trial, index, size, steps, batch)
