"""The mutations of tests/fuzzing.py: a mutation is a JSON-able dict (flipped bytes, truncation,
objects deleted or added, other dtypes, shapes and values, huge declared sizes, links; for archives
other arrays, huge npy headers, corrupt members, zip bombs), drawn by hypothesis, so a failing
case prints as data and replays exactly."""
from __future__ import annotations

import contextlib
import io
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

DT = 1e-3
STEPS = 30  # `neurosim simulate --steps` of the npz target

# ================================================================================ mutations
# A mutation is a JSON-able dict, so a failing case prints as data and replays exactly.

DTYPES = ("int8", "uint8", "int32", "int64", "uint64", "float16", "float32", "float64", "complex64", "bool",
          "S4", "vlen_str", "compound", "enum", "vlen_int", "ref")
SPECIAL = ("nan", "inf", "-inf", "huge", "negative", "zero", "max_int")


def _values(dtype: str, shape: tuple[int, ...], fill: str, f: Any) -> Any:
    """(data, h5py dtype) for a replacement dataset or attribute."""
    import h5py

    n = int(np.prod(shape)) if shape else 1
    base = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e300, "negative": -7.0, "zero": 0.0,
            "max_int": 2.0**63}.get(fill, 3.0)
    if dtype == "vlen_str":
        data = np.array(["x" * (k % 5) + "\u00e9" for k in range(n)], dtype=object).reshape(shape)
        return data, h5py.string_dtype()
    if dtype == "S4":
        return np.array([b"\xff\xfe1" for _ in range(n)], dtype="S4").reshape(shape), None
    if dtype == "compound":
        ct = np.dtype([("a", "i4"), ("b", "f8")])
        return np.zeros(shape, ct), None
    if dtype == "enum":
        et = h5py.enum_dtype({"A": 0, "B": 1}, basetype="i1")
        return np.ones(shape, "i1"), et
    if dtype == "vlen_int":
        vt = h5py.vlen_dtype(np.int32)
        data = np.empty(shape if shape else (), dtype=object)
        for idx in np.ndindex(*shape):
            data[idx] = np.arange(3, dtype=np.int32)
        if not shape:
            data[()] = np.arange(3, dtype=np.int32)
        return data, vt
    if dtype == "ref":
        data = np.empty(shape, dtype=h5py.ref_dtype)
        for idx in np.ndindex(*shape):
            data[idx] = f.ref
        return (data if shape else f.ref), h5py.ref_dtype
    dt = np.dtype(dtype)
    if dt.kind in "iub":
        if fill == "max_int":
            value = np.iinfo(dt).max if dt.kind in "iu" else True
        elif fill == "negative" and dt.kind == "i":
            value = -7
        elif fill == "huge" and dt.kind in "iu":
            value = np.iinfo(dt).max if dt.itemsize < 8 else 10**12
        else:
            value = 0 if fill == "zero" else 1
        return np.full(shape, value, dt), None
    with np.errstate(over="ignore"):
        return np.full(shape, base, dt), None


def mutate_h5(src: Path, dst: Path, ops: list[dict[str, Any]]) -> None:
    """Apply HDF5-level `ops` to a copy of `src` at `dst` (byte-level ops come last)."""
    import h5py

    shutil.copyfile(src, dst)
    structural = [op for op in ops if op["op"] not in ("flip", "truncate")]
    if structural:
        with h5py.File(dst, "r+") as f:
            for op in structural:
                with contextlib.suppress(KeyError, ValueError, TypeError, RuntimeError, OSError):
                    _h5_op(f, op)
    _bytes_ops(dst, ops)


def _h5_op(f: Any, op: dict[str, Any]) -> None:
    import h5py

    path, _, attr = op["path"].partition("@")
    obj = f[path]
    kind = op["op"]
    if kind == "delete":
        if attr:
            del obj.attrs[attr]
        elif path != "/":
            del f[path]
        return
    if kind == "extra":
        target = obj if isinstance(obj, h5py.Group) else obj.parent
        if op["what"] == "group":
            target.create_group(op["name"])
        elif op["what"] == "dataset":
            target.create_dataset(op["name"], data=np.arange(3.0))
        else:
            obj.attrs[op["name"]] = 1
        return
    if kind == "attr":
        data, dtype = _values(op["dtype"], tuple(op["shape"]), op["fill"], f)
        key = attr or op.get("name", "x")
        if key in obj.attrs:
            del obj.attrs[key]
        obj.attrs.create(key, data, dtype=dtype)
        return
    if attr:
        return  # the remaining ops replace objects
    parent, name = obj.parent, path.rsplit("/", 1)[-1]
    if path == "/" or not name:
        return
    if kind == "dataset":
        data, dtype = _values(op["dtype"], tuple(op["shape"]), op["fill"], f)
        del parent[name]
        parent.create_dataset(name, data=data, dtype=dtype)
    elif kind == "special" and isinstance(obj, h5py.Dataset) and obj.dtype.kind in "iuf" and 0 < obj.size < 10**6:
        data = obj[()]
        flat = np.array(data, dtype=np.float64).reshape(-1)
        flat[op["index"] % flat.size] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e300,
                                         "negative": -1e9, "zero": 0.0, "max_int": 2.0**63}[op["fill"]]
        with np.errstate(invalid="ignore", over="ignore"):
            data = flat.reshape(np.shape(data)).astype(obj.dtype)
        del parent[name]
        parent.create_dataset(name, data=data)
    elif kind == "huge":
        dtype = obj.dtype if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "iuf" else np.float64
        del parent[name]
        shape = tuple(op["shape"])
        if op["layout"] == "chunked":
            parent.create_dataset(name, shape=shape, dtype=dtype, chunks=(1,) * len(shape), maxshape=shape,
                                  compression="gzip" if op.get("compress") else None)
        else:
            parent.create_dataset(name, shape=shape, dtype=dtype)
    elif kind == "link":
        del parent[name]
        parent[name] = h5py.SoftLink("/") if op["what"] == "soft" else h5py.ExternalLink("/etc/passwd", "/x")


def _bytes_ops(path: Path, ops: list[dict[str, Any]]) -> None:
    data = bytearray(path.read_bytes())
    for op in ops:
        if op["op"] == "flip" and data:
            k = int(op["at"] * len(data)) % len(data)
            data[k] ^= op["xor"]
        elif op["op"] == "truncate":
            data = data[:int(op["at"] * len(data))]
    path.write_bytes(bytes(data))


def mutate_npz(src: Path, dst: Path, ops: list[dict[str, Any]]) -> None:
    """Apply archive-level `ops` to a copy of the npz `src` at `dst`."""
    with np.load(src) as z:
        arrays: dict[str, Any] = {k: z[k] for k in z.files}
    raw: dict[str, bytes] = {}
    compress = False
    for op in ops:
        kind = op["op"]
        key = op.get("key", "in")
        if kind == "array":
            arrays[key] = _npz_array(op)
        elif kind == "drop":
            arrays.pop(key, None)
        elif kind == "header":  # an npy header declaring a huge shape, with little or no data
            arrays.pop(key, None)
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(head, {"descr": "|b1", "fortran_order": False,
                                                        "shape": tuple(op["shape"])})
            raw[key + ".npy"] = head.getvalue() + b"\x01" * op["data"]
        elif kind == "member":
            raw[op["name"]] = op["text"].encode("utf-8", "surrogatepass")
        elif kind == "bomb":  # highly compressible zeros that declare a large array
            arrays[key] = np.zeros((op["steps"], 2, 12), bool)
            compress = True
        elif kind == "compressed":
            compress = True
    buf, method = io.BytesIO(), zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method) as zf:
        warnings.simplefilter("ignore")  # duplicate member names are a mutation here
        for k, a in arrays.items():
            out = io.BytesIO()
            np.lib.format.write_array(out, np.asanyarray(a), allow_pickle=True)
            zf.writestr(k + ".npy", out.getvalue())
        for name, data in raw.items():
            zf.writestr(name, data)
    dst.write_bytes(buf.getvalue())
    _bytes_ops(dst, ops)


def _npz_array(op: dict[str, Any]) -> Any:
    shape = tuple(op["shape"])
    if op["dtype"] == "object":
        a = np.empty(shape, dtype=object)
        a.fill(None)
        return a
    if op["dtype"] == "str":
        return np.full(shape, "1")
    dt = np.dtype(op["dtype"])
    fill = op["fill"]
    if dt.kind == "f":
        value = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e300, "negative": -1.0, "zero": 0.0,
                 "max_int": 2.0**63}[fill]
    elif dt.kind == "c":
        value = 1 + 1j
    else:
        value = {"negative": -1, "zero": 0, "max_int": 2, "huge": 100}.get(fill, 1)
        if dt.kind == "u" and value < 0:
            value = 1
    a = np.zeros(shape, dt)
    if a.size:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaN into an integer array is a mutation too
            a.reshape(-1)[:: max(1, a.size // 7)] = value
    return a


# ============================================================================== strategies


def case_strategy(target: str, members: list[str]) -> Any:
    """Hypothesis strategy of a list of mutations for `target` (members: the seed's HDF5
    paths and attributes; unused for npz)."""
    from hypothesis import strategies as st

    byte_ops = st.one_of(
        st.fixed_dictionaries({"op": st.just("flip"), "at": st.floats(0, 1, exclude_max=True),
                               "xor": st.integers(1, 255)}),
        st.fixed_dictionaries({"op": st.just("truncate"), "at": st.floats(0, 1, exclude_max=True)}))
    fills = st.sampled_from(SPECIAL)
    small_shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3)
    if target == "npz":
        keys = st.sampled_from(["in", "poi", "other", "in\u00e9"])
        op = st.one_of(
            st.fixed_dictionaries({"op": st.just("array"), "key": keys,
                                   "dtype": st.sampled_from(["bool", "uint8", "int8", "int64", "float32", "float64",
                                                             "complex64", "object", "str", "uint16"]),
                                   "shape": st.sampled_from([[STEPS, 12], [STEPS, 2, 12], [STEPS, 3, 12], [STEPS],
                                                             [STEPS - 1, 12], [STEPS, 11], [], [0, 12],
                                                             [STEPS, 1, 12], [STEPS, 2, 2, 12], [40, 12]]),
                                   "fill": fills}),
            st.fixed_dictionaries({"op": st.just("drop"), "key": keys}),
            st.fixed_dictionaries({"op": st.just("header"), "key": keys,
                                   "shape": st.sampled_from([[10**12, 12], [STEPS, 10**6, 12], [2**62, 2, 12],
                                                             [STEPS, 2, 12], [-1, 12]]),
                                   "data": st.integers(0, 800)}),
            st.fixed_dictionaries({"op": st.just("member"), "name": st.sampled_from(["x.txt", "a/b.npy", "in.npy"]),
                                   "text": st.text(max_size=20)}),
            st.fixed_dictionaries({"op": st.just("bomb"), "key": st.just("in"),
                                   "steps": st.sampled_from([STEPS, 10**5, 3 * 10**6])}),
            st.fixed_dictionaries({"op": st.just("compressed")}),
            byte_ops)
        return st.lists(op, min_size=1, max_size=4)
    paths = st.sampled_from(members)
    objects = st.sampled_from([m for m in members if "@" not in m and m != "/"])
    op = st.one_of(
        st.fixed_dictionaries({"op": st.just("delete"), "path": paths}),
        st.fixed_dictionaries({"op": st.just("extra"), "path": objects,
                               "what": st.sampled_from(["group", "dataset", "attr"]),
                               "name": st.sampled_from(["zz", "order", "size", "type", "0", "99", "metadata"])}),
        st.fixed_dictionaries({"op": st.just("attr"), "path": paths, "dtype": st.sampled_from(DTYPES),
                               "shape": st.sampled_from([[], [1], [2], [20]]), "fill": fills}),
        st.fixed_dictionaries({"op": st.just("dataset"), "path": objects, "dtype": st.sampled_from(DTYPES),
                               "shape": small_shapes, "fill": fills}),
        st.fixed_dictionaries({"op": st.just("special"), "path": objects, "index": st.integers(0, 1000),
                               "fill": fills}),
        st.fixed_dictionaries({"op": st.just("huge"), "path": objects,
                               "shape": st.sampled_from([[10**12], [10**6, 10**6], [2**40, 2], [3 * 10**9]]),
                               "layout": st.sampled_from(["chunked", "contiguous"]), "compress": st.booleans()}),
        st.fixed_dictionaries({"op": st.just("link"), "path": objects, "what": st.sampled_from(["soft", "external"])}),
        byte_ops)
    return st.lists(op, min_size=1, max_size=4)


def write_case(target: str, seed: Path, dst: Path, ops: list[dict[str, Any]]) -> None:
    (mutate_npz if target == "npz" else mutate_h5)(seed, dst, ops)
