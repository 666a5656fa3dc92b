"""Native HDF5 files of a :class:`Network` and a :class:`SimulationResult`: the public API
(:func:`save`, :func:`load`, :func:`save_result`, :func:`load_result`) and the writer.

The schema (version 1) is described in :mod:`neurosim.native_format`; files are read by
:mod:`neurosim.native_read` through the hardened reading layer :mod:`neurosim.h5read`, whose
checks (:func:`attr_text`, :func:`storage_problem`, :func:`global_heap_problem`) are exported
here too. Writes are atomic (built in memory, written to a temporary file in the same directory, then
``os.replace``).
"""
from __future__ import annotations

import json
from typing import Any, Callable, Optional, Union

import h5py
import numpy as np

from .atomic import write_h5
from .errors import NetworkError
from .h5read import INT, PathLike, attr_text, global_heap_problem, storage_problem
from .native_format import MAX_SIZE, MAX_STEPS, NETWORK_FORMAT, RESULT_FORMAT, SCHEMA_VERSION
from .native_read import read_network, read_result
from .native_shapes import compact, write_array, write_shape, write_shaped
from .conv import ShapedProjection
from .network import CSR, AnyProjection, Network, PoissonInput, Population, SpikeInput
from .result import SimulationResult
from .traces import format_neurons

__all__ = ["save", "load", "save_result", "load_result", "attr_text", "storage_problem", "global_heap_problem",
           "SCHEMA_VERSION", "NETWORK_FORMAT", "RESULT_FORMAT", "MAX_SIZE", "MAX_STEPS"]


# ----------------------------------------------------------------------------------- public API
def save(network: Network, path: PathLike) -> None:
    """Write `network` to the HDF5 file `path` atomically (an existing file is replaced whole)."""
    if not isinstance(network, Network):
        raise NetworkError("network", f"expected a neurosim.Network, got {type(network).__name__}")
    if not isinstance(network.name, str):
        raise NetworkError("name", f"expected a string, got {type(network.name).__name__}")
    _atomic_write(path, lambda f: _write_network(f, network))


def load(path: PathLike, *, memory_budget: Optional[Union[int, float, str]] = None) -> Network:
    """Read a network written by :func:`save`; any defect raises :class:`FileFormatError`, and so
    does a file whose declared sizes need more memory than `memory_budget` bytes (default: the
    ``NEUROSIM_MEMORY_BUDGET`` environment variable, else a quarter of the available memory; see
    :mod:`neurosim.h5read`)."""
    return read_network(path, memory_budget)


def save_result(result: SimulationResult, path: PathLike) -> None:
    """Write `result` to the HDF5 file `path` atomically."""
    if not isinstance(result, SimulationResult):
        raise TypeError(f"result: expected a neurosim.SimulationResult, got {type(result).__name__}")
    _atomic_write(path, lambda f: _write_result(f, result))


def load_result(path: PathLike, *, memory_budget: Optional[Union[int, float, str]] = None) -> SimulationResult:
    """Read a result written by :func:`save_result`; any defect raises :class:`FileFormatError`
    (memory budget as :func:`load`)."""
    return read_result(path, memory_budget)


# -------------------------------------------------------------------------------------- writing
def _atomic_write(path: PathLike, write: Callable[[h5py.File], None]) -> None:
    """Run `write` on an HDF5 file built in memory, then write it over `path` in one step
    (neurosim.atomic.write_h5: a full disk is an OSError naming `path`, never a crash)."""
    write_h5(path, write)


def _set_text(obj: Any, key: str, value: str) -> None:
    """A fixed-length UTF-8 string attribute: unlike variable-length strings it is stored in the
    object header, not the global heap, whose corruption can hang the HDF5 library on reading."""
    data = value.encode("utf-8")
    if b"\0" in data:
        obj.attrs[key] = value
        return
    obj.attrs.create(key, np.bytes_(data), dtype=h5py.string_dtype("utf-8", max(1, len(data))))


def _write_header(f: h5py.File, fmt: str) -> None:
    from .version import __version__

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
    if getattr(pop.model, "discretization", None):
        _set_text(g, "discretization", pop.model.discretization)
    g.attrs["size"] = pop.size
    g.attrs["order"] = order
    write_shape(g, pop.shape)
    for name, values in pop.model.per_neuron(pop.size, f"populations.{pop.name}.model").items():
        write_array(g, name, compact(values, pop.shape))
    for name in ("v0", "i0", "a0"):
        write_array(g, name, compact(getattr(pop, name), pop.shape))


def _write_input(parent: h5py.Group, src: Union[SpikeInput, PoissonInput], order: int) -> None:
    g = parent.create_group(src.name)
    _set_text(g, "kind", "poisson" if isinstance(src, PoissonInput) else "spikes")
    g.attrs["size"] = src.size
    g.attrs["order"] = order
    write_shape(g, src.shape)
    if isinstance(src, PoissonInput):
        write_array(g, "rate", compact(src.rate, src.shape))


def _write_projection(parent: h5py.Group, proj: AnyProjection, order: int) -> None:
    g = parent.create_group(proj.name)
    _set_text(g, "pre", proj.pre)
    _set_text(g, "post", proj.post)
    g.attrs["order"] = order
    if isinstance(proj, ShapedProjection):
        _set_text(g, "format", proj.kind)
        write_shaped(g, proj)
        return
    w = proj.weights
    if isinstance(w, CSR):
        _set_text(g, "format", "csr")
        g.attrs["shape"] = np.asarray(w.shape, dtype=np.int64)
        write_array(g, "indptr", np.asarray(w.indptr, dtype=np.int64))
        write_array(g, "indices", np.asarray(w.indices, dtype=np.int64))
        write_array(g, "values", np.asarray(w.values, dtype=np.float64))
    else:
        _set_text(g, "format", "dense")
        write_array(g, "weights", np.asarray(w, dtype=np.float64))
    write_array(g, "delay", np.asarray(proj.delay, dtype=np.int64))


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
        sel = res.trace_selection.get(pop)
        if sel is not None and not sel.full:  # neurosim.traces: which neurons, every k-th step
            _set_text(g, "neurons", format_neurons(sel.neurons))
            g.attrs["stride"] = int(sel.stride)
        for j, (var, values) in enumerate(variables.items()):
            d = g.create_dataset(var, data=np.asarray(values))
            d.attrs["order"] = j


def _ints(a: Any, dtype: type, where: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or arr.dtype.kind not in INT:
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
