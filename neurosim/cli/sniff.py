"""What kind of HDF5 file a path holds, from its root alone: a neurosim network or result (the
root attribute 'format'), a NIR graph (a /node group) or a lava-dl NetX file (a /layer group)."""
from __future__ import annotations

from .. import paths
from ..errors import FileFormatError
from ..h5read import attr_text

KINDS = {"neurosim.network": "a neurosim network file", "neurosim.result": "a neurosim result file",
         "nir": "a NIR graph (HDF5 with a /node group)", "netx": "a lava-dl NetX file (HDF5 with a /layer group)"}


def file_kind(path: str) -> str:
    """'neurosim.network', 'neurosim.result', 'nir', 'netx', or 'hdf5' for any other HDF5 file;
    FileFormatError naming `path` when it is missing, unreadable or not HDF5."""
    import h5py

    problem = paths.file_problem(path)
    if problem:
        raise FileFormatError(path, "", problem)
    try:
        with h5py.File(path, "r") as f:
            if "format" in f.attrs:
                try:  # the checked reader: a string attribute, one of the two formats
                    return attr_text(path, f, "format", ("neurosim.network", "neurosim.result"))
                except FileFormatError:
                    pass  # another tool's 'format': judged by its members below
            members = set(f.keys())
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise FileFormatError(path, "", f"not a readable HDF5 file ({' '.join(str(exc).split())})") from None
    if "node" in members:
        return "nir"
    if "layer" in members:
        return "netx"
    return "hdf5"


def describe_foreign(path: str, kind: str) -> str:
    """Lines describing a NIR graph (its nodes, types, output shapes and edges, read by the checked
    reader of mapping.nir_graph) or a NetX file (its layers' types and shapes)."""
    if kind == "nir":
        from mapping.nir_graph.nir_file import read_graph

        graph = read_graph(path)
        lines = [f"{path}: NIR graph, {len(graph.nodes)} nodes, {len(graph.edges)} edges "
                 "(import it with 'neurosim import FILE --from nir --dt SECONDS --out MODEL.h5')"]
        for name, node in graph.nodes.items():
            out = getattr(node, "output_type", None) or {}
            shape = next(iter(out.values()), None) if isinstance(out, dict) else None
            shape_text = "" if shape is None else f"  output shape {tuple(int(s) for s in shape)}"
            lines.append(f"  node {name:<16} {type(node).__name__}{shape_text}")
        lines += [f"  edge {a} -> {b}" for a, b in graph.edges]
        return "\n".join(lines)
    import h5py
    import numpy as np

    lines = []
    with h5py.File(path, "r") as f:
        layers = f["layer"]
        if not isinstance(layers, h5py.Group):
            raise FileFormatError(path, "/layer", "expected a group of layers")
        keys = sorted(layers.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
        for key in keys:
            g = layers[key]
            kind_of, shape = g.get("type"), g.get("shape")  # small datasets only: nothing large is read
            kind_text = "?"
            if isinstance(kind_of, h5py.Dataset) and kind_of.size == 1 and kind_of.dtype.kind in "SOU":
                kind_text = np.asarray(kind_of[()]).ravel()[0]
                kind_text = kind_text.decode("utf-8", "replace") if isinstance(kind_text, bytes) else str(kind_text)
            shape_text = ""
            if isinstance(shape, h5py.Dataset) and (shape.size or 0) <= 8 and shape.dtype.kind in "iu":
                shape_text = f"  shape {np.asarray(shape[()]).ravel().tolist()}"
            lines.append(f"  layer {key:<4} {kind_text[:40]}{shape_text}")
    head = (f"{path}: lava-dl NetX file, {len(lines)} layers (import it with 'neurosim import FILE --from netx "
            "--dt SECONDS --out MODEL.h5')")
    return "\n".join([head, *lines])
