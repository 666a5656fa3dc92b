"""NIR HDF5 files read through the hardened reading layer :mod:`neurosim.h5read`: the
``/node`` group as nested dicts, then NIR nodes (our ``neurosim.ALIF`` included)."""
from __future__ import annotations

from typing import Any

import h5py
import nir
import numpy as np

from neurosim.errors import ExportError, FileFormatError
from neurosim.h5read import Budget, FileKind, H5Reader, plain_dtype

from .common import ALIF_TYPE, SUPPORTED_NAMES, ALIFNode, as_text


NIR_FILE = FileKind(expected="a NIR HDF5 file", unopened="not an HDF5 file, so not a NIR file ({exc})",
                    intact="an intact NIR file", heap_first=True)  # NIR keeps its strings in the global heap
MAX_DEPTH = 32  # graphs nest sub-graphs; deeper is not a NIR file


def read_graph(path: str, memory_budget: Budget = None) -> "nir.NIRGraph":
    """The NIR graph of HDF5 file `path` (what ``nir.read`` gives), every object checked before it
    is read, the data within `memory_budget` bytes (:func:`neurosim.h5read.memory_budget`)."""
    reader = H5Reader(path, memory_budget)
    reader.current = "node"
    data = reader.read(NIR_FILE, lambda f: _graph_dict(reader, f))
    return _node_from_dict(data, "node", reader.path)


def _graph_dict(r: H5Reader, f: h5py.File) -> dict[str, Any]:
    node = r.follow(f, "node", "node", "a group")
    if not isinstance(node, h5py.Group):
        r.fail("node", "no /node group: not a NIR file")
    return _h5_dict(r, node, "node")


def _h5_dict(r: H5Reader, group: h5py.Group, where: str, depth: int = 0) -> dict[str, Any]:
    """`group` as nested dicts (what nir.serialization.hdf2dict gives), reading nothing before
    it is checked: members are groups or datasets stored in this file (no soft or external
    links), datasets hold numbers, booleans or strings, and the file stores the data they claim."""
    if depth > MAX_DEPTH:
        r.fail(where, f"groups nested deeper than {MAX_DEPTH} levels")
    out: dict[str, Any] = {}
    for key in group.keys():
        name = f"{where}/{key}"
        item = r.follow(group, key, name)
        if isinstance(item, h5py.Group):
            out[key] = _h5_dict(r, item, name, depth + 1)
            continue
        if not isinstance(item, h5py.Dataset):
            r.fail(name, f"expected a group or a dataset, found {type(item).__name__}")
        if not plain_dtype(item.dtype, "biuf", text=True):
            r.fail(name, f"expected numbers or strings, got HDF5 data of dtype {item.dtype}")
        value = r.data(item, name)
        out[key] = value.decode("utf8", "replace") if isinstance(value, bytes) else value
    return out


_NIR_TYPES = ("Input", "Output", "Affine", "Linear", "Scale", "Delay", "LIF", "CubaLIF", "IF", "LI",
              "CubaLI", "I", "NIRGraph", "Conv1d", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d", "Threshold")


def _node_from_dict(d: Any, where: str, path: str) -> Any:
    if not isinstance(d, dict) or "type" not in d:
        raise FileFormatError(path, f"{where}/type", "missing node type")
    kind = d["type"]
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    try:
        if kind == "NIRGraph":
            if not isinstance(d.get("nodes"), dict) or "edges" not in d:
                raise FileFormatError(path, where, "a NIRGraph needs 'nodes' and 'edges'")
            nodes = {k: _node_from_dict(v, f"{where}/nodes/{k}", path) for k, v in d["nodes"].items()}
            edges = [(as_text(a), as_text(b)) for a, b in np.asarray(d["edges"]).reshape(-1, 2)]
            return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(d.get("metadata", {})), type_check=False)
        if kind == ALIF_TYPE:
            return ALIFNode.from_dict(d)
        if kind in _NIR_TYPES:
            kw = {k: v for k, v in d.items() if k not in ("input_type", "output_type")}
            return nir.dict2NIRNode(kw)
    except (FileFormatError, ExportError):
        raise
    except (AssertionError, TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError) as exc:
        # nir's node constructors assume arrays where a file may hold text or anything else
        raise FileFormatError(path, where, f"cannot read a NIR {kind} node: {exc!r}") from None
    raise ExportError("nir", where.replace("/", ".").removeprefix("node."),
                      f"unsupported node type {kind!r} (neurosim reads {', '.join(SUPPORTED_NAMES)}) "
                      f"[file {path}]")
