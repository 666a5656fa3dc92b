"""Native HDF5 files for a :class:`Network` and a :class:`SimulationResult` (schema version 1).

Network file (root attrs ``format = "neurosim.network"``, ``schema_version = 1``,
``neurosim_version``, ``dt`` in seconds, ``name``)::

    /populations/<name>/   attrs model ('lif' | 'alif' | 'if' | 'li'), reset (models that have
                           one), size, order; float64 datasets (size,): one per model parameter
                           (``model.param_names()``, scalars broadcast) and v0, i0, a0
    /inputs/<name>/        attrs kind ('spikes' | 'poisson'), size, order; poisson: rate (size,) Hz
    /projections/<name>/   attrs pre, post, format ('dense' | 'csr'), order;
                           dense: weights (n_pre, n_post) float64;
                           csr: indptr (n_pre + 1,), indices (nnz,) int64, values (nnz,) float64,
                           attr shape (n_pre, n_post);
                           delay: int64, scalar or per synapse ((n_pre, n_post) dense, (nnz,) csr)

Result file (root attrs ``format = "neurosim.result"``, schema_version, neurosim_version,
backend, dtype, dt, steps, batch, seed, ``meta`` as a JSON object)::

    /timings               attrs name -> seconds
    /spikes/<name>/        attrs size, order; datasets step (int64), batch (int32), index (int32)
    /traces/<pop>/<var>    float array (steps, batch, size); attr order on groups and datasets

HDF5 sorts names, so the ``order`` attrs keep the user's order. Writes are atomic (temporary
file in the same directory, then ``os.replace``). Readers check every attribute, dtype and shape
before reading data and raise :class:`FileFormatError` naming the file and the field, an HDF5
path with attributes written ``group@attr`` (``@dt`` for a root attribute).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import fields
from typing import Any, Callable, NoReturn, Optional, Union

import h5py
import numpy as np
from h5py import h5t

from .atomic import atomic_path
from .errors import FileFormatError, NetworkError
from .models import MODELS, model_from_params
from .network import CSR, Network, PoissonInput, Population, Projection, SpikeInput
from .paths import file_problem
from .result import SimulationResult, SpikeTrains

PathLike = Union[str, "os.PathLike[str]"]

SCHEMA_VERSION = 1
NETWORK_FORMAT = "neurosim.network"
RESULT_FORMAT = "neurosim.result"
MAX_SIZE = 2**31 - 1  # neurons per population or channels per input: spike indices are int32
MAX_STEPS = 2**62
_MAX_RATIO = 1100  # deflate cannot compress beyond about 1032:1; a larger claim is not data
_REAL, _INT, _FLOAT = "iuf", "iu", "f"
_TYPE_CLASSES = {h5t.INTEGER: "integer", h5t.FLOAT: "float", h5t.STRING: "string", h5t.COMPOUND: "compound",
                 h5t.ENUM: "enum", h5t.VLEN: "variable-length sequence", h5t.ARRAY: "array",
                 h5t.OPAQUE: "opaque", h5t.REFERENCE: "reference", h5t.BITFIELD: "bitfield"}


# ----------------------------------------------------------------------------------- public API
def save(network: Network, path: PathLike) -> None:
    """Write `network` to the HDF5 file `path` atomically (an existing file is replaced whole)."""
    if not isinstance(network, Network):
        raise NetworkError("network", f"expected a neurosim.Network, got {type(network).__name__}")
    if not isinstance(network.name, str):
        raise NetworkError("name", f"expected a string, got {type(network.name).__name__}")
    _atomic_write(path, lambda f: _write_network(f, network))


def load(path: PathLike) -> Network:
    """Read a network written by :func:`save`; any defect raises :class:`FileFormatError`."""
    return _read(path, _read_network)


def save_result(result: SimulationResult, path: PathLike) -> None:
    """Write `result` to the HDF5 file `path` atomically."""
    if not isinstance(result, SimulationResult):
        raise TypeError(f"result: expected a neurosim.SimulationResult, got {type(result).__name__}")
    _atomic_write(path, lambda f: _write_result(f, result))


def load_result(path: PathLike) -> SimulationResult:
    """Read a result written by :func:`save_result`; any defect raises :class:`FileFormatError`."""
    return _read(path, _read_result)


# -------------------------------------------------------------------------------------- writing
def _atomic_write(path: PathLike, write: Callable[[h5py.File], None]) -> None:
    """Run `write` on a temporary HDF5 file beside `path`, then move it over `path` in one step."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            write(f)


def _set_text(obj: Any, key: str, value: str) -> None:
    """A fixed-length UTF-8 string attribute: unlike variable-length strings it is stored in the
    object header, not the global heap, whose corruption can hang the HDF5 library on reading."""
    data = value.encode("utf-8")
    if b"\0" in data:
        obj.attrs[key] = value
        return
    obj.attrs.create(key, np.bytes_(data), dtype=h5py.string_dtype("utf-8", max(1, len(data))))


def _write_header(f: h5py.File, fmt: str) -> None:
    from . import __version__

    _set_text(f, "format", fmt)
    f.attrs["schema_version"] = SCHEMA_VERSION
    _set_text(f, "neurosim_version", __version__)


def _write_network(f: h5py.File, net: Network) -> None:
    _write_header(f, NETWORK_FORMAT)
    f.attrs["dt"] = float(net.dt)
    _set_text(f, "name", net.name)
    group = f.create_group("populations")
    for k, pop in enumerate(net.populations):
        _write_population(group, pop, k)
    group = f.create_group("inputs")
    for k, src in enumerate(net.inputs):
        _write_input(group, src, k)
    group = f.create_group("projections")
    for k, proj in enumerate(net.projections):
        _write_projection(group, proj, k)


def _write_population(parent: h5py.Group, pop: Population, order: int) -> None:
    g = parent.create_group(pop.name)
    _set_text(g, "model", type(pop.model).kind)
    if hasattr(pop.model, "reset"):
        _set_text(g, "reset", pop.model.reset)
    g.attrs["size"] = pop.size
    g.attrs["order"] = order
    for name, values in pop.model.per_neuron(pop.size, f"populations.{pop.name}.model").items():
        g.create_dataset(name, data=values)
    for name in ("v0", "i0", "a0"):
        g.create_dataset(name, data=np.asarray(getattr(pop, name), dtype=np.float64))


def _write_input(parent: h5py.Group, src: Union[SpikeInput, PoissonInput], order: int) -> None:
    g = parent.create_group(src.name)
    _set_text(g, "kind", "poisson" if isinstance(src, PoissonInput) else "spikes")
    g.attrs["size"] = src.size
    g.attrs["order"] = order
    if isinstance(src, PoissonInput):
        g.create_dataset("rate", data=np.asarray(src.rate, dtype=np.float64))


def _write_projection(parent: h5py.Group, proj: Projection, order: int) -> None:
    g = parent.create_group(proj.name)
    _set_text(g, "pre", proj.pre)
    _set_text(g, "post", proj.post)
    g.attrs["order"] = order
    w = proj.weights
    if isinstance(w, CSR):
        _set_text(g, "format", "csr")
        g.attrs["shape"] = np.asarray(w.shape, dtype=np.int64)
        g.create_dataset("indptr", data=np.asarray(w.indptr, dtype=np.int64))
        g.create_dataset("indices", data=np.asarray(w.indices, dtype=np.int64))
        g.create_dataset("values", data=np.asarray(w.values, dtype=np.float64))
    else:
        _set_text(g, "format", "dense")
        g.create_dataset("weights", data=np.asarray(w, dtype=np.float64))
    g.create_dataset("delay", data=np.asarray(proj.delay, dtype=np.int64))


def _write_result(f: h5py.File, res: SimulationResult) -> None:
    _write_header(f, RESULT_FORMAT)
    _set_text(f, "backend", str(res.backend))
    _set_text(f, "dtype", str(res.dtype))
    f.attrs["dt"] = float(res.dt)
    f.attrs["steps"] = int(res.steps)
    f.attrs["batch"] = int(res.batch)
    f.attrs["seed"] = int(res.seed)
    _set_text(f, "meta", json.dumps(res.meta, default=_json_default))
    timings = f.create_group("timings", track_order=True)
    for key, value in res.timings.items():
        timings.attrs[str(key)] = float(value)
    group = f.create_group("spikes")
    for k, (name, trains) in enumerate(res.spikes.items()):
        if (trains.n_steps, trains.n_batch) != (res.steps, res.batch):
            raise ValueError(f"spikes.{name}: expected n_steps, n_batch = {res.steps}, {res.batch} "
                             f"(the result's), got {trains.n_steps}, {trains.n_batch}")
        g = group.create_group(name)
        g.attrs["size"] = int(trains.size)
        g.attrs["order"] = k
        g.create_dataset("step", data=_ints(trains.step, np.int64, f"spikes.{name}.step"))
        g.create_dataset("batch", data=_ints(trains.batch, np.int32, f"spikes.{name}.batch"))
        g.create_dataset("index", data=_ints(trains.index, np.int32, f"spikes.{name}.index"))
    group = f.create_group("traces")
    for k, (pop, variables) in enumerate(res.traces.items()):
        g = group.create_group(pop)
        g.attrs["order"] = k
        for j, (var, values) in enumerate(variables.items()):
            d = g.create_dataset(var, data=np.asarray(values))
            d.attrs["order"] = j


def _ints(a: Any, dtype: type, where: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or arr.dtype.kind not in _INT:
        raise ValueError(f"{where}: expected a 1-D integer array, got {arr.dtype} shape {arr.shape}")
    info = np.iinfo(dtype)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise ValueError(f"{where}: values do not fit in {np.dtype(dtype).name}")
    return arr.astype(dtype)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"meta: expected JSON-serialisable values, got {type(obj).__name__}")


# -------------------------------------------------------------------------------------- reading
def _read(path: PathLike, body: Callable[["_Reader", h5py.File], Any]) -> Any:
    name = os.fsdecode(os.fspath(path))
    problem = file_problem(name)
    if problem:
        raise FileFormatError(name, "", f"{problem}; expected an HDF5 file written by neurosim")
    try:
        f = h5py.File(name, "r")
    except OSError as exc:
        raise FileFormatError(name, "", f"cannot be opened as HDF5 ({exc}); expected an intact "
                                        "HDF5 file written by neurosim") from None
    reader = _Reader(name)
    with f:
        try:
            return body(reader, f)
        except FileFormatError:
            raise
        except NetworkError as exc:
            message = str(exc)[len(exc.field) + 2:]
            raise FileFormatError(name, reader.h5_field(exc.field), message) from None
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, OverflowError) as exc:
            raise FileFormatError(name, reader.current, f"cannot be read ({type(exc).__name__}: {exc}); "
                                                       "expected an intact file written by neurosim") from None


class _Reader:
    """Type-checked access to one open file; `current` is the field being read."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.current = ""
        self.names: dict[str, list[str]] = {"populations": [], "inputs": [], "projections": []}
        self.csr: set[str] = set()
        self.heap_checked = False  # global_heap_problem ran (before the first variable-length string)

    def fail(self, field: str, message: str) -> NoReturn:
        raise FileFormatError(self.path, field, message)

    # ---------------------------------------------------------------- attributes
    def attr(self, obj: Any, key: str, where: str, expected: str, text: bool = False) -> Any:
        """Attribute `key` of `obj`; its HDF5 type class and size are checked before it is read
        (decoding some corrupt types crashes HDF5, so only strings and plain numbers are read)."""
        field = f"{where}@{key}"
        self.current = field
        if key not in obj.attrs:
            self.fail(field, f"missing attribute; expected {expected}")
        aid = obj.attrs.get_id(key)
        cls = aid.get_type().get_class()
        wanted = (h5t.STRING,) if text else (h5t.INTEGER, h5t.FLOAT)
        if cls not in wanted:
            self.fail(field, f"expected {expected}, got an attribute of HDF5 type class "
                             f"{_TYPE_CLASSES.get(cls, cls)}")
        if aid.shape is None or len(aid.shape) > 1 or math.prod(aid.shape) > 16:
            self.fail(field, f"expected {expected}, got an attribute of shape {aid.shape}")
        if text and aid.get_type().is_variable_str() and not self.heap_checked:
            problem = global_heap_problem(self.path)
            if problem:
                self.fail(field, problem)
            self.heap_checked = True
        return obj.attrs[key]

    def attr_str(self, obj: Any, key: str, where: str, choices: Optional[tuple[str, ...]] = None,
                 expected: str = "") -> str:
        expected = expected or (f"one of {list(choices)}" if choices else "a string")
        value = self.attr(obj, key, where, expected, text=True)
        if isinstance(value, (bytes, np.bytes_)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                self.fail(f"{where}@{key}", "expected a UTF-8 string")
        if not isinstance(value, str):
            self.fail(f"{where}@{key}", f"expected {expected}, got {_describe(value)}")
        if choices and value not in choices:
            self.fail(f"{where}@{key}", f"expected {expected}, got {value!r}")
        return value

    def attr_int(self, obj: Any, key: str, where: str, lo: int, hi: int) -> int:
        value = self.attr(obj, key, where, f"a whole number in [{lo}, {hi}]")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            self.fail(f"{where}@{key}", f"expected a whole number in [{lo}, {hi}], got {_describe(value)}")
        if not lo <= int(value) <= hi:
            self.fail(f"{where}@{key}", f"expected a whole number in [{lo}, {hi}], got {int(value)}")
        return int(value)

    def attr_real(self, obj: Any, key: str, where: str) -> float:
        value = self.attr(obj, key, where, "a real number")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            self.fail(f"{where}@{key}", f"expected a real number, got {_describe(value)}")
        return float(value)

    # ------------------------------------------------------------ groups and datasets
    def member(self, parent: Any, name: str, where: str, kind: type, what: str) -> Any:
        """Hard-linked member `name` of `parent`, which must be a `kind` (group or dataset)."""
        field = f"{where}/{name}" if where else name
        self.current = field
        link = parent.get(name, getlink=True)
        if link is None:
            self.fail(field, f"missing; expected {what}")
        if not isinstance(link, h5py.HardLink):
            self.fail(field, f"expected {what} stored in this file, found {type(link).__name__}")
        obj = parent[name]
        if not isinstance(obj, kind):
            self.fail(field, f"expected {what}, found {type(obj).__name__}")
        return obj

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
        for name in group.keys():
            if name not in allowed:
                self.fail(f"{where}/{name}" if where else name,
                          f"unexpected member; expected only {sorted(allowed) or 'attributes'}")

    def array(self, group: h5py.Group, name: str, where: str, kinds: str,
              shapes: Union[tuple[tuple[int, ...], ...], int]) -> np.ndarray:
        """Dataset `name` after checking its dtype (kinds), shape (one of `shapes`, or any shape of
        that many dimensions) and that the file really stores that much data."""
        field = f"{where}/{name}"
        label = {_REAL: "real numbers", _INT: "integers", _FLOAT: "floating-point numbers"}[kinds]
        if isinstance(shapes, int):
            form = f"a {shapes}-D array"
        else:
            form = " or ".join("a scalar" if s == () else f"shape {s}" for s in shapes)
        d = self.member(group, name, where, h5py.Dataset, f"a dataset of {label} ({form})")
        ok = d.shape is not None and (len(d.shape) == shapes if isinstance(shapes, int) else d.shape in shapes)
        if d.dtype.kind not in kinds or d.dtype.names is not None:
            self.fail(field, f"expected {label} ({form}), got dtype {d.dtype}")
        if not ok:
            self.fail(field, f"expected {form} of {label}, got shape {d.shape}")
        self._check_storage(d, field)
        data = np.asarray(d[()])
        if kinds == _INT and data.dtype.kind == "u" and data.size and data.max() > np.iinfo(np.int64).max:
            self.fail(field, "expected integers that fit in int64")
        return data

    def _check_storage(self, d: h5py.Dataset, field: str) -> None:
        problem = storage_problem(d)
        if problem:
            self.fail(field, problem)

    def header(self, f: h5py.File, fmt: str) -> None:
        found = self.attr_str(f, "format", "", expected=repr(fmt))
        if found != fmt:
            other = {NETWORK_FORMAT: "neurosim.load", RESULT_FORMAT: "neurosim.load_result"}.get(found)
            self.fail("@format", f"expected {fmt!r}, got {found!r}" + (f" (read it with {other})" if other else ""))
        version = self.attr(f, "schema_version", "", f"the integer {SCHEMA_VERSION}")
        if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
            self.fail("@schema_version", f"expected the integer {SCHEMA_VERSION}, got {_describe(version)}")
        if int(version) > SCHEMA_VERSION:
            self.fail("@schema_version", f"written by a newer neurosim (schema_version {int(version)}); "
                                         f"this version reads schema_version {SCHEMA_VERSION}")
        if int(version) != SCHEMA_VERSION:
            self.fail("@schema_version", f"expected {SCHEMA_VERSION}, got {int(version)}")
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
                 "pre": "@pre", "post": "@post", "weights": "@shape" if csr else "/weights"}
        if sub in fixed:
            return fixed[sub]
        for prefix in ("model.", "weights."):
            if sub.startswith(prefix):
                return "/" + sub[len(prefix):]
        return "/" + sub


def attr_text(path: str, obj: Any, key: str, choices: Optional[tuple[str, ...]] = None) -> str:
    """Text attribute `key` of the open HDF5 object `obj` of file `path`, type-checked before it
    is read (a string, not an array, compound or other type; UTF-8; one of `choices`)."""
    return _Reader(path).attr_str(obj, key, "", choices)


def storage_problem(d: h5py.Dataset) -> Optional[str]:
    """Why reading dataset `d` must not be tried, or None: data kept outside this file, or a
    size the file cannot hold (checked before anything is allocated)."""
    need = math.prod(d.shape or ()) * d.dtype.itemsize
    if d.shape is None or need == 0:
        return None
    if d.is_virtual:
        return "expected data stored in this file, found a virtual dataset"
    plist = d.id.get_create_plist()
    if plist.get_external_count():
        return "expected data stored in this file, found external raw storage"
    have = d.id.get_storage_size()
    limit = have if plist.get_nfilters() == 0 else have * _MAX_RATIO
    if need > limit:
        return (f"claims shape {d.shape} ({need} bytes) but the file stores only {have} bytes of it; "
                "expected the data itself")
    return None


def global_heap_problem(path: str) -> Optional[str]:
    """Why the file's global heap collections (where HDF5 keeps variable-length strings) must
    not be read, or None. HDF5 1.14 walks a collection's objects by their sizes and loops
    forever on a corrupt one (e.g. a free-space object of size 0), so before anything of
    variable length is read every collection is walked here first: its objects must add up
    exactly to its size. (A collection: 'GCOL', version 1, its size >= 4096 bytes as a
    little-endian 8-byte length; objects: index u16, references u16, 4 reserved bytes, size
    u64, data padded to 8 bytes; index 0 is the free space, whose size covers its header.)"""
    import mmap

    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            at = m.find(b"GCOL")
            while at >= 0:
                size = int.from_bytes(m[at + 8:at + 16], "little") if at + 16 <= len(m) else 0
                if m[at + 4:at + 5] == b"\x01" and 4096 <= size <= len(m) - at:
                    p = 16
                    while size - p >= 16:
                        index = int.from_bytes(m[at + p:at + p + 2], "little")
                        length = int.from_bytes(m[at + p + 8:at + p + 16], "little")
                        need = 16 + (length + 7) // 8 * 8 if index else length
                        if need == 0 or need > size - p:
                            return (f"global heap collection at byte {at} is corrupt (object at byte {at + p} "
                                    f"of size {length}); expected an intact HDF5 file")
                        p += need
                at = m.find(b"GCOL", at + 4)
    return None


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        shown = f" {value.tolist()}" if value.size <= 8 and value.dtype.kind in "biuf" else ""
        return f"an array{shown} of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:120]


# ----------------------------------------------------------------------------- network reader
def _read_network(r: _Reader, f: h5py.File) -> Network:
    r.header(f, NETWORK_FORMAT)
    dt = r.attr_real(f, "dt", "")
    name = r.attr_str(f, "name", "")
    groups = {key: r.member(f, key, "", h5py.Group, "a group") for key in ("populations", "inputs", "projections")}
    r.only(f, "", set(groups))
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


def _read_population(r: _Reader, name: str, g: h5py.Group) -> Population:
    where = f"populations/{name}"
    r.names["populations"].append(name)
    kind = r.attr_str(g, "model", where, tuple(MODELS))
    size = r.attr_int(g, "size", where, 1, MAX_SIZE)
    cls = MODELS[kind]
    params = cls().param_names()
    init = ("v0", "i0", "a0")
    r.only(g, where, {*params, *init})
    values = {p: r.array(g, p, where, _REAL, ((size,),)).astype(np.float64, copy=False) for p in params}
    has_reset = any(fl.name == "reset" for fl in fields(cls))
    reset = r.attr_str(g, "reset", where, ("subtract", "zero")) if has_reset else "subtract"
    state = {k: r.array(g, k, where, _REAL, ((size,),)).astype(np.float64, copy=False) for k in init}
    r.current = where
    model = model_from_params(kind, values, reset, where=f"populations.{name}.model")
    return Population(name, size, model, **state)


def _read_input(r: _Reader, name: str, g: h5py.Group) -> Union[SpikeInput, PoissonInput]:
    where = f"inputs/{name}"
    r.names["inputs"].append(name)
    kind = r.attr_str(g, "kind", where, ("spikes", "poisson"))
    size = r.attr_int(g, "size", where, 1, MAX_SIZE)
    if kind == "spikes":
        r.only(g, where, set())
        r.current = where
        return SpikeInput(name, size)
    r.only(g, where, {"rate"})
    rate = r.array(g, "rate", where, _REAL, ((size,),)).astype(np.float64, copy=False)
    r.current = where
    return PoissonInput(name, size, rate)


def _read_projection(r: _Reader, name: str, g: h5py.Group, nodes: dict[str, int],
                     pops: dict[str, int]) -> Projection:
    where = f"projections/{name}"
    r.names["projections"].append(name)
    pre = r.attr_str(g, "pre", where)
    post = r.attr_str(g, "post", where)
    if pre not in nodes:
        r.fail(f"{where}@pre", f"expected the name of a population or input (have {sorted(nodes)}), got {pre!r}")
    if post not in pops:
        r.fail(f"{where}@post", f"expected the name of a population (have {sorted(pops)}), got {post!r}")
    shape = (nodes[pre], pops[post])
    fmt = r.attr_str(g, "format", where, ("dense", "csr"))
    weights: Union[np.ndarray, CSR]
    if fmt == "dense":
        r.only(g, where, {"weights", "delay"})
        weights = r.array(g, "weights", where, _REAL, (shape,)).astype(np.float64, copy=False)
        per_synapse = shape
    else:
        r.csr.add(name)
        r.only(g, where, {"indptr", "indices", "values", "delay"})
        claimed = r.attr(g, "shape", where, f"two whole numbers {shape}")
        if not (isinstance(claimed, np.ndarray) and claimed.dtype.kind in _INT and claimed.shape == (2,)
                and tuple(int(s) for s in claimed) == shape):
            r.fail(f"{where}@shape", f"expected two whole numbers {shape} (pre.size, post.size), "
                                     f"got {_describe(claimed)}")
        indptr = r.array(g, "indptr", where, _INT, ((shape[0] + 1,),)).astype(np.int64)
        if indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            r.fail(f"{where}/indptr", f"expected {shape[0] + 1} non-decreasing offsets starting at 0")
        nnz = int(indptr[-1])
        indices = r.array(g, "indices", where, _INT, ((nnz,),)).astype(np.int64)
        values = r.array(g, "values", where, _REAL, ((nnz,),)).astype(np.float64, copy=False)
        weights = CSR(indptr, indices, values, shape)
        per_synapse = (nnz,)
    delay = r.array(g, "delay", where, _INT, ((), per_synapse))
    delay = delay.astype(np.int64) if delay.ndim else np.int64(delay)
    r.current = where
    return Projection(name, pre, post, weights, delay)


# ------------------------------------------------------------------------------ result reader
def _read_result(r: _Reader, f: h5py.File) -> SimulationResult:
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
            data = r.array(g, var, where, _FLOAT, 3)
            if data.shape[:2] != (steps, batch) or (size is not None and data.shape[2] != size):
                r.fail(f"{where}/{var}", f"expected shape ({steps}, {batch}, {size if size else 'size'}) "
                                         f"(steps, batch, size), got {data.shape}")
            traces[pop][var] = data
    pops = meta.get("populations")
    if pops is not None and not (isinstance(pops, list) and all(isinstance(p, str) and p in spikes for p in pops)):
        r.fail("@meta", f"expected 'populations' to list names of spike groups {list(spikes)}, got {pops!r}")
    return SimulationResult(spikes=spikes, traces=traces, timings=timings, backend=backend, dtype=dtype,
                            dt=dt, steps=steps, batch=batch, seed=seed, meta=meta)


def _read_spikes(r: _Reader, name: str, g: h5py.Group, steps: int, batch: int) -> SpikeTrains:
    where = f"spikes/{name}"
    size = r.attr_int(g, "size", where, 1, MAX_SIZE)
    r.only(g, where, {"step", "batch", "index"})
    step = r.array(g, "step", where, _INT, 1).astype(np.int64)
    n = (len(step),)
    trial = r.array(g, "batch", where, _INT, (n,))
    index = r.array(g, "index", where, _INT, (n,))
    for label, arr, hi in (("step", step, steps), ("batch", trial, batch), ("index", index, size)):
        if arr.size and (arr.min() < 0 or arr.max() >= hi):
            r.fail(f"{where}/{label}", f"expected values in [0, {hi}), got [{arr.min()}, {arr.max()}]")
    trial, index = trial.astype(np.int32), index.astype(np.int32)
    if len(step) > 1:
        ds, db, di = np.diff(step), np.diff(trial.astype(np.int64)), np.diff(index.astype(np.int64))
        if not np.all((ds > 0) | ((ds == 0) & ((db > 0) | ((db == 0) & (di > 0))))):
            r.fail(f"{where}/step", "expected events sorted by (step, batch, index) without repeats")
    return SpikeTrains(step, trial, index, size, steps, batch)
